"""The healthy Windows Server 2022 image, and the scenario `guest` object that describes a VM.

A scenario's `guest` object is merged over the healthy image (`preset: "healthy"`, the default)
or describes everything (`preset: "none"`, what `dump` writes). `load(dump(m))` gives the same
machine back. The format is documented in docs/emulator.md; unknown keys are refused with the
path of the offending key, like a schema would.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from azrdp.emulator.windows import state as w
from azrdp.guest.facts import parse_time
from azrdp.guest.plan import LOCK_LONGEST
from azrdp.guest.sddl import SddlError, parse

TLS_SERVER = {
    v: w.HKLM + rf"SYSTEM\CurrentControlSet\Control\SecurityProviders\SCHANNEL\Protocols\TLS {v}\Server"
    for v in ("1.0", "1.1", "1.2", "1.3")
}
WINLOGON = w.HKLM + r"SOFTWARE\Microsoft\Windows NT\CurrentVersion\Winlogon"
FIPS = w.HKLM + r"SYSTEM\CurrentControlSet\Control\Lsa\FIPSAlgorithmPolicy"
CREDSSP = w.HKLM + r"SOFTWARE\Microsoft\Windows\CurrentVersion\Policies\System\CredSSP\Parameters"
CIPHER_POLICY = w.HKLM + r"SOFTWARE\Policies\Microsoft\Cryptography\Configuration\SSL\00010002"
FIREWALL_POLICY = w.HKLM + r"SYSTEM\CurrentControlSet\Services\SharedAccess\Parameters\FirewallPolicy"
PROFILE_KEYS = {"Domain": "DomainProfile", "Private": "StandardProfile", "Public": "PublicProfile"}

HEALTHY_CERT = "4E8A1F0C7B2D9E3A5C6B8D0F1E2A3B4C5D6E7F80"
# The default MachineKeys folder (KB 278381; measured on every build 9600-26100), owner + DACL.
MACHINEKEYS_SDDL = "O:SYD:PAI(A;;0x12019f;;;WD)(A;;FA;;;BA)"
CNG_KEYS_SDDL = "O:SYD:PAI(A;;0x12019f;;;WD)(A;;FA;;;BA)(A;;FA;;;SY)"
# An HKLM\SOFTWARE subkey: its ACEs are inherited from SOFTWARE.
STORE_SDDL = "O:SYD:AI(A;CIID;KR;;;BU)(A;CIID;KA;;;BA)(A;CIID;KA;;;SY)(A;CIIOID;KA;;;CO)(A;CIID;KR;;;AC)"
_CIPHERS = (
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,"
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
)
# name: (display name, start mode, account, pid, depends on) on a healthy image (reference: services).
_SERVICES: Mapping[str, tuple[str, str, str, int, tuple[str, ...]]] = {
    "TermService": ("Remote Desktop Services", "Manual", "NT Authority\\NetworkService", 1068, ()),
    "UmRdpService": (
        "Remote Desktop Services UserMode Port Redirector",
        "Manual",
        "LocalSystem",
        1184,
        ("TermService",),
    ),
    "SessionEnv": ("Remote Desktop Configuration", "Manual", "LocalSystem", 1092, ()),
    "KeyIso": ("CNG Key Isolation", "Manual", "LocalSystem", 712, ()),
    "CryptSvc": ("Cryptographic Services", "Auto", "NT Authority\\NetworkService", 1420, ()),
    "CertPropSvc": ("Certificate Propagation", "Manual", "LocalSystem", 1536, ()),
    "MpsSvc": ("Windows Defender Firewall", "Auto", "NT Authority\\LocalService", 2012, ("BFE",)),
    "BFE": ("Base Filtering Engine", "Auto", "NT Authority\\LocalService", 1988, ()),
    "RdAgent": ("RdAgent", "Auto", "LocalSystem", 2240, ()),
    "WindowsAzureGuestAgent": ("Windows Azure Guest Agent", "Auto", "LocalSystem", 2304, ()),
}


class ScenarioError(ValueError):
    """A malformed `guest` object."""


def healthy(now: datetime, boot: datetime) -> w.Machine:
    m = w.Machine(clock=now, boot=boot)
    reg = m.registry
    for name, value in (("fDenyTSConnections", 0), ("TSEnabled", 1), ("TSUserEnabled", 0)):
        reg.set(w.TS, name, "DWord", value)
    reg.set(WINLOGON, "WinStationsDisabled", "String", "0")
    for name, value in (
        ("fEnableWinStation", 1),
        ("fLogonDisabled", 0),
        ("PortNumber", 3389),
        ("SecurityLayer", 2),
        ("UserAuthentication", 1),
        ("MinEncryptionLevel", 2),
        ("fAllowSecProtocolNegotiation", 1),
    ):
        reg.set(w.RDPTCP, name, "DWord", value)
    reg.set(FIPS, "Enabled", "DWord", 0)
    reg.set(CIPHER_POLICY, "Functions", "String", _CIPHERS)
    reg.set(w.CRYPTOGRAPHY, "MachineGuid", "String", m.machine_guid)
    for key in PROFILE_KEYS.values():
        reg.set(FIREWALL_POLICY + "\\" + key, "EnableFirewall", "DWord", 1)
    reg.ensure(w.TSPOL)
    for path in (w.RD_STORE, w.RD_CERTIFICATES):
        reg.ensure(path).sd = parse(STORE_SDDL)
    m.policy_sources = {"securityLayer": 2, "userAuthentication": 2, "minEncryptionLevel": 2}
    m.put_file(w.MACHINEKEYS, parse(MACHINEKEYS_SDDL))
    m.put_file(w.CNG_KEYS, parse(CNG_KEYS_SDDL))
    prov = w.KeyProv(24, w.SELF_SIGNED_CONTAINER, w.SELF_SIGNED_PROVIDER)
    m.put_file(m.key_path(prov), m.key_sd_for_build(False))
    start = (now - timedelta(days=30)).replace(microsecond=0)
    m.rd_store[HEALTHY_CERT] = w.Cert(HEALTHY_CERT, start + timedelta(days=180), start, key=prov)
    m.services = {
        name.lower(): w.Service(name, display, "Running", mode, account, 0, pid, False, deps)
        for name, (display, mode, account, pid, deps) in _SERVICES.items()
    }
    m.rules = [
        w.Rule("RemoteDesktop-UserMode-In-TCP"),
        w.Rule("RemoteDesktop-UserMode-In-UDP", protocol="UDP"),
    ]
    m.profiles = {n: w.Profile(n) for n in ("Domain", "Private", "Public")}
    m.ts_port = 3389
    m.ts_cert = HEALTHY_CERT
    return m


# --- loading a scenario --------------------------------------------------------------------------

_TOP = {
    "preset",
    "os",
    "registry",
    "registrySddl",
    "policySources",
    "pinType",
    "terminalServerMode",
    "services",
    "listeners",
    "certificates",
    "machineKeysSddl",
    "rdStoreSddl",
    "files",
    "firewall",
    "events",
    "disk",
    "fault",
    "failingSections",
    "latencySeconds",
    "runtime",
    "azrdp",
}
FAULTS = (
    "no-marker",
    "truncated",
    "damaged",
    "cut",
    "stderr-only",
    "unknown-schema",
    "unsupported",
    "legacy",
)
_RELATIVE = re.compile(r"^([+-]\d+)([dhm])$")


def _obj(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ScenarioError(f"{where}: expected an object")
    return value


def _known(values: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(values) - allowed)
    if unknown:
        raise ScenarioError(f"{where}.{unknown[0]}: unknown key (allowed: {', '.join(sorted(allowed))})")


def when(value: Any, now: datetime, where: str) -> datetime:
    """An ISO time, or relative to the VM's epoch: '+150d', '-3d', '+12h', '-30m'."""
    if isinstance(value, str):
        match = _RELATIVE.match(value.strip())
        if match:
            amount = int(match.group(1))
            unit = {"d": timedelta(days=1), "h": timedelta(hours=1), "m": timedelta(minutes=1)}[
                match.group(2)
            ]
            return (now + amount * unit).replace(microsecond=0)
        parsed = parse_time(value)
        if parsed is not None:
            return parsed
    raise ScenarioError(f"{where}: expected an ISO time or '+Nd'/'-Nd'/'+Nh', got {value!r}")


