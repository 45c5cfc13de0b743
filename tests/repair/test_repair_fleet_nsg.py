"""Fleet repair behind shared NSGs: one `nsg-allow-rdp` rule per (NSG, source, port) for the whole
run, written once (one PUT), named in every VM's result, journalled once, never two rules at one
priority; undo through any VM that shares it deletes it only while it is still what azrdp wrote."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from typer.testing import CliRunner

from azrdp import journal
from azrdp.cli.app import app
from azrdp.emulator import Emulator
from azrdp.engine.repair import RepairOptions, run_repair
from azrdp.engine.undo import run_undo
from azrdp.repairs import RepairStep, Risk, Where
from azrdp.repairs.control_plane import RULE_PREFIX, RuleUser, share_allow_rules
from azrdp.targets import parse_targets

MY_IP = "198.51.100.7"
GROUP = "rg-fleet-00"


@pytest.fixture
def start(live_emulator: Callable[..., Emulator]) -> Callable[..., Emulator]:
    def go(name: Any = "fleet:30", **kwargs: Any) -> Emulator:
        kwargs.setdefault("runcommand_seconds", 0.01)
        return live_emulator(name, **kwargs)

    return go


def nsg_rules(emu: Emulator) -> dict[str, list[dict[str, Any]]]:
    with emu.store.lock:
        return {
            nsg["name"]: json.loads(json.dumps(nsg["properties"].get("securityRules") or []))
            for nsg in emu.store.list("Microsoft.Network/networkSecurityGroups")
        }


def rule_writes(emu: Emulator, method: str) -> list[Any]:
    return [r for r in emu.requests if r.method == method and "/securityrules/" in r.path.lower()]


def assert_one_rule_per_nsg(emu: Emulator) -> dict[str, dict[str, Any]]:
    """Every NSG: at most one azrdp rule, and no two inbound rules at one priority."""
    ours = {}
    for name, rules in nsg_rules(emu).items():
        mine = [r for r in rules if r["name"].startswith(RULE_PREFIX)]
        assert len(mine) <= 1, (name, [r["name"] for r in mine])
        priorities = Counter(
            r["properties"]["priority"] for r in rules if r["properties"]["direction"] == "Inbound"
        )
        assert all(n == 1 for n in priorities.values()), (name, priorities)
        if mine:
            ours[name] = mine[0]
    return ours


def test_fleet_behind_one_subnet_nsg_gets_one_shared_rule(start: Callable[..., Emulator]) -> None:
    emu = start()
    result = run_repair(
        parse_targets(resource_group=GROUP),
        RepairOptions(source_ip=MY_IP, concurrency=8),
        confirm=None,
    )
    doc = result.to_doc()
    ours = assert_one_rule_per_nsg(emu)
    puts = rule_writes(emu, "PUT")
    assert len(puts) == len(ours)  # each shared rule written once, by one worker
    assert "nsg-subnet-00" in ours
    subnet_rule = ours["nsg-subnet-00"]
    props = subnet_rule["properties"]
    assert props["sourceAddressPrefix"] == f"{MY_IP}/32" and props["access"] == "Allow"
    assert props["destinationPortRange"] == "3389"

    fixed = [
        v
        for v in doc["vms"]
        if any(s["id"] == "nsg-allow-rdp" and s["status"] == "applied" for s in v["plan"])
    ]
    assert len(fixed) > 20, doc["summary"]
    for vm in fixed:
        assert vm["status"] == "repaired", (vm["name"], vm["plan"], vm["notes"])
        (step,) = [s for s in vm["plan"] if s["id"] == "nsg-allow-rdp"]
        # The VM's own result names the rule it relies on, even when another VM's worker wrote it.
        assert any(
            any(line.startswith(("Added", "Uses")) and f"rule {r['name']}" in line for line in step["done"])
            for r in ours.values()
        ), step["done"]
    on_subnet = [
        v for v in fixed if any(f"rule {subnet_rule['name']}" in d for s in v["plan"] for d in s["done"])
    ]
    # The shared rule admits the client to exactly the VMs that needed it, nothing wider.
    assert sorted(props["destinationAddressPrefixes"]) == sorted(v["network"]["privateIp"] for v in on_subnet)
    assert not props.get("destinationAddressPrefix")

    created = [e for e in journal.entries() if e.kind == "nsg-rule"]
    assert len(created) == len(puts)  # recorded once per rule, not once per VM
    (subnet_entry,) = [e for e in created if e.details["nsg"].endswith("/nsg-subnet-00")]
    assert {m["name"] for m in subnet_entry.details["sharedBy"]} == {v["name"] for v in on_subnet}


def test_undo_through_any_sharing_vm_deletes_the_rule_once(start: Callable[..., Emulator]) -> None:
    emu = start("fleet:6:1")
    result = run_repair(
        parse_targets(resource_group=GROUP), RepairOptions(source_ip=MY_IP, concurrency=3), confirm=None
    )
    ours = assert_one_rule_per_nsg(emu)
    subnet_rule = ours["nsg-subnet-00"]["name"]
    owner_run = subnet_rule.removeprefix(RULE_PREFIX)
    sharing = [
        vm for vm in result.vms if any(f"rule {subnet_rule}" in line for s in vm.steps for line in s.done)
    ]
    assert len(sharing) >= 2
    owner = next(vm for vm in sharing if vm.run_id == owner_run)
    member = next(vm for vm in sharing if vm.run_id != owner_run)

    history = journal.runs(member.vm.id)
    (run,) = [r for r in history if r["runId"] == member.run_id]
    shared = [c for c in run["changes"] if c["kind"] == "nsg-rule" and c["nsg"].endswith("/nsg-subnet-00")]
    assert [c["rule"] for c in shared] == [subnet_rule]
    assert {m["name"] for m in shared[0]["sharedBy"]} == {vm.vm.name for vm in sharing}

    deletes = len(rule_writes(emu, "DELETE"))
    doc = run_undo(parse_targets(member.vm.name, resource_group=GROUP), member.run_id)
    control = doc["vms"][0]["controlPlane"]
    (entry,) = [c for c in control if c["nsg"].endswith("/nsg-subnet-00")]
    assert entry["status"] == "deleted"
    assert owner.vm.name in {o["name"] for o in entry["sharedWith"]} and "takes their access" in entry["note"]
    assert subnet_rule not in {r["name"] for r in nsg_rules(emu)["nsg-subnet-00"]}
    deleted = len(rule_writes(emu, "DELETE")) - deletes

    # The owner's run changed nothing but the shared rule: taken back through the member, history
    # shows it undone, and its own undo finds the rule already undone.
    (owner_run_doc,) = [r for r in journal.runs(owner.vm.id) if r["runId"] == owner.run_id]
    assert owner_run_doc["undone"]
    assert [c["undone"] for c in owner_run_doc["changes"] if c.get("nsg", "").endswith("/nsg-subnet-00")] == [
        True
    ]
    doc = run_undo(parse_targets(owner.vm.name, resource_group=GROUP), owner.run_id)
    statuses = {c["rule"]: c["status"] for c in doc["vms"][0]["controlPlane"]}
    assert statuses == {subnet_rule: "alreadyUndone"}  # every rule the owner's run wrote was shared
    assert len(rule_writes(emu, "DELETE")) - deletes == deleted


def test_undo_leaves_a_shared_rule_someone_widened(start: Callable[..., Emulator]) -> None:
    emu = start("fleet:6:1")
    result = run_repair(
        parse_targets(resource_group=GROUP), RepairOptions(source_ip=MY_IP, concurrency=3), confirm=None
    )
    subnet_rule = assert_one_rule_per_nsg(emu)["nsg-subnet-00"]
    with emu.store.lock:
        stored = emu.store.get(subnet_rule["id"])
        assert stored is not None
        stored["properties"]["destinationAddressPrefixes"] = ["10.0.0.0/17"]  # edited after azrdp wrote it
    member = next(
        vm for vm in result.vms if any(f"rule {subnet_rule['name']}" in d for s in vm.steps for d in s.done)
    )
    doc = run_undo(parse_targets(member.vm.name, resource_group=GROUP), member.run_id)
    (entry,) = [c for c in doc["vms"][0]["controlPlane"] if c["nsg"].endswith("/nsg-subnet-00")]
    assert entry["status"] == "modified"
    assert doc["vms"][0]["exitCode"] == 5
    assert subnet_rule["name"] in {r["name"] for r in nsg_rules(emu)["nsg-subnet-00"]}
    assert not [r for r in rule_writes(emu, "DELETE") if "/nsg-subnet-00/" in r.path]


def test_cli_fleet_repair_with_yes_writes_each_rule_once(start: Callable[..., Emulator]) -> None:
    emu = start()
    out = CliRunner().invoke(
        app, ["repair", "-g", GROUP, "--source-ip", MY_IP, "--yes", "--concurrency", "10", "-o", "json"]
    )
    assert out.stdout, out.stderr
    doc = json.loads(out.stdout)
    assert "SecurityRuleConflict" not in out.stdout
    assert doc["summary"]["notVerified"] == 0 and doc["summary"]["errors"] == 0, doc["summary"]
    assert out.exit_code == doc["summary"]["exitCode"]
    ours = assert_one_rule_per_nsg(emu)
    assert "nsg-subnet-00" in ours
    assert len(rule_writes(emu, "PUT")) == len(ours)
    planned_rules = {
        d.split("rule ", 1)[1].split(" ", 1)[0]
        for v in doc["vms"]
        for s in v["plan"]
        if s["id"] == "nsg-allow-rdp"
        for d in s["done"]
    }
    assert planned_rules == {r["name"] for r in ours.values()}


def _user(name: str, run_id: str, rules: list[dict[str, Any]]) -> RuleUser:
    step = RepairStep(
        "nsg-allow-rdp",
        "t",
        Where.CONTROL_PLANE,
        ("nsg-denies-rdp",),
        ("c",),
        Risk.HIGH,
        "b",
        params={"rules": rules},
    )
    return RuleUser(f"/vm/{name}", name, run_id, step)


def _planned(
    nsg: str, priority: int, destination: str, deny: int = 65500, layer: str = "subnet"
) -> dict[str, Any]:
    return {
        "nsgId": f"/nsg/{nsg}",
        "nsg": nsg,
        "layer": layer,
        "priority": priority,
        "source": f"{MY_IP}/32",
        "destination": destination,
        "port": 3389,
        "deniedBy": "deny",
        "deniedByPriority": deny,
    }


def test_share_takes_the_lowest_planned_priority_and_every_destination() -> None:
    users = [
        _user("a", "aaaaaaaaaaaa", [_planned("subnet", 4096, "10.0.0.5")]),
        _user(
            "b",
            "bbbbbbbbbbbb",
            [_planned("subnet", 399, "10.0.0.4", deny=400), _planned("nic", 199, "10.0.0.4", 200, "nic")],
        ),
        _user("c", "cccccccccccc", [_planned("subnet", 4096, "10.0.0.10")]),
    ]
    a, b, c = share_allow_rules(users)
    for step in (a, b, c):
        (subnet,) = [r for r in step.params["rules"] if r["nsg"] == "subnet"]
        assert subnet["priority"] == 399 and subnet["rule"] == f"{RULE_PREFIX}aaaaaaaaaaaa"
        assert subnet["destinations"] == ["10.0.0.4", "10.0.0.5", "10.0.0.10"]
        assert subnet["destination"] is None
    (nic,) = [r for r in b.params["rules"] if r["nsg"] == "nic"]
    assert nic["destination"] == "10.0.0.4" and nic["rule"] == f"{RULE_PREFIX}bbbbbbbbbbbb"
    assert "shared with b, c" in a.changes[0] and len(b.changes) == 2


def test_share_one_nsg_on_subnet_and_nic_is_one_rule() -> None:
    (step,) = share_allow_rules(
        [
            _user(
                "a",
                "aaaaaaaaaaaa",
                [_planned("same", 4096, "10.0.0.5"), _planned("same", 4095, "10.0.0.5", layer="nic")],
            )
        ]
    )
    (only,) = step.params["rules"]
    assert only["priority"] == 4095 and only["destination"] == "10.0.0.5"


def test_broken_only_is_recorded_and_skipped_vms_have_their_own_count(start: Callable[..., Emulator]) -> None:
    import io

    from rich.console import Console

    from azrdp.cli.repair import human_view

    emu = start("fleet:12:1")
    out = CliRunner().invoke(app, ["repair", "-g", GROUP, "--broken-only", "--dry-run", "-o", "json"])
    doc = json.loads(out.stdout)
    assert doc["context"]["brokenOnly"] is True and doc["brokenOnly"] is True
    statuses = Counter(v["status"] for v in doc["vms"])
    summary = doc["summary"]
    assert statuses["skipped"] > 0 and summary["skipped"] == statuses["skipped"]
    assert summary["planned"] == statuses["planned"]
    assert (
        sum(summary[s] for s in ("repaired", "healthy", "planned", "blocked", "notVerified", "skipped"))
        + summary["errors"]
        == summary["total"]
    )
    for vm in doc["vms"]:
        if vm["status"] == "planned":
            assert any(s["status"] == "planned" for s in vm["plan"]), vm["name"]
        if vm["status"] == "skipped":
            assert vm["plan"] == [] and vm["runCommands"] == 0 and vm["guest"]["status"] == "skipped"
    assert summary["runCommands"] == len(
        [r for r in emu.requests if r.method == "POST" and r.path.lower().endswith("/runcommand")]
    )
    text = io.StringIO()
    human_view(doc, Console(file=text, width=200, no_color=True), broken_only=True)
    assert f"{statuses['skipped']} skipped (--broken-only" in text.getvalue()
    assert f"{statuses['planned']} with steps planned" in text.getvalue()

    plain = json.loads(CliRunner().invoke(app, ["repair", "-g", GROUP, "--dry-run", "-o", "json"]).stdout)
    assert plain["context"]["brokenOnly"] is False and plain["summary"]["skipped"] == 0


def test_undo_view_says_who_else_loses_a_shared_rule() -> None:
    import io

    from rich.console import Console

    from azrdp.cli.repair import _undo_view

    doc = {
        "vms": [
            {
                "name": "vm-00002",
                "resourceGroup": GROUP,
                "runId": "bbbbbbbbbbbb",
                "controlPlane": [
                    {
                        "kind": "nsg-rule-created",
                        "rule": f"{RULE_PREFIX}aaaaaaaaaaaa",
                        "status": "deleted",
                        "sharedWith": [{"name": "vm-00001", "runId": "aaaaaaaaaaaa"}],
                        "note": "One rule shared with vm-00001 (same repair run): deleting it takes their "
                        f"access from {MY_IP}/32 away too.",
                    }
                ],
                "guest": {"status": "skipped", "reason": "The run changed nothing in the guest."},
                "findings": [],
            }
        ]
    }
    out = io.StringIO()
    _undo_view(doc, Console(file=out, width=200, no_color=True))
    assert "shared with vm-00001" in out.getvalue()
