"""One regression test per defect in issue 11's "Why", each on the Windows model through the real
wire (the scripts' parameters, the compressed marker line, the strict parser, azrdp's own checks and
planner). The PowerShell-only traps are also checked statically over the parsed scripts in
test_guest_scripts.py (test_defect_*)."""

from __future__ import annotations

from typing import Any

import pytest
from guest_driver import Guest, ids

from azrdp.emulator.guest_scenarios import CREDSSP, RDPTCP, TS
from azrdp.guest import envelope as ge
from azrdp.guest import plan as gp
from azrdp.guest import scripts
from azrdp.model import Severity

THUMB = "0F0F0F0F0F0F0F0F0F0F0F0F0F0F0F0F0F0F0F0F"
PINNED = "A1A1A1A1A1A1A1A1A1A1A1A1A1A1A1A1A1A1A1A1"
HARDENED = "O:SYG:SYD:PAI(A;;FA;;;SY)(A;;FA;;;BA)"


def severities(guest: Guest) -> dict[str, Severity]:
    return {f.id: f.severity for f in guest.findings()}


# 1. Every repair, undo and history run was refused before anything changed. --------------------


def test_1_repair_undo_and_history_all_run() -> None:
    guest = Guest(
        {
            "registry": {TS: {"fDenyTSConnections": 1}, RDPTCP: {"SecurityLayer": 0}},
            "firewall": {"rules": {"RemoteDesktop-UserMode-In-TCP": {"enabled": False}}},
        }
    )
    plan, _ = guest.plan()
    assert len(plan.steps) == 3
    out = guest.execute(plan)
    assert out.run is not None and out.run.state == "applied", out.error
    undo = guest.execute(guest.undo_plan(plan.run_id))
    assert undo.run is not None and undo.run.state == "applied"
    history = guest.history()
    assert [h.run_id for h in history.history] == ["0123456789ab", plan.run_id]


# 2. The main 0x904 cause: a CAPI key in RSA\MachineKeys that NETWORK SERVICE cannot read. ------


def test_2_an_unreadable_capi_key_of_a_valid_certificate_is_found_and_fixed() -> None:
    guest = Guest({"certificates": [{"thumbprint": THUMB, "keyReadable": False}], "events": {"36870": 30}})
    facts = guest.collect().facts
    assert facts is not None and facts.certs is not None
    (cert,) = facts.certs.certs
    assert cert.key is not None and cert.key.prov_type == 24  # CAPI, located from the key-provider info
    assert cert.key.file and cert.key.file.startswith("f686aace6942fb7f7ceb231212eef4a4_")
    assert cert.key.exists is True and cert.key.opens == 0
    assert severities(guest).get("machinekeys-acl-corrupt") is Severity.BLOCKER
    plan, _ = guest.plan()
    assert [s.id for s in plan.steps] == ["machinekeys-acl"]
    (acl,) = [op for op in plan.ops if isinstance(op, gp.Acl)]
    assert acl.target_id.startswith("key:f686aace")
    out = guest.execute(plan)
    assert out.run is not None and out.run.state == "applied"
    assert "machinekeys-acl-corrupt" not in ids(guest.findings(out))


def test_2_after_a_renewal_the_unreadable_container_is_not_reused() -> None:
    """Windows reuses an existing TSSecKeySet1 container: a renewal that left the unreadable one in
    place would mint a certificate on it and report 'verified'. azrdp fixes the key's ACL first."""
    guest = Guest(
        {
            "machineKeysSddl": HARDENED,
            "certificates": [{"thumbprint": THUMB, "notAfter": "-3d", "keyReadable": False}],
            "events": {"1058": 5},
        }
    )
    plan, _ = guest.plan()
    assert [s.id for s in plan.steps] == ["machinekeys-acl", "rdp-cert-renew"]
    out = guest.execute(plan)
    assert out.run is not None and out.run.state == "applied"
    after = guest.findings(out)
    assert not ids(after) & {"rdp-cert-expired", "machinekeys-acl-corrupt", "rdp-cert-missing-private-key"}
    assert guest.machine().listener_key_readable()


# 3. The certificate pin was never read. ---------------------------------------------------------


def test_3_a_stale_pin_fires() -> None:
    guest = Guest({"registry": {RDPTCP: {"SSLCertificateSHA1Hash": "hex:" + PINNED.lower()}}, "pinType": 3})
    facts = guest.collect().facts
    assert facts is not None
    pin = facts.value("rdptcp", "SSLCertificateSHA1Hash")
    assert pin is not None and pin.kind == "Binary" and pin.data == PINNED
    assert "rdp-cert-binding-stale" in severities(guest)


def test_3_an_unused_expired_self_signed_certificate_is_no_blocker() -> None:
    """The listener is pinned to a valid certificate in My; an old self-signed one lingers."""
    guest = Guest(
        {
            "registry": {RDPTCP: {"SSLCertificateSHA1Hash": "hex:" + PINNED.lower()}},
            "pinType": 3,
            "certificates": [
                {"thumbprint": THUMB, "notAfter": "-30d"},
                {"thumbprint": PINNED, "store": "My", "notAfter": "+300d"},
            ],
        }
    )
    found = severities(guest)
    assert "rdp-cert-expired" not in found and "rdp-cert-binding-stale" not in found
    assert not [f for f, s in found.items() if s is Severity.BLOCKER], found


