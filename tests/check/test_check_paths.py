"""The rest of the way in, through the real SDK against the emulator: load balancer NAT, routes,
Virtual Network Manager admin rules, IP flow verify, Resource Health and the boot state."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from azrdp.cli.app import app
from azrdp.emulator import Emulator

runner = CliRunner()
RG = "rg-rdp"
Run = Callable[..., tuple[dict[str, Any], Emulator, int]]
ADMIN_POST = "/listnetworkmanagereffectivesecurityadminrules"


@pytest.fixture
def run(
    make_emulator: Callable[..., Emulator],
    arm_env: Callable[[Emulator], dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> Iterator[Run]:
    monkeypatch.setenv("AZRDP_CACHE_DIR", str(tmp_path / "cache"))

    def invoke(scn: Any, *args: str, **emu_kw: Any) -> tuple[dict[str, Any], Emulator, int]:
        emu = make_emulator(scn, **emu_kw)
        arm_env(emu)
        emu.clear_requests()
        result = runner.invoke(app, ["check", *args, "-o", "json"])
        assert "Traceback" not in result.stderr, result.stderr
        assert result.stdout, result.stderr
        return json.loads(result.stdout), emu, result.exit_code

    yield invoke


def findings(doc: dict[str, Any], index: int = 0) -> dict[str, dict[str, Any]]:
    return {f["id"]: f for f in doc["vms"][index]["findings"]}


# --------------------------------------------------------------------------------------------
# load balancer NAT


def test_a_v1_nat_rule_is_the_way_in_and_no_public_ip_is_not_raised(run: Run) -> None:
    doc, emu, code = run("lb-nat", "vm-rdp01", "-g", RG, "--source-ip", "203.0.113.7")
    assert code == 0
    net = doc["vms"][0]["network"]
    assert net["endpoints"][0] == {
        "address": "198.51.100.40",
        "port": 50001,
        "via": "load-balancer-nat",
        "public": True,
        "name": "lb-rdp/rdp-vm-rdp01",
    }
    assert net["endpoints"][-1]["via"] == "private"
    # The NSGs are judged for the backend port on the private address.
    assert net["port"] == 3389 and net["verdict"] == "allowed"
    found = findings(doc)
    assert "lb-nat-rdp" in found and "no-public-ip" not in found
    assert "198.51.100.40:50001" in found["lb-nat-rdp"]["evidence"]
    arm = [r for r in emu.requests if "/subscriptions/" in r.path]
    # 7 of a plain VM, minus its public IP, plus the load balancer and its frontend IP.
    assert len(arm) == 8, [(r.method, r.path) for r in arm]


def test_a_v2_nat_rule_over_a_backend_pool_gives_the_mapped_frontend_port(run: Run) -> None:
    doc, _, code = run("lb-nat-v2", "vm-rdp01", "-g", RG, "--source-ip", "203.0.113.7")
    assert code == 0
    nat = [e for e in doc["vms"][0]["network"]["endpoints"] if e["via"] == "load-balancer-nat"]
    assert nat == [
        {
            "address": "198.51.100.41",
            "port": 60001,
            "via": "load-balancer-nat",
            "public": True,
            "name": "lb-rdp/rdp-range",
        }
    ]


def test_the_nsg_still_decides_behind_the_nat_rule(run: Run) -> None:
    doc, _, code = run("lb-nat", "vm-rdp01", "-g", RG, "--source-ip", "192.0.2.44")
    assert code == 4
    assert "nsg-denies-rdp" in findings(doc)


def test_probe_knocks_on_the_nat_frontend(
    make_emulator: Callable[..., Emulator], arm_env: Callable[[Emulator], dict[str, str]]
) -> None:
    from azrdp.probe.target import resolve_vm

    emu = make_emulator("lb-nat")
    arm_env(emu)
    target = resolve_vm(
        name="vm-rdp01", resource_group=RG, ids=None, subscription=None, cloud=None, private=False, port=None
    )
    assert (target.host, target.port) == ("198.51.100.40", 50001)
    assert (
        target.vm
        and target.vm["via"] == "load-balancer-nat"
        and target.vm["natRule"] == "lb-rdp/rdp-vm-rdp01"
    )
    explicit = resolve_vm(
        name="vm-rdp01", resource_group=RG, ids=None, subscription=None, cloud=None, private=False, port=50002
    )
    assert explicit.port == 50002
    private = resolve_vm(
        name="vm-rdp01", resource_group=RG, ids=None, subscription=None, cloud=None, private=True, port=None
    )
    assert private.port == 3389 and private.vm and private.vm["via"] == "private"


# --------------------------------------------------------------------------------------------
# routes


def test_a_default_route_to_an_appliance_makes_the_return_path_asymmetric(run: Run) -> None:
    doc, emu, code = run("route-appliance", "vm-rdp01", "-g", RG)
    assert code == 4
    found = findings(doc)["route-asymmetric-return"]
    assert found["severity"] == "blocker"
    assert found["details"]["decidedBy"][0] == {
        "route": "default-to-firewall",
        "prefix": "0.0.0.0/0",
        "nextHopType": "VirtualAppliance",
        "nextHopIp": "10.0.100.4",
        "source": "User",
        "routeTable": "rt-default",
    }
    routes = doc["vms"][0]["network"]["routes"]
    assert routes["routeTable"] == "rt-default" and routes["returnPaths"][0]["verdict"] == "asymmetric"
    assert any(r.path.endswith("/routeTables/rt-default") for r in emu.requests)


def test_a_more_specific_route_to_internet_for_the_client_wins(
    run: Run, make_emulator: Callable[..., Emulator]
) -> None:
    from azrdp.emulator.scenario import builtin_dir

    scenario = json.loads((builtin_dir() / "route-appliance.json").read_text(encoding="utf-8"))
    table = next(r for r in scenario["resources"] if r["type"] == "Microsoft.Network/routeTables")
    table["properties"]["routes"].append(
        {
            "name": "admins-direct",
            "id": table["id"] + "/routes/admins-direct",
            "properties": {"addressPrefix": "203.0.113.0/24", "nextHopType": "Internet"},
        }
    )
    doc, _, code = run(scenario, "vm-rdp01", "-g", RG, "--source-ip", "203.0.113.7")
    assert code == 0
    assert "route-asymmetric-return" not in findings(doc)


def test_a_route_to_none_drops_the_replies(run: Run) -> None:
    doc, _, code = run("route-none", "vm-rdp01", "-g", RG, "--source-ip", "203.0.113.7")
    assert code == 4
    found = findings(doc)["route-drops-return"]
    assert found["details"]["decidedBy"][0]["nextHopType"] == "None"


def test_effective_routes_are_read_for_a_running_vm(run: Run) -> None:
    doc, emu, code = run("route-appliance", "vm-rdp01", "-g", RG, "--effective")
    assert code == 4
    routes = doc["vms"][0]["network"]["routes"]
    assert routes["effective"] is True and routes["effectiveError"] is None
    assert findings(doc)["route-asymmetric-return"]["details"]["effective"] is True
    assert any(r.method == "POST" and r.path.endswith("/effectiveRouteTable") for r in emu.requests)


# --------------------------------------------------------------------------------------------
# Virtual Network Manager admin rules


def test_an_admin_deny_blocks_rdp_whatever_the_nsgs_say(run: Run) -> None:
    doc, _, code = run("admin-deny", "vm-rdp01", "-g", RG, "--source-ip", "203.0.113.7")
    assert code == 4
    found = findings(doc)
    assert "admin-rule-denies-rdp" in found and "nsg-denies-rdp" not in found
    net = doc["vms"][0]["network"]
    assert net["decidedBy"] == [
        {"layer": "admin", "nsg": "avnm-corp", "rule": "deny-rdp-inbound", "priority": 10, "access": "Deny"}
    ]
    assert net["adminRules"] == {"read": True, "count": 1, "error": None}


def test_always_allow_skips_the_nsgs(run: Run, make_emulator: Callable[..., Emulator]) -> None:
    from azrdp.emulator.scenario import builtin_dir

    scenario = json.loads((builtin_dir() / "admin-deny.json").read_text(encoding="utf-8"))
    rule = next(r for r in scenario["resources"] if r["type"].endswith("/rules"))
    rule["properties"]["access"] = "AlwaysAllow"
    rule["properties"]["sources"] = [{"addressPrefix": "192.0.2.0/24", "addressPrefixType": "IPPrefix"}]
    # 192.0.2.44 is not in any NSG Allow rule: only the admin rule can let it in.
    doc, _, code = run(scenario, "vm-rdp01", "-g", RG, "--source-ip", "192.0.2.44")
    assert code == 0
    assert doc["vms"][0]["network"]["verdict"] == "allowed"
    assert doc["vms"][0]["network"]["decidedBy"][0]["access"] == "AlwaysAllow"


# --------------------------------------------------------------------------------------------
# IP flow verify


def test_verify_asks_network_watcher_and_agrees(run: Run) -> None:
    doc, emu, code = run("admin-deny", "vm-rdp01", "-g", RG, "--source-ip", "203.0.113.7", "--verify")
    assert code == 4
    verify = doc["vms"][0]["network"]["verify"]
    assert verify["azure"]["access"] == "Deny" and verify["azure"]["rule"] == "deny-rdp-inbound"
    assert verify["azrdp"]["access"] == "Deny" and verify["match"] is True
    assert "verdict-mismatch" not in findings(doc)
    posts = [r for r in emu.requests if r.method == "POST" and r.path.lower().endswith("/ipflowverify")]
    assert len(posts) == 1 and "NetworkWatcher_westeurope" in posts[0].path


def test_verify_without_a_source_asks_about_a_sample_the_verdict_is_sure_of(run: Run) -> None:
    doc, _, code = run("healthy", "vm-rdp01", "-g", RG, "--verify")
    assert code == 0
    verify = doc["vms"][0]["network"]["verify"]
    assert verify["sample"] is True and verify["source"].startswith("203.0.113.")
    assert verify["azure"]["access"] == "Allow" and verify["match"] is True


def test_verify_on_a_stopped_vm_says_why_not(run: Run) -> None:
    doc, emu, _ = run("deallocated", "vm-rdp01", "-g", RG, "--verify", "--source-ip", "203.0.113.7")
    found = findings(doc)["verdict-mismatch"]
    assert found["title"].endswith("could not be asked") and "not running" in found["evidence"]
    assert not any(r.path.lower().endswith("/ipflowverify") for r in emu.requests)


def test_network_watcher_option_needs_verify() -> None:
    result = runner.invoke(app, ["check", "vm", "-g", RG, "--network-watcher", "/subscriptions/x"])
    assert result.exit_code == 2 and "--verify" in result.stderr


# --------------------------------------------------------------------------------------------
# Resource Health


def test_platform_unavailable_with_azure_reason_and_time(run: Run) -> None:
    doc, _, code = run("platform-unavailable", "vm-rdp01", "-g", RG)
    assert code == 4
    found = findings(doc)["platform-unavailable"]
    assert "2025-06-02T09:12:00Z" in found["evidence"] and "Disk problems" in found["evidence"]
    assert doc["vms"][0]["health"]["availabilityState"] == "Unavailable"


def test_a_user_stopped_vm_is_not_a_platform_problem(run: Run) -> None:
    doc, _, _ = run("deallocated", "vm-rdp01", "-g", RG)
    assert doc["vms"][0]["health"]["availabilityState"] == "Unavailable"
    assert "platform-unavailable" not in findings(doc)


def test_no_health_skips_the_request(run: Run) -> None:
    doc, emu, _ = run("healthy", "vm-rdp01", "-g", RG, "--no-health")
    assert doc["vms"][0]["health"] is None
    assert not any("ResourceHealth" in r.path for r in emu.requests)


# --------------------------------------------------------------------------------------------
# boot state


@pytest.mark.parametrize(
    ("scenario", "needle"),
    [("boot-stuck-updates", "Getting Windows ready"), ("boot-stop-error", "CRITICAL_PROCESS_DIED")],
)
def test_a_vm_that_never_booted_shows_its_screenshot_and_serial_log(
    run: Run, tmp_path: Path, scenario: str, needle: str
) -> None:
    doc, emu, code = run(scenario, "vm-rdp01", "-g", RG)
    assert code == 4
    found = findings(doc)["vm-not-booted"]
    shot = Path(found["details"]["screenshot"])
    assert shot.parent == tmp_path / "cache" / "boot-diagnostics" and shot.suffix == ".bmp"
    assert shot.read_bytes()[:2] == b"BM" and (shot.stat().st_mode & 0o777) == 0o600
    assert any(needle in line for line in found["details"]["serialTail"])
    assert needle in found["evidence"]
    # The SAS URLs went to the storage host without the ARM bearer token.
    blobs = emu.blobs.requests
    assert len(blobs) == 2 and all(b["status"] == 200 for b in blobs)
    assert all("authorization" not in b["headers"] for b in blobs)


def test_boot_diagnostics_on_request_for_a_healthy_vm(run: Run) -> None:
    doc, _, code = run(
        "boot-healthy", "vm-rdp01", "-g", RG, "--boot-diagnostics", "--source-ip", "203.0.113.7"
    )
    assert code == 0
    boot = doc["vms"][0]["boot"]
    assert boot["screenshot"] and boot["error"] is None and "SAC>" in boot["serialTail"]
    assert "vm-not-booted" not in findings(doc)


def test_boot_diagnostics_are_not_read_by_default_for_a_ready_vm(run: Run) -> None:
    doc, emu, _ = run("boot-healthy", "vm-rdp01", "-g", RG)
    assert doc["vms"][0]["boot"] is None
    assert not any("retrieveBootDiagnosticsData" in r.path for r in emu.requests)


def test_blob_server_refuses_a_tampered_sas(
    make_emulator: Callable[..., Emulator], arm_env: Callable[[Emulator], dict[str, str]]
) -> None:
    from azrdp.azure.auth import resolve_context
    from azrdp.azure.bootdiag import BlobError, _pipeline, _stream
    from azrdp.azure.clients import Clients

    emu = make_emulator("boot-stuck-updates")
    arm_env(emu)
    clients = Clients(resolve_context())
    uris = clients.compute.virtual_machines.retrieve_boot_diagnostics_data(RG, "vm-rdp01").as_dict()
    client = _pipeline(emu.ca_path)
    tampered = uris["serialConsoleLogBlobUri"].replace("sig=", "sig=0")
    with pytest.raises(BlobError, match="403 AuthenticationFailed"):
        b"".join(_stream(client, tampered, 1024, "serial log"))
    assert b"SAC>" in b"".join(_stream(client, uris["serialConsoleLogBlobUri"], 1 << 20, "serial log"))
    client.close()
    clients.close()


# --------------------------------------------------------------------------------------------
# fleet


def test_fleet_of_240_with_nat_routes_and_admin_deny_stays_o_pages(run: Run) -> None:
    doc, emu, _ = run("fleet-paths:240", "--all", page_size=50)
    assert doc["summary"]["total"] == 240
    ids = Counter(f["id"] for vm in doc["vms"] for f in vm["findings"])
    assert ids["lb-nat-rdp"] > 0 and ids["route-asymmetric-return"] > 0 and ids["admin-rule-denies-rdp"] > 0
    by_group = {
        g: Counter(f["id"] for vm in doc["vms"] if vm["resourceGroup"] == g for f in vm["findings"])
        for g in ("rg-fleet-00", "rg-fleet-01", "rg-fleet-02")
    }
    assert by_group["rg-fleet-00"]["lb-nat-rdp"] > 0
    assert by_group["rg-fleet-01"]["route-asymmetric-return"] > 0
    assert by_group["rg-fleet-02"]["admin-rule-denies-rdp"] > 0
    kinds = Counter(r.path.rstrip("/").rsplit("/", 1)[-1].lower() for r in emu.requests)
    vnets = len(emu.store.list("Microsoft.Network/virtualNetworks"))
    assert kinds["virtualmachines"] == 10  # ceil(240 / 50) pages of models and as many of status
    assert kinds[ADMIN_POST.strip("/")] == vnets
    assert kinds["loadbalancers"] == 1 and kinds["routetables"] == 1
    # Nothing beyond the listings: the load balancer's frontend public IP is in the public IP one.
    singles = [
        r.path for r in emu.requests if r.path.rstrip("/").rsplit("/", 2)[-2].lower() == "publicipaddresses"
    ]
    assert singles == []
    assert len(emu.requests) <= 5 * 4 + 2 + vnets


@pytest.mark.parametrize(
    "stamp",
    ["2025-06-02T06:12:44.3829811+00:00", "2025-06-02T06:12:44.38Z", "2025-06-02T06:12:44.382981+00:00"],
)
def test_instance_view_times_parse_on_every_python(stamp: str) -> None:
    """Azure writes 7 fractional digits and an offset; Python 3.10's fromisoformat takes 3 or 6."""
    from azrdp.checks.paths import _minutes_since

    base = _minutes_since("2025-06-02T06:12:44+00:00", 1_780_000_000.0)
    minutes = _minutes_since(stamp, 1_780_000_000.0)
    assert base is not None and minutes is not None and abs(minutes - base) < 0.02
