"""The simulated Windows guest behind the emulator's action Run Command.

A VM's `guest` object in a scenario describes its Windows state; `load_state` merges it over a
healthy Windows Server 2022 image into a `GuestState`, an explicit model repairs can mutate and
`dump_state` can write back (docs/guest-contract.md documents both). When runCommand carries the
azrdp script (recognised by its header line, never executed), `handle_run_command` answers what
the real script would print on such a machine: it builds the contract dataclasses from the state
and renders them with the contract's own encoder, so drift between the two shows in tests.

Dispatch is on the script's `Mode` parameter (`MODE_HANDLERS`); only `diagnose` exists so far.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from azrdp.emulator.server import RunCommandOutput
from azrdp.guest import contract as c

# Registry keys, as the guest would name them (HKLM\..., compared case-insensitively).
TS = r"HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server"
RDPTCP = TS + r"\WinStations\RDP-Tcp"
TSPOL = r"HKLM\SOFTWARE\Policies\Microsoft\Windows NT\Terminal Services"
WINLOGON = r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Winlogon"
SCHANNEL = r"HKLM\SYSTEM\CurrentControlSet\Control\SecurityProviders\SCHANNEL\Protocols"
TLS_SERVER = {v: SCHANNEL + rf"\TLS {v}\Server" for v in ("1.0", "1.1", "1.2", "1.3")}
FIPS = r"HKLM\SYSTEM\CurrentControlSet\Control\Lsa\FIPSAlgorithmPolicy"
CREDSSP = r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Policies\System\CredSSP\Parameters"
CIPHER_POLICY = r"HKLM\SOFTWARE\Policies\Microsoft\Cryptography\Configuration\SSL\00010002"
FIREWALL_POLICY = r"HKLM\SYSTEM\CurrentControlSet\Services\SharedAccess\Parameters\FirewallPolicy"
FIREWALL_PROFILE_KEYS = {"Domain": "DomainProfile", "Private": "StandardProfile", "Public": "PublicProfile"}

RegValue = int | str | bytes | list[str]
FAULTS = (
    "no-marker",
    "truncated",
    "invalid-json",
    "cut-json",
    "stderr-only",
    "unknown-schema",
    "unsupported",
)


@dataclass
class SimService:
    name: str
    state: str = "Running"  # Running | Stopped | Start Pending | ... | NotFound
    start_mode: str = "Manual"  # Auto | Manual | Disabled
    account: str = "LocalSystem"
    exit_code: int = 0
    pid: int = 0


@dataclass
class SimCert:
    thumbprint: str
    not_after: datetime
    store: str = "Remote Desktop"  # or "My"
    has_private_key: bool = True
    key_opens: bool = True
    key_file: bool = True  # the key file exists in MachineKeys
    key_readable: bool = True  # NETWORK SERVICE may read the key file
    key_denied: bool = False  # a Deny ACE for NETWORK SERVICE / Everyone / Authenticated Users


@dataclass
class SimFirewallRule:
    name: str
    enabled: bool = True
    action: str = "Allow"
    direction: str = "Inbound"
    protocol: str = "TCP"
    local_ports: str = "3389"
    profile: str = "Any"
    group: str = c.RDP_FIREWALL_GROUP


@dataclass
class SimFirewallProfile:
    name: str
    enabled: bool = True
    allow_inbound_rules: bool | None = True
    allow_local_rules: bool | None = True


@dataclass
class GuestState:
    """Everything the simulated guest knows. Repairs mutate this and `dump_state` stores it back."""

    os_version: str = "10.0.20348"
    build: int = 20348
    ps_version: str = "5.1.20348.2849"
    part_of_domain: bool = False
    # Key path (as written) -> value name -> value; a missing value reads as absent.
    registry: dict[str, dict[str, RegValue]] = field(default_factory=dict)
    # Win32_TSGeneralSetting PolicySource*: 0 server, 1 GPO, 2 default; and the pin type.
    policy_sources: dict[str, int] = field(default_factory=dict)
    pin_type: int = 1
    terminal_server_mode: int = 0  # 1 = Remote Desktop Session Host role installed
    services: dict[str, SimService] = field(default_factory=dict)
    # Other processes listening on ports: port -> (pid, process name).
    other_listeners: dict[int, tuple[int, str]] = field(default_factory=dict)
    certs: list[SimCert] = field(default_factory=list)
    machinekeys_sddl: str = c.MACHINEKEYS_DEFAULT_SDDL
    firewall_rules: list[SimFirewallRule] = field(default_factory=list)
    firewall_profiles: list[SimFirewallProfile] = field(default_factory=list)
    active_profiles: list[str] = field(default_factory=lambda: ["Public"])
    events: dict[int, int] = field(default_factory=dict)
    drive: str = "C:"
    disk_free: int = 96 * 1024**3
    disk_size: int = 127 * 1024**3
    # Simulated faults: whole-output faults (FAULTS) and sections that fail in the script.
    fault: str | None = None
    failing_sections: list[str] = field(default_factory=list)
    latency_s: float | None = None
    # LastBootUpTime: from the VM's boot count (a start or restart is a new boot); None outside a VM.
    boot_time: datetime | None = None
    # The script's reboot-pending.json: {"boot": LastBootUpTime then, "runs": [run ids]}.
    pending_reboot: dict[str, Any] | None = None

    # -- registry helpers (case-insensitive like the real one) --

    def _key(self, path: str) -> str | None:
        wanted = _norm_path(path)
        return next((k for k in self.registry if _norm_path(k) == wanted), None)

    def reg_get(self, path: str, name: str) -> RegValue | None:
        key = self._key(path)
        if key is None:
            return None
        values = self.registry[key]
        return next((v for n, v in values.items() if n.lower() == name.lower()), None)

    def reg_int(self, path: str, name: str) -> int | None:
        value = self.reg_get(path, name)
        if isinstance(value, int):
            return value
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value)
        return None

    def reg_set(self, path: str, name: str, value: RegValue) -> None:
        key = self._key(path) or path
        values = self.registry.setdefault(key, {})
        for existing in list(values):
            if existing.lower() == name.lower():
                del values[existing]
        values[name] = value

    def reg_delete(self, path: str, name: str) -> None:
        key = self._key(path)
        if key is not None:
            for existing in list(self.registry[key]):
                if existing.lower() == name.lower():
                    del self.registry[key][existing]

    # -- derived facts --

    def service(self, name: str) -> SimService | None:
        return next((s for s in self.services.values() if s.name.lower() == name.lower()), None)

    @property
    def listener_port(self) -> int:
        port = self.reg_int(RDPTCP, "PortNumber")
        return port if port is not None else 3389

    @property
    def rdp_listening(self) -> bool:
        """TermService listens only when it runs and RDP, the terminal server and the listener are on."""
        ts = self.service("TermService")
        deny_policy = self.reg_int(TSPOL, "fDenyTSConnections")
        deny = deny_policy if deny_policy is not None else self.reg_int(TS, "fDenyTSConnections")
        return (
            ts is not None
            and ts.state == "Running"
            and deny != 1
            and self.reg_int(TS, "TSEnabled") != 0
            and self.reg_int(RDPTCP, "fEnableWinStation") != 0
            and self.listener_port not in self.other_listeners
        )

    def port_owner(self, port: int) -> tuple[int, str] | None:
        if port in self.other_listeners:
            return self.other_listeners[port]
        ts = self.service("TermService")
        if ts is not None and port == self.listener_port and self.rdp_listening:
            return ts.pid, "svchost"
        return None

    @property
    def pin(self) -> str | None:
        value = self.reg_get(RDPTCP, "SSLCertificateSHA1Hash")
        return value.hex().upper() if isinstance(value, bytes) else None


def _norm_path(path: str) -> str:
    return path.replace("HKLM:", "HKLM").rstrip("\\").lower()


# --- the healthy image and the scenario format --------------------------------------------------

_CIPHERS = (
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,"
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,"
    "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384,TLS_DHE_RSA_WITH_AES_128_GCM_SHA256"
)

# name: (start mode, account, pid) on a healthy image (reference: services table).
_SERVICES: Mapping[str, tuple[str, str, int]] = {
    "TermService": ("Manual", "NT Authority\\NetworkService", 1068),
    "UmRdpService": ("Manual", "LocalSystem", 1184),
    "SessionEnv": ("Manual", "LocalSystem", 1092),
    "KeyIso": ("Manual", "LocalSystem", 712),
    "CryptSvc": ("Auto", "NT Authority\\NetworkService", 1420),
    "CertPropSvc": ("Manual", "LocalSystem", 1536),
    "MpsSvc": ("Auto", "NT Authority\\LocalService", 2012),
    "BFE": ("Auto", "NT Authority\\LocalService", 1988),
    "RdAgent": ("Auto", "LocalSystem", 2240),
    "WindowsAzureGuestAgent": ("Auto", "LocalSystem", 2304),
}


def healthy_state(now: datetime | None = None) -> GuestState:
    """A healthy Windows Server 2022 Azure image."""
    now = now or datetime.now(timezone.utc)
    state = GuestState()
    state.registry = {
        TS: {"fDenyTSConnections": 0, "TSEnabled": 1, "TSUserEnabled": 0},
        WINLOGON: {"WinStationsDisabled": "0"},
        RDPTCP: {
            "fEnableWinStation": 1,
            "fLogonDisabled": 0,
            "PortNumber": 3389,
            "SecurityLayer": 2,
            "UserAuthentication": 1,
            "MinEncryptionLevel": 2,
            "fAllowSecProtocolNegotiation": 1,
        },
        FIPS: {"Enabled": 0},
        CIPHER_POLICY: {"Functions": _CIPHERS},
    }
    state.policy_sources = {"securityLayer": 2, "userAuthentication": 2, "minEncryptionLevel": 2}
    state.services = {
        name: SimService(name, "Running", mode, account, 0, pid)
        for name, (mode, account, pid) in _SERVICES.items()
    }
    state.certs = [
        SimCert(
            "4E8A1F0C7B2D9E3A5C6B8D0F1E2A3B4C5D6E7F80", (now + timedelta(days=150)).replace(microsecond=0)
        )
    ]
    state.firewall_rules = [
        SimFirewallRule("RemoteDesktop-UserMode-In-TCP", protocol="TCP"),
        SimFirewallRule("RemoteDesktop-UserMode-In-UDP", protocol="UDP"),
    ]
    state.firewall_profiles = [SimFirewallProfile(n) for n in ("Domain", "Private", "Public")]
    return state


_RELATIVE = re.compile(r"^([+-]\d+)([dh])$")


def _parse_when(value: Any, now: datetime, where: str) -> datetime:
    """An ISO time, or a time relative to now: '+150d', '-3d', '+12h'."""
    if isinstance(value, str):
        match = _RELATIVE.match(value.strip())
        if match:
            amount = int(match.group(1))
            delta = timedelta(days=amount) if match.group(2) == "d" else timedelta(hours=amount)
            return (now + delta).replace(microsecond=0)
        parsed = c.parse_time(value)
        if parsed is not None:
            return parsed
    raise GuestScenarioError(f"{where}: expected an ISO time or '+Nd'/'-Nd', got {value!r}")


class GuestScenarioError(ValueError):
    """A malformed `guest` object in a scenario."""


def _reg_value(value: Any, where: str) -> RegValue:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        if value.lower().startswith("hex:"):
            try:
                return bytes.fromhex(value[4:])
            except ValueError:
                raise GuestScenarioError(f"{where}: bad hex value {value!r}") from None
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise GuestScenarioError(f"{where}: registry values are integers, strings, 'hex:..' or string lists")


def _obj(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise GuestScenarioError(f"{where}: expected an object")
    return value


def _apply_fields(target: Any, values: Mapping[str, Any], names: Mapping[str, str], where: str) -> None:
    for key, value in values.items():
        attr = names.get(key)
        if attr is None:
            raise GuestScenarioError(f"{where}.{key}: unknown key (allowed: {', '.join(sorted(names))})")
        setattr(target, attr, value)


_SERVICE_KEYS = {
    "state": "state",
    "startMode": "start_mode",
    "account": "account",
    "exitCode": "exit_code",
    "pid": "pid",
}
_RULE_KEYS = {
    "enabled": "enabled",
    "action": "action",
    "direction": "direction",
    "protocol": "protocol",
    "localPorts": "local_ports",
    "profile": "profile",
    "group": "group",
}
_PROFILE_KEYS = {
    "enabled": "enabled",
    "allowInboundRules": "allow_inbound_rules",
    "allowLocalRules": "allow_local_rules",
}
_OS_KEYS = {
    "version": "os_version",
    "build": "build",
    "psVersion": "ps_version",
    "partOfDomain": "part_of_domain",
}
_TOP_KEYS = {
    "preset",
    "os",
    "registry",
    "policySources",
    "pinType",
    "terminalServerMode",
    "services",
    "listeners",
    "certificates",
    "machineKeysSddl",
    "firewall",
    "events",
    "disk",
    "fault",
    "failingSections",
    "latencySeconds",
    "pendingReboot",
}


def load_state(guest: Mapping[str, Any] | None, now: datetime | None = None) -> GuestState:
    """The state a scenario's `guest` object describes, merged over the healthy image.

    `preset: "none"` starts from nothing instead (what `dump_state` writes). Registry values set to
    null are deleted; services, firewall rules and profiles merge by name; `certificates` replaces
    the store.
    """
    now = now or datetime.now(timezone.utc)
    guest = dict(guest or {})
    unknown = sorted(set(guest) - _TOP_KEYS)
    if unknown:
        raise GuestScenarioError(f"guest.{unknown[0]}: unknown key (allowed: {', '.join(sorted(_TOP_KEYS))})")
    preset = guest.get("preset", "healthy")
    if preset not in ("healthy", "none"):
        raise GuestScenarioError("guest.preset: expected 'healthy' or 'none'")
    state = healthy_state(now) if preset == "healthy" else GuestState(active_profiles=[])
    _apply_fields(state, _obj(guest.get("os", {}), "guest.os"), _OS_KEYS, "guest.os")
    for path, values in _obj(guest.get("registry", {}), "guest.registry").items():
        for name, value in _obj(values, f"guest.registry.{path}").items():
            if value is None:
                state.reg_delete(path, name)
            else:
                state.reg_set(path, name, _reg_value(value, f"guest.registry.{path}.{name}"))
    for name, value in _obj(guest.get("policySources", {}), "guest.policySources").items():
        state.policy_sources[name] = int(value)
    if "pinType" in guest:
        state.pin_type = int(guest["pinType"])
    if "terminalServerMode" in guest:
        state.terminal_server_mode = int(guest["terminalServerMode"])
    for name, values in _obj(guest.get("services", {}), "guest.services").items():
        service = state.service(name) or state.services.setdefault(name, SimService(name))
        _apply_fields(
            service, _obj(values, f"guest.services.{name}"), _SERVICE_KEYS, f"guest.services.{name}"
        )
    for port, owner in _obj(guest.get("listeners", {}), "guest.listeners").items():
        owner = _obj(owner, f"guest.listeners.{port}")
        state.other_listeners[int(port)] = (int(owner["pid"]), str(owner["process"]))
    if "certificates" in guest:
        state.certs = [
            _cert(_obj(item, f"guest.certificates[{i}]"), now, i)
            for i, item in enumerate(guest["certificates"])
        ]
    if "machineKeysSddl" in guest:
        state.machinekeys_sddl = str(guest["machineKeysSddl"])
    _load_firewall(state, _obj(guest.get("firewall", {}), "guest.firewall"))
    for event_id, count in _obj(guest.get("events", {}), "guest.events").items():
        state.events[int(event_id)] = int(count)
    disk = _obj(guest.get("disk", {}), "guest.disk")
    state.drive = str(disk.get("drive", state.drive))
    state.disk_free = int(disk.get("freeBytes", state.disk_free))
    state.disk_size = int(disk.get("sizeBytes", state.disk_size))
    fault = guest.get("fault")
    if fault is not None and fault not in FAULTS:
        raise GuestScenarioError(f"guest.fault: expected one of {', '.join(FAULTS)}")
    state.fault = fault
    state.failing_sections = [str(s) for s in guest.get("failingSections", [])]
    if guest.get("latencySeconds") is not None:
        state.latency_s = float(guest["latencySeconds"])
    marker = guest.get("pendingReboot")
    if marker is not None:
        marker = _obj(marker, "guest.pendingReboot")
        state.pending_reboot = {
            "boot": str(marker.get("boot", "")),
            "runs": [str(r) for r in marker.get("runs", [])],
        }
    return state


_CERT_KEYS = {
    "thumbprint",
    "notAfter",
    "store",
    "hasPrivateKey",
    "keyOpens",
    "keyFile",
    "keyReadable",
    "keyDenied",
}


def _cert(item: Mapping[str, Any], now: datetime, index: int) -> SimCert:
    where = f"guest.certificates[{index}]"
    unknown = sorted(set(item) - _CERT_KEYS)
    if unknown:
        raise GuestScenarioError(f"{where}.{unknown[0]}: unknown key")
    thumbprint = str(item.get("thumbprint", "")).upper()
    if not re.fullmatch(r"[0-9A-F]{40}", thumbprint):
        raise GuestScenarioError(f"{where}.thumbprint: expected 40 hex digits")
    return SimCert(
        thumbprint=thumbprint,
        not_after=_parse_when(item.get("notAfter", "+150d"), now, f"{where}.notAfter"),
        store=str(item.get("store", "Remote Desktop")),
        has_private_key=bool(item.get("hasPrivateKey", True)),
        key_opens=bool(item.get("keyOpens", True)),
        key_file=bool(item.get("keyFile", True)),
        key_readable=bool(item.get("keyReadable", True)),
        key_denied=bool(item.get("keyDenied", False)),
    )


def _load_firewall(state: GuestState, fw: Mapping[str, Any]) -> None:
    for name, values in _obj(fw.get("rules", {}), "guest.firewall.rules").items():
        if values is None:  # the rule was deleted
            state.firewall_rules = [r for r in state.firewall_rules if r.name != name]
            continue
        rule = next((r for r in state.firewall_rules if r.name == name), None)
        if rule is None:
            rule = SimFirewallRule(name)
            state.firewall_rules.append(rule)
        _apply_fields(
            rule, _obj(values, f"guest.firewall.rules.{name}"), _RULE_KEYS, f"guest.firewall.rules.{name}"
        )
    for name, values in _obj(fw.get("profiles", {}), "guest.firewall.profiles").items():
        profile = next((p for p in state.firewall_profiles if p.name == name), None)
        if profile is None:
            profile = SimFirewallProfile(name)
            state.firewall_profiles.append(profile)
        where = f"guest.firewall.profiles.{name}"
        _apply_fields(profile, _obj(values, where), _PROFILE_KEYS, where)
    if "active" in fw:
        state.active_profiles = [str(p) for p in fw["active"]]


def dump_state(state: GuestState) -> dict[str, Any]:
    """The state as a scenario `guest` object (preset none, absolute times): load_state round-trips it."""
    return {
        "preset": "none",
        "os": {
            "version": state.os_version,
            "build": state.build,
            "psVersion": state.ps_version,
            "partOfDomain": state.part_of_domain,
        },
        "registry": {
            path: {
                name: ("hex:" + v.hex() if isinstance(v, bytes) else copy.copy(v))
                for name, v in values.items()
            }
            for path, values in state.registry.items()
        },
        "policySources": dict(state.policy_sources),
        "pinType": state.pin_type,
        "terminalServerMode": state.terminal_server_mode,
        "services": {
            s.name: {
                "state": s.state,
                "startMode": s.start_mode,
                "account": s.account,
                "exitCode": s.exit_code,
                "pid": s.pid,
            }
            for s in state.services.values()
        },
        "listeners": {
            str(p): {"pid": pid, "process": name} for p, (pid, name) in state.other_listeners.items()
        },
        "certificates": [
            {
                "thumbprint": cert.thumbprint,
                "notAfter": c.format_time(cert.not_after),
                "store": cert.store,
                "hasPrivateKey": cert.has_private_key,
                "keyOpens": cert.key_opens,
                "keyFile": cert.key_file,
                "keyReadable": cert.key_readable,
                "keyDenied": cert.key_denied,
            }
            for cert in state.certs
        ],
        "machineKeysSddl": state.machinekeys_sddl,
        "firewall": {
            "rules": {
                r.name: {
                    "enabled": r.enabled,
                    "action": r.action,
                    "direction": r.direction,
                    "protocol": r.protocol,
                    "localPorts": r.local_ports,
                    "profile": r.profile,
                    "group": r.group,
                }
                for r in state.firewall_rules
            },
            "profiles": {
                p.name: {
                    "enabled": p.enabled,
                    "allowInboundRules": p.allow_inbound_rules,
                    "allowLocalRules": p.allow_local_rules,
                }
                for p in state.firewall_profiles
            },
            "active": list(state.active_profiles),
        },
        "events": {str(k): v for k, v in state.events.items()},
        "disk": {"drive": state.drive, "freeBytes": state.disk_free, "sizeBytes": state.disk_size},
        "fault": state.fault,
        "failingSections": list(state.failing_sections),
        "latencySeconds": state.latency_s,
        "pendingReboot": copy.deepcopy(state.pending_reboot),
    }


# --- what the script would collect --------------------------------------------------------------


def _text(value: str | None) -> str | None:
    return c.limit_text(value, c.LIMITS["text"])


def collect(state: GuestState, expected_port: int, now: datetime) -> c.Diagnosis:
    """The diagnosis the script's Get-AzrdpDiagnosis would return on this machine."""
    errors: list[c.SectionError] = []

    def section(name: str, build: Callable[[], Any]) -> Any:
        if name in state.failing_sections:
            if len(errors) < c.LIMITS["errors"]:
                message = f"Simulated failure reading {name}: Access is denied."
                errors.append(c.SectionError(name, c.limit_text(message, c.LIMITS["message"])))
            return None
        return build()

    rdp = section("rdp", lambda: _rdp(state))
    listener_port = rdp.port if rdp is not None and rdp.port is not None else expected_port
    ports = [listener_port] + ([expected_port] if expected_port != listener_port else [])
    cert_facts: tuple[c.CertInfo, SimCert | None] | None = section("cert", lambda: _certs(state))
    return c.Diagnosis(
        os=section(
            "os", lambda: c.OsInfo(state.os_version, state.build, state.ps_version, state.part_of_domain)
        ),
        rdp=rdp,
        listener=section("lsn", lambda: _listener(state, ports)),
        services=section("svc", lambda: _services(state)),
        cert=cert_facts[0] if cert_facts else None,
        machine_keys=section("mk", lambda: _machine_keys(state, cert_facts[1] if cert_facts else None)),
        tls=section("tls", lambda: _tls(state)),
        firewall=section("fw", lambda: _firewall(state, listener_port)),
        events=section("evt", lambda: _events(state)),
        disk=section("disk", lambda: c.DiskInfo(state.drive, state.disk_free, state.disk_size)),
        errors=tuple(errors),
        reboot_pending=section("rb", lambda: 1 if pending_reboot_runs(state) else None),
    )