# 4. Moving the port broke the firewall. ---------------------------------------------------------


def test_4_the_firewall_follows_the_port_it_is_moved_to() -> None:
    guest = Guest({"listeners": {"3389": {"pid": 4242, "process": "nginx"}}}, port=3390)
    plan, _ = guest.plan()
    assert [s.id for s in plan.steps] == ["rdp-port", "firewall-rdp-rule"]
    rules = [op for op in plan.ops if isinstance(op, (gp.RuleNew, gp.RuleSet))]
    assert rules and all(getattr(op, "port", 3390) == 3390 for op in rules), rules
    out = guest.execute(plan)
    assert out.run is not None and out.run.state == "applied"
    after = guest.findings(out)
    assert not {"firewall-rule-disabled", "port-owned-by-other-process"} & ids(after), after
    assert guest.machine().listening() == 3390


# 5. A stuck service locked the VM for 90 minutes. ------------------------------------------------


def test_5_a_pending_service_is_refused_and_a_hang_is_bounded() -> None:
    pending = Guest({"services": {"TermService": {"state": "Start Pending", "hang": "start"}}})
    _, steps = pending.plan()
    (step,) = [s for s in steps if s.id == "rdp-services"]
    assert step.refused and "pending" in step.refused.lower()
    # A hang that starts during the run: WaitForStatus's timeout, never an unbounded wait.
    hung = Guest({"services": {"TermService": {"state": "Stopped", "pid": 0, "hang": "start"}}})
    plan, _ = hung.plan()
    out = hung.execute(plan)
    assert out.run is not None and "Time out" in (out.run.steps[0].error or "")
    assert plan.deadline <= gp.MAX_DEADLINE


# 6. The rest of the list. -----------------------------------------------------------------------


def test_6_a_key_azrdp_cannot_open_for_an_unknown_reason_is_never_counted_lost() -> None:
    """Only 'Keyset does not exist' on a CAPI key whose file is gone, or a corrupt container, is a
    lost key; any other failure is unknown, and a working certificate is never removed."""
    guest = Guest({"certificates": [{"thumbprint": THUMB, "key": {"provider": "cng", "exists": True}}]})
    found = severities(guest)
    assert "rdp-cert-missing-private-key" not in found
    plan, _ = guest.plan()
    assert not [op for op in plan.ops if isinstance(op, gp.CertRemove)]


@pytest.mark.parametrize(
    ("scope", "expect"),
    [
        ({}, Severity.BLOCKER),
        ({"remoteAddress": "198.51.100.0/24"}, Severity.WARNING),  # blocks some clients only
        ({"program": r"C:\Tools\agent.exe"}, None),  # another program's traffic
        ({"service": "RemoteRegistry"}, None),  # another service's traffic
        ({"localPorts": "445"}, None),
    ],
)
def test_6_block_rules_are_judged_with_their_scope(scope: dict[str, Any], expect: Severity | None) -> None:
    rule = {"action": "Block", "localPorts": "3389", "program": "Any", "service": "Any", **scope}
    guest = Guest({"firewall": {"rules": {"Corp-Block-RDP": rule}}})
    assert severities(guest).get("firewall-rule-disabled") is expect


@pytest.mark.parametrize(
    "dacl",
    [
        "(A;;FA;;;SY)(A;;FR;;;BU)",  # Users
        "(A;;FA;;;SY)(A;;FR;;;S-1-5-6)",  # SERVICE
        "(A;;FA;;;SY)(A;;FR;;;S-1-5-80-446051430-1559341753-4161941529-1950928533-810483104)",  # TermService
        "(A;;FA;;;SY)(A;;0x120001;;;NS)(A;;0x88;;;AU)",  # a split grant
    ],
)
def test_6_key_readability_counts_group_sids_and_split_grants(dacl: str) -> None:
    guest = Guest({"certificates": [{"thumbprint": THUMB, "key": {"sddl": "O:SYD:P" + dacl}}]})
    assert "machinekeys-acl-corrupt" not in severities(guest)


