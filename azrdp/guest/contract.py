"""The JSON contract between azrdp and its in-guest PowerShell script.

The script (`scripts/azrdp.ps1`) prints exactly one line, `AZRDP:` followed by compact JSON with
short keys. This module is the single definition of that JSON: typed frozen dataclasses whose
fields carry their wire key, a validating decoder (`parse_output`) and the matching encoder
(`render_line`) the emulator's guest simulator uses, so the two sides cannot drift apart silently.
Documented field by field in docs/guest-contract.md. Pure: no I/O apart from reading the packaged
script.

Every field inside the diagnosis may be null: a section that failed in the guest is null and
named in `err`, and a registry value that is absent is null (absent is often the healthy state).
"""

from __future__ import annotations

import dataclasses
import json
import re
import types
import typing
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from functools import cache
from importlib import resources
from typing import Any, TypeVar

from azrdp.errors import GuestError, UsageError

MARKER = "AZRDP:"
SCRIPT_HEADER = "# azrdp-guest-script v1"
SCRIPT_NAME = "azrdp.ps1"
SCHEMA_VERSION = 1
# Run Command returns only the last 4,096 bytes of StdOut; the marker line must fit with room to spare.
OUTPUT_BUDGET = 3500
RUN_COMMAND_OUTPUT_LIMIT = 4096
# Learn documents no script-size limit for action Run Command (only the output limit above). azrdp
# sets its own conservative ceiling for the script as sent (refused above it, never half-sent) and
# keeps the packaged scripts under a smaller budget that a test measures, so a growing script fails
# a test long before it could meet an undocumented limit in Azure.
SCRIPT_LIMIT = 64 * 1024
SCRIPT_BUDGET = 62 * 1024
# Parameters reach the script on a command line (Learn: `&` needs `^&`, `\n` becomes a newline), so
# their values stay short and free of characters cmd.exe or PowerShell would reinterpret.
PARAMETERS_LIMIT = 1024

MODES = ("diagnose", "repair", "undo")
IMPLEMENTED_MODES = ("diagnose",)

# Caps the script applies before printing (same numbers in azrdp.ps1's $Limits; a test compares).
LIMITS: Mapping[str, int] = {
    "text": 23,  # process names, firewall profiles, ports and block rule names
    "account": 28,  # service accounts ("NT Authority\\NetworkService" fits)
    "sddl": 100,  # the MachineKeys folder SDDL
    "message": 36,  # one section error message
    "errors": 3,  # section errors kept
    "certs": 2,  # certificates listed (the pinned one first)
    "blocks": 1,  # inbound block rules listed
    "fatal": 160,  # the top-level error message
    "events": 9999,  # events counted per id
}

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
EVENT_IDS = (1057, 1058, 36870, 36871, 36872, 7022)
MACHINEKEYS_DEFAULT_SDDL = "O:SYG:SYD:PAI(A;;0x12019f;;;WD)(A;;FA;;;BA)"
# The TCP rule decides whether RDP gets in (UDP is an optional accelerator the client falls back from).
RDP_TCP_RULE = "RemoteDesktop-UserMode-In-TCP"
RDP_UDP_RULE = "RemoteDesktop-UserMode-In-UDP"
RDP_FIREWALL_RULES = (RDP_TCP_RULE, RDP_UDP_RULE)
RDP_FIREWALL_GROUP = "@FirewallAPI.dll,-28752"
# What a repair that takes effect at boot leaves for diagnose: the boot time it ran in and its run
# ids. Same boot: LastBootUpTime within SAME_BOOT_SECONDS (it moves by a clock correction, while a
# restart moves it by far more than that).
PENDING_REBOOT_PATH = "C:\\ProgramData\\azrdp\\backups\\reboot-pending.json"
SAME_BOOT_SECONDS = 20
# The rule azrdp adds for RDP on a moved port; reported only when it exists.
CUSTOM_RULE_PREFIX = "azrdp-RDP-"