def boot_stamp(state: GuestState) -> str:
    return c.format_time(state.boot_time) if state.boot_time is not None else ""


def pending_reboot_runs(state: GuestState) -> list[str]:
    """The runs of the marker when it was written during this boot (as Read-PendingReboot)."""
    marker = state.pending_reboot
    if not marker:
        return []
    then, now = c.parse_time(marker.get("boot")), state.boot_time
    if (then is None) != (now is None):
        return []
    if then is not None and now is not None and abs((now - then).total_seconds()) > c.SAME_BOOT_SECONDS:
        return []
    return list(marker.get("runs") or [])


def _rdp(state: GuestState) -> c.RdpSettings:
    src = state.policy_sources
    return c.RdpSettings(
        deny=state.reg_int(TS, "fDenyTSConnections"),
        deny_policy=state.reg_int(TSPOL, "fDenyTSConnections"),
        ts_enabled=state.reg_int(TS, "TSEnabled"),
        winstation_enabled=state.reg_int(RDPTCP, "fEnableWinStation"),
        port=state.reg_int(RDPTCP, "PortNumber"),
        security_layer=state.reg_int(RDPTCP, "SecurityLayer"),
        security_layer_policy=state.reg_int(TSPOL, "SecurityLayer"),
        user_auth=state.reg_int(RDPTCP, "UserAuthentication"),
        user_auth_policy=state.reg_int(TSPOL, "UserAuthentication"),
        min_encryption=state.reg_int(RDPTCP, "MinEncryptionLevel"),
        min_encryption_policy=state.reg_int(TSPOL, "MinEncryptionLevel"),
        negotiation=state.reg_int(RDPTCP, "fAllowSecProtocolNegotiation"),
        source_security_layer=src.get("securityLayer"),
        source_user_auth=src.get("userAuthentication"),
        source_min_encryption=src.get("minEncryptionLevel"),
        ts_user_enabled=state.reg_int(TS, "TSUserEnabled"),
        drain_mode=state.reg_int(TS, "TSServerDrainMode"),
        logon_disabled=state.reg_int(RDPTCP, "fLogonDisabled"),
        winstations_disabled=state.reg_int(WINLOGON, "WinStationsDisabled"),
        terminal_server_mode=state.terminal_server_mode,
    )