def _sd(value: Any, where: str) -> Any:
    try:
        return parse(str(value))
    except SddlError as exc:
        raise ScenarioError(f"{where}: {exc}") from None


def reg_value(value: Any, where: str) -> tuple[str, Any]:
    if isinstance(value, bool):
        return ("DWord", int(value))
    if isinstance(value, int):
        return ("DWord", value & 0xFFFFFFFF)
    if isinstance(value, str):
        if value.lower().startswith("hex:"):
            try:
                return ("Binary", bytes.fromhex(value[4:]))
            except ValueError:
                raise ScenarioError(f"{where}: bad hex value {value!r}") from None
        return ("String", value)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return ("MultiString", list(value))
    if isinstance(value, dict) and set(value) == {"kind", "data"}:
        kind, data = value["kind"], value["data"]
        if kind in ("QWord", "DWord") and isinstance(data, int):
            return (kind, data)
        if kind in ("String", "ExpandString") and isinstance(data, str):
            return (kind, data)
        if kind == "Binary" and isinstance(data, str):
            return ("Binary", bytes.fromhex(data))
        if kind == "MultiString" and isinstance(data, list):
            return ("MultiString", [str(v) for v in data])
        if kind == "None" and isinstance(data, str):
            return ("None", bytes.fromhex(data))  # REG_NONE
    raise ScenarioError(
        f"{where}: registry values are integers, strings, 'hex:..', string lists or {{kind, data}}"
    )


