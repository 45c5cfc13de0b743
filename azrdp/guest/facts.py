"""The facts the collector reports: raw, undecided, one schema for the parser and the model.

`scripts/collector.ps1` reads these and decides nothing; the guest checks (azrdp.checks.guest) and
the repair planners (azrdp.repairs.guest) judge them; the emulator's Windows model
(azrdp.emulator.windows) renders them from its state with `to_wire`, so the model and the parser
cannot drift apart. Documented field by field in docs/guest-contract.md.

Every section may be null: a section that failed in the guest is null and named in `err`. A
registry value that is absent is simply not listed (absent is often the healthy state). Lists are
capped by the rules in LIMITS (the collector applies the same numbers; a test compares), and the
caps keep the compressed output under Run Command's 4,096-byte tail on a badly broken VM.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from azrdp.guest.wire import wire, wire_list

FACTS_VERSION = 2

# The registry keys the collector reads, by the alias that names them on the wire, and the values
# it reads from each (Learn and the reference's checks C-*). The executor writes only the subset in
# azrdp.guest.plan.REG_WRITABLE. A test keeps collector.ps1's tables equal to these.
TS = r"HKLM:\SYSTEM\CurrentControlSet\Control\Terminal Server"
_SCHANNEL = r"HKLM:\SYSTEM\CurrentControlSet\Control\SecurityProviders\SCHANNEL\Protocols"
_FIREWALL = r"HKLM:\SYSTEM\CurrentControlSet\Services\SharedAccess\Parameters\FirewallPolicy"
REG_KEYS: Mapping[str, str] = {
    "ts": TS,
    "rdptcp": TS + r"\WinStations\RDP-Tcp",
    "tspol": r"HKLM:\SOFTWARE\Policies\Microsoft\Windows NT\Terminal Services",
    "winlogon": r"HKLM:\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Winlogon",
    "tls10": _SCHANNEL + r"\TLS 1.0\Server",
    "tls11": _SCHANNEL + r"\TLS 1.1\Server",
    "tls12": _SCHANNEL + r"\TLS 1.2\Server",
    "tls13": _SCHANNEL + r"\TLS 1.3\Server",
    "fips": r"HKLM:\SYSTEM\CurrentControlSet\Control\Lsa\FIPSAlgorithmPolicy",
    "credssp": r"HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\Policies\System\CredSSP\Parameters",
    "cipher": r"HKLM:\SOFTWARE\Policies\Microsoft\Cryptography\Configuration\SSL\00010002",
    "fwdom": _FIREWALL + r"\DomainProfile",
    "fwstd": _FIREWALL + r"\StandardProfile",
    "fwpub": _FIREWALL + r"\PublicProfile",
}
_TLS = ("Enabled", "DisabledByDefault")
REG_READS: Mapping[str, tuple[str, ...]] = {
    "ts": ("fDenyTSConnections", "TSEnabled", "TSUserEnabled", "TSServerDrainMode"),
    "rdptcp": (
        "fEnableWinStation",
        "fLogonDisabled",
        "PortNumber",
        "SecurityLayer",
        "UserAuthentication",
        "MinEncryptionLevel",
        "fAllowSecProtocolNegotiation",
        "SSLCertificateSHA1Hash",
    ),
    "tspol": ("fDenyTSConnections", "SecurityLayer", "UserAuthentication", "MinEncryptionLevel"),
    "winlogon": ("WinStationsDisabled",),
    "tls10": _TLS,
    "tls11": _TLS,
    "tls12": _TLS,
    "tls13": _TLS,
    "fips": ("Enabled",),
    "credssp": ("AllowEncryptionOracle",),
    "cipher": ("Functions",),
    "fwdom": ("DoNotAllowExceptions",),
    "fwstd": ("DoNotAllowExceptions",),
    "fwpub": ("DoNotAllowExceptions",),
}
# Which FirewallPolicy key belongs to which profile.
PROFILE_KEYS: Mapping[str, str] = {"Domain": "fwdom", "Private": "fwstd", "Public": "fwpub"}
# .NET's RegistryValueKind names, as the collector prints them (and the kinds azrdp writes).
REG_TYPES = ("DWord", "QWord", "String", "ExpandString", "MultiString", "Binary")
# What .NET cannot read as its type: REG_NONE (RegistryValueKind.Unknown is 0, REG_NONE's number:
# referencesource RegistryValueKind.cs), REG_DWORD_BIG_ENDIAN and an oversized REG_DWORD/QWORD
# (read as bytes), REG_LINK and REG_RESOURCE_LIST (read as nothing): RegistryKey.InternalGetValue.
# The collector reports them as kind Unknown with their bytes in hex ("" for nothing).
REG_UNKNOWN = "Unknown"

SERVICE_NAMES = (
    "TermService",
    "UmRdpService",
    "SessionEnv",
    "KeyIso",
    "CryptSvc",
    "CertPropSvc",
    "MpsSvc",
    "BFE",
    "RdAgent",
    "WindowsAzureGuestAgent",
)
# System log ids counted over 7 days: RemoteConnectionManager 1057/1058; Schannel 36870-36872; the
# Service Control Manager's start failures and hangs (7000, 7001, 7022, 7023, 7031) with the
# display name of the service each names (their first insertion string).
RCM_EVENTS = (1057, 1058)
SCHANNEL_EVENTS = (36870, 36871, 36872)
SCM_EVENTS = (7000, 7001, 7022, 7023, 7031)
EVENT_IDS = RCM_EVENTS + SCHANNEL_EVENTS + SCM_EVENTS
EVENT_DAYS = 7

# The rules read by name, never by localized display name or group.
RDP_TCP_RULE = "RemoteDesktop-UserMode-In-TCP"
RDP_UDP_RULE = "RemoteDesktop-UserMode-In-UDP"
RDP_RULES = (RDP_TCP_RULE, RDP_UDP_RULE)
RDP_RULE_GROUP = "@FirewallAPI.dll,-28752"
# azrdp's own rule for RDP on a moved port.
CUSTOM_RULE_PREFIX = "azrdp-RDP-"
PROFILES = ("Domain", "Private", "Public")

MACHINEKEYS = r"C:\ProgramData\Microsoft\Crypto\RSA\MachineKeys"
CNG_KEYS = r"C:\ProgramData\Microsoft\Crypto\Keys"
RD_STORE_KEY = r"HKLM:\SOFTWARE\Microsoft\SystemCertificates\Remote Desktop"
AZRDP_ROOT = r"C:\ProgramData\azrdp"
BACKUP_ROOT = AZRDP_ROOT + r"\backups"
LOCK_FILE = AZRDP_ROOT + r"\lock.json"

# Caps the collector applies (collector.ps1's $Limits holds the same numbers; a test compares).
LIMITS: Mapping[str, int] = {
    "text": 40,  # names, subjects, accounts, rule fields, process names
    # A rule's local ports: azrdp judges from them whether the rule covers RDP's port, so a list is
    # cut only past what a real rule holds (a port beyond a cut would read as not covered).
    "ports": 200,
    "error": 80,  # one section or operation error message
    "fatal": 200,  # why a script refused to run (the envelope's e)
    "errors": 4,  # section errors kept
    "certs": 5,  # certificates listed: in use, pinned, then the Remote Desktop store newest first
    "eku": 3,  # EKU object ids per certificate
    "dependents": 3,  # dependent services per service
    "owners": 3,  # listening processes per port
    "customRules": 1,  # azrdp-RDP-* rules listed (the one for the listener's port first)
    "blocks": 3,  # inbound Block rules listed (Any port first, then the RDP port, then ranges)
    "sources": 2,  # distinct services named per event id
    "runs": 4,  # azrdp runs listed, newest first
    "sddl": 1000,  # longer descriptors are reported as an error, never cut
    "events": 9999,  # events counted per id
}


# Over the output budget, the scripts trim the facts in this order, one step at a time until the
# line fits, and name each step applied in Facts.cut (collector.ps1's $Trims holds the same list;
# a test compares). Least useful first; counts (nrd, nmy, nblk) always stay whole. When even the
# last step does not fit, the script reports error code "budget" instead of facts.
TRIMS = (
    "dep",  # services' dependents
    "src",  # the services named by SCM events
    "eku",  # certificates' EKUs
    "runs",  # azrdp runs beyond the newest 2
    "blk",  # inbound Block rules beyond the first
    "err",  # section errors beyond the first
    "ksd",  # key file SDDLs but the first certificate's (the one in use)
    "cert",  # certificates beyond the first 2 (in use, pinned)
)


def trim(facts: Facts, step: str) -> Facts:
    """One step of TRIMS, as the scripts apply it (the Windows model renders with this)."""
    r = dataclasses.replace
    if step == "dep" and facts.services is not None:
        facts = r(facts, services=tuple(r(s, dependents=()) for s in facts.services))
    elif step == "src" and facts.events is not None:
        facts = r(facts, events=tuple(r(e, sources=()) for e in facts.events))
    elif step == "eku" and facts.certs is not None:
        facts = r(facts, certs=r(facts.certs, certs=tuple(r(c, eku=()) for c in facts.certs.certs)))
    elif step == "runs" and facts.azrdp is not None:
        facts = r(facts, azrdp=r(facts.azrdp, runs=facts.azrdp.runs[:2]))
    elif step == "blk" and facts.firewall is not None:
        facts = r(facts, firewall=r(facts.firewall, blocks=facts.firewall.blocks[:1]))
    elif step == "err":
        facts = r(facts, errors=facts.errors[:1])
    elif step == "ksd" and facts.certs is not None:
        certs = facts.certs.certs
        rest = tuple(r(c, key=r(c.key, sddl=None)) if c.key is not None else c for c in certs[1:])
        facts = r(facts, certs=r(facts.certs, certs=certs[:1] + rest))
    elif step == "cert" and facts.certs is not None:
        facts = r(facts, certs=r(facts.certs, certs=facts.certs.certs[:2]))
    return r(facts, cut=(*facts.cut, step))


def custom_rule_name(port: int) -> str:
    return f"{CUSTOM_RULE_PREFIX}{port}"


# --- the schema --------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class OsFacts:
    version: str | None = wire("ver")  # Win32_OperatingSystem.Version
    build: int | None = wire("bld")
    ps_version: str | None = wire("ps")
    domain: bool | None = wire("dom")  # Win32_ComputerSystem.PartOfDomain
    boot: str | None = wire("boot")  # LastBootUpTime, UTC
    machine_guid: str | None = wire("guid")  # HKLM\SOFTWARE\Microsoft\Cryptography MachineGuid
    tspkg: str | None = wire("tspkg")  # %windir%\System32\tspkg.dll file version a.b.c.d


@dataclasses.dataclass(frozen=True)
class RegEntry:
    """One registry value that exists. On the wire a row: [key alias, name, kind, data]."""

    ROW = True
    key: str | None = wire("k")
    name: str | None = wire("n")
    kind: str | None = wire("t")  # RegistryValueKind: DWord, String, MultiString, Binary ...
    data: Any = wire("v")  # int; str; list of str; Binary as upper-case hex

    def check(self, where: str) -> None:
        ok = {
            "DWord": lambda v: isinstance(v, int) and not isinstance(v, bool),
            "QWord": lambda v: isinstance(v, int) and not isinstance(v, bool),
            "String": lambda v: isinstance(v, str),
            "ExpandString": lambda v: isinstance(v, str),
            "MultiString": lambda v: isinstance(v, (list, tuple)) and all(isinstance(s, str) for s in v),
            "Binary": lambda v: isinstance(v, str) and _is_hex(v),
            REG_UNKNOWN: lambda v: isinstance(v, str) and _is_hex(v),
        }.get(self.kind or "")
        if ok is None or not ok(self.data):
            raise ValueError(f"{where}: registry data {self.data!r} does not fit kind {self.kind!r}")
        if isinstance(self.data, list):
            object.__setattr__(self, "data", tuple(self.data))

    @property
    def number(self) -> int | None:
        """DWORD/QWORD as unsigned; a decimal string (WinStationsDisabled is REG_SZ "0"/"1") too.
        Never a kind .NET could not read (its hex is bytes, not a number)."""
        if self.kind == "DWord" and isinstance(self.data, int):
            return self.data & 0xFFFFFFFF
        if self.kind == "QWord" and isinstance(self.data, int):
            return self.data & 0xFFFFFFFFFFFFFFFF
        if self.kind != REG_UNKNOWN and isinstance(self.data, str) and self.data.strip().isdigit():
            return int(self.data.strip())
        return None


def _is_hex(text: str) -> bool:
    return len(text) % 2 == 0 and all(c in "0123456789ABCDEFabcdef" for c in text)


@dataclasses.dataclass(frozen=True)
class TsGeneral:
    """Win32_TSGeneralSetting for RDP-Tcp, and Win32_TerminalServiceSetting
    (root\\cimv2\\TerminalServices)."""

    source_security_layer: int | None = wire("psl")  # PolicySource*: 0 server, 1 Group Policy, 2 default
    source_user_auth: int | None = wire("pua")
    source_min_encryption: int | None = wire("pmel")
    cert_hash: str | None = wire("h")  # SSLCertificateSHA1Hash: the certificate the listener uses
    cert_hash_type: int | None = wire("ht")  # 0 invalid, 1 self-signed, 2 Group Policy, 3 custom
    # Win32_TerminalServiceSetting.TerminalServerMode: 1 = the Remote Desktop Session Host role.
    mode: int | None = wire("tsm")


@dataclasses.dataclass(frozen=True)
class ServiceFacts:
    name: str | None = wire("n")
    display: str | None = wire("dn")  # DisplayName (names the service in SCM events)
    state: str | None = wire("st")  # Win32_Service.State ("Running", "Start Pending" ...) or "NotFound"
    start: str | None = wire("sm")  # StartMode: Auto, Manual, Disabled, Boot, System
    delayed: bool | None = wire("dl")  # DelayedAutoStart
    account: str | None = wire("acct")  # StartName
    exit_code: int | None = wire("ex")
    pid: int | None = wire("pid")
    dependents: tuple[str, ...] = wire_list("dep")  # running or not, capped

    @property
    def pending(self) -> bool:
        return "pending" in (self.state or "").lower()


@dataclasses.dataclass(frozen=True)
class PortOwner:
    ROW = True
    port: int | None = wire("p")
    pid: int | None = wire("pid")
    process: str | None = wire("pn")


@dataclasses.dataclass(frozen=True)
class KeyFacts:
    """The private key behind a certificate, located from its key-provider info, never by opening it."""

    prov_type: int | None = wire("pt")  # CRYPT_KEY_PROV_INFO.dwProvType: 0 CNG, else CAPI
    container: str | None = wire("c")
    provider: str | None = wire("pn")
    file: str | None = wire("f")  # key file name (MachineKeys for CAPI, Crypto\Keys for CNG)
    exists: bool | None = wire("x")
    sddl: str | None = wire("sd")  # owner + DACL of the key file
    opens: int | None = wire("o")  # 0: SYSTEM opened the key; else the HRESULT; null: not tried
    error: str | None = wire("e")  # why a fact above is missing

    @property
    def cng(self) -> bool | None:
        return None if self.prov_type is None else self.prov_type == 0


@dataclasses.dataclass(frozen=True)
class CertFacts:
    store: str | None = wire("s")  # rd (Remote Desktop) or my
    thumbprint: str | None = wire("tp")
    not_before: str | None = wire("nb")  # UTC
    not_after: str | None = wire("na")
    subject: str | None = wire("sub")
    issuer: str | None = wire("iss")
    eku: tuple[str, ...] = wire_list("eku")
    has_key: bool | None = wire("pk")  # a key-provider link is present (HasPrivateKey)
    key: KeyFacts | None = wire("k")

    @property
    def expires(self) -> datetime | None:
        return parse_time(self.not_after)


@dataclasses.dataclass(frozen=True)
class CertStoreFacts:
    rd_count: int | None = wire("nrd")  # certificates in Cert:\LocalMachine\Remote Desktop
    my_count: int | None = wire("nmy")
    certs: tuple[CertFacts, ...] = wire_list("l")
    store_sddl: str | None = wire("rds")  # owner + DACL of the Remote Desktop store key
    certs_sddl: str | None = wire("rdc")  # ... and of its Certificates subkey (null: absent)

    def find(self, thumbprint: str | None) -> CertFacts | None:
        if not thumbprint:
            return None
        wanted = thumbprint.upper()
        return next((c for c in self.certs if (c.thumbprint or "").upper() == wanted), None)


@dataclasses.dataclass(frozen=True)
class FolderFacts:
    sddl: str | None = wire("sd")  # owner + DACL of the MachineKeys folder


@dataclasses.dataclass(frozen=True)
class RuleFacts:
    """One firewall rule from the ActiveStore with its filters."""

    name: str | None = wire("n")
    enabled: bool | None = wire("en")
    direction: str | None = wire("dir")  # Inbound | Outbound
    action: str | None = wire("act")  # Allow | Block
    protocol: str | None = wire("pr")  # TCP, UDP, Any, or a number
    local_ports: str | None = wire("lp")  # comma list: Any, 3389, 3000-4000, RPC ...
    remote: str | None = wire("ra")  # RemoteAddress comma list, Any
    program: str | None = wire("prg")  # Any or a path
    service: str | None = wire("svc")  # Any or a service name
    profile: str | None = wire("prof")  # Any, or Domain, Private, Public
    group: str | None = wire("grp")
    source: str | None = wire("src")  # PolicyStoreSourceType: Local, GroupPolicy ...


@dataclasses.dataclass(frozen=True)
class ProfileFacts:
    name: str | None = wire("n")
    enabled: bool | None = wire("on")
    inbound: bool | None = wire("inb")  # AllowInboundRules; null = NotConfigured
    local_rules: bool | None = wire("lr")  # AllowLocalFirewallRules; null = NotConfigured
    inbound_local: str | None = wire("inbl")  # AllowInboundRules in the PersistentStore (local policy)


@dataclasses.dataclass(frozen=True)
class FirewallFacts:
    profiles: tuple[ProfileFacts, ...] = wire_list("prof")
    active: tuple[str, ...] = wire_list("act")  # categories of the connected networks
    rules: tuple[RuleFacts, ...] = wire_list("rules")  # the RDP rules by name, azrdp-RDP-* rules
    blocks: tuple[RuleFacts, ...] = wire_list("blk")  # enabled inbound Block rules (TCP or Any)
    block_count: int | None = wire("nblk")  # how many such rules exist (blocks is capped)

    def rule(self, name: str) -> RuleFacts | None:
        return next((r for r in self.rules if r.name == name), None)


@dataclasses.dataclass(frozen=True)
class EventFacts:
    ROW = True
    id: int | None = wire("id")
    count: int | None = wire("n")
    sources: tuple[str, ...] = wire_list("src")  # SCM events: the display names they name
    last: str | None = wire("t")  # when the newest one was logged (UTC)


@dataclasses.dataclass(frozen=True)
class DiskFacts:
    drive: str | None = wire("drv")
    free: int | None = wire("free")
    size: int | None = wire("size")


@dataclasses.dataclass(frozen=True)
class RunFacts:
    """One of azrdp's runs recorded in this guest (C:\\ProgramData\\azrdp\\backups\\<id>\\run.json)."""

    id: str | None = wire("id")
    time: str | None = wire("t")
    boot: str | None = wire("boot")  # LastBootUpTime when it ran
    state: str | None = wire("st")  # applying, applied, rolledBack, failed, refused, undone
    reboot: bool | None = wire("rb")  # it applied a change Windows reads only at boot
    undoes: str | None = wire("u")  # the run this one took back


