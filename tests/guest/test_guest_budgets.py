"""Every mode's output fits Run Command's 4,096-byte StdOut tail at its worst, and the worst plan's
command line fits cmd.exe's 8,191 characters. The figures are measured here (run with -s to see
them) and stated in docs/guest-contract.md.

Run Command keeps only the last 4,096 bytes of StdOut: a line cut at its start is a contract
error, never facts. The scripts print one line: `AZRDP2:` + base64(gzip(JSON)), capped by the
rules in facts.LIMITS, and over OUTPUT_BUDGET trimmed step by step (facts.TRIMS, named in
`cut`); past the last step the collector says `budget` instead of facts, and the executor keeps
its steps' results and leaves the facts behind (azrdp then collects again)."""

from __future__ import annotations

import random
import string

import pytest
from guest_driver import Guest
from hypothesis import given, settings
from hypothesis import strategies as st
from worst import NOW, worst_guest, worst_plan_machine, worst_repairable

from azrdp.emulator.windows import image, runcommand
from azrdp.guest import envelope as ge
from azrdp.guest import facts as gf
from azrdp.guest import scripts

SEEDS = range(4)


def report(label: str, sizes: list[int], limit: int = ge.OUTPUT_BUDGET) -> None:
    print(f"\n{label}: worst {max(sizes):,} of {limit:,} (over {len(sizes)} states)")
    assert max(sizes) <= limit


def test_collect_at_its_worst() -> None:
    sizes, cuts = [], set()
    for seed in SEEDS:
        guest = Guest(worst_guest(seed), now=NOW)
        out = guest.collect()
        assert out.facts is not None, out.error
        sizes.append(len(guest.last_line))
        cuts.add(out.facts.cut)
        # Trimmed, not lost: the counts stay whole, and what was cut is named.
        assert out.facts.certs is not None and out.facts.certs.rd_count == 40
        assert out.facts.firewall is not None and out.facts.firewall.block_count == 60
    report("collect (badly broken VM, 70 certificates, 67 rules, every service hung)", sizes)
    print(f"  trims applied: {sorted(cuts)}")
    assert all(set(c) < set(gf.TRIMS) for c in cuts)  # room to spare on the ladder


def test_execute_records_and_history_at_their_worst() -> None:
    execute, records, history = [], [], []
    for seed in SEEDS:
        for machine in (worst_repairable(seed), worst_plan_machine(seed)):
            guest = Guest(image.dump(machine), port=3390, now=NOW)
            plan, _ = guest.plan()
            out = guest.execute(plan)
            assert out.run is not None, out.error
            assert [s.id for s in out.run.steps] == [s.id for s in plan.steps]  # every step answered
            execute.append(len(guest.last_line))
            rec = guest.records(plan.run_id)
            assert rec.records is not None
            records.append(len(guest.last_line))
            out_history = guest.history()
            assert out_history.history
            history.append(len(guest.last_line))
    report("execute (the worst plan's run and the facts after)", execute)
    report("records (what the worst run recorded)", records)
    report("history (30 runs kept in the guest)", history)


def test_the_worst_plan_fits_the_command_line() -> None:
    lengths, ops = [], []
    for seed in SEEDS:
        guest = Guest(image.dump(worst_plan_machine(seed)), port=3390, now=NOW)
        plan, steps = guest.plan()
        assert len(plan.steps) == 8 and not [s for s in steps if s.refused]
        token = plan.token()
        assert token.startswith("H4sI")  # gzip, base64url
        line = scripts.render_command_line(scripts.execute_parameters(plan.run_id, token, 3390))
        lengths.append(len(line))
        ops.append(len(plan.ops))
    print(
        f"\nworst plan: {max(ops)} operations in 8 steps, command line {max(lengths):,} characters "
        f"(azrdp's limit {scripts.PARAMETERS_LIMIT:,}, cmd.exe's {scripts.CMD_LINE_LIMIT:,})"
    )
    assert max(lengths) <= scripts.PARAMETERS_LIMIT < scripts.CMD_LINE_LIMIT


def test_refusals_fit_too() -> None:
    long = "x" * 5000
    doc = {"v": ge.VERSION, "m": "execute", "t": "2026-01-15T10:00:00Z", "e": gf.limit_text(long, 200)}
    line = ge.render_line(ge.GuestReport(**{"version": doc["v"], "mode": doc["m"], "error": doc["e"]}))
    assert len(line) < 400


# --- adversarial facts: whatever the guest holds, the line fits or says why --------------------


def _text(rnd: random.Random, n: int) -> str:
    return "".join(rnd.choice(string.ascii_letters + string.digits) for _ in range(n))