def load(guest: Mapping[str, Any] | None, now: datetime, boot: datetime | None = None) -> w.Machine:
    """The machine a scenario's `guest` object describes."""
    guest = dict(guest or {})
    _known(guest, _TOP, "guest")
    preset = guest.get("preset", "healthy")
    if preset not in ("healthy", "none"):
        raise ScenarioError("guest.preset: expected 'healthy' or 'none'")
    boot = boot or now - timedelta(hours=1)
    m = healthy(now, boot) if preset == "healthy" else w.Machine(clock=now, boot=boot, active=[])
    _load_os(m, _obj(guest.get("os", {}), "guest.os"))
    for path, values in _obj(guest.get("registry", {}), "guest.registry").items():
        m.registry.ensure(path)
        for name, value in _obj(values, f"guest.registry.{path}").items():
            if value is None:
                m.registry.delete(path, name)
            else:
                m.registry.set(path, name, *reg_value(value, f"guest.registry.{path}.{name}"))
    for path, sddl in _obj(guest.get("registrySddl", {}), "guest.registrySddl").items():
        m.registry.ensure(path).sd = _sd(sddl, f"guest.registrySddl.{path}")
    for name, value in _obj(guest.get("policySources", {}), "guest.policySources").items():
        m.policy_sources[name] = int(value)
    if "pinType" in guest:
        m.hash_type = int(guest["pinType"])
    if "terminalServerMode" in guest:
        m.ts_mode = int(guest["terminalServerMode"])
    _load_services(m, _obj(guest.get("services", {}), "guest.services"))
    for port, owner in _obj(guest.get("listeners", {}), "guest.listeners").items():
        owner = _obj(owner, f"guest.listeners.{port}")
        m.listeners[int(port)] = (int(owner["pid"]), str(owner["process"]))
    for path, item in _obj(guest.get("files", {}), "guest.files").items():
        item = _obj(item, f"guest.files.{path}")
        _known(item, {"sddl", "corrupt"}, f"guest.files.{path}")
        if item.get("sddl") is None:
            m.files.pop(path.lower(), None)
        else:
            m.put_file(path, _sd(item["sddl"], f"guest.files.{path}.sddl"), bool(item.get("corrupt", False)))
    if "machineKeysSddl" in guest:
        m.put_file(w.MACHINEKEYS, _sd(guest["machineKeysSddl"], "guest.machineKeysSddl"))
    if "rdStoreSddl" in guest:
        # The key new entries are created under (Remote Desktop\Certificates).
        m.registry.ensure(w.RD_CERTIFICATES).sd = _sd(guest["rdStoreSddl"], "guest.rdStoreSddl")
    if "certificates" in guest:
        if not isinstance(guest["certificates"], list):
            raise ScenarioError("guest.certificates: expected a list")
        m.rd_store, m.my_store = {}, {}
        for i, item in enumerate(guest["certificates"]):
            _load_cert(m, _obj(item, f"guest.certificates[{i}]"), now, f"guest.certificates[{i}]")
    _load_firewall(m, _obj(guest.get("firewall", {}), "guest.firewall"))
    _load_events(m, guest.get("events", {}), now)
    disk = _obj(guest.get("disk", {}), "guest.disk")
    _known(disk, {"drive", "freeBytes", "sizeBytes"}, "guest.disk")
    m.drive = str(disk.get("drive", m.drive))
    m.disk_free = int(disk.get("freeBytes", m.disk_free))
    m.disk_size = int(disk.get("sizeBytes", m.disk_size))
    m.failing_sections = [str(s) for s in guest.get("failingSections", [])]
    _load_runtime(m, _obj(guest.get("runtime", {}), "guest.runtime"), "runtime" in guest)
    _load_azrdp(m, _obj(guest.get("azrdp", {}), "guest.azrdp"))
    return m