def _listener(state: GuestState, ports: list[int]) -> c.ListenerInfo:
    ts = state.service("TermService")
    ts_pid = ts.pid if ts is not None and ts.state == "Running" and ts.pid > 0 else None
    owners = []
    for port in ports:
        owner = state.port_owner(port)
        owners.append(c.PortOwner(port, owner[0] if owner else None, _text(owner[1]) if owner else None))
    return c.ListenerInfo(ts_pid, tuple(owners))


def _services(state: GuestState) -> tuple[c.ServiceInfo, ...]:
    out = []
    for name in c.SERVICE_NAMES:
        service = state.service(name)
        if service is None or service.state == "NotFound":
            out.append(c.ServiceInfo(name, "NotFound"))
        else:
            out.append(
                c.ServiceInfo(
                    name,
                    service.state,
                    service.start_mode,
                    c.limit_text(service.account, c.LIMITS["account"]),
                    service.exit_code,
                )
            )
    return tuple(out)


def _certs(state: GuestState) -> tuple[c.CertInfo, SimCert | None]:
    pin = state.pin
    rd = [x for x in state.certs if x.store.lower() == "remote desktop"]
    pinned: tuple[SimCert, str] | None = None
    if pin:
        in_rd = next((x for x in rd if x.thumbprint == pin), None)
        in_my = next((x for x in state.certs if x.store.lower() == "my" and x.thumbprint == pin), None)
        pinned = (in_rd, "RD") if in_rd else (in_my, "My") if in_my else None
    chosen: list[tuple[SimCert, str]] = [pinned] if pinned else []
    for cert in sorted(rd, key=lambda x: x.not_after, reverse=True):
        if len(chosen) >= c.LIMITS["certs"]:
            break
        if pinned and cert.thumbprint == pinned[0].thumbprint:
            continue
        chosen.append((cert, "RD"))
    listener: SimCert | None = None
    if pinned:
        listener = pinned[0]
    elif not pin and rd:
        listener = max(rd, key=lambda x: x.not_after)
    entries = tuple(
        c.CertEntry(
            cert.thumbprint,
            c.format_time(cert.not_after),
            cert.has_private_key,
            (cert.key_opens if cert.has_private_key else None),
            store,
        )
        for cert, store in chosen
    )
    return c.CertInfo(pin, state.pin_type, len(rd), entries), listener