def custom_rule_name(port: int) -> str:
    return f"{CUSTOM_RULE_PREFIX}{port}"


class ContractError(GuestError):
    """The script's output does not follow the contract. `raw_tail` keeps the end of it for --debug."""

    code = "GuestOutputInvalid"

    def __init__(self, what: str, why: str = "", fix: str = "", raw_tail: str = "") -> None:
        super().__init__(what, why, fix)
        self.raw_tail = raw_tail


def wire(key: str, default: Any = None) -> Any:
    """A contract field: its short JSON key, default null."""
    return dataclasses.field(default=default, metadata={"wire": key})


def wire_list(key: str) -> Any:
    return dataclasses.field(default=(), metadata={"wire": key})


_UNPRINTED = re.compile(r"[^ -~]")
_RESPELLED = str.maketrans({"'": "`", '"': "`", "<": "(", ">": ")", "&": "+"})


def limit_text(value: str | None, limit: int) -> str | None:
    """Like the script's Limit-Text: at most `limit` bytes once printed as JSON, the cut marked '...'.

    Non-ASCII becomes '?' and ' " < > & are respelled, because Windows PowerShell's ConvertTo-Json
    would print them as six-byte \\u00XX escapes and blow the output budget; a backslash counts two.
    """
    if value is None:
        return None
    text = _UNPRINTED.sub("?", value).translate(_RESPELLED)
    if _printed(text) <= limit:
        return text
    head, width = "", 0
    for ch in text:
        width += _printed(ch)
        if width > limit - 3:
            break
        head += ch
    return head + "..."


def _printed(text: str) -> int:
    """Bytes JSON prints for respelled text: a backslash is the one character it doubles."""
    return len(text) + text.count("\\")


# --- the document -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class OsInfo:
    version: str | None = wire("ver")
    build: int | None = wire("bld")
    ps_version: str | None = wire("ps")
    part_of_domain: bool | None = wire("dom")


@dataclasses.dataclass(frozen=True)
class RdpSettings:
    """Registry values of the listener (local `RDP-Tcp` and Group Policy), plus CIM policy sources."""

    deny: int | None = wire("deny")  # TS fDenyTSConnections
    deny_policy: int | None = wire("denyP")  # TSPOL fDenyTSConnections
    ts_enabled: int | None = wire("tse")  # TS TSEnabled
    winstation_enabled: int | None = wire("ws")  # RDP-Tcp fEnableWinStation
    port: int | None = wire("port")  # RDP-Tcp PortNumber
    security_layer: int | None = wire("sl")
    security_layer_policy: int | None = wire("slP")
    user_auth: int | None = wire("ua")
    user_auth_policy: int | None = wire("uaP")
    min_encryption: int | None = wire("mel")
    min_encryption_policy: int | None = wire("melP")
    negotiation: int | None = wire("neg")  # fAllowSecProtocolNegotiation
    # Win32_TSGeneralSetting PolicySource*: 0 server, 1 Group Policy, 2 default.
    source_security_layer: int | None = wire("srcSl")
    source_user_auth: int | None = wire("srcUa")
    source_min_encryption: int | None = wire("srcMel")
    # Logon switches: users may connect only with TSUserEnabled 0, no drain, fLogonDisabled 0 and
    # Winlogon WinStationsDisabled "0" (read as a number).
    ts_user_enabled: int | None = wire("tsu")  # TS TSUserEnabled
    drain_mode: int | None = wire("drn")  # TS TSServerDrainMode: 1 no new logons, 2 until reboot
    logon_disabled: int | None = wire("ld")  # RDP-Tcp fLogonDisabled
    winstations_disabled: int | None = wire("wsd")  # Winlogon WinStationsDisabled
    # Win32_TerminalServiceSetting.TerminalServerMode: 1 = Remote Desktop Session Host role.
    terminal_server_mode: int | None = wire("tsm")

    def effective(self, local: int | None, policy: int | None) -> int | None:
        """A policy value wins over the local one."""
        return policy if policy is not None else local

    @property
    def effective_deny(self) -> int | None:
        return self.effective(self.deny, self.deny_policy)

    @property
    def effective_security_layer(self) -> int | None:
        return self.effective(self.security_layer, self.security_layer_policy)

    @property
    def effective_user_auth(self) -> int | None:
        return self.effective(self.user_auth, self.user_auth_policy)