def faults(guest: Mapping[str, Any] | None) -> tuple[str | None, float | None]:
    guest = guest or {}
    fault = guest.get("fault")
    if fault is not None and fault not in FAULTS:
        raise ScenarioError(f"guest.fault: expected one of {', '.join(FAULTS)}")
    latency = guest.get("latencySeconds")
    return fault, float(latency) if latency is not None else None


def _load_os(m: w.Machine, os_: Mapping[str, Any]) -> None:
    names = {
        "version": "version",
        "build": "build",
        "psVersion": "ps_version",
        "powerShell32Bit": "ps_32bit",
        "partOfDomain": "domain",
        "machineGuid": "machine_guid",
        "computerName": "computer",
        "tspkgVersion": "tspkg",
    }
    _known(os_, set(names), "guest.os")
    old_guid = m.machine_guid
    for key, attr in names.items():
        if key in os_:
            setattr(m, attr, os_[key])
    if m.machine_guid != old_guid:
        m.registry.set(w.CRYPTOGRAPHY, "MachineGuid", "String", m.machine_guid)
        for path in [p for p in m.files if old_guid in p]:
            item = m.files.pop(path)
            m.put_file(item.path.replace(old_guid, m.machine_guid), item.sd, item.corrupt)


_SERVICE_KEYS = {
    "state": "state",
    "startMode": "start",
    "account": "account",
    "exitCode": "exit_code",
    "pid": "pid",
    "hang": "hang",
    "delayed": "delayed",
    "displayName": "display",
    "dependsOn": "depends_on",
}


def _load_services(m: w.Machine, services: Mapping[str, Any]) -> None:
    for name, values in services.items():
        if values is None or (isinstance(values, dict) and values.get("state") == "NotFound"):
            m.services.pop(name.lower(), None)
            continue
        values = _obj(values, f"guest.services.{name}")
        _known(values, set(_SERVICE_KEYS), f"guest.services.{name}")
        service = m.service(name) or m.services.setdefault(name.lower(), w.Service(name, name))
        for key, value in values.items():
            setattr(service, _SERVICE_KEYS[key], tuple(value) if key == "dependsOn" else value)
        if service.state == "Stopped" and "pid" not in values:
            service.pid = 0
    # The SCM never leaves a service running without its dependencies: a scenario that stops one
    # stops its dependents too (UmRdpService with TermService).
    for service in m.services.values():
        if service.state != "Running":
            for dependent in m.dependents(service.name):
                dependent.state, dependent.pid = "Stopped", 0


_CERT_KEYS = {
    "thumbprint",
    "notAfter",
    "notBefore",
    "store",
    "subject",
    "issuer",
    "eku",
    "hasPrivateKey",
    "keyFile",
    "keyReadable",
    "keyDenied",
    "keyOpens",
    "key",
}
_KEY_KEYS = {"provider", "container", "providerName", "keySpec", "file", "sddl", "exists", "corrupt"}