def adversarial_facts(seed: int) -> gf.Facts:
    """Every list at its cap and every text at its cap, of random characters (what gzip cannot
    shrink): far beyond any real VM."""
    rnd = random.Random(seed)
    lim = gf.LIMITS

    def t(n: int = lim["text"]) -> str:
        return _text(rnd, n)

    def hexs(n: int) -> str:
        return "".join(rnd.choice("0123456789ABCDEF") for _ in range(n))

    def sddl() -> str:
        return "O:SYD:P" + "".join(
            f"(A;;FA;;;S-1-5-21-{rnd.randrange(10**9)}-{rnd.randrange(10**5)})" for _ in range(8)
        )

    regs = tuple(
        gf.RegEntry(k, n, "Binary", hexs(40))
        if n == "SSLCertificateSHA1Hash"
        else gf.RegEntry(k, n, "String", t())
        for k, names in gf.REG_READS.items()
        for n in names
    )
    services = tuple(
        gf.ServiceFacts(
            n, t(), "Start Pending", "Disabled", True, t(), 1, 2, tuple(t() for _ in range(lim["dependents"]))
        )
        for n in gf.SERVICE_NAMES
    )

    def key() -> gf.KeyFacts:
        return gf.KeyFacts(24, t(), t(), hexs(32) + "_" + t(36), True, sddl(), -2146893802, t(lim["error"]))

    certs = tuple(
        gf.CertFacts(
            "rd",
            hexs(40),
            "2026-01-01T00:00:00Z",
            "2026-02-01T00:00:00Z",
            t(),
            t(),
            tuple(t() for _ in range(lim["eku"])),
            True,
            key(),
        )
        for _ in range(lim["certs"])
    )

    def rule() -> gf.RuleFacts:
        return gf.RuleFacts(t(), True, "Inbound", "Block", "TCP", t(), t(), t(), t(), t(), t(), "GroupPolicy")

    return gf.Facts(
        gf.OsFacts("10.0.14393", 14393, "5.1", True, "2026-01-15T09:00:00Z", t(36), "10.0.14393.0"),
        regs,
        tuple(gf.REG_KEYS),
        gf.TsGeneral(0, 1, 2, hexs(40), 3, 1),
        services,
        tuple(gf.PortOwner(3389, i, t()) for i in range(lim["owners"])),
        gf.CertStoreFacts(999, 999, certs, sddl(), sddl()),
        gf.FolderFacts(sddl()),
        gf.FirewallFacts(
            tuple(gf.ProfileFacts(p, True, False, False, t(12)) for p in gf.PROFILES),
            ("Domain", "Private", "Public"),
            tuple(rule() for _ in range(2 + lim["customRules"])),
            tuple(rule() for _ in range(lim["blocks"])),
            999,
        ),
        tuple(gf.EventFacts(i, 9999, tuple(t() for _ in range(lim["sources"]))) for i in gf.EVENT_IDS),
        gf.DiskFacts("C:", 1, 2),
        gf.AzrdpFacts(
            "S-1-5-18",
            tuple(gf.RunFacts(hexs(12), "t", "b", "applied", True, hexs(12)) for _ in range(lim["runs"])),
        ),
        tuple(gf.SectionError(t(6), t(lim["error"])) for _ in range(lim["errors"])),
    )


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 10**6))
def test_the_ladder_holds_whatever_the_facts(seed: int) -> None:
    facts = adversarial_facts(seed)
    doc = {"v": ge.VERSION, "m": "collect", "t": "2026-01-15T10:00:00Z", "e": None, "ec": None}
    runcommand._fit_facts(doc, facts)  # the model's Limit-AzrdpFacts
    size = runcommand._size(doc)
    cut = tuple(doc["f"]["cut"])
    assert cut == gf.TRIMS[: len(cut)]  # in order, none skipped
    if size > ge.OUTPUT_BUDGET:
        assert cut == gf.TRIMS  # the whole ladder ran: the collector then answers `budget`
    # What was trimmed is what the step says, and nothing else.
    trimmed = ge.parse_output(ge.MARKER + runcommand.pack(doc)).facts if size <= ge.OUTPUT_BUDGET else None
    if trimmed is not None:
        assert trimmed.reg == facts.reg and trimmed.services is not None
        assert trimmed.firewall is not None and trimmed.firewall.rules == facts.firewall.rules  # type: ignore[union-attr]


@pytest.mark.parametrize("step", gf.TRIMS)
def test_each_trim_step_only_shortens_what_it_names(step: str) -> None:
    facts = adversarial_facts(1)
    out = gf.trim(facts, step)
    assert out.cut == (step,)
    assert len(ge.render_line(ge.GuestReport(ge.VERSION, "collect", "t", out))) < len(
        ge.render_line(ge.GuestReport(ge.VERSION, "collect", "t", facts))
    )
    assert out.reg == facts.reg and out.os == facts.os and out.firewall.rules == facts.firewall.rules  # type: ignore[union-attr]
    assert out.certs.rd_count == facts.certs.rd_count  # type: ignore[union-attr]


def test_a_collector_that_cannot_fit_says_so() -> None:
    """The model's collector on the adversarial facts: `budget`, never a line over the tail."""
    doc = {"v": ge.VERSION, "m": "collect", "t": "2026-01-15T10:00:00Z", "e": None, "ec": None}
    sizes = []
    for seed in range(5):
        runcommand._fit_facts(doc, adversarial_facts(seed))
        sizes.append(runcommand._size(doc))
    print(
        f"\nadversarial facts (random text at every cap), fully trimmed: {min(sizes):,}-{max(sizes):,} bytes"
    )
