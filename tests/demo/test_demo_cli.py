"""`azrdp demo` end to end: the README's main job."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from azrdp.cli.app import app
from azrdp.emulator.demo import DEMO_VMS

EXPECTED_BEFORE = {
    "web01": [],
    "web02": ["nsg-denies-rdp"],
    "web03": ["vm-not-running"],
    "app01": ["rdp-cert-expired", "machinekeys-acl-corrupt"],
    "app02": ["termservice-not-running"],
    "app03": ["rdp-disabled"],
    "app04": ["firewall-rule-disabled"],
    "app05": ["tls12-server-disabled"],
    "jump01": [],
    "jump02": ["vm-not-booted"],
    "web04": [],
}


def test_demo_repairs_every_broken_vm_and_verifies() -> None:
    result = CliRunner().invoke(app, ["demo", "--runcommand-seconds", "0.2", "-o", "json"])
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    rows = {r["name"]: r for r in doc["vms"]}
    assert set(rows) == {vm.name for vm in DEMO_VMS}
    assert {name: sorted(r["before"]) for name, r in rows.items()} == {
        name: sorted(ids) for name, ids in EXPECTED_BEFORE.items()
    }
    # A VM that never finished booting has no repair: it stays, explained.
    assert {name for name, r in rows.items() if r["after"]} == {"jump02"}
    assert rows["jump02"]["after"] == ["vm-not-booted"] and rows["jump02"]["repairs"] == []
    assert "Getting Windows ready" in rows["jump02"]["failure"]
    assert rows["jump01"]["warningsAfter"] == ["agent-not-ready"]
    # web04 has no public IP of its own: the NAT rule is the way in, not no-public-ip.
    web04 = next(vm for vm in doc["before"]["vms"] if vm["name"] == "web04")
    assert [f["id"] for f in web04["findings"] if f["id"] in ("lb-nat-rdp", "no-public-ip")] == ["lb-nat-rdp"]
    assert web04["network"]["endpoints"][0]["port"] == 50001
    assert sorted(rows["app01"]["repairs"]) == ["machinekeys-acl", "rdp-cert-renew"]
    assert rows["web02"]["repairs"] == ["nsg-allow-rdp"]
    assert doc["summary"]["blockedBefore"] == 8
    # SCHANNEL changes need a reboot: azrdp says so instead of claiming a verification.
    assert rows["app05"]["repairStatus"] == "notVerified" and rows["app05"]["rebootRequired"]
    assert doc["summary"]["repaired"] == 6 and doc["summary"]["notVerified"] == 1
    # --yes repair: one Run Command per repaired VM, however much it changed.
    assert all(vm["runCommands"] <= 1 for vm in doc["repair"]["vms"])
    # The rule azrdp added is for the engineer's address only, never the Internet.
    web02 = next(vm for vm in doc["repair"]["vms"] if vm["name"] == "web02")
    assert any("203.0.113.7/32" in json.dumps(step) for step in web02["repairs"])


def test_demo_table_output_is_plain() -> None:
    result = CliRunner().invoke(app, ["demo", "--runcommand-seconds", "0", "-o", "table"])
    assert result.exit_code == 0, result.stderr
    assert "\x1b" not in result.stdout
    assert result.stdout.splitlines()[0].split()[:3] == ["name", "failure", "before"]


def test_demo_rejects_a_silly_latency() -> None:
    result = CliRunner().invoke(app, ["demo", "--runcommand-seconds", "500"])
    assert result.exit_code == 2
    assert "out of range" in result.stderr