def _load_cert(m: w.Machine, item: Mapping[str, Any], now: datetime, where: str) -> None:
    _known(item, _CERT_KEYS, where)
    thumbprint = str(item.get("thumbprint", "")).upper()
    if not re.fullmatch(r"[0-9A-F]{40}", thumbprint):
        raise ScenarioError(f"{where}.thumbprint: expected 40 hex digits")
    store = str(item.get("store", "Remote Desktop"))
    if store not in ("Remote Desktop", "My"):
        raise ScenarioError(f"{where}.store: expected 'Remote Desktop' or 'My'")
    not_after = when(item.get("notAfter", "+150d"), now, f"{where}.notAfter")
    not_before = when(item.get("notBefore", "-30d"), now, f"{where}.notBefore")
    cert = w.Cert(thumbprint, not_after, not_before)
    if "subject" in item:
        cert.subject = str(item["subject"])
    if "issuer" in item:
        cert.issuer = str(item["issuer"])
    if "eku" in item:
        cert.eku = tuple(str(e) for e in item["eku"])
    (m.rd_store if store == "Remote Desktop" else m.my_store)[thumbprint] = cert
    if item.get("hasPrivateKey", True) is False:
        return
    spec = _obj(item.get("key", {}), f"{where}.key")
    _known(spec, _KEY_KEYS, f"{where}.key")
    default = w.SELF_SIGNED_CONTAINER if store == "Remote Desktop" else "azrdp-test-" + thumbprint[:8].lower()
    provider = spec.get("provider", "capi")
    if provider not in ("capi", "cng"):
        raise ScenarioError(f"{where}.key.provider: expected 'capi' or 'cng'")
    if provider == "cng":
        key = w.KeyProv(
            0,
            str(spec.get("container", default)),
            str(spec.get("providerName", "Microsoft Software Key Storage Provider")),
            int(spec.get("keySpec", 0)),
            str(spec.get("file") or m.capi_file_name("cng:" + str(spec.get("container", default)))),
        )
    else:
        key = w.KeyProv(
            24,
            str(spec.get("container", default)),
            str(spec.get("providerName", w.SELF_SIGNED_PROVIDER)),
            int(spec.get("keySpec", 1)),
        )
    cert.key = key
    path = m.key_path(key)
    exists = spec.get("exists", item.get("keyFile", True))
    if not exists:
        m.files.pop(path.lower(), None)
        return
    existing = m.file(path)
    sd = existing.sd if existing is not None else m.key_sd_for_build(False)
    if "sddl" in spec:
        sd = _sd(spec["sddl"], f"{where}.key.sddl")
    else:
        if item.get("keyReadable", True) is False:
            sd = replace(sd, dacl=tuple(a for a in sd.dacl or () if a.sid != w.NETWORK_SERVICE))
        if item.get("keyDenied", False):
            deny = parse("D:(D;;FA;;;NS)").dacl or ()
            sd = replace(sd, dacl=(*deny, *(sd.dacl or ())))
    if "corrupt" in spec or "keyOpens" in item:
        corrupt = bool(spec.get("corrupt", item.get("keyOpens", True) is False))
    else:
        corrupt = existing.corrupt if existing is not None else False
    m.put_file(path, sd, corrupt)


_RULE_KEYS = {
    "enabled": "enabled",
    "action": "action",
    "direction": "direction",
    "protocol": "protocol",
    "localPorts": "local_ports",
    "remoteAddress": "remote",
    "program": "program",
    "service": "service",
    "profile": "profile",
    "group": "group",
    "store": "store",
}
_PROFILE_KEYS = {
    "enabled": "enabled",
    "allowInboundRules": "inbound",
    "allowLocalRules": "local_rules",
    "policyAllowInboundRules": "policy_inbound",
    "policyAllowLocalRules": "policy_local_rules",
}


def _gpo_bool(value: Any) -> str:
    if value is True or value == "True":
        return "True"
    if value is False or value == "False":
        return "False"
    return "NotConfigured"


