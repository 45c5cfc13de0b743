"""Broken guests for the repair tests: each a scenario `guest` object (merged over the healthy
image by the Windows model), the findings it must raise and the repair(s) that must fix them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

TS = r"HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server"
RDPTCP = TS + r"\WinStations\RDP-Tcp"
TSPOL = r"HKLM\SOFTWARE\Policies\Microsoft\Windows NT\Terminal Services"
TLS12 = r"HKLM\SYSTEM\CurrentControlSet\Control\SecurityProviders\SCHANNEL\Protocols\TLS 1.2\Server"
WINLOGON = r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Winlogon"
HARDENED_MK = "O:SYG:SYD:PAI(A;;FA;;;SY)(A;;FA;;;BA)"
THUMB_OLD = "0F" * 20
THUMB_MISSING = "AB" * 20


@dataclass(frozen=True)
class Case:
    name: str
    guest: dict[str, Any]
    findings: tuple[str, ...]  # guest findings it must raise
    repairs: tuple[str, ...]  # in-guest repairs that must be planned and applied
    port: int = 3389
    extra: dict[str, Any] = field(default_factory=dict)


CASES: tuple[Case, ...] = (
    Case(
        "logons-off",
        {
            "registry": {
                RDPTCP: {"fLogonDisabled": 1},
                TS: {"TSUserEnabled": 1, "TSServerDrainMode": 2},
                WINLOGON: {"WinStationsDisabled": "1"},
            }
        },
        ("rdp-logons-disabled", "rdp-drain-mode"),
        ("rdp-listener",),
    ),
    Case(
        "udp-rule-off",
        {"firewall": {"rules": {"RemoteDesktop-UserMode-In-UDP": {"enabled": False}}}},
        ("firewall-udp-rule-disabled",),
        ("firewall-rdp-rule",),
    ),
    Case(
        "tcp-rule-deleted",
        {"firewall": {"rules": {"RemoteDesktop-UserMode-In-TCP": None}}},
        ("firewall-rule-disabled",),
        ("firewall-rdp-rule",),
    ),
    Case("rdp-disabled", {"registry": {TS: {"fDenyTSConnections": 1}}}, ("rdp-disabled",), ("rdp-listener",)),
    Case(
        "listener-disabled",
        {"registry": {TS: {"TSEnabled": 0}, RDPTCP: {"fEnableWinStation": 0}}},
        ("listener-disabled",),
        ("rdp-listener",),
    ),
    Case(
        "termservice-disabled",
        {"services": {"TermService": {"state": "Stopped", "startMode": "Disabled", "pid": 0}}},
        ("termservice-not-running", "service-misconfigured"),
        ("rdp-services",),
    ),
    Case(
        "services-misconfigured",
        {
            "services": {
                "TermService": {"account": "LocalSystem"},
                "MpsSvc": {"state": "Stopped", "startMode": "Disabled", "pid": 0},
            }
        },
        ("service-misconfigured",),
        ("rdp-services",),
    ),
    Case(
        "cert-expired",
        {"certificates": [{"thumbprint": THUMB_OLD, "notAfter": "-3d"}], "events": {"1058": 12}},
        ("rdp-cert-expired",),
        ("rdp-cert-renew",),
    ),
    Case(
        "cert-no-private-key",
        {"certificates": [{"thumbprint": THUMB_OLD, "hasPrivateKey": False}], "events": {"1057": 4}},
        ("rdp-cert-missing-private-key",),
        ("rdp-cert-renew",),
    ),
    Case(
        "cert-binding-stale",
        {"registry": {RDPTCP: {"SSLCertificateSHA1Hash": "hex:" + THUMB_MISSING.lower()}}, "pinType": 3},
        ("rdp-cert-binding-stale",),
        ("rdp-cert-renew",),
    ),
    Case(
        "machinekeys-acl",
        {
            "machineKeysSddl": HARDENED_MK,
            "certificates": [{"thumbprint": THUMB_OLD, "keyReadable": False, "keyDenied": True}],
            "events": {"36870": 40, "1057": 3},
        },
        ("machinekeys-acl-corrupt",),
        ("machinekeys-acl",),
    ),
    Case(
        "cert-expired-key-unreadable",
        {
            "machineKeysSddl": HARDENED_MK,
            "certificates": [{"thumbprint": THUMB_OLD, "notAfter": "-3d", "keyReadable": False}],
            "events": {"1058": 5},
        },
        ("rdp-cert-expired", "machinekeys-acl-corrupt"),
        # The key's ACL first: the new certificate reuses the TSSecKeySet1 container.
        ("machinekeys-acl", "rdp-cert-renew"),
    ),
    Case(
        "cert-container-damaged",
        {"certificates": [{"thumbprint": THUMB_OLD, "keyOpens": False}], "events": {"1057": 2}},
        ("rdp-cert-missing-private-key",),
        ("rdp-cert-renew",),
    ),
    Case(
        "store-denies-system",
        {
            "rdStoreSddl": "O:SYD:AI(D;;KA;;;SY)(A;CIID;KA;;;BA)(A;CIID;KA;;;SY)",
            "certificates": [{"thumbprint": THUMB_OLD, "notAfter": "-1d"}],
        },
        ("rdp-cert-expired", "rdp-cert-store-denied"),
        ("rdp-cert-renew",),
    ),
    Case(
        "tls12-disabled",
        {"registry": {TLS12: {"Enabled": 0, "DisabledByDefault": 1}}, "events": {"36871": 20}},
        ("tls12-server-disabled",),
        ("tls12-server",),
    ),
    Case(
        "firewall-rule-disabled",
        {"firewall": {"rules": {"RemoteDesktop-UserMode-In-TCP": {"enabled": False}}}},
        ("firewall-rule-disabled",),
        ("firewall-rdp-rule",),
    ),
    Case(
        "firewall-blocks-all",
        {"firewall": {"profiles": {"Public": {"allowInboundRules": False}}}},
        ("firewall-blocks-all-inbound",),
        ("firewall-rdp-rule",),
    ),
    Case(
        "security-downgraded",
        {"registry": {RDPTCP: {"SecurityLayer": 0, "UserAuthentication": 0, "MinEncryptionLevel": 1}}},
        ("nla-or-security-downgraded",),
        ("rdp-security-restore",),
    ),
    Case(
        "port-invalid",
        {"registry": {RDPTCP: {"PortNumber": 0}}},
        ("port-mismatch",),
        ("rdp-port",),
    ),
    Case(
        "port-taken-moved",
        {"listeners": {"3389": {"pid": 4242, "process": "nginx"}}},
        ("port-owned-by-other-process",),
        # The firewall step is planned on the state rdp-port leaves: it follows the new port.
        ("rdp-port", "firewall-rdp-rule"),
        port=3390,
    ),
    Case(
        "everything",
        {
            "registry": {
                TS: {"fDenyTSConnections": 1},
                RDPTCP: {"SecurityLayer": 0, "UserAuthentication": 0},
                TLS12: {"Enabled": 0},
            },
            "services": {"TermService": {"state": "Stopped", "startMode": "Disabled", "pid": 0}},
            "certificates": [{"thumbprint": THUMB_OLD, "notAfter": "-10d"}],
            "firewall": {"rules": {"RemoteDesktop-UserMode-In-TCP": {"enabled": False}}},
        },
        (
            "rdp-disabled",
            "termservice-not-running",
            "rdp-cert-expired",
            "tls12-server-disabled",
            "firewall-rule-disabled",
            "nla-or-security-downgraded",
        ),
        (
            "rdp-services",
            "rdp-cert-renew",
            "tls12-server",
            "rdp-listener",
            "firewall-rdp-rule",
            "rdp-security-restore",
        ),
    ),
)

# Faults azrdp must refuse to "fix": the plan explains instead.
REFUSED: tuple[Case, ...] = (
    Case(
        "rdp-disabled-by-policy",
        {"registry": {TSPOL: {"fDenyTSConnections": 1}}},
        ("rdp-disabled-by-policy",),
        ("rdp-listener",),
    ),
    Case(
        "port-taken-no-target",
        {"listeners": {"3389": {"pid": 4242, "process": "nginx"}}},
        ("port-owned-by-other-process",),
        ("rdp-port",),
    ),
    Case(
        "pin-owned-by-gpo",
        {"registry": {RDPTCP: {"SSLCertificateSHA1Hash": "hex:" + THUMB_MISSING.lower()}}, "pinType": 2},
        ("rdp-cert-binding-stale",),
        ("rdp-cert-renew",),
    ),
    Case(
        "session-host-drained",
        {"registry": {TS: {"TSServerDrainMode": 1}}, "terminalServerMode": 1},
        ("rdp-drain-mode",),
        ("rdp-listener",),
    ),
    Case(
        "security-by-gpo",
        {"registry": {TSPOL: {"SecurityLayer": 0}}, "policySources": {"securityLayer": 1}},
        ("nla-or-security-downgraded",),
        ("rdp-security-restore",),
    ),
)

CASE_IDS = [c.name for c in CASES]
REFUSED_IDS = [c.name for c in REFUSED]