@dataclasses.dataclass(frozen=True)
class PortOwner:
    port: int | None = wire("p")
    pid: int | None = wire("pid")  # null: nothing listens
    process: str | None = wire("pn")


@dataclasses.dataclass(frozen=True)
class ListenerInfo:
    termservice_pid: int | None = wire("ts")
    ports: tuple[PortOwner, ...] = wire_list("ports")

    def owner(self, port: int) -> PortOwner | None:
        return next((p for p in self.ports if p.port == port), None)


@dataclasses.dataclass(frozen=True)
class ServiceInfo:
    name: str | None = wire("n")
    state: str | None = wire("st")  # Win32_Service.State, or "NotFound"
    start_mode: str | None = wire("sm")  # Auto | Manual | Disabled | Boot | System
    account: str | None = wire("acct")
    exit_code: int | None = wire("ex")


@dataclasses.dataclass(frozen=True)
class CertEntry:
    thumbprint: str | None = wire("tp")
    not_after: str | None = wire("na")  # ISO 8601 UTC, second precision
    has_private_key: bool | None = wire("pk")
    key_opens: bool | None = wire("ko")  # the private key could be opened (as SYSTEM)
    store: str | None = wire("s")  # "RD" (Remote Desktop) or "My"

    @property
    def expires(self) -> datetime | None:
        return parse_time(self.not_after)


@dataclasses.dataclass(frozen=True)
class CertInfo:
    pin: str | None = wire("pin")  # RDP-Tcp SSLCertificateSHA1Hash as upper-case hex
    pin_type: int | None = wire("pinT")  # SSLCertificateSHA1HashType: 1 self-signed, 2 GPO, 3 custom
    count: int | None = wire("n")  # certificates in the Remote Desktop store
    certs: tuple[CertEntry, ...] = wire_list("certs")

    def find(self, thumbprint: str | None) -> CertEntry | None:
        if not thumbprint:
            return None
        return next((c for c in self.certs if (c.thumbprint or "").upper() == thumbprint.upper()), None)

    @property
    def listener_cert(self) -> CertEntry | None:
        """The certificate the listener presents: the pinned one, else the newest self-signed one."""
        if self.pin:
            return self.find(self.pin)
        rd = [c for c in self.certs if c.store == "RD"]
        return max(rd, key=lambda c: c.not_after or "", default=None)


@dataclasses.dataclass(frozen=True)
class MachineKeys:
    sddl: str | None = wire("sddl")  # MachineKeys folder, owner + group + DACL
    key_found: bool | None = wire("kf")  # the listener certificate's key file was found
    key_readable: bool | None = wire("kns")  # NETWORK SERVICE (or Everyone/Authenticated Users) may read it
    key_denied: bool | None = wire("kdn")  # a Deny ACE for one of them

    @property
    def folder_default(self) -> bool | None:
        return None if self.sddl is None else self.sddl == MACHINEKEYS_DEFAULT_SDDL


@dataclasses.dataclass(frozen=True)
class TlsProtocol:
    enabled: int | None = wire("e")  # SCHANNEL ...\Server Enabled
    disabled_by_default: int | None = wire("d")

    @property
    def off(self) -> bool:
        return self.enabled == 0 or self.disabled_by_default == 1


@dataclasses.dataclass(frozen=True)
class TlsInfo:
    tls10: TlsProtocol | None = dataclasses.field(default=None, metadata={"wire": "t10"})
    tls11: TlsProtocol | None = dataclasses.field(default=None, metadata={"wire": "t11"})
    tls12: TlsProtocol | None = dataclasses.field(default=None, metadata={"wire": "t12"})
    tls13: TlsProtocol | None = dataclasses.field(default=None, metadata={"wire": "t13"})
    fips: int | None = wire("fips")  # Lsa\FIPSAlgorithmPolicy Enabled
    oracle: int | None = wire("oracle")  # CredSSP AllowEncryptionOracle
    cipher_functions: int | None = wire("fn")  # entries in the SSL cipher policy; null when absent