def _load_firewall(m: w.Machine, fw: Mapping[str, Any]) -> None:
    _known(fw, {"rules", "profiles", "active"}, "guest.firewall")
    for name, values in _obj(fw.get("rules", {}), "guest.firewall.rules").items():
        if values is None:
            m.rules = [r for r in m.rules if r.name != name]
            continue
        where = f"guest.firewall.rules.{name}"
        values = _obj(values, where)
        _known(values, set(_RULE_KEYS), where)
        rule = next((r for r in m.rules if r.name == name), None)
        if rule is None:
            rule = w.Rule(name, group="", program="Any", service="Any")
            m.rules.append(rule)
        for key, value in values.items():
            setattr(rule, _RULE_KEYS[key], value)
    for name, values in _obj(fw.get("profiles", {}), "guest.firewall.profiles").items():
        where = f"guest.firewall.profiles.{name}"
        values = _obj(values, where)
        _known(values, set(_PROFILE_KEYS), where)
        profile = m.profiles.setdefault(name, w.Profile(name))
        for key, value in values.items():
            setattr(profile, _PROFILE_KEYS[key], value if key == "enabled" else _gpo_bool(value))
    if "active" in fw:
        m.active = [str(p) for p in fw["active"]]


def _load_events(m: w.Machine, events: Any, now: datetime) -> None:
    if isinstance(events, list):  # dump form
        m.events = [
            w.Event(int(e["id"]), when(e["time"], now, "guest.events[].time"), str(e.get("source", "")))
            for e in events
        ]
        return
    for event_id, value in _obj(events, "guest.events").items():
        count, sources = (
            (value, [])
            if isinstance(value, int)
            else (
                int(_obj(value, f"guest.events.{event_id}").get("count", 0)),
                list(value.get("sources", [])),
            )
        )
        for i in range(int(count)):
            source = str(sources[i % len(sources)]) if sources else ""
            m.events.append(w.Event(int(event_id), now - timedelta(hours=1, seconds=i), source))


def _load_runtime(m: w.Machine, runtime: Mapping[str, Any], given: bool) -> None:
    """TermService's view since it started. Unless given, it started on this state at boot."""
    if given:
        port = runtime.get("tsPort")
        m.ts_port = int(port) if port is not None else None
        m.ts_cert = str(runtime.get("tsCert", ""))
        m.next_pid = int(runtime.get("nextPid", m.next_pid))
        return
    ts = m.service("TermService")
    if ts is None or ts.state != "Running":
        m.ts_port, m.ts_cert = None, ""
        return
    port = m.registry.number(w.RDPTCP, "PortNumber")
    m.ts_port = port if port is not None and 1 <= port <= 65535 else None
    pin = m.pin()
    entries = sorted(m.rd_store.values(), key=lambda c: c.not_after, reverse=True)
    valid = [c for c in entries if c.not_after > m.clock and c.key is not None]
    m.ts_cert = pin or (valid[0].thumbprint if valid else entries[0].thumbprint if entries else "")


def _load_azrdp(m: w.Machine, data: Mapping[str, Any]) -> None:
    if not data:
        return
    m.azrdp.exists = bool(data.get("exists", True))
    m.azrdp.owner = str(data.get("owner", m.azrdp.owner))
    m.azrdp.runs = {str(k): dict(v) for k, v in _obj(data.get("runs", {}), "guest.azrdp.runs").items()}
    m.azrdp.order = [str(r) for r in data.get("order", list(m.azrdp.runs))]
    lock = data.get("lock")
    if lock is not None:
        lock = _obj(lock, "guest.azrdp.lock")
        if lock.get("torn"):
            # A lock file with no JSON in it, written at `written`.
            written = parse_time(str(lock.get("written", "")))
            if written is None:
                raise ScenarioError("guest.azrdp.lock.written: expected an ISO time")
            m.azrdp.lock = w.Lock("", written + timedelta(seconds=LOCK_LONGEST), torn=True)
            return
        until = parse_time(str(lock.get("until", "")))
        if until is None:
            raise ScenarioError("guest.azrdp.lock.until: expected an ISO time")
        m.azrdp.lock = w.Lock(str(lock["run"]), until)


# --- writing it back -----------------------------------------------------------------------------