def test_6_acl_edits_are_canonical_keep_the_sacl_and_take_ownership_only_when_locked_out() -> None:
    messy = "O:SYD:P(A;;FA;;;SY)(D;;FA;;;NS)(A;;FA;;;BA)"  # a deny after an allow: non-canonical
    guest = Guest({"certificates": [{"thumbprint": THUMB, "key": {"sddl": messy}}]})
    plan, _ = guest.plan()
    (acl,) = [op for op in plan.ops if isinstance(op, gp.Acl)]
    assert acl.expect == messy and not acl.take_ownership and not acl.owner
    assert "(D;;FA;;;NS)" not in acl.sddl and acl.sddl.startswith("O:SYD:P(A;;FA;;;SY)")
    out = guest.execute(plan)
    assert out.run is not None and out.run.state == "applied"
    assert guest.machine().listener_key_readable()
    # SYSTEM locked out of the DACL (it can read it, not write it): ownership first, recorded before.
    locked = Guest(
        {"certificates": [{"thumbprint": THUMB, "key": {"sddl": "O:S-1-5-21-1-2-3-1001D:P(A;;FR;;;SY)"}}]}
    )
    plan, _ = locked.plan()
    (acl,) = [op for op in plan.ops if isinstance(op, gp.Acl)]
    assert acl.take_ownership and acl.owner and acl.sddl.startswith("O:SY")
    out = locked.execute(plan)
    assert out.run is not None and out.run.state == "applied", out.run
    assert locked.machine().listener_key_readable()
    # The record holds the descriptor as it was, before ownership changed.
    records = locked.records(plan.run_id).records
    assert records is not None
    assert [r.prior for r in records.ops if r.op.get("k") == "acl"] == [
        "O:S-1-5-21-1-2-3-1001D:P(A;;FR;;;SY)"
    ]


def test_6_unrelated_tls_and_service_events_never_justify_resetting_a_hardened_folder() -> None:
    guest = Guest(
        {
            "machineKeysSddl": HARDENED,
            "events": {"36870": 50, "7022": {"count": 9, "sources": ["Contoso Backup Agent"]}},
        }
    )
    found = severities(guest)
    assert found.get("machinekeys-acl-corrupt") is Severity.WARNING  # a hardened folder alone keeps RDP
    plan, steps = guest.plan()
    assert plan.steps == () and not [s for s in steps if s.id == "machinekeys-acl" and s.actionable]


@pytest.mark.parametrize(
    "folder",
    [
        "O:SYD:PAI(A;;0x12019f;;;WD)(A;;FA;;;BA)",  # the default
        "O:SYG:SYD:PAI(A;;FA;;;BA)(A;;0x12019f;;;WD)",  # another order, a group
        "O:SYD:PAI(A;;0x12019f;;;WD)(A;;FA;;;BA)(A;;FA;;;SY)",  # an extra harmless ACE
        "O:SYD:PAI(A;;0x1f01ff;;;WD)(A;;FA;;;BA)",  # more than the default for Everyone
    ],
)
def test_6_the_machinekeys_folder_is_judged_by_meaning_not_by_string(folder: str) -> None:
    assert "machinekeys-acl-corrupt" not in severities(Guest({"machineKeysSddl": folder}))


def test_6_history_output_is_bounded() -> None:
    guest = Guest({"registry": {TS: {"fDenyTSConnections": 1}}})
    for i in range(12):
        guest.vm["guest"]["registry"] = {TS: {"fDenyTSConnections": 1}}
        plan, _ = guest.plan(run_id=f"{i:012x}")
        assert guest.execute(plan).run is not None
        guest.vm["guest"].pop("registry", None)
    out = guest.history()
    assert out.history and len(guest.last_line) <= ge.OUTPUT_BUDGET


def test_6_no_parameter_is_ever_sent_empty() -> None:
    for params in (
        scripts.collect_parameters(3389),
        scripts.execute_parameters("a1b2c3d4e5f6", "H4sIAAAA"),
        scripts.records_parameters("a1b2c3d4e5f6"),
        scripts.history_parameters(),
    ):
        assert all(p["value"] for p in params)
        assert not {"Only", "Skip"} & {p["name"] for p in params}


# 6 (last item). CredSSP, by Microsoft's interoperability matrix. ---------------------------------


@pytest.mark.parametrize(
    ("tspkg", "value", "expect"),
    [
        # An updated server: 0 refuses clients without the update; 1 (and absent) admits all; 2
        # admits all, including vulnerable clients (a security warning, not a connection fault).
        ("10.0.20348.2849", None, {}),
        ("10.0.20348.2849", 1, {}),
        ("10.0.20348.2849", 0, {"credssp-oracle-mismatch": Severity.WARNING}),
        ("10.0.20348.2849", 2, {"credssp-oracle-vulnerable": Severity.WARNING}),
        ("10.0.14393.2248", 0, {"credssp-oracle-mismatch": Severity.WARNING}),
        # A server without the update: every updated client (Mitigated by default) refuses it.
        ("10.0.14393.2097", None, {"credssp-server-unpatched": Severity.BLOCKER}),
        ("6.3.9600.18000", None, {"credssp-server-unpatched": Severity.BLOCKER}),
    ],
)
def test_6_credssp_by_the_matrix(tspkg: str, value: int | None, expect: dict[str, Severity]) -> None:
    build = int(tspkg.split(".")[2])
    guest: dict[str, Any] = {
        "os": {"version": ".".join(tspkg.split(".")[:3]), "build": build, "tspkgVersion": tspkg}
    }
    if value is not None:
        guest["registry"] = {CREDSSP: {"AllowEncryptionOracle": value}}
    found = {k: v for k, v in severities(Guest(guest)).items() if k.startswith("credssp")}
    assert found == expect