@dataclasses.dataclass(frozen=True)
class FirewallRule:
    name: str | None = wire("n")
    exists: bool | None = wire("ex")
    enabled: bool | None = wire("en")
    action: str | None = wire("act")  # Allow | Block
    profile: str | None = wire("prof")  # Any, or a comma list of Domain/Private/Public
    local_ports: str | None = wire("lp")
    in_group: bool | None = wire("grp")  # still in the built-in Remote Desktop group


@dataclasses.dataclass(frozen=True)
class FirewallProfile:
    name: str | None = wire("n")  # Domain | Private | Public
    enabled: bool | None = wire("on")
    allow_inbound_rules: bool | None = wire("inb")  # null: NotConfigured
    allow_local_rules: bool | None = wire("lr")
    do_not_allow_exceptions: int | None = wire("dne")


@dataclasses.dataclass(frozen=True)
class FirewallInfo:
    rules: tuple[FirewallRule, ...] = wire_list("rules")
    blocks: tuple[str, ...] = wire_list("blk")  # enabled inbound Block rules covering the RDP port
    profiles: tuple[FirewallProfile, ...] = wire_list("prof")
    active: tuple[str, ...] = wire_list("act")  # the categories of the connected networks

    def rule(self, name: str) -> FirewallRule | None:
        return next((r for r in self.rules if r.name == name), None)


@dataclasses.dataclass(frozen=True)
class EventCounts:
    """System log events of the last 7 days, per id (capped at LIMITS['events'])."""

    rcm_1057: int | None = wire("1057")
    rcm_1058: int | None = wire("1058")
    schannel_36870: int | None = wire("36870")
    schannel_36871: int | None = wire("36871")
    schannel_36872: int | None = wire("36872")
    scm_7022: int | None = wire("7022")

    def count(self, event_id: int) -> int:
        value = getattr(self, _EVENT_FIELDS[event_id])
        return int(value or 0)


_EVENT_FIELDS = {1057: "rcm_1057", 1058: "rcm_1058", 36870: "schannel_36870", 36871: "schannel_36871"}
_EVENT_FIELDS |= {36872: "schannel_36872", 7022: "scm_7022"}


@dataclasses.dataclass(frozen=True)
class DiskInfo:
    drive: str | None = wire("drv")
    free_bytes: int | None = wire("free")
    size_bytes: int | None = wire("size")


@dataclasses.dataclass(frozen=True)
class SectionError:
    section: str | None = wire("s")
    message: str | None = wire("m")


@dataclasses.dataclass(frozen=True)
class Diagnosis:
    os: OsInfo | None = dataclasses.field(default=None, metadata={"wire": "os"})
    rdp: RdpSettings | None = dataclasses.field(default=None, metadata={"wire": "rdp"})
    listener: ListenerInfo | None = dataclasses.field(default=None, metadata={"wire": "lsn"})
    services: tuple[ServiceInfo, ...] | None = wire("svc")
    cert: CertInfo | None = dataclasses.field(default=None, metadata={"wire": "cert"})
    machine_keys: MachineKeys | None = dataclasses.field(default=None, metadata={"wire": "mk"})
    tls: TlsInfo | None = dataclasses.field(default=None, metadata={"wire": "tls"})
    firewall: FirewallInfo | None = dataclasses.field(default=None, metadata={"wire": "fw"})
    events: EventCounts | None = dataclasses.field(default=None, metadata={"wire": "evt"})
    disk: DiskInfo | None = dataclasses.field(default=None, metadata={"wire": "disk"})
    errors: tuple[SectionError, ...] = wire_list("err")
    # 1: a repair Windows applies only at boot (SCHANNEL) ran during this boot, so the registry
    # reads repaired while the listener still runs with the old setting; null otherwise.
    reboot_pending: int | None = wire("rb")

    def service(self, name: str) -> ServiceInfo | None:
        return next((s for s in self.services or () if (s.name or "").lower() == name.lower()), None)