def _machine_keys(state: GuestState, listener: SimCert | None) -> c.MachineKeys:
    sddl = c.limit_text(state.machinekeys_sddl, c.LIMITS["sddl"])
    if listener is None or not listener.has_private_key:
        return c.MachineKeys(sddl)
    if not listener.key_file:
        return c.MachineKeys(sddl, key_found=False)
    readable = listener.key_readable and not listener.key_denied
    return c.MachineKeys(sddl, True, readable, listener.key_denied)


def _tls(state: GuestState) -> c.TlsInfo:
    def proto(version: str) -> c.TlsProtocol:
        path = TLS_SERVER[version]
        return c.TlsProtocol(state.reg_int(path, "Enabled"), state.reg_int(path, "DisabledByDefault"))

    functions = state.reg_get(CIPHER_POLICY, "Functions")
    count = None
    if functions is not None:
        text = ",".join(functions) if isinstance(functions, list) else str(functions)
        count = len([f for f in text.split(",") if f.strip()])
    return c.TlsInfo(
        proto("1.0"),
        proto("1.1"),
        proto("1.2"),
        proto("1.3"),
        state.reg_int(FIPS, "Enabled"),
        state.reg_int(CREDSSP, "AllowEncryptionOracle"),
        count,
    )


def _port_in(ports: str, port: int) -> bool:
    for part in ports.split(","):
        part = part.strip()
        if part.lower() == "any":
            return True
        low, _, high = part.partition("-")
        if low.isdigit() and int(low) <= port <= int(high if high.isdigit() else low):
            return True
    return False


