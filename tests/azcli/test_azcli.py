"""A client this project did not write: the official Azure CLI against the emulator.

The CLI (provisioned by tests/azcli/provision.py into its own virtual environment) registers the
emulator as a cloud, signs in with `az login --identity` at the emulator's managed-identity
endpoint and runs ordinary commands against a scenario; rule bodies Azure refuses are refused with
Azure's codes and messages. Every az process runs with an isolated AZURE_CONFIG_DIR and HOME, the
emulator's CA in REQUESTS_CA_BUNDLE, telemetry, surveys and extension installs off, and a socket
guard (sitecustomize on PYTHONPATH) that refuses and records any connection or name lookup that is
not loopback: the test fails if az tried to reach anything else.
"""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import peers
import pytest
from provision import AZURE_CLI_VERSION

from azrdp.emulator import Emulator

pytestmark = pytest.mark.azcli

RG, VM, NIC, NSG = "rg-rdp", "vm-rdp01", "vm-rdp01-nic", "vm-rdp01-nsg"
CLOUD = "azrdpEmulator"

GUARD = textwrap.dedent(
    '''
    """azrdp test guard: az may reach loopback only; anything else is refused and recorded."""
    import ipaddress, os, socket

    _LOG = os.environ["AZRDP_GUARD_LOG"]


    def _record(what):
        with open(_LOG, "a", encoding="utf-8") as handle:
            handle.write(repr(what) + "\\n")


    def _loopback(host):
        if host in (None, "localhost"):
            return True
        try:
            return ipaddress.ip_address(host.decode() if isinstance(host, bytes) else host).is_loopback
        except ValueError:
            return False


    def _address_ok(address):
        return not isinstance(address, tuple) or _loopback(address[0])


    _connect, _connect_ex, _getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo


    def connect(self, address):
        if not _address_ok(address):
            _record(address)
            raise OSError("azrdp test guard: refusing %r (loopback only)" % (address,))
        return _connect(self, address)


    def connect_ex(self, address):
        if not _address_ok(address):
            _record(address)
            raise OSError("azrdp test guard: refusing %r (loopback only)" % (address,))
        return _connect_ex(self, address)


    def getaddrinfo(host, *args, **kwargs):
        if not _loopback(host):
            _record(host)
            raise socket.gaierror(socket.EAI_NONAME, "azrdp test guard: no lookups but loopback")
        return _getaddrinfo(host, *args, **kwargs)


    socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = connect, connect_ex, getaddrinfo
    '''
)


@dataclass
class Az:
    executable: str
    env: dict[str, str]
    guard_log: Path
    emulator: Emulator

    def run(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [self.executable, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
            stdin=subprocess.DEVNULL,
        )
        tried = self.guard_log.read_text(encoding="utf-8") if self.guard_log.exists() else ""
        assert not tried, f"az {' '.join(args)} tried to reach beyond loopback: {tried}"
        if ok:
            assert done.returncode == 0, f"az {' '.join(args)} failed:\n{done.stderr[-3000:]}"
        return done

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "-o", "json").stdout or "null")