@dataclasses.dataclass(frozen=True)
class GuestReport:
    """The whole marker line. `error` is set (and `diagnosis` null) when the script refused to run."""

    schema: int | None = wire("v")
    mode: str | None = wire("m")
    time: str | None = wire("t")  # guest clock, UTC
    diagnosis: Diagnosis | None = dataclasses.field(default=None, metadata={"wire": "d"})
    error: str | None = wire("e")
    error_code: str | None = wire("ec")  # unsupported | mode | parameter | internal

    @property
    def guest_time(self) -> datetime | None:
        return parse_time(self.time)


# --- encoding and decoding ----------------------------------------------------------------------

T = TypeVar("T")


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def format_time(value: datetime) -> str:
    """The script's time format: UTC, second precision, trailing Z."""
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def to_wire(obj: Any) -> Any:
    """A contract object as the script prints it: every key present, nulls kept."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.metadata["wire"]: to_wire(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_wire(v) for v in obj]
    return obj


def render_line(report: GuestReport) -> str:
    """The marker line the script prints for this report (compact JSON, same keys)."""
    return MARKER + json.dumps(to_wire(report), separators=(",", ":"), ensure_ascii=True)


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _describe(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _decode(tp: Any, value: Any, path: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        (inner,) = [a for a in typing.get_args(tp) if a is not type(None)]
        return _decode(inner, value, path)
    if origin is tuple:
        if not isinstance(value, list):
            raise ValueError(f"{path}: expected a list, got {_describe(value)}")
        (item,) = typing.get_args(tp)[:1]
        return tuple(_decode(item, v, f"{path}[{i}]") for i, v in enumerate(value))
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ValueError(f"{path}: expected an object, got {_describe(value)}")
        return from_wire(tp, value, path)  # type: ignore[arg-type]
    if tp is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{path}: expected true/false, got {_describe(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{path}: expected an integer, got {_describe(value)}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ValueError(f"{path}: expected a string, got {_describe(value)}")
        return value
    raise TypeError(f"unsupported contract type {tp!r}")  # a programming error in this module


def from_wire(cls: type[T], data: Mapping[str, Any], path: str = "") -> T:
    """Build a contract object from decoded JSON, checking every type. Unknown keys are ignored."""
    hints = _hints(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        key = f.metadata["wire"]
        if key not in data:
            continue
        value = data[key]
        if value is None and typing.get_origin(hints[f.name]) is tuple:
            continue  # a null list is an empty one
        kwargs[f.name] = _decode(hints[f.name], value, f"{path}.{key}" if path else key)
    return cls(**kwargs)


def wire_keys(cls: type[Any] = GuestReport) -> set[str]:
    """Every wire key of a contract class and the classes it contains (for drift tests)."""
    keys: set[str] = set()
    for f in dataclasses.fields(cls):
        keys.add(f.metadata["wire"])
        for arg in _nested_types(_hints(cls)[f.name]):
            keys |= wire_keys(arg)
    return keys


def _nested_types(tp: Any) -> list[type[Any]]:
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return [tp]
    return [t for arg in typing.get_args(tp) for t in _nested_types(arg)]


# --- reading Run Command output -----------------------------------------------------------------

_TAIL = 600
_FIX_OUTPUT = "Rerun with --debug to see the end of the raw output, and report it with the VM's OS version."


def parse_output(stdout: str, stderr: str = "") -> GuestReport:
    """The report in a Run Command's StdOut. Anything off-contract is a ContractError, never a crash."""
    stdout = stdout or ""
    stderr = (stderr or "").strip()
    tail = stdout[-_TAIL:]
    lines = [ln.strip() for ln in stdout.splitlines()]
    marked = [ln for ln in lines if ln.startswith(MARKER)]
    if not marked:
        if len(stdout.encode("utf-8", "replace")) >= RUN_COMMAND_OUTPUT_LIMIT - 200:
            raise ContractError(
                "The in-guest script's output was truncated:",
                f"Run Command keeps only the last {RUN_COMMAND_OUTPUT_LIMIT:,} bytes and the {MARKER} line "
                "was cut off.",
                "Something in the guest printed more than expected; " + _FIX_OUTPUT,
                raw_tail=tail,
            )
        if stderr:
            raise ContractError(
                "The in-guest script failed:",
                _first_line(stderr),
                "Fix the cause shown above (the full StdErr is in --debug), then rerun.",
                raw_tail=f"{tail}\n[stderr]\n{stderr[-_TAIL:]}",
            )
        raise ContractError(
            f"The in-guest script printed no {MARKER} line.",
            "It was probably stopped before it finished, or another script answered.",
            _FIX_OUTPUT,
            raw_tail=tail,
        )
    payload = marked[-1][len(MARKER) :]
    try:
        data = json.loads(payload)
    except json.JSONDecodeError as exc:
        truncated = _unclosed(payload)
        raise ContractError(
            "The in-guest script's JSON was truncated."
            if truncated
            else "The in-guest script's JSON is invalid:",
            "" if truncated else f"{exc.msg} at character {exc.pos}.",
            _FIX_OUTPUT,
            raw_tail=tail,
        ) from None
    if not isinstance(data, dict):
        raise ContractError(
            f"The in-guest script's {MARKER} line holds {_describe(data)}, not an object.",
            fix=_FIX_OUTPUT,
            raw_tail=tail,
        )
    version = data.get("v")
    if version != SCHEMA_VERSION:
        raise ContractError(
            f"The in-guest script answered with contract version {version!r}; this azrdp reads "
            f"version {SCHEMA_VERSION}.",
            fix="Use the same azrdp version for the script and the CLI (pip install -U azrdp).",
            raw_tail=tail,
        )
    try:
        return from_wire(GuestReport, data)
    except ValueError as exc:
        raise ContractError(
            "The in-guest script's JSON does not follow the contract:", f"{exc}.", _FIX_OUTPUT, raw_tail=tail
        ) from None