def _firewall(state: GuestState, port: int) -> c.FirewallInfo:
    rules = []
    custom = c.custom_rule_name(port)
    for name in (*c.RDP_FIREWALL_RULES, custom):
        rule = next((r for r in state.firewall_rules if r.name == name), None)
        if rule is None:
            if name != custom:  # azrdp's own rule is listed only when it exists
                rules.append(c.FirewallRule(name, False))
            continue
        rules.append(
            c.FirewallRule(
                name,
                True,
                rule.enabled,
                rule.action,
                _text(rule.profile),
                _text(rule.local_ports),
                rule.group == c.RDP_FIREWALL_GROUP,
            )
        )
    blocks = [
        _text(r.name) or ""
        for r in state.firewall_rules
        if r.enabled
        and r.direction == "Inbound"
        and r.action == "Block"
        and r.protocol.upper() in ("TCP", "ANY")
        and _port_in(r.local_ports, port)
    ][: c.LIMITS["blocks"]]
    profiles = tuple(
        c.FirewallProfile(
            p.name,
            p.enabled,
            p.allow_inbound_rules,
            p.allow_local_rules,
            state.reg_int(
                FIREWALL_POLICY + "\\" + FIREWALL_PROFILE_KEYS.get(p.name, p.name), "DoNotAllowExceptions"
            ),
        )
        for p in state.firewall_profiles
    )
    return c.FirewallInfo(tuple(rules), tuple(blocks), profiles, tuple(dict.fromkeys(state.active_profiles)))


