"""`azrdp repair`, `undo` and `history` end to end: the CLI, the real SDK, the emulator and its
Windows model. Every built-in failure scenario is repaired and verified, and undo puts the guest
back exactly as it was (the digest of the model's state)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import pytest
from fixtures_emulator import run_commands
from typer.testing import CliRunner

from azrdp import journal
from azrdp.cli.app import app
from azrdp.emulator import Emulator
from azrdp.emulator.guest_scenarios import GUEST_SCENARIOS, RDPTCP, TS, GuestScenario
from azrdp.emulator.windows import runcommand

RG, VM = "rg-rdp", "vm-rdp01"
MY_IP = "203.0.113.10"

REPAIRED = {
    "rdp-disabled": ("rdp-listener",),
    "listener-disabled": ("rdp-listener",),
    "termservice-not-running": ("rdp-services",),
    "service-misconfigured": ("rdp-services",),
    "rdp-cert-expired": ("rdp-cert-renew",),
    "rdp-cert-missing-private-key": ("rdp-cert-renew",),
    "rdp-cert-binding-stale": ("rdp-cert-renew",),
    "rdp-cert-store-denied": ("rdp-cert-renew",),
    "machinekeys-acl-corrupt": ("machinekeys-acl",),
    "firewall-rule-disabled": ("firewall-rdp-rule",),
    "firewall-udp-rule-disabled": ("firewall-rdp-rule",),
    "rdp-logons-disabled": ("rdp-listener",),
    "rdp-drain-mode": ("rdp-listener",),
    "firewall-blocks-all-inbound": ("firewall-rdp-rule",),
    "nla-or-security-downgraded": ("rdp-security-restore",),
}
# azrdp explains and changes nothing: policy owns the value, the port was moved on purpose, or a
# process it will not stop holds the port.
REFUSED = {
    "rdp-disabled-by-policy": "rdp-listener",
    "port-mismatch": "rdp-port",
    "port-owned-by-other-process": "rdp-port",
    "port-moved-with-azrdp-rule": "rdp-port",
}
# Applied, but only a reboot makes it real: never reported as verified.
REBOOT = {"tls12-server-disabled": ("tls12-server",)}
# Warnings azrdp never "fixes" (compliance choices, patching, disk space).
LEFT_ALONE = ("fips-policy-enabled", "credssp-oracle-mismatch", "credssp-oracle-vulnerable", "low-disk-space")


def scenario(name: str) -> GuestScenario:
    return next(s for s in GUEST_SCENARIOS if s.name == name)


@pytest.fixture
def start(live_emulator: Callable[..., Emulator]) -> Callable[..., Emulator]:
    # Relative scenario times ("-12d") are anchored once per VM by the model (its guest epoch),
    # so states read at different moments compare equal.
    def go(name: Any = "guest-healthy", **kwargs: Any) -> Emulator:
        return live_emulator(name, **kwargs)

    return go


def now() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


def invoke(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def machine(emu: Emulator, name: str = VM) -> Any:
    with emu.store.lock:
        vm = emu.vm(RG, name)
        assert vm is not None
        return runcommand.machine_of(vm, now())[0]


def guest_of(emu: Emulator, name: str = VM) -> str:
    """The digest of the guest's Windows state (a certificate container an undo moved aside, never
    deleted, left out)."""
    return runcommand.digest(machine(emu, name), set_aside=False)


def rule_writes(emu: Emulator, method: str) -> list[Any]:
    return [r for r in emu.requests if r.method == method and "/securityrules/" in r.path.lower()]


def repair(*extra: str) -> tuple[Any, dict[str, Any]]:
    result = invoke("repair", VM, "-g", RG, "-o", "json", *extra)
    assert result.stdout, result.stderr
    doc = json.loads(result.stdout)
    return result, doc["vms"][0]


@pytest.mark.parametrize("name", sorted(REPAIRED))
def test_each_failure_is_repaired_verified_and_undone(name: str, start: Callable[..., Emulator]) -> None:
    entry = scenario(name)
    emu = start(entry.scenario_name)
    original = guest_of(emu)

    result, vm = repair("--yes")
    assert result.exit_code == 0, (result.stderr, vm)
    assert vm["status"] == "repaired" and vm["verified"] is True and vm["applied"] is True
    assert [r["id"] for r in vm["repairs"] if r["applied"]] == list(REPAIRED[name])
    assert set(entry.expected) <= {f["id"] for f in vm["findings"]}
    assert not set(entry.expected) & {f["id"] for f in vm["remainingFindings"]}
    assert all(r["verified"] for r in vm["repairs"] if r["applied"])
    assert vm["backupDir"].endswith(vm["runId"])
    # --yes: the collector (diagnose), then the executor (repair, then the collector again: verify).
    assert len(run_commands(emu)) == 2

    undo = invoke("undo", VM, "-g", RG, "--run-id", vm["runId"], "--yes", "-o", "json")
    assert undo.exit_code == 0, undo.stderr
    undone = json.loads(undo.stdout)["vms"][0]
    assert undone["guest"]["restored"] == list(reversed(REPAIRED[name]))
    assert set(entry.expected) <= {f["id"] for f in undone["findings"]}
    assert guest_of(emu) == original
    # Undo from the local journal: one executor run, planned from what the run recorded.
    assert len(run_commands(emu)) == 3


@pytest.mark.parametrize("name", sorted(REBOOT))
def test_a_change_that_needs_a_reboot_is_applied_not_verified(
    name: str, start: Callable[..., Emulator]
) -> None:
    emu = start(scenario(name).scenario_name)
    # The plan (dry run) says so before anything changes.
    _, planned = repair("--dry-run")
    assert any("after the VM restarts" in n for r in planned["plan"] for n in r["notes"])
    result, vm = repair("--yes")
    assert result.exit_code == 5, result.stderr  # applied, not verified
    assert vm["status"] == "notVerified" and vm["applied"] is True
    assert vm["verified"] is False and vm["rebootRequired"] is True
    (step,) = [r for r in vm["repairs"] if r["applied"]]
    assert step["id"] == REBOOT[name][0]
    assert step["verified"] is None and step["rebootRequired"] is True
    assert any("reboot" in n.lower() or "restart" in n.lower() for n in step["notes"])
    assert any("az vm restart -g rg-rdp -n vm-rdp01" in n for n in vm["notes"])
    assert len(run_commands(emu)) == 3  # dry run: collector; --yes: collector, executor


def test_healthy_vm_plans_nothing_and_changes_nothing(start: Callable[..., Emulator]) -> None:
    emu = start("guest-healthy")
    original = guest_of(emu)
    result, vm = repair("--yes")
    assert result.exit_code == 0, result.stderr
    assert vm["plan"] == [] and vm["applied"] is False and vm["changed"] == []
    assert vm["status"] == "healthy" and vm["backupDir"] is None
    assert guest_of(emu) == original
    assert not rule_writes(emu, "PUT")
    assert list(journal.entries()) == []


def test_second_run_is_a_no_op(start: Callable[..., Emulator]) -> None:
    emu = start("guest-rdp-disabled")
    first, _ = repair("--yes")
    assert first.exit_code == 0
    repaired = guest_of(emu)
    second, vm = repair("--yes")
    assert second.exit_code == 0
    assert vm["plan"] == [] and vm["applied"] is False
    assert guest_of(emu) == repaired


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_refusals_explain_and_change_nothing(name: str, start: Callable[..., Emulator]) -> None:
    emu = start(scenario(name).scenario_name)
    original = guest_of(emu)
    result, vm = repair("--yes")
    assert result.exit_code == 4, result.stderr
    (step,) = [s for s in vm["plan"] if s["id"] == REFUSED[name]]
    assert step["status"] == "refused" and step["refused"]
    assert vm["applied"] is False and vm["status"] == "blocked"
    assert guest_of(emu) == original


@pytest.mark.parametrize("name", LEFT_ALONE)
def test_warnings_azrdp_never_changes(name: str, start: Callable[..., Emulator]) -> None:
    emu = start(scenario(name).scenario_name)
    original = guest_of(emu)
    result, vm = repair("--yes")
    assert result.exit_code == 0
    guest = {f["id"] for f in vm["remainingFindings"] if f["source"] == "guest"}
    assert vm["plan"] == [] and guest == set(scenario(name).expected)
    assert guest_of(emu) == original


def test_moving_rdp_off_a_taken_port_with_its_nsg_rule_and_undo(start: Callable[..., Emulator]) -> None:
    emu = start("guest-port-owned-by-other-process")
    original = guest_of(emu)
    result, vm = repair("--yes", "--port", "3390", "--source-ip", MY_IP)
    assert result.exit_code == 0, (result.stderr, vm["plan"])
    applied = [r["id"] for r in vm["repairs"] if r["applied"]]
    # The firewall follows the port: the rule is planned on the state the port move leaves.
    assert applied == ["nsg-allow-rdp", "rdp-port", "firewall-rdp-rule"]
    puts = rule_writes(emu, "PUT")
    assert len(puts) == 2  # the subnet NSG and the NIC NSG each deny 3390 by default
    assert machine(emu).registry.number(RDPTCP, "PortNumber") == 3390

    undo = invoke("undo", VM, "-g", RG, "--run-id", vm["runId"], "--yes", "-o", "json")
    assert undo.exit_code == 0, undo.stderr
    control = json.loads(undo.stdout)["vms"][0]["controlPlane"]
    assert [c["status"] for c in control] == ["deleted", "deleted"]
    assert len(rule_writes(emu, "DELETE")) == 2
    assert guest_of(emu) == original


def test_nsg_rule_needs_an_explicit_source_and_never_opens_to_the_internet(
    start: Callable[..., Emulator],
) -> None:
    emu = start("subnet-blocked")
    for extra in ((), ("--source-ip", "203.0.113.0/24")):
        result, vm = repair("--yes", *extra)
        assert result.exit_code == 4, (extra, result.stderr)
        (step,) = [s for s in vm["plan"] if s["id"] == "nsg-allow-rdp"]
        assert step["status"] == "refused", extra
    assert not rule_writes(emu, "PUT")

    result, vm = repair("--yes", "--source-ip", MY_IP)
    assert result.exit_code == 0, (result.stderr, vm["plan"])
    (_put,) = rule_writes(emu, "PUT")
    nsg_id = next(
        r["id"]
        for r in emu.store.list("Microsoft.Network/networkSecurityGroups")
        if "subnet" in r["name"].lower()
    )
    with emu.store.lock:
        nsg = emu.store.get(nsg_id)
        assert nsg is not None
        (rule,) = [r for r in nsg["properties"]["securityRules"] if r["name"].startswith("azrdp-allow-rdp-")]
    props = rule["properties"]
    assert props["sourceAddressPrefix"] == f"{MY_IP}/32" and props["access"] == "Allow"
    assert props["destinationPortRange"] == "3389" and props["priority"] == 4096
    assert "nsg-denies-rdp" not in {f["id"] for f in vm["remainingFindings"]}
    kinds = [e.kind for e in journal.entries(run_id=vm["runId"])]
    assert kinds == ["nsg-rule", "done", "run"]  # the intent, its confirmation, the summary

    history = invoke("history", VM, "-g", RG, "-o", "json")
    assert history.exit_code == 0
    runs = json.loads(history.stdout)["vms"][0]["runs"]
    assert runs[0]["runId"] == vm["runId"]

    undo = invoke("undo", VM, "-g", RG, "--run-id", vm["runId"], "--yes", "-o", "json")
    assert undo.exit_code == 0, undo.stderr
    assert len(rule_writes(emu, "DELETE")) == 1
    with emu.store.lock:
        nsg = emu.store.get(nsg_id)
        assert nsg is not None
        assert not [r for r in nsg["properties"]["securityRules"] if r["name"].startswith("azrdp-")]


def test_no_free_priority_above_a_deny_at_100_is_refused(start: Callable[..., Emulator]) -> None:
    emu = start("nsg-blocked")
    result, vm = repair("--yes", "--source-ip", MY_IP)
    assert result.exit_code == 4
    (step,) = [s for s in vm["plan"] if s["id"] == "nsg-allow-rdp"]
    assert "no free priority" in step["refused"]
    assert not rule_writes(emu, "PUT")


def test_deallocated_vm_is_started_then_checked_inside(start: Callable[..., Emulator]) -> None:
    emu = start("deallocated")
    result, vm = repair("--yes")
    assert result.exit_code == 0, (result.stderr, vm)
    assert [r["id"] for r in vm["repairs"] if r["applied"]] == ["vm-start"]
    assert vm["powerState"] == "running"
    assert len(run_commands(emu)) == 1


def test_agent_not_ready_stops_with_guidance_and_no_run_command(start: Callable[..., Emulator]) -> None:
    emu = start("agent-not-ready")
    result, vm = repair("--yes")
    assert result.exit_code == 4
    assert not run_commands(emu)
    assert {s["id"] for s in vm["suggestions"]} == {"redeploy", "reapply"}
    assert any("agent" in n.lower() for n in vm["notes"])


def test_dry_run_plans_with_one_run_command_and_changes_nothing(start: Callable[..., Emulator]) -> None:
    emu = start("guest-rdp-cert-expired")
    original = guest_of(emu)
    result, vm = repair("--dry-run")
    assert result.exit_code == 4
    assert [(s["id"], s["status"]) for s in vm["plan"]] == [("rdp-cert-renew", "planned")]
    assert vm["dryRun"] is True and vm["applied"] is False
    assert len(run_commands(emu)) == 1
    assert guest_of(emu) == original


def test_without_a_terminal_and_without_yes_it_refuses(start: Callable[..., Emulator]) -> None:
    emu = start("guest-rdp-disabled")
    result = invoke("repair", VM, "-g", RG)
    assert result.exit_code == 2
    assert "Refusing to change VM 'vm-rdp01' without confirmation" in result.stderr
    assert "--yes" in result.stderr and "--dry-run" in result.stderr
    assert result.stdout == ""
    assert not run_commands(emu)


def test_failing_step_is_rolled_back_and_reported_not_verified(start: Callable[..., Emulator]) -> None:
    emu = start("guest-rdp-disabled")
    with emu.store.lock:
        vm_dict = emu.vm(RG, VM)
        assert vm_dict is not None
        # The step's second operation fails in the guest: the first is rolled back.
        vm_dict.setdefault("_emulator", {})["failOps"] = [1]
    original = guest_of(emu)
    result, vm = repair("--yes")
    assert result.exit_code == 5
    (step,) = vm["repairs"]
    assert step["status"] == "rolledBack" and step["error"]
    assert vm["status"] == "notVerified"
    assert guest_of(emu) == original
    # Per operation: what the executor did (the first was applied, then rolled back).
    assert [op["status"] for op in step["operations"]][:2] == ["rolledBack", "failed"]


def test_unknown_repair_and_bad_run_ids_are_usage_errors(start: Callable[..., Emulator]) -> None:
    start("guest-healthy")
    result = invoke("repair", VM, "-g", RG, "--yes", "--only", "format-c")
    assert result.exit_code == 2 and "'format-c' is not a repair" in result.stderr
    result = invoke("undo", VM, "-g", RG, "--run-id", "../../etc", "--yes")
    assert result.exit_code == 2 and "not an azrdp run id" in result.stderr
    result = invoke("undo", VM, "-g", RG, "--run-id", "0123456789ab", "--yes")
    assert result.exit_code == 3, result.stderr


def test_ctrl_c_lists_what_was_already_changed(
    start: Callable[..., Emulator], monkeypatch: pytest.MonkeyPatch
) -> None:
    from azrdp.engine import repair as engine
    from azrdp.errors import Interrupted

    emu = start("subnet-blocked")
    with emu.store.lock:
        vm_dict = emu.vm(RG, VM)
        assert vm_dict is not None
        vm_dict["guest"] = {"registry": {TS: {"fDenyTSConnections": 1}}}

    def interrupted(*args: Any, **kwargs: Any) -> Any:
        raise Interrupted("Stopped waiting for Run Command on VM 'vm-rdp01'.")

    monkeypatch.setattr(engine, "run_executor", interrupted)
    result = invoke("repair", VM, "-g", RG, "--yes", "--source-ip", MY_IP)
    assert result.exit_code == 130
    changed = [line for line in result.stderr.splitlines() if line.startswith("changed: ")]
    assert len(changed) == 2, result.stderr
    assert "azrdp-allow-rdp-" in changed[0] and changed[0].endswith("(done)")
    assert "in-guest run" in changed[1] and changed[1].endswith("(unconfirmed)")
    assert len(rule_writes(emu, "PUT")) == 1
    vm = json.loads(result.stdout)["vms"][0]
    assert vm["status"] == "interrupted" and [c["kind"] for c in vm["changes"]] == ["nsg-rule", "guest-run"]
    # The hints name this VM, its group and this run, ready to paste.
    (run_id,) = {e.run_id for e in journal.entries() if e.kind == "nsg-rule"}
    stderr = " ".join(result.stderr.split())
    assert f"azrdp undo {VM} -g {RG} --run-id {run_id}" in stderr, result.stderr
    assert f"azrdp history {VM} -g {RG} --guest" in stderr
    assert "VM -g RG" not in stderr and "--run-id ID" not in stderr


def test_history_lists_journal_and_guest_backups(start: Callable[..., Emulator]) -> None:
    start("guest-tls12-server-disabled")
    _, vm = repair("--yes")
    result = invoke("history", VM, "-g", RG, "--guest", "-o", "json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)["vms"][0]
    assert [r["runId"] for r in doc["runs"]] == [vm["runId"]]
    assert doc["runs"][0]["result"]["steps"] == {"tls12-server": "applied"}
    (guest_run,) = doc["guestRuns"]
    assert guest_run["runId"] == vm["runId"] and guest_run["state"] == "applied"
    assert guest_run["steps"] == ["tls12-server:applied"]


def test_human_views_render(start: Callable[..., Emulator]) -> None:
    import io

    from rich.console import Console

    from azrdp.cli.repair import human_view, plan_table, table_rows

    start("guest-rdp-disabled")
    result = invoke("repair", VM, "-g", RG, "--yes", "-o", "json")
    doc = json.loads(result.stdout)
    out = io.StringIO()
    console = Console(file=out, width=120, no_color=True)
    human_view(doc, console)
    plan_table(doc["vms"], console)
    text = out.getvalue()
    assert "rdp-listener" in text and "REPAIRED" in text and "verified" in text
    row = next(r for r in table_rows(doc) if r["check"] == "rdp-disabled")
    assert row["status"] == "FIXED" and row["detail"].startswith("rdp-listener: ")
    table = invoke("repair", VM, "-g", RG, "--yes", "-o", "table")
    assert table.exit_code == 0 and table.stderr == ""
    header, _, *body = table.stdout.splitlines()
    assert header.split() == ["name", "resourceGroup", "check", "status", "severity", "detail"]
    # Already repaired: only the informational finding is left, and no step ran.
    assert [line.split()[2:4] for line in body] == [["rdp-source-restricted", "INFO"]]