def _unclosed(payload: str) -> bool:
    """True when the JSON stops inside a string or an open object/array (the line was cut off)."""
    depth = 0
    in_string = escaped = False
    for ch in payload:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
    return in_string or depth > 0


def _first_line(text: str) -> str:
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return line if len(line) <= 300 else line[:297] + "..."


# --- the script and its parameters --------------------------------------------------------------


@cache
def script_text() -> str:
    script = resources.files("azrdp.guest").joinpath("scripts").joinpath(SCRIPT_NAME)
    return script.read_text(encoding="ascii")


def compact(text: str) -> str:
    """The script as sent: full-line comments, blank lines and leading indentation dropped.

    A static, deterministic transformation of azrdp's own package files (never of user data): the
    files stay commented and readable, the request stays small. The header line stays first, so
    the script still identifies itself. Safe because the scripts have no here-strings, block
    comments or multi-line string literals (a test compares the PowerShell token streams).
    """
    lines = text.splitlines()
    kept = lines[:1] + [ln.strip() for ln in lines[1:] if ln.strip() and not ln.lstrip().startswith("#")]
    return "\n".join(kept) + "\n"


def checked_lines(text: str) -> list[str]:
    """A script as Run Command's `script` array (one string per line), refused above SCRIPT_LIMIT."""
    sent = compact(text)
    size = len(sent.encode("ascii"))
    if size > SCRIPT_LIMIT:
        raise ContractError(
            f"The in-guest script is {size:,} bytes, above azrdp's {SCRIPT_LIMIT:,}-byte limit "
            "for Run Command.",
            "The packaged script grew past what azrdp sends in one request.",
            "Reinstall azrdp; report this if it persists.",
        )
    return sent.splitlines()


