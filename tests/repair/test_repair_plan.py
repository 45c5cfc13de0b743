"""The repairs registry, the control-plane planners (pure) and the local journal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from azrdp import journal
from azrdp.checks import get_check
from azrdp.errors import UsageError
from azrdp.facts import NicFacts, Nsg, NsgRule, PublicIp, Subnet, VmFacts, Vnet
from azrdp.model import Finding, Severity, Source
from azrdp.repairs import RepairFacts, Risk, Where, all_repairs, plan_repairs, selected
from azrdp.repairs.control_plane import free_priority_above, validate_source_ip

SUB = "2b7c1d9e-3f4a-4b5c-8d6e-7f8091a2b3c4"
NSG_ID = f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Network/networkSecurityGroups/nic-nsg"
VM_ID = f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/web01"


def test_every_repair_declares_what_checks_list_shows() -> None:
    specs = all_repairs()
    assert len({s.id for s in specs}) == len(specs)
    for spec in specs:
        for attr in ("id", "title", "fixes", "risk", "rbac", "changes", "backup", "undo"):
            assert getattr(spec, attr), (spec.id, attr)
        assert isinstance(spec.risk, Risk)
        for check_id in spec.fixes:
            assert get_check(check_id) is not None, (spec.id, check_id)
        writes = [a for a in spec.rbac if a.endswith(("/write", "/action"))]
        assert writes, f"{spec.id} declares the write it needs"


def test_suggestions_run_only_when_named() -> None:
    assert {s.id for s in selected()} & {"redeploy", "reapply"} == set()
    assert {s.id for s in selected(only=["redeploy"])} == {"redeploy"}
    assert "rdp-listener" not in {s.id for s in selected(skip=["rdp-listener"])}


@pytest.mark.parametrize(
    "value",
    [
        "*",
        "Internet",
        "any",
        "0.0.0.0/0",
        "::/0",
        "10.0.0.0/8",
        "203.0.113.0/24",
        "nope",
        "127.0.0.1",
        "224.0.0.1",
    ],
)
def test_source_ip_is_one_client_address(value: str) -> None:
    with pytest.raises(ValueError):
        validate_source_ip(value)


def test_source_ip_accepts_one_address() -> None:
    assert validate_source_ip("203.0.113.10") == "203.0.113.10"
    assert validate_source_ip("203.0.113.10/32") == "203.0.113.10"
    assert validate_source_ip("2001:db8::1/128") == "2001:db8::1"


def rule(name: str, priority: int, access: str = "Allow", **kw: object) -> NsgRule:
    return NsgRule(name=name, priority=priority, access=access, **kw)  # type: ignore[arg-type]


@given(st.sets(st.integers(100, 4096), max_size=60), st.integers(101, 65500))
def test_free_priority_is_free_and_above_the_deny(used: set[int], deny: int) -> None:
    rules = [rule(f"r{p}", p) for p in used]
    found = free_priority_above(rules, deny)
    if found is None:
        assert all(p in used for p in range(100, min(deny, 4097)))
    else:
        assert 100 <= found < deny and found <= 4096 and found not in used
        assert all(p in used for p in range(found + 1, min(deny, 4097)))


def facts_with(nic_rules: tuple[NsgRule, ...]) -> VmFacts:
    nsg = Nsg(NSG_ID, "nic-nsg", nic_rules)
    subnet = Subnet(f"{SUB}/subnets/default", "default", ("10.0.0.0/24",))
    nic = NicFacts(
        id=f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Network/networkInterfaces/web01-nic",
        name="web01-nic",
        private_ip="10.0.0.4",
        public_ip=PublicIp("pip", "pip", "198.51.100.7", sku="Standard"),
        public_ip_id="pip",
        nsg=nsg,
        nsg_id=NSG_ID,
        subnet=subnet,
        vnet=Vnet("vnet", "vnet", ("10.0.0.0/16",), (subnet,)),
    )
    return VmFacts(VM_ID, "web01", "rg", SUB, power_state="running", agent_status="Ready", nics=(nic,))


DENIED = Finding("nsg-denies-rdp", Severity.BLOCKER, "t", "e", "r", Source.CONTROL_PLANE)


def test_nsg_rule_goes_just_above_the_deciding_deny() -> None:
    vm = facts_with(
        (
            rule("deny-rdp", 500, "Deny", protocol="Tcp", destination_ports=("3389",)),
            rule("other", 499, protocol="Tcp", destination_ports=("22",)),
        )
    )
    facts = RepairFacts(findings=(DENIED,), vm=vm, source_ip="203.0.113.10", port=3389)
    (step,) = plan_repairs(facts, where=Where.CONTROL_PLANE)
    assert step.id == "nsg-allow-rdp" and step.actionable
    (planned,) = step.params["rules"]
    assert planned["priority"] == 498 and planned["source"] == "203.0.113.10/32"
    assert planned["destination"] == "10.0.0.4" and planned["deniedBy"] == "deny-rdp"


def test_nsg_rule_is_refused_without_a_source_ip() -> None:
    vm = facts_with((rule("deny-rdp", 500, "Deny"),))
    (step,) = plan_repairs(RepairFacts(findings=(DENIED,), vm=vm), where=Where.CONTROL_PLANE)
    assert step.refused is not None and "--source-ip" in step.refused
    assert "rules" not in step.params


def test_healthy_control_plane_plans_nothing() -> None:
    vm = facts_with(())
    assert plan_repairs(RepairFacts(findings=(), vm=vm, source_ip="203.0.113.10")) == []


def test_vm_start_only_for_stopped_or_deallocated() -> None:
    stopped = Finding("vm-not-running", Severity.BLOCKER, "t", "e", "r")
    for state, actionable in (("stopped", True), ("deallocated", True), ("starting", False)):
        vm = VmFacts(VM_ID, "web01", "rg", power_state=state)
        (step,) = plan_repairs(RepairFacts(findings=(stopped,), vm=vm), where=Where.CONTROL_PLANE)
        assert step.actionable is actionable


def test_journal_records_lists_and_tracks_undo(isolated_env: Path) -> None:
    first = journal.record(journal.JournalEntry("a1b2c3d4e5f6", VM_ID, "nsg-rule-created", {"rule": "x"}))
    journal.record(
        journal.JournalEntry("a1b2c3d4e5f6", VM_ID.upper(), "run", {"steps": {"nsg-allow-rdp": "applied"}})
    )
    journal.record(journal.JournalEntry("0123456789ab", "/other", "run", {}))
    path = journal.journal_path()
    with path.open("a", encoding="utf-8") as handle:
        handle.write('{"half a line\n')  # a process killed mid-write must not break the rest
    assert [e.kind for e in journal.entries(VM_ID)] == ["nsg-rule-created", "run"]
    (run,) = journal.runs(VM_ID)
    assert run["runId"] == "a1b2c3d4e5f6" and run["changes"][0]["undone"] is False
    # An `undone` that does not say the change is gone (old versions wrote one after a failed
    # guest restore) does not count; one that does, does.
    journal.record(journal.JournalEntry("a1b2c3d4e5f6", VM_ID, "undone", {"entry": first.entry_id}))
    assert journal.runs(VM_ID)[0]["changes"][0]["undone"] is False
    journal.record(
        journal.JournalEntry("a1b2c3d4e5f6", VM_ID, "undone", {"entry": first.entry_id, "status": "deleted"})
    )
    assert journal.runs(VM_ID)[0]["changes"][0]["undone"] is True
    assert path.stat().st_mode & 0o077 == 0
    assert json.loads(path.read_text().splitlines()[0])["runId"] == "a1b2c3d4e5f6"


def test_run_ids_are_validated() -> None:
    assert journal.validate_run_id(" A1B2C3D4E5F6 ") == "a1b2c3d4e5f6"
    for bad in ("", "xyz", "a1b2c3d4e5f6a", "../a1b2c3d4e5"):
        with pytest.raises(UsageError):
            journal.validate_run_id(bad)