def _events(state: GuestState) -> c.EventCounts:
    def n(event_id: int) -> int:
        return min(state.events.get(event_id, 0), c.LIMITS["events"])

    return c.EventCounts(n(1057), n(1058), n(36870), n(36871), n(36872), n(7022))


# --- Run Command ------------------------------------------------------------------------------


ModeHandler = Callable[[dict[str, Any], GuestState, dict[str, str], datetime], c.GuestReport]


def _diagnose(vm: dict[str, Any], state: GuestState, params: dict[str, str], now: datetime) -> c.GuestReport:
    port = int(params.get("rdpport", "3389"))
    return c.GuestReport(c.SCHEMA_VERSION, "diagnose", c.format_time(now), collect(state, port, now))


# The repair issue adds "repair" and "undo" here.
MODE_HANDLERS: dict[str, ModeHandler] = {"diagnose": _diagnose}

_PARAMETERS = ("mode", "rdpport", "runid", "only", "skip", "dryrun")


def guest_epoch(vm: dict[str, Any], now: datetime) -> datetime:
    """The instant a VM's relative scenario times ('+150d', '-12d') are anchored to.

    Fixed at the VM's first Run Command and kept in its emulator bookkeeping, so a certificate
    keeps one NotAfter across runs (as on a real machine) and two diagnoses of an unchanged guest
    are identical apart from the guest clock, however far apart they run.
    """
    bookkeeping = vm.get("_emulator")
    if not isinstance(bookkeeping, dict):
        bookkeeping = vm["_emulator"] = {}
    stamp = bookkeeping.get("guestEpoch")
    epoch = c.parse_time(stamp) if isinstance(stamp, str) else None
    if epoch is None:
        epoch = now.replace(microsecond=0)
        bookkeeping["guestEpoch"] = c.format_time(epoch)
    return epoch