def script_lines() -> list[str]:
    """The diagnose script as Run Command's `script` array: one string per line, compacted."""
    return checked_lines(script_text())


def is_azrdp_script(script: Sequence[str] | str | None) -> bool:
    """True when a Run Command script starts with the azrdp header (how the simulator recognises it)."""
    if isinstance(script, str):
        first = script.lstrip().splitlines()[:1]
    else:
        first = [ln for ln in (script or []) if ln.strip()][:1]
    return bool(first) and first[0].strip() == SCRIPT_HEADER


def script_version(script: Sequence[str] | str | None) -> int | None:
    text = script if isinstance(script, str) else "\n".join(script or [])
    match = re.match(r"\s*# azrdp-guest-script v(\d+)", text)
    return int(match.group(1)) if match else None


def build_parameters(mode: str = "diagnose", rdp_port: int = 3389) -> list[dict[str, str]]:
    """The Run Command `parameters` list, validated here: values never reach the script unchecked."""
    if mode not in IMPLEMENTED_MODES:
        raise UsageError(
            f"Mode {mode!r} is not available in this azrdp version.",
            fix=f"Use one of: {', '.join(IMPLEMENTED_MODES)}.",
        )
    if isinstance(rdp_port, bool) or not isinstance(rdp_port, int) or not 1 <= rdp_port <= 65535:
        raise UsageError(f"RDP port {rdp_port!r} is not valid.", fix="Pass a TCP port from 1 to 65535.")
    return check_parameters([{"name": "Mode", "value": mode}, {"name": "RdpPort", "value": str(rdp_port)}])


# Run Command's handler puts each parameter on the script's command line as `-Name value`, unquoted,
# through a cmd.exe layer (Azure/azure-powershell#7269, #29880): an empty value leaves `-Name`
# without its argument, a value starting with `-` reads as another parameter's name, and characters
# outside this set may be split, stripped or reinterpreted (a comma, for one, makes an array).
PARAMETER_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]*")
PARAMETER_VALUE = re.compile(r"[A-Za-z0-9._][A-Za-z0-9._-]*")


def render_command_line(parameters: Sequence[Mapping[str, str]]) -> str:
    """The parameters as Run Command's handler writes them on the script's command line."""
    return " ".join(f"-{p['name']} {p['value']}" for p in parameters)


def check_parameters(parameters: list[dict[str, str]]) -> list[dict[str, str]]:
    """Refuse what Run Command's command line would mangle, before anything is sent.

    Every value azrdp sends is an id, a port or a flag built by azrdp itself, so a refusal here is
    a programming error, never user input passed through.
    """
    for p in parameters:
        name, value = p["name"], p["value"]
        why = ""
        if not isinstance(value, str) or not value:
            why = "its value is empty, so the command line would leave -{name} without an argument"
        elif not PARAMETER_VALUE.fullmatch(value):
            why = "its value has a character outside [A-Za-z0-9._-] or starts with '-'"
        elif not PARAMETER_NAME.fullmatch(name):
            why = "its name is not a PowerShell parameter name"
        if why:
            raise UsageError(
                f"Run Command parameter {name} cannot be sent safely:",
                why.format(name=name) + ".",
                fix="Values are ids, ports and flags only; use the options azrdp documents.",
            )
    if len(render_command_line(parameters)) > PARAMETERS_LIMIT:
        raise UsageError(
            "The Run Command parameters cannot be sent safely:",
            f"their command line is longer than {PARAMETERS_LIMIT} characters.",
            fix="Name fewer repairs at once.",
        )
    return parameters


def parameters_dict(parameters: Sequence[Mapping[str, Any]] | None) -> dict[str, str]:
    """Run Command parameters as a name -> value map (names compared case-insensitively, like PowerShell)."""
    out: dict[str, str] = {}
    for item in parameters or ():
        name = str(item.get("name", ""))
        if name:
            out[name.lower()] = str(item.get("value", ""))
    return out