def _time(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _reg_dump(value: w.RegValue) -> Any:
    if value.kind == "DWord":
        return value.data
    if value.kind == "String":
        return value.data
    if value.kind == "MultiString":
        return list(value.data)
    if value.kind == "Binary":
        return "hex:" + bytes(value.data).hex().upper()
    return {"kind": value.kind, "data": value.data}


def dump(m: w.Machine) -> dict[str, Any]:
    """The machine as a `guest` object (preset none, absolute times)."""
    certificates = []
    for store, entries in (("Remote Desktop", m.rd_store), ("My", m.my_store)):
        for cert in entries.values():
            item: dict[str, Any] = {
                "thumbprint": cert.thumbprint,
                "store": store,
                "notAfter": _time(cert.not_after),
                "notBefore": _time(cert.not_before),
                "subject": cert.subject,
                "issuer": cert.issuer,
                "eku": list(cert.eku),
                "hasPrivateKey": cert.key is not None,
            }
            if cert.key is not None:
                key = {
                    "provider": "cng" if cert.key.prov_type == 0 else "capi",
                    "container": cert.key.container,
                    "providerName": cert.key.provider,
                    "keySpec": cert.key.key_spec,
                    "exists": m.key_file(cert.key) is not None,
                }
                if cert.key.prov_type == 0:
                    key["file"] = cert.key.cng_file
                item["key"] = key
            certificates.append(item)
    return {
        "preset": "none",
        "os": {
            "version": m.version,
            "build": m.build,
            "psVersion": m.ps_version,
            "powerShell32Bit": m.ps_32bit,
            "partOfDomain": m.domain,
            "machineGuid": m.machine_guid,
            "computerName": m.computer,
            "tspkgVersion": m.tspkg,
        },
        "registry": {
            k.path: {v.name: _reg_dump(v) for v in k.values.values()} for k in m.registry.keys.values()
        },
        "registrySddl": {k.path: k.sd.text() for k in m.registry.keys.values() if k.sd is not None},
        "policySources": dict(m.policy_sources),
        "pinType": m.hash_type,
        "terminalServerMode": m.ts_mode,
        "services": {
            s.name: {
                "displayName": s.display,
                "state": s.state,
                "startMode": s.start,
                "account": s.account,
                "exitCode": s.exit_code,
                "pid": s.pid,
                "delayed": s.delayed,
                "dependsOn": list(s.depends_on),
                "hang": s.hang,
            }
            for s in m.services.values()
        },
        "listeners": {str(p): {"pid": pid, "process": name} for p, (pid, name) in m.listeners.items()},
        "files": {f.path: {"sddl": f.sd.text(), "corrupt": f.corrupt} for f in m.files.values()},
        "certificates": certificates,
        "firewall": {
            "rules": {
                r.name: {
                    "enabled": r.enabled,
                    "action": r.action,
                    "direction": r.direction,
                    "protocol": r.protocol,
                    "localPorts": r.local_ports,
                    "remoteAddress": r.remote,
                    "program": r.program,
                    "service": r.service,
                    "profile": r.profile,
                    "group": r.group,
                    "store": r.store,
                }
                for r in m.rules
            },
            "profiles": {
                p.name: {
                    "enabled": p.enabled,
                    "allowInboundRules": p.inbound,
                    "allowLocalRules": p.local_rules,
                    "policyAllowInboundRules": p.policy_inbound,
                    "policyAllowLocalRules": p.policy_local_rules,
                }
                for p in m.profiles.values()
            },
            "active": list(m.active),
        },
        "events": [{"id": e.id, "time": _time(e.time), "source": e.source} for e in m.events],
        "disk": {"drive": m.drive, "freeBytes": m.disk_free, "sizeBytes": m.disk_size},
        "failingSections": list(m.failing_sections),
        "runtime": {"tsPort": m.ts_port, "tsCert": m.ts_cert, "nextPid": m.next_pid},
        "azrdp": {
            "exists": m.azrdp.exists,
            "owner": m.azrdp.owner,
            "runs": m.azrdp.runs,
            "order": list(m.azrdp.order),
            "lock": _dump_lock(m.azrdp.lock),
        },
    }


def _dump_lock(lock: w.Lock | None) -> dict[str, Any] | None:
    if lock is None:
        return None
    if lock.torn:
        return {"torn": True, "written": _time(lock.until - timedelta(seconds=LOCK_LONGEST))}
    return {"run": lock.run, "until": _time(lock.until)}