def boot_time(vm: dict[str, Any], now: datetime) -> datetime:
    """The simulated LastBootUpTime: an hour before the guest epoch, ten minutes later per boot.

    The emulator counts boots in the VM's bookkeeping (`boots`, raised by start and restart), so a
    restart gives a boot time far outside SAME_BOOT_SECONDS of the one before.
    """
    boots = int((vm.get("_emulator") or {}).get("boots", 0))
    return guest_epoch(vm, now) - timedelta(hours=1) + timedelta(minutes=10 * boots)


def handle_run_command(
    vm: dict[str, Any], body: Mapping[str, Any], now: datetime | None = None
) -> RunCommandOutput:
    """Answer an action Run Command on a simulated Windows VM, as the real guest would."""
    now = (now or datetime.now(timezone.utc)).replace(microsecond=0)
    script = body.get("script")
    if body.get("commandId") != "RunPowerShellScript" or not c.is_azrdp_script(script):
        return RunCommandOutput(
            "",
            "The emulator's simulated guest runs only azrdp's own script (first line "
            f"'{c.SCRIPT_HEADER}'); it does not execute PowerShell or built-in commands.",
        )
    try:
        state = load_state(vm.get("guest"), guest_epoch(vm, now))
    except (GuestScenarioError, ValueError, TypeError) as exc:
        return RunCommandOutput("", f"The simulated guest's scenario is malformed: {exc}")
    state.boot_time = boot_time(vm, now)
    duration = state.latency_s
    params = c.parameters_dict(body.get("parameters"))
    unknown = [name for name in params if name not in _PARAMETERS]
    if unknown:
        # PowerShell's own parameter binding fails before the script runs: StdErr only.
        return RunCommandOutput(
            "",
            f"azrdp.ps1 : A parameter cannot be found that matches parameter name '{unknown[0]}'.",
            duration,
        )
    empty = [str(p.get("name")) for p in body.get("parameters") or () if str(p.get("value", "")) == ""]
    if empty:
        # The handler writes `-Name value` unquoted: an empty value leaves -Name without an argument.
        return RunCommandOutput(
            "",
            f"azrdp.ps1 : Missing an argument for parameter '{empty[0]}'. Specify a parameter of type "
            "'System.String' and try again.",
            duration,
        )
    fault_output = _fault(state, now)
    if fault_output is not None:
        return RunCommandOutput(fault_output[0], fault_output[1], duration)
    from azrdp.emulator import guest_repair  # repair.ps1's modes, when the script includes it

    if guest_repair.accepts(script, params):
        return RunCommandOutput(guest_repair.run(vm, state, params, now) + "\n", "", duration)
    report = _run_mode(vm, state, params, now)
    return RunCommandOutput(c.render_line(report) + "\n", "", duration)