@dataclasses.dataclass(frozen=True)
class AzrdpFacts:
    owner: str | None = wire("own")  # owner SID of C:\ProgramData\azrdp (null: absent)
    runs: tuple[RunFacts, ...] = wire_list("runs")
    lock_run: str | None = wire("lk")  # the run holding the guest lock, and until when
    lock_until: str | None = wire("lx")


@dataclasses.dataclass(frozen=True)
class SectionError:
    ROW = True
    section: str | None = wire("s")
    message: str | None = wire("m")


@dataclasses.dataclass(frozen=True)
class Facts:
    os: OsFacts | None = wire("os")
    reg: tuple[RegEntry, ...] | None = wire("reg")
    reg_keys: tuple[str, ...] = wire_list("regk")  # aliases of the registry keys that exist
    ts: TsGeneral | None = wire("ts")
    services: tuple[ServiceFacts, ...] | None = wire("svc")
    listeners: tuple[PortOwner, ...] | None = wire("lsn")
    certs: CertStoreFacts | None = wire("cert")
    machine_keys: FolderFacts | None = wire("mk")
    firewall: FirewallFacts | None = wire("fw")
    events: tuple[EventFacts, ...] | None = wire("evt")
    disk: DiskFacts | None = wire("disk")
    azrdp: AzrdpFacts | None = wire("azr")
    errors: tuple[SectionError, ...] = wire_list("err")
    cut: tuple[str, ...] = wire_list("cut")  # the TRIMS applied to fit the output budget

    # -- plain access (no judgement) --

    def value(self, key: str, name: str) -> RegEntry | None:
        """A registry value the collector read, by key alias; None when absent or unread."""
        wanted = name.lower()
        return next((e for e in self.reg or () if e.key == key and (e.name or "").lower() == wanted), None)

    def number(self, key: str, name: str) -> int | None:
        entry = self.value(key, name)
        return entry.number if entry is not None else None

    def service(self, name: str) -> ServiceFacts | None:
        wanted = name.lower()
        return next((s for s in self.services or () if (s.name or "").lower() == wanted), None)

    def event(self, event_id: int) -> EventFacts | None:
        return next((e for e in self.events or () if e.id == event_id), None)

    def event_count(self, event_id: int) -> int:
        found = self.event(event_id)
        return int(found.count or 0) if found is not None else 0

    def section_failed(self, name: str) -> bool:
        return any(e.section == name for e in self.errors)


# --- times ---------------------------------------------------------------------------------------


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def format_time(value: datetime) -> str:
    """The scripts' time format: UTC, second precision, trailing Z."""
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def limit_text(value: str | None, limit: int = LIMITS["text"]) -> str | None:
    """As the collector's Limit-AzrdpText: at most `limit` characters, the cut marked '...'."""
    if value is None or len(value) <= limit:
        return value
    return value[: limit - 3] + "..."