@pytest.fixture(scope="module")
def az(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Az]:
    executable = peers.executable("azcli")
    base = tmp_path_factory.mktemp("azcli")
    guard_dir = base / "guard"
    guard_dir.mkdir()
    (guard_dir / "sitecustomize.py").write_text(GUARD, encoding="utf-8")
    # LROs end at their first poll: az polls every 30 s when ARM sends no Retry-After.
    emu = Emulator("guest-healthy", lro_seconds=0, runcommand_seconds=0).start()
    asg = (
        f"/subscriptions/{emu.subscription_id}/resourceGroups/{RG}/providers/Microsoft.Network"
        "/applicationSecurityGroups/asg-jump"
    )
    emu.add_resources(
        [{"id": asg, "location": "westeurope", "properties": {"provisioningState": "Succeeded"}}]
    )
    env = {
        "PATH": str(Path(executable).parent) + ":/usr/bin:/bin",
        "HOME": str(base / "home"),
        "AZURE_CONFIG_DIR": str(base / "azure"),
        "REQUESTS_CA_BUNDLE": emu.ca_path,
        "IDENTITY_ENDPOINT": emu.identity_endpoint,
        "IDENTITY_HEADER": emu.identity_header,
        "AZURE_CORE_COLLECT_TELEMETRY": "no",
        "AZURE_CORE_SURVEY_MESSAGE": "no",
        "AZURE_CORE_NO_COLOR": "true",
        "AZURE_CORE_DISABLE_CONFIRM_PROMPT": "yes",
        "AZURE_EXTENSION_USE_DYNAMIC_INSTALL": "no",
        "AZURE_AUTO_UPGRADE_ENABLE": "no",
        "PYTHONPATH": str(guard_dir),
        "AZRDP_GUARD_LOG": str(base / "guard.log"),
        "PYTHONDONTWRITEBYTECODE": "",
    }
    (base / "home").mkdir()
    (base / "azure").mkdir()
    # On first use az fetches the latest version numbers from Azure storage (handle_version_update):
    # a fresh version cache, as a previous run would leave it, keeps it on loopback.
    version = {"local": AZURE_CLI_VERSION, "pypi": AZURE_CLI_VERSION}
    (base / "azure" / "versionCheck.json").write_text(
        json.dumps(
            {
                "versions": {
                    "azure-cli": version,
                    "core": version,
                    "telemetry": {"local": "1.1.0", "pypi": "1.1.0"},
                },
                "update_time": datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S.%f"),
            }
        ),
        encoding="utf-8",
    )
    client = Az(executable, env, base / "guard.log", emu)
    try:
        client.run("cloud", "register", "-n", CLOUD, "--endpoint-resource-manager", emu.endpoint + "/")
        client.run("cloud", "set", "-n", CLOUD)
        accounts = client.json("login", "--identity")
        assert [a["id"] for a in accounts] == [emu.subscription_id]
        assert accounts[0]["user"]["assignedIdentityInfo"] == "MSI"
        yield client
    finally:
        emu.stop()


def test_az_cli_registers_the_emulator_and_signs_in_with_managed_identity(az: Az) -> None:
    cloud = az.json("cloud", "show", "-n", CLOUD)
    assert cloud["endpoints"]["resourceManager"] == az.emulator.endpoint + "/"
    assert az.json("account", "show")["id"] == az.emulator.subscription_id
    assert sys.platform.startswith("linux")


def test_az_vm_reads(az: Az) -> None:
    listed = az.json("vm", "list", "-d")
    assert [(v["name"], v["powerState"], v["publicIps"]) for v in listed] == [
        (VM, "VM running", "198.51.100.10")
    ]
    shown = az.json("vm", "show", "-d", "-g", RG, "-n", VM)
    assert shown["powerState"] == "VM running" and shown["privateIps"]
    view = az.json("vm", "get-instance-view", "-g", RG, "-n", VM)
    codes = [s["code"] for s in view["instanceView"]["statuses"]]
    assert "PowerState/running" in codes
    assert view["instanceView"]["vmAgent"]["statuses"][0]["displayStatus"] == "Ready"


def test_az_vm_power_and_run_command(az: Az) -> None:
    az.run("vm", "start", "-g", RG, "-n", VM)
    az.run("vm", "restart", "-g", RG, "-n", VM)
    result = az.json(
        "vm",
        "run-command",
        "invoke",
        "-g",
        RG,
        "-n",
        VM,
        "--command-id",
        "RunPowerShellScript",
        "--scripts",
        "hostname",
    )
    assert [s["code"] for s in result["value"]] == [
        "ComponentStatus/StdOut/succeeded",
        "ComponentStatus/StdErr/succeeded",
    ]
    starts = [
        r
        for r in az.emulator.requests
        if r.method == "POST" and r.path.lower().endswith(("/start", "/restart"))
    ]
    assert [r.status for r in starts] == [202, 202]


