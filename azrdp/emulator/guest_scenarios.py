"""The built-in guest scenarios: one VM per in-guest failure, plus a healthy one.

Each is the `healthy` scenario (rg-rdp/vm-rdp01, RDP allowed from 203.0.113.0/24 on 3389) with
the VM's `guest` object describing one broken Windows setting, and the guest finding(s) azrdp
must report for it. The JSON files under scenarios/ are generated from this table:

    python -m azrdp.emulator.guest_scenarios      # rewrites scenarios/guest-*.json

and a test keeps them in sync.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from azrdp.emulator.scenario import builtin_dir

# Registry keys as scenarios spell them (HKLM\..., compared case-insensitively).
TS = r"HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server"
RDPTCP = TS + r"\WinStations\RDP-Tcp"
TSPOL = r"HKLM\SOFTWARE\Policies\Microsoft\Windows NT\Terminal Services"
WINLOGON = r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Winlogon"
_SCHANNEL = r"HKLM\SYSTEM\CurrentControlSet\Control\SecurityProviders\SCHANNEL\Protocols"
TLS_SERVER = {v: _SCHANNEL + rf"\TLS {v}\Server" for v in ("1.0", "1.1", "1.2", "1.3")}
FIPS = r"HKLM\SYSTEM\CurrentControlSet\Control\Lsa\FIPSAlgorithmPolicy"
CREDSSP = r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Policies\System\CredSSP\Parameters"
# The Remote Desktop store's Certificates key with an explicit Deny for SYSTEM before its inherited ACEs.
DENIED_STORE_SDDL = (
    "O:SYD:AI(D;;KA;;;SY)(A;CIID;KR;;;BU)(A;CIID;KA;;;BA)(A;CIID;KA;;;SY)(A;CIIOID;KA;;;CO)(A;CIID;KR;;;AC)"
)

BASE_SCENARIO = "healthy"
PINNED_MISSING = "9F1C2B3A4D5E6F708192A3B4C5D6E7F8091A2B3C"
HARDENED_MK_SDDL = "O:SYG:SYD:PAI(A;;FA;;;SY)(A;;FA;;;BA)"


@dataclass(frozen=True)
class GuestScenario:
    name: str  # the finding id, "healthy", or a named variant
    description: str
    guest: dict[str, Any]
    expected: tuple[str, ...]  # guest finding ids, in registration order
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def scenario_name(self) -> str:
        return f"guest-{self.name}"


GUEST_SCENARIOS: tuple[GuestScenario, ...] = (
    GuestScenario("healthy", "Windows guest with every RDP setting at its healthy default", {}, ()),
    GuestScenario(
        "rdp-disabled",
        "Remote Desktop turned off (fDenyTSConnections = 1)",
        {"registry": {TS: {"fDenyTSConnections": 1}}},
        ("rdp-disabled",),
    ),
    GuestScenario(
        "rdp-disabled-by-policy",
        "Group Policy turns Remote Desktop off (policy fDenyTSConnections = 1)",
        {"registry": {TSPOL: {"fDenyTSConnections": 1}}},
        ("rdp-disabled-by-policy",),
    ),
    GuestScenario(
        "listener-disabled",
        "The RDP-Tcp listener is disabled (fEnableWinStation = 0)",
        {"registry": {RDPTCP: {"fEnableWinStation": 0}}},
        ("listener-disabled",),
    ),
    GuestScenario(
        "port-mismatch",
        "RDP moved to port 3390 (firewall follows) while the NSG allows 3389",
        {
            "registry": {RDPTCP: {"PortNumber": 3390}},
            "firewall": {"rules": {"RemoteDesktop-UserMode-In-TCP": {"localPorts": "3390"}}},
        },
        ("port-mismatch",),
    ),
    GuestScenario(
        "rdp-logons-disabled",
        "Remote logons switched off (change logon /disable: WinStationsDisabled = 1)",
        {"registry": {WINLOGON: {"WinStationsDisabled": "1"}}},
        ("rdp-logons-disabled",),
    ),
    GuestScenario(
        "rdp-drain-mode",
        "The server was left in drain mode (TSServerDrainMode = 1)",
        {"registry": {TS: {"TSServerDrainMode": 1}}},
        ("rdp-drain-mode",),
    ),
    GuestScenario(
        "port-moved-with-azrdp-rule",
        "RDP moved to 3390 with an azrdp-RDP-3390 firewall rule (the built-in rule still says 3389)",
        {
            "registry": {RDPTCP: {"PortNumber": 3390}},
            "firewall": {"rules": {"azrdp-RDP-3390": {"localPorts": "3390", "group": ""}}},
        },
        ("port-mismatch",),
    ),
    GuestScenario(
        "port-owned-by-other-process",
        "Another process (nginx) listens on 3389, so TermService cannot",
        {"listeners": {"3389": {"pid": 4242, "process": "nginx"}}},
        ("port-owned-by-other-process",),
    ),
    GuestScenario(
        "termservice-not-running",
        "TermService is stopped (it hung on starting: event 7022)",
        {
            "services": {"TermService": {"state": "Stopped", "exitCode": 1067, "pid": 0}},
            "events": {"7022": 3},
        },
        ("termservice-not-running",),
    ),
    GuestScenario(
        "service-misconfigured",
        "SessionEnv (creates the RDP certificate) is disabled",
        {"services": {"SessionEnv": {"state": "Stopped", "startMode": "Disabled", "pid": 0}}},
        ("service-misconfigured",),
    ),
    GuestScenario(
        "rdp-cert-expired",
        "The self-signed RDP certificate expired and was not renewed (event 1058)",
        {
            "certificates": [{"thumbprint": "5A1B2C3D4E5F60718293A4B5C6D7E8F901234567", "notAfter": "-12d"}],
            "events": {"1058": 14},
        },
        ("rdp-cert-expired",),
    ),
    GuestScenario(
        "rdp-cert-missing-private-key",
        "The RDP certificate has no private key (Keyset does not exist: event 1057)",
        {
            "certificates": [
                {"thumbprint": "6B2C3D4E5F60718293A4B5C6D7E8F90123456789", "hasPrivateKey": False}
            ],
            "events": {"1057": 6},
        },
        ("rdp-cert-missing-private-key",),
    ),
    GuestScenario(
        "rdp-cert-binding-stale",
        "The listener is pinned to a certificate that was deleted (event 36872)",
        {
            "registry": {RDPTCP: {"SSLCertificateSHA1Hash": "hex:" + PINNED_MISSING}},
            "pinType": 3,
            "events": {"36872": 40},
        },
        ("rdp-cert-binding-stale",),
    ),
    GuestScenario(
        "rdp-cert-store-denied",
        "SYSTEM is denied on the Remote Desktop store key and the store is empty: "
        "no certificate can be created",
        {"rdStoreSddl": DENIED_STORE_SDDL, "certificates": [], "events": {"1058": 3}},
        ("rdp-cert-store-denied",),
    ),
    GuestScenario(
        "machinekeys-acl-corrupt",
        "MachineKeys hardened and the listener key unreadable for NETWORK SERVICE (0x904, event 36870)",
        {
            "machineKeysSddl": HARDENED_MK_SDDL,
            "certificates": [
                {"thumbprint": "7C3D4E5F60718293A4B5C6D7E8F9012345678901", "keyReadable": False}
            ],
            "events": {"36870": 250, "1057": 4},
        },
        ("machinekeys-acl-corrupt",),
    ),
    GuestScenario(
        "tls12-server-disabled",
        "TLS 1.2 disabled for servers in SCHANNEL (event 36871)",
        {"registry": {TLS_SERVER["1.2"]: {"Enabled": 0, "DisabledByDefault": 1}}, "events": {"36871": 80}},
        ("tls12-server-disabled",),
    ),
    GuestScenario(
        "fips-policy-enabled",
        "The FIPS algorithm policy is enabled",
        {"registry": {FIPS: {"Enabled": 1}}},
        ("fips-policy-enabled",),
    ),
    GuestScenario(
        "credssp-server-unpatched",
        "A Server 2016 image without the CredSSP update (tspkg.dll 10.0.14393.2097): "
        "updated clients refuse it",
        {
            "os": {
                "version": "10.0.14393",
                "build": 14393,
                "psVersion": "5.1.14393.2097",
                "tspkgVersion": "10.0.14393.2097",
            }
        },
        ("credssp-server-unpatched",),
    ),
    GuestScenario(
        "credssp-oracle-mismatch",
        "CredSSP AllowEncryptionOracle = 0 (Force updated clients): clients without the update are refused",
        {"registry": {CREDSSP: {"AllowEncryptionOracle": 0}}},
        ("credssp-oracle-mismatch",),
    ),
    GuestScenario(
        "credssp-oracle-vulnerable",
        "CredSSP AllowEncryptionOracle = 2 (Vulnerable): every client is admitted",
        {"registry": {CREDSSP: {"AllowEncryptionOracle": 2}}},
        ("credssp-oracle-vulnerable",),
    ),
    GuestScenario(
        "firewall-rule-disabled",
        "The RemoteDesktop-UserMode-In-TCP firewall rule is disabled",
        {"firewall": {"rules": {"RemoteDesktop-UserMode-In-TCP": {"enabled": False}}}},
        ("firewall-rule-disabled",),
    ),
    GuestScenario(
        "firewall-udp-rule-disabled",
        "The RemoteDesktop-UserMode-In-UDP firewall rule is disabled (clients fall back to TCP)",
        {"firewall": {"rules": {"RemoteDesktop-UserMode-In-UDP": {"enabled": False}}}},
        ("firewall-udp-rule-disabled",),
    ),
    GuestScenario(
        "firewall-blocks-all-inbound",
        "The active Public firewall profile blocks all inbound connections",
        {"firewall": {"profiles": {"Public": {"allowInboundRules": False}}}},
        ("firewall-blocks-all-inbound",),
    ),
    GuestScenario(
        "nla-or-security-downgraded",
        "What ResetRDPCert and DisableNLA leave behind: SecurityLayer 0, NLA off",
        {"registry": {RDPTCP: {"SecurityLayer": 0, "UserAuthentication": 0, "MinEncryptionLevel": 1}}},
        ("nla-or-security-downgraded",),
    ),
    GuestScenario(
        "low-disk-space",
        "The system drive has 300 MB free",
        {"disk": {"freeBytes": 300 * 1024**2, "sizeBytes": 127 * 1024**3}},
        ("low-disk-space",),
    ),
)


# Words that are capitalised only because they start the description; anything else (RDP, TLS,
# TermService, Remote Desktop, Group Policy, Windows) keeps its case after "in the guest:".
_SENTENCE_STARTERS = frozenset({"a", "an", "another", "the", "what", "one", "some"})


def continued(description: str) -> str:
    """The description as the continuation of a sentence: "The FIPS ..." -> "the FIPS ..."."""
    first, _, rest = description.partition(" ")
    if first.lower() in _SENTENCE_STARTERS:
        return first.lower() + (f" {rest}" if rest else "")
    return description


def scenario_document(entry: GuestScenario) -> dict[str, Any]:
    """The healthy scenario with this guest on its VM."""
    base = json.loads((builtin_dir() / f"{BASE_SCENARIO}.json").read_text(encoding="utf-8"))
    doc: dict[str, Any] = copy.deepcopy(base)
    doc["name"] = entry.scenario_name
    doc["description"] = f"vm-rdp01 (rg-rdp), reachable on 3389; in the guest: {continued(entry.description)}"
    for resource in doc["resources"]:
        if resource["type"].lower() == "microsoft.compute/virtualmachines":
            resource["guest"] = copy.deepcopy(entry.guest)
    return doc


def write_all(directory: Path | None = None) -> list[Path]:
    directory = directory or builtin_dir()
    written = []
    for entry in GUEST_SCENARIOS:
        path = directory / f"{entry.scenario_name}.json"
        path.write_text(json.dumps(scenario_document(entry), indent=2) + "\n", encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for written_path in write_all():
        print(written_path)