def _run_mode(vm: dict[str, Any], state: GuestState, params: dict[str, str], now: datetime) -> c.GuestReport:
    mode = params.get("mode", "diagnose")
    stamp = c.format_time(now)
    mode_text = c.limit_text(mode, c.LIMITS["text"])
    if state.ps_version.split(".")[0].isdigit() and int(state.ps_version.split(".")[0]) < 5:
        message = f"Windows PowerShell {state.ps_version} is too old; azrdp needs 5.1."
        return c.GuestReport(c.SCHEMA_VERSION, mode_text, stamp, error=message, error_code="unsupported")
    if mode not in c.MODES:
        message = "Mode must be one of: " + ", ".join(c.MODES) + "."
        return c.GuestReport(c.SCHEMA_VERSION, mode_text, stamp, error=message, error_code="parameter")
    handler = MODE_HANDLERS.get(mode)
    if handler is None:
        message = f"Mode {mode} is not implemented by this script version."
        return c.GuestReport(c.SCHEMA_VERSION, mode_text, stamp, error=message, error_code="mode")
    port_text = params.get("rdpport", "3389")
    if not port_text.strip().isdigit() or not 1 <= int(port_text) <= 65535:
        message = "RdpPort must be a TCP port from 1 to 65535."
        return c.GuestReport(c.SCHEMA_VERSION, mode_text, stamp, error=message, error_code="parameter")
    return handler(vm, state, params, now)


def _fault(state: GuestState, now: datetime) -> tuple[str, str] | None:
    if state.fault is None:
        return None
    if state.fault == "unsupported":
        state.ps_version = "4.0"
        return None
    good = c.render_line(
        c.GuestReport(c.SCHEMA_VERSION, "diagnose", c.format_time(now), collect(state, 3389, now))
    )
    if state.fault == "no-marker":
        return "WARNING: something else answered\n", ""
    if state.fault == "truncated":
        # The script's line outgrew the limit: Run Command keeps only the last 4,096 bytes.
        padded = good[:-1] + ',"x":"' + "#" * 5000 + '"}'
        return padded[-c.RUN_COMMAND_OUTPUT_LIMIT :], ""
    if state.fault == "invalid-json":
        return good.replace('"v":1', '"v":1,,', 1) + "\n", ""
    if state.fault == "cut-json":
        return good[: len(good) // 2] + "\n", ""
    if state.fault == "stderr-only":
        return "", (
            "Get-CimInstance : Access denied\r\n"
            "At C:\\Packages\\Plugins\\Microsoft.CPlat.Core.RunCommandWindows\\1.1.18\\Downloads\\"
            "script0.ps1:120 char:11\r\n"
            "    + CategoryInfo          : PermissionDenied: (:) [Get-CimInstance], CimException\r\n"
        )
    if state.fault == "unknown-schema":
        data = json.loads(good[len(c.MARKER) :])
        data["v"] = c.SCHEMA_VERSION + 1
        return c.MARKER + json.dumps(data, separators=(",", ":")) + "\n", ""
    return None