def test_az_network_reads(az: Az) -> None:
    nic = az.json("network", "nic", "show", "-g", RG, "-n", NIC)
    assert nic["ipConfigurations"][0]["privateIPAddress"]
    nsg = az.json("network", "nsg", "show", "-g", RG, "-n", NSG)
    assert len(nsg["defaultSecurityRules"]) == 6
    effective = az.json("network", "nic", "list-effective-nsg", "-g", RG, "-n", NIC)
    assert {e["networkSecurityGroup"]["id"].rsplit("/", 1)[-1] for e in effective["value"]} == {
        NSG,
        "nsg-subnet-default",
    }


def test_az_nsg_rule_create_list_delete(az: Az) -> None:
    created = az.json(
        "network", "nsg", "rule", "create", "-g", RG, "--nsg-name", NSG, "-n", "allow-helpdesk",
        "--priority", "1100", "--protocol", "Tcp", "--source-address-prefixes", "198.51.100.7/32",
        "--destination-port-ranges", "3389",
    )  # fmt: skip
    assert (created["provisioningState"], created["sourceAddressPrefix"]) == ("Succeeded", "198.51.100.7/32")
    names = [r["name"] for r in az.json("network", "nsg", "rule", "list", "-g", RG, "--nsg-name", NSG)]
    assert "allow-helpdesk" in names
    az.run("network", "nsg", "rule", "delete", "-g", RG, "--nsg-name", NSG, "-n", "allow-helpdesk")
    names = [r["name"] for r in az.json("network", "nsg", "rule", "list", "-g", RG, "--nsg-name", NSG)]
    assert "allow-helpdesk" not in names


def test_az_group_and_resources(az: Az) -> None:
    assert az.json("group", "show", "-n", RG)["name"] == RG
    assert az.run("group", "exists", "-n", RG).stdout.strip() == "true"
    assert az.run("group", "exists", "-n", "rg-nowhere").stdout.strip() == "false"
    types = {r["type"] for r in az.json("resource", "list", "-g", RG)}
    assert {"Microsoft.Compute/virtualMachines", "Microsoft.Network/networkSecurityGroups"} <= types


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (
            ["--source-address-prefixes", "999.1.2.3/40"],
            "SecurityRuleInvalidAddressPrefix",
            "Value provided: 999.1.2.3/40",
        ),
        (
            ["--source-address-prefixes", "10.0.0.0/8", "Internet"],
            "SecurityRuleParameterContainsUnsupportedValue",
            "Unsupported value used: Internet",
        ),
        (["--destination-port-ranges", "70000"], "SecurityRuleInvalidPortRange", "Value provided: 70000"),
    ],
)
def test_az_rule_bodies_azure_refuses(az: Az, args: list[str], code: str, words: str) -> None:
    create = ["network", "nsg", "rule", "create", "-g", RG, "--nsg-name", NSG, "-n", "refused"]
    done = az.run(*create, "--priority", "1200", "--protocol", "Tcp", *args, ok=False)
    assert done.returncode == 1
    assert f"({code})" in done.stderr and words in done.stderr


def test_az_rest_prefix_and_asg_on_one_side_is_refused(az: Az) -> None:
    """az itself never sends both; `az rest` sends the body as written."""
    emu = az.emulator
    url = (
        f"{emu.endpoint}/subscriptions/{emu.subscription_id}/resourceGroups/{RG}/providers/Microsoft.Network"
        f"/networkSecurityGroups/{NSG}/securityRules/both?api-version=2024-05-01"
    )
    body = {
        "properties": {
            "protocol": "Tcp",
            "sourcePortRange": "*",
            "destinationPortRange": "3389",
            "sourceAddressPrefix": "10.0.0.0/8",
            "sourceApplicationSecurityGroups": [
                {
                    "id": url.split("/providers/")[0]
                    + "/providers/Microsoft.Network/applicationSecurityGroups/asg-jump"
                }
            ],
            "destinationAddressPrefix": "*",
            "access": "Allow",
            "priority": 1300,
            "direction": "Inbound",
        }
    }
    done = az.run("rest", "--method", "put", "--url", url, "--body", json.dumps(body), ok=False)
    assert done.returncode == 1
    assert (
        "must specify a non empty value for exactly one of: SourceAddressPrefixes, SourceAddressPrefix"
        in done.stderr
    )
