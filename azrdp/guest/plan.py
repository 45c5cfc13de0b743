"""The plan the executor runs: primitive operations, each with its precondition, and their inverses.

A repair is planned in Python (azrdp.repairs.guest) as an ordered list of steps, each a list of
primitive operations. Every operation names an allow-listed target, carries the value it expects
to find there (its precondition: the executor refuses the step when the state moved), and the
value it writes. The executor backs up and records what it finds before each change, and on a
failure runs the step's rollback list: the inverse operations, built here, of what it applied.
Undo is the same inverse list, with preconditions taken from what the run recorded.

The kinds (the executor's allow-list holds the same names; a test compares):

- reg.set / reg.del: an allow-listed registry value; expects its current type and data (or
  absent); inverse: set back, or delete (and drop a key it created).
- acl: the MachineKeys folder, a key file, the Remote Desktop store key; expects its owner + DACL
  SDDL; inverse: set the recorded SDDL back.
- key.ren: a key container file in MachineKeys; expects it to exist and the new name not to;
  inverse: rename back.
- cert.rm / cert.put: a Remote Desktop store entry; expects present / absent; inverse: put back
  from the backup / remove.
- svc.cfg: start type and account of an allow-listed service; expects the current ones; inverse:
  set them back.
- svc.ctl: start, stop or restart with a timeout; expects its state (never a pending one);
  inverse: the opposite, a restart again.
- fw.set / fw.new / fw.del / fw.prof: RDP rules by name, azrdp-RDP-<port>, a profile; expects the
  current settings; inverse: set back / delete / recreate.
- wait.cert / wait.lsn: a new certificate; the listener on a port (bounded waits); inverse:
  remove the new certificate (its container moved aside) / none.

`project(facts, op)` evaluates an operation against the facts, so a later step is planned on the
state the earlier ones leave (the port moved, then the firewall follows it). Pure.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from azrdp.guest import facts as gf
from azrdp.guest import sddl as gs
from azrdp.guest.wire import pack_token, unpack_token

PLAN_VERSION = 1

# --- allow-lists (executor.ps1 holds the same; a test keeps them equal) ---------------------------

REG_WRITABLE: Mapping[str, tuple[str, ...]] = {
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
    "winlogon": ("WinStationsDisabled",),
    "tls12": ("Enabled", "DisabledByDefault"),
    "cipher": ("Functions",),
    "fwdom": ("DoNotAllowExceptions",),
    "fwstd": ("DoNotAllowExceptions",),
    "fwpub": ("DoNotAllowExceptions",),
}
# Never the guest agent (Run Command needs it) and never a service azrdp has no repair for.
SERVICES: tuple[str, ...] = (
    "TermService",
    "UmRdpService",
    "SessionEnv",
    "KeyIso",
    "CertPropSvc",
    "CryptSvc",
    "MpsSvc",
    "BFE",
)
FW_RULES: tuple[str, ...] = gf.RDP_RULES
CUSTOM_RULE = re.compile(r"^azrdp-RDP-[0-9]{1,5}$")
# CAPI and CNG key files are named <32 hex>_<MachineGuid>.
KEY_FILE = re.compile(
    r"^[0-9a-f]{32}_[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)
# A container moved aside: .azrdp-<run>, and -new for the one Windows created during that run.
ASIDE = re.compile(r"^(?P<name>.+)\.azrdp-(?P<run>[0-9a-f]{12})(-new)?$")
ACL_TARGETS = ("mk", "rds", "rdc")  # plus key:<file> (MachineKeys) and cng:<file> (Crypto\Keys)
# The owners SYSTEM may set: itself and a group of its token with the owner attribute. Any other SID
# needs SeRestorePrivilege enabled (Learn: SetSecurityInfo; "SE_RESTORE_NAME"), which .NET's
# SetAccessControl never enables (only Set-Acl does, and it writes the SACL first).
OWNERS = (gs.SYSTEM, gs.ADMINISTRATORS)
START_MODES = {"Auto": "Automatic", "Manual": "Manual", "Disabled": "Disabled"}
SET_START_MODES = ("", *START_MODES.values())  # what svc.cfg's sm may carry ("" leaves it)
ACTIONS = ("start", "stop", "restart")
RUN_ID = re.compile(r"^[0-9a-f]{12}$")

SERVICE_TIMEOUT = 60  # seconds a service may take to reach its state
CERT_TIMEOUT = 60  # Windows mints a certificate within seconds of the services starting (measured)
LISTENER_TIMEOUT = 60
# The executor's own deadline stays below azrdp's Run Command wait (RepairOptions.timeout), with
# room for the rollback of a failing step (executor.ps1 $RollbackGrace) and the collector that ends
# every run: deadline + ROLLBACK_GRACE + COLLECTOR_SECONDS + 30 s of margin <= the wait, for any
# wait from MIN_TIMEOUT up (below it the deadline stays at its 60 s floor).
COLLECTOR_SECONDS = 60
ROLLBACK_GRACE = 120
MIN_DEADLINE = 60
MAX_DEADLINE = 600
MIN_TIMEOUT = MIN_DEADLINE + ROLLBACK_GRACE + COLLECTOR_SECONDS + 30
# The guest lock lasts the deadline, the rollback grace and this margin (executor.ps1 $LockMargin);
# a lock file that does not read (torn while written) holds LOCK_LONGEST from when it was written.
LOCK_MARGIN = 120
LOCK_LONGEST = MAX_DEADLINE + ROLLBACK_GRACE + LOCK_MARGIN


def deadline_for(run_command_timeout: float) -> int:
    spare = run_command_timeout - ROLLBACK_GRACE - COLLECTOR_SECONDS - 30
    return int(max(MIN_DEADLINE, min(MAX_DEADLINE, spare)))


class PlanError(ValueError):
    """An operation outside the allow-list: a programming error, refused before anything is sent."""


RegData = tuple[str, Any]  # (RegistryValueKind name, data); Binary as upper-case hex


def reg_data(entry: gf.RegEntry | None) -> RegData | None:
    if entry is None:
        return None
    data = list(entry.data) if isinstance(entry.data, tuple) else entry.data
    return (str(entry.kind), data)


def _check_reg(key: str, name: str) -> None:
    if name not in REG_WRITABLE.get(key, ()):
        raise PlanError(f"registry value {key}\\{name} is not on the executor's allow-list")


def _check_acl(target: str) -> None:
    kind, _, name = target.partition(":")
    if target in ACL_TARGETS or (kind in ("key", "cng") and KEY_FILE.match(name)):
        return
    raise PlanError(f"ACL target {target!r} is not on the executor's allow-list")


# --- the operations ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Op:
    """Base of every primitive operation. `check`: verify the precondition before acting."""

    KIND = ""
    check: bool = field(default=True, kw_only=True)
    of: int = field(default=-1, kw_only=True)  # in a rollback list: the forward op it reverts

    def fields(self) -> dict[str, Any]:
        raise NotImplementedError

    def seconds(self) -> int:
        """How long the op may take (the executor refuses it when the deadline is nearer)."""
        return 5

    def wire(self, index: int) -> dict[str, Any]:
        # Every op carries every common key, x included: the executor runs under StrictMode,
        # where reading a property an object lacks is an error.
        base = {
            "i": index,
            "k": self.KIND,
            "chk": int(self.check),
            "of": self.of,
            "w": self.seconds(),
            "x": None,
        }
        return {**base, **self.fields()}

    def validate(self) -> None:
        """Refuse targets outside the allow-list (the executor refuses them too)."""

    def target(self) -> str:
        raise NotImplementedError

    def before(self) -> Any:
        return None

    def after(self) -> Any:
        return None

    def inverse(self, recorded_after: Any = None) -> list[Op]:
        """What reverts this op. `recorded_after`: what the executor read after applying it."""
        return []

    def describe(self) -> str:
        return f"{self.target()}: {show(self.before())} -> {show(self.after())}"


def show(value: Any) -> str:
    if value is None:
        return "absent"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (tuple, list)) and len(value) == 2 and value[0] in gf.REG_TYPES:
        data = value[1]
        if isinstance(data, list):
            return ",".join(data) or "(empty)"
        return f'"{data}"' if value[0] in ("String", "ExpandString") else str(data)
    return str(value)


REG_LABELS = {
    "ts": "Terminal Server",
    "rdptcp": "RDP-Tcp",
    "winlogon": "Winlogon",
    "tls12": "SCHANNEL TLS 1.2 Server",
    "cipher": "SSL cipher suite policy",
    "fwdom": "FirewallPolicy DomainProfile",
    "fwstd": "FirewallPolicy StandardProfile",
    "fwpub": "FirewallPolicy PublicProfile",
}


@dataclass(frozen=True)
class RegSet(Op):
    KIND = "reg.set"
    key: str
    name: str
    expect: RegData | None  # None: the value is absent now
    value: RegData
    key_exists: bool = True  # the key exists now (when not, undo drops it again if left empty)

    def fields(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "n": self.name,
            "x": _reg_wire(self.expect),
            "v": _reg_wire(self.value),
            "ke": int(self.key_exists),  # for undo from the records (the executor ignores it)
        }

    def validate(self) -> None:
        _check_reg(self.key, self.name)
        if self.value[0] not in gf.REG_TYPES:
            raise PlanError(f"unknown registry kind {self.value[0]!r}")

    def target(self) -> str:
        return f"{REG_LABELS.get(self.key, self.key)} {self.name}"

    def before(self) -> Any:
        return self.expect

    def after(self) -> Any:
        return self.value

    def inverse(self, recorded_after: Any = None) -> list[Op]:
        now = _reg_from(recorded_after) if recorded_after is not None else self.value
        if self.expect is None:
            return [RegDel(self.key, self.name, now, drop_key=not self.key_exists)]
        return [RegSet(self.key, self.name, now, self.expect)]


@dataclass(frozen=True)
class RegDel(Op):
    KIND = "reg.del"
    key: str
    name: str
    expect: RegData | None
    drop_key: bool = False  # remove the key too when nothing is left in it

    def fields(self) -> dict[str, Any]:
        return {"key": self.key, "n": self.name, "x": _reg_wire(self.expect), "dk": int(self.drop_key)}

    def validate(self) -> None:
        _check_reg(self.key, self.name)

    def target(self) -> str:
        return f"{REG_LABELS.get(self.key, self.key)} {self.name}"

    def before(self) -> Any:
        return self.expect

    def inverse(self, recorded_after: Any = None) -> list[Op]:
        if self.expect is None:
            return []
        return [RegSet(self.key, self.name, None, self.expect)]


def _reg_wire(data: RegData | None) -> list[Any] | None:
    return None if data is None else [data[0], data[1]]


def _reg_from(value: Any) -> RegData | None:
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return (str(value[0]), list(value[1]) if isinstance(value[1], (list, tuple)) else value[1])
    return None


ACL_LABELS = {
    "mk": "MachineKeys folder",
    "rds": "Remote Desktop store key",
    "rdc": "Remote Desktop store key",
}


@dataclass(frozen=True)
class Acl(Op):
    """Set owner + DACL to `sddl` (computed in Python from `expect`); only those sections."""

    KIND = "acl"
    target_id: str  # mk | rds | rdc | key:<file> | cng:<file>
    expect: str  # owner + DACL as the collector read it
    sddl: str  # the new owner + DACL
    owner: bool = False  # the owner changes too (Owner section written)
    take_ownership: bool = False  # takeown first (SYSTEM cannot write the DACL otherwise); files only

    def fields(self) -> dict[str, Any]:
        return {
            "o": self.target_id,
            "x": self.expect,
            "to": self.sddl,
            "own": int(self.owner),
            "tk": int(self.take_ownership),
        }

    def validate(self) -> None:
        _check_acl(self.target_id)
        if self.take_ownership and not self.target_id.startswith(("key:", "cng:")):
            raise PlanError("takeown is for key files only")
        if self.owner and _owner(self.sddl) not in OWNERS:
            raise PlanError("azrdp sets an owner only to SYSTEM or Administrators")

    def target(self) -> str:
        _, _, name = self.target_id.partition(":")
        return ACL_LABELS.get(self.target_id, f"key file {name}") + " owner and DACL"

    def before(self) -> Any:
        return self.expect

    def after(self) -> Any:
        return self.sddl

    def inverse(self, recorded_after: Any = None) -> list[Op]:
        """The DACL as it was; the owner too when SYSTEM may set it. After takeown the old owner is
        one that locked SYSTEM out, never SYSTEM or Administrators: SYSTEM stays the owner (the
        default of a key container, reference C-KEY)."""
        now = recorded_after if isinstance(recorded_after, str) else self.sddl
        owner = (self.owner or self.take_ownership) and _owner(self.expect) in OWNERS
        return [Acl(self.target_id, now, self.expect, owner=bool(owner))]


def _owner(text: str) -> str | None:
    try:
        return gs.parse(text).owner
    except gs.SddlError:
        return None


@dataclass(frozen=True)
class KeyRename(Op):
    """Move a key container aside (same folder) so Windows creates a fresh one; never deletes.

    `optional`: nothing to do when the container is not there (the one Windows may have created).
    """

    KIND = "key.ren"
    name: str
    new_name: str
    optional: bool = False

    def fields(self) -> dict[str, Any]:
        return {"n": self.name, "to": self.new_name, "opt": int(self.optional)}

    def validate(self) -> None:
        for value in (self.name, self.new_name):
            aside = ASIDE.match(value)
            if not KEY_FILE.match(aside.group("name") if aside else value):
                raise PlanError(f"key container {value!r} is not on the executor's allow-list")

    def target(self) -> str:
        return f"key container {self.name}"

    def before(self) -> Any:
        return self.name

    def after(self) -> Any:
        return self.new_name

    def inverse(self, recorded_after: Any = None) -> list[Op]:
        return [KeyRename(self.new_name, self.name)]


@dataclass(frozen=True)
class CertRemove(Op):
    """Remove a Remote Desktop store entry (its serialized form is backed up; the key stays)."""

    KIND = "cert.rm"
    thumbprint: str  # "@" in a rollback list: the certificate op `of` saw appear

    def fields(self) -> dict[str, Any]:
        return {"s": "rd", "tp": self.thumbprint}

    def validate(self) -> None:
        if self.thumbprint != "@" and not re.fullmatch(r"[0-9A-F]{40}", self.thumbprint):
            raise PlanError(f"thumbprint {self.thumbprint!r} is not 40 hex digits")

    def target(self) -> str:
        return f"certificate {self.thumbprint} (Remote Desktop store)"

    def before(self) -> Any:
        return "present"

    def after(self) -> Any:
        return "removed"

    def inverse(self, recorded_after: Any = None) -> list[Op]:
        return [CertPut(self.thumbprint)]


@dataclass(frozen=True)
class CertPut(Op):
    """Put a removed entry back from the backup run `source_run` wrote (cert-<thumbprint>.sst)."""

    KIND = "cert.put"
    thumbprint: str
    source_run: str = ""  # "": this run

    def fields(self) -> dict[str, Any]:
        return {"s": "rd", "tp": self.thumbprint, "sr": self.source_run}

    def validate(self) -> None:
        CertRemove(self.thumbprint).validate()
        if self.source_run and not RUN_ID.match(self.source_run):
            raise PlanError(f"run id {self.source_run!r} is not valid")

    def target(self) -> str:
        return f"certificate {self.thumbprint} (Remote Desktop store)"

    def before(self) -> Any:
        return "absent"

    def after(self) -> Any:
        return "restored"

    def inverse(self, recorded_after: Any = None) -> list[Op]:
        return [CertRemove(self.thumbprint)]


@dataclass(frozen=True)
class ServiceConfig(Op):
    KIND = "svc.cfg"
    name: str
    expect_start: str  # Win32_Service StartMode as read: Auto, Manual, Disabled ...
    expect_account: str
    start: str = ""  # "" leaves it
    account: str = ""

    def fields(self) -> dict[str, Any]:
        return {
            "n": self.name,
            "x": {"sm": self.expect_start, "acct": self.expect_account},
            "sm": START_MODES.get(self.start, self.start),
            "acct": self.account,
        }

    def validate(self) -> None:
        if self.name not in SERVICES:
            raise PlanError(f"service {self.name!r} is not on the executor's allow-list")
        if self.start and self.start not in START_MODES:
            raise PlanError(f"start mode {self.start!r} is not one azrdp sets")

    def target(self) -> str:
        return f"service {self.name}"

    def before(self) -> Any:
        return "; ".join(
            part
            for part, new in ((self.expect_start, self.start), (self.expect_account, self.account))
            if new
        )

    def after(self) -> Any:
        return "; ".join(part for part in (self.start, self.account) if part)

    def inverse(self, recorded_after: Any = None) -> list[Op]:
        now = recorded_after if isinstance(recorded_after, Mapping) else {}
        return [
            ServiceConfig(
                self.name,
                str(now.get("sm", self.start or self.expect_start)),
                str(now.get("acct", self.account or self.expect_account)),
                self.expect_start if self.start else "",
                self.expect_account if self.account else "",
            )
        ]


@dataclass(frozen=True)
class ServiceControl(Op):
    """Start, stop or restart a service and wait for it, bounded; never touches a pending one.

    A stop stops the running dependents first (ServiceController.Stop does, waiting at most 30 s
    for each: dotnet corefx ServiceController.cs); a restart starts them again afterwards.
    """

    KIND = "svc.ctl"
    name: str
    action: str
    expect: str = ""  # the state it must be in ("Running", "Stopped"); "" any settled state
    timeout: int = SERVICE_TIMEOUT

    def seconds(self) -> int:
        return self.timeout

    def fields(self) -> dict[str, Any]:
        return {"n": self.name, "a": self.action, "x": self.expect}

    def validate(self) -> None:
        if self.name not in SERVICES:
            raise PlanError(f"service {self.name!r} is not on the executor's allow-list")
        if self.action not in ACTIONS:
            raise PlanError(f"service action {self.action!r} is unknown")

    def target(self) -> str:
        return f"service {self.name}"

    def before(self) -> Any:
        return self.expect or "running or stopped"

    def after(self) -> Any:
        return {"start": "Running", "stop": "Stopped", "restart": "restarted"}[self.action]

    def describe(self) -> str:
        return f"{self.action.capitalize()} {self.name} (at most {self.timeout} s)"

    def inverse(self, recorded_after: Any = None) -> list[Op]:
        if self.action == "restart":
            return [ServiceControl(self.name, "restart", "", self.timeout)]
        opposite = "stop" if self.action == "start" else "start"
        settled = "Running" if self.action == "start" else "Stopped"
        return [ServiceControl(self.name, opposite, settled, self.timeout)]


@dataclass(frozen=True)
class RuleSet(Op):
    KIND = "fw.set"
    name: str
    expect: Mapping[str, Any]  # {"en": bool, "act": str, "lp": str} as read from PersistentStore
    enabled: bool | None = None
    action: str = ""
    local_ports: str = ""

    def fields(self) -> dict[str, Any]:
        # The executor compares JSON text: the keys go in the order it reads them.
        expect = {key: self.expect.get(key) for key in ("en", "act", "lp")}
        return {
            "n": self.name,
            "x": expect,
            "en": "" if self.enabled is None else str(self.enabled),
            "act": self.action,
            "lp": self.local_ports,
        }

    def validate(self) -> None:
        if self.name not in FW_RULES and not CUSTOM_RULE.match(self.name):
            raise PlanError(f"firewall rule {self.name!r} is not on the executor's allow-list")
        if self.action not in ("", "Allow"):
            raise PlanError("azrdp only ever sets a rule to Allow")

    def target(self) -> str:
        return f"firewall rule {self.name}"

    def before(self) -> Any:
        return _rule_text(self.expect, self._changed())

    def after(self) -> Any:
        return _rule_text(self._new(), self._changed())

    def _new(self) -> dict[str, Any]:
        new = dict(self.expect)
        if self.enabled is not None:
            new["en"] = self.enabled
        if self.action:
            new["act"] = self.action
        if self.local_ports:
            new["lp"] = self.local_ports
        return new

    def _changed(self) -> list[str]:
        return [
            k
            for k, v in (("en", self.enabled), ("act", self.action or None), ("lp", self.local_ports or None))
            if v is not None
        ]

    def inverse(self, recorded_after: Any = None) -> list[Op]:
        now = dict(recorded_after) if isinstance(recorded_after, Mapping) else self._new()
        old = self.expect
        return [
            RuleSet(
                self.name,
                now,
                old.get("en") if self.enabled is not None else None,
                str(old.get("act") or "") if self.action else "",
                str(old.get("lp") or "") if self.local_ports else "",
            )
        ]


def _rule_text(values: Mapping[str, Any], keys: Sequence[str]) -> str:
    words = {"en": "enabled", "act": "action", "lp": "LocalPort"}
    return ", ".join(f"{words[k]} {show(values.get(k))}" for k in keys)


@dataclass(frozen=True)
class RuleNew(Op):
    """azrdp's own rule for RDP on a port: inbound TCP, Allow, service TermService, any profile."""

    KIND = "fw.new"
    name: str
    port: int

    def fields(self) -> dict[str, Any]:
        return {"n": self.name, "p": self.port}

    def validate(self) -> None:
        if not CUSTOM_RULE.match(self.name) or self.name != gf.custom_rule_name(self.port):
            raise PlanError(f"azrdp only creates azrdp-RDP-<port> rules, not {self.name!r}")

    def target(self) -> str:
        return f"firewall rule {self.name}"

    def after(self) -> Any:
        return f"Allow TCP {self.port} (TermService)"

    def inverse(self, recorded_after: Any = None) -> list[Op]:
        return [RuleDel(self.name, self.port)]


@dataclass(frozen=True)
class RuleDel(Op):
    KIND = "fw.del"
    name: str
    port: int

    def fields(self) -> dict[str, Any]:
        return {"n": self.name, "p": self.port}

    def validate(self) -> None:
        RuleNew(self.name, self.port).validate()

    def target(self) -> str:
        return f"firewall rule {self.name}"

    def before(self) -> Any:
        return f"Allow TCP {self.port}"

    def inverse(self, recorded_after: Any = None) -> list[Op]:
        return [RuleNew(self.name, self.port)]


@dataclass(frozen=True)
class ProfileSet(Op):
    KIND = "fw.prof"
    name: str
    expect: str  # AllowInboundRules in the PersistentStore: True, False, NotConfigured
    inbound: str

    def fields(self) -> dict[str, Any]:
        return {"n": self.name, "x": self.expect, "inb": self.inbound}

    def validate(self) -> None:
        if self.name not in gf.PROFILES or self.inbound not in ("True", "False", "NotConfigured"):
            raise PlanError(f"firewall profile change {self.name}={self.inbound} is not allowed")

    def target(self) -> str:
        return f"firewall profile {self.name} AllowInboundRules"

    def before(self) -> Any:
        return self.expect

    def after(self) -> Any:
        return self.inbound

    def inverse(self, recorded_after: Any = None) -> list[Op]:
        now = recorded_after if isinstance(recorded_after, str) else self.inbound
        return [ProfileSet(self.name, now, self.expect)]


@dataclass(frozen=True)
class WaitCert(Op):
    """Wait (bounded) for Windows to put a new in-date certificate with a key into the store."""

    KIND = "wait.cert"
    known: tuple[str, ...] = ()  # thumbprints in the store before: not new
    timeout: int = CERT_TIMEOUT

    def seconds(self) -> int:
        return self.timeout

    def fields(self) -> dict[str, Any]:
        return {"ex": list(self.known)}

    def target(self) -> str:
        return "Remote Desktop certificate"

    def describe(self) -> str:
        return f"Wait for Windows to create a new Remote Desktop certificate (at most {self.timeout} s)"

    def inverse(self, recorded_after: Any = None) -> list[Op]:
        if isinstance(recorded_after, str) and recorded_after:
            return [CertRemove(recorded_after)]
        return [CertRemove("@")]


@dataclass(frozen=True)
class WaitListener(Op):
    KIND = "wait.lsn"
    port: int
    timeout: int = LISTENER_TIMEOUT

    def seconds(self) -> int:
        return self.timeout

    def fields(self) -> dict[str, Any]:
        return {"p": self.port}

    def validate(self) -> None:
        if not 1 <= self.port <= 65535:
            raise PlanError(f"port {self.port} is not a TCP port")

    def target(self) -> str:
        return f"listener on TCP {self.port}"

    def describe(self) -> str:
        return f"Wait for TermService to listen on TCP {self.port} (at most {self.timeout} s)"


KINDS: Mapping[str, type[Op]] = {
    cls.KIND: cls
    for cls in (
        RegSet,
        RegDel,
        Acl,
        KeyRename,
        CertRemove,
        CertPut,
        ServiceConfig,
        ServiceControl,
        RuleSet,
        RuleNew,
        RuleDel,
        ProfileSet,
        WaitCert,
        WaitListener,
    )
}


def op_from_wire(data: Mapping[str, Any]) -> Op:
    """An op as the executor records it (op-<i>.json) or as a journal keeps it."""
    kind = str(data.get("k", ""))
    common: dict[str, Any] = {"check": bool(data.get("chk", 1)), "of": int(data.get("of", -1))}
    try:
        if kind == "reg.set":
            value = _reg_from(data["v"])
            if value is None:
                raise ValueError("reg.set without a value")
            return RegSet(
                data["key"], data["n"], _reg_from(data["x"]), value, bool(data.get("ke", 1)), **common
            )
        if kind == "reg.del":
            return RegDel(data["key"], data["n"], _reg_from(data["x"]), bool(data["dk"]), **common)
        if kind == "acl":
            return Acl(data["o"], data["x"], data["to"], bool(data["own"]), bool(data["tk"]), **common)
        if kind == "key.ren":
            return KeyRename(data["n"], data["to"], bool(data.get("opt", 0)), **common)
        if kind == "cert.rm":
            return CertRemove(data["tp"], **common)
        if kind == "cert.put":
            return CertPut(data["tp"], data["sr"], **common)
        if kind == "svc.cfg":
            start = {v: k for k, v in START_MODES.items()}.get(data["sm"], data["sm"])
            return ServiceConfig(data["n"], data["x"]["sm"], data["x"]["acct"], start, data["acct"], **common)
        if kind == "svc.ctl":
            return ServiceControl(data["n"], data["a"], data["x"], int(data["w"]), **common)
        if kind == "fw.set":
            enabled = {"True": True, "False": False}.get(str(data["en"]))
            return RuleSet(data["n"], dict(data["x"]), enabled, data["act"], data["lp"], **common)
        if kind == "fw.new":
            return RuleNew(data["n"], int(data["p"]), **common)
        if kind == "fw.del":
            return RuleDel(data["n"], int(data["p"]), **common)
        if kind == "fw.prof":
            return ProfileSet(data["n"], data["x"], data["inb"], **common)
        if kind == "wait.cert":
            return WaitCert(tuple(data["ex"]), int(data["w"]), **common)
        if kind == "wait.lsn":
            return WaitListener(int(data["p"]), int(data["w"]), **common)
    except (KeyError, TypeError, ValueError) as exc:
        raise PlanError(f"operation {kind!r} is malformed: {exc}") from None
    raise PlanError(f"unknown operation kind {kind!r}")


# --- steps and plans ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """The operations of one repair, in order, and what reverts them if one fails."""

    id: str
    ops: tuple[Op, ...]
    rollback: tuple[Op, ...] = ()
    boot: bool = False  # takes effect only at the next boot (SCHANNEL)


def _inverses(ops: Sequence[Op], index: int, after: Any, run_id: str) -> list[Op]:
    """The inverse of ops[index]. Putting a container back where Windows has since created a new
    one (a rename followed by a wait for the certificate): that new one moves aside first."""
    op = ops[index]
    inverse = op.inverse(after)
    if (
        isinstance(op, KeyRename)
        and not op.optional
        and any(isinstance(o, WaitCert) for o in ops[index + 1 :])
    ):
        fresh = KeyRename(op.name, f"{op.name}.azrdp-{run_id}-new", optional=True)
        return [fresh, *inverse]
    return inverse


def rollback_for(ops: Sequence[Op], first: int, run_id: str = "000000000000") -> tuple[Op, ...]:
    """The inverse ops of a step whose ops are numbered from `first`, in the order to run them.

    Data changes are reverted newest first; service restarts and stops come after them (the
    service then re-reads the restored settings), in forward order. Each inverse is tagged with
    the forward op it reverts (`of`): the executor runs it only when that op was applied. Rollback
    ops carry no precondition: the run holds the guest lock and just made the change.
    """
    data: list[Op] = []
    services: list[Op] = []
    for offset in range(len(ops) - 1, -1, -1):
        index = first + offset
        for inverse in _inverses(ops, offset, None, run_id):
            tagged = replace(inverse, check=False, of=index)
            (services if isinstance(inverse, ServiceControl) else data).append(tagged)
    return (*data, *reversed(services))


def undo_steps(
    steps: Sequence[Mapping[str, Any]], records: Mapping[int, Mapping[str, Any]], run_id: str, undo_run: str
) -> list[tuple[str, list[Op]]]:
    """Undo of a run: per step, newest step first, the inverse of each op it applied.

    Built from what the run recorded: each inverse expects what the op left (its recorded `a`),
    so the executor refuses it when the state moved since. A removed certificate comes back from
    the run's own backup. Ordered as in `rollback_for`: data first, service restarts after.
    """
    out: list[tuple[str, list[Op]]] = []
    for step in reversed(list(steps)):
        ops = [op_from_wire(o) for o in step["ops"]]
        applied = [
            (position, int(o["i"]))
            for position, o in enumerate(step["ops"])
            if str(records.get(int(o["i"]), {}).get("s")) == "applied"
        ]
        if not applied:
            continue
        data: list[Op] = []
        services: list[Op] = []
        for position, index in reversed(applied):
            for inverse in _inverses(ops, position, records[index].get("a"), undo_run):
                if isinstance(inverse, CertPut):
                    inverse = replace(inverse, source_run=run_id)
                tagged = replace(inverse, check=True, of=-1)
                (services if isinstance(inverse, ServiceControl) else data).append(tagged)
        out.append((str(step["id"]), [*data, *reversed(services)]))
    return out


def number(steps: Sequence[tuple[str, Sequence[Op]]]) -> list[tuple[str, Sequence[Op], int]]:
    """Each step with the index of its first op, as `make_step` wants them."""
    out, index = [], 0
    for step_id, ops in steps:
        out.append((step_id, ops, index))
        index += len(ops)
    return out


def steps_from_records(step_ids: Sequence[str], records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The plan's steps rebuilt from the guest's op records (each knows its step index `g`)."""
    steps: list[dict[str, Any]] = [{"id": step_id, "ops": []} for step_id in step_ids]
    for record in sorted(records, key=lambda r: int(r.get("i") or 0)):
        group = int(record.get("g") or 0)
        if 0 <= group < len(steps) and isinstance(record.get("op"), Mapping):
            steps[group]["ops"].append(dict(record["op"]))
    return steps


def make_step(
    repair_id: str, ops: Sequence[Op], first: int, *, boot: bool = False, run_id: str = "000000000000"
) -> Step:
    for op in ops:
        op.validate()
    return Step(repair_id, tuple(ops), rollback_for(ops, first, run_id), boot)


@dataclass(frozen=True)
class Plan:
    run_id: str
    steps: tuple[Step, ...]
    deadline: int = MAX_DEADLINE  # seconds the executor may take, collector excluded
    undoes: str = ""  # the run this plan takes back

    @property
    def ops(self) -> list[Op]:
        return [op for step in self.steps for op in step.ops]

    def to_wire(self) -> dict[str, Any]:
        index = 0
        steps = []
        for step in self.steps:
            ops = []
            for op in step.ops:
                ops.append(op.wire(index))
                index += 1
            steps.append(
                {"id": step.id, "b": int(step.boot), "ops": ops, "rb": [op.wire(-1) for op in step.rollback]}
            )
        return {"v": PLAN_VERSION, "run": self.run_id, "dl": self.deadline, "u": self.undoes, "steps": steps}

    def token(self) -> str:
        """The Plan parameter: gzip + base64url, no padding; starts with H4sI (gzip's magic)."""
        if not RUN_ID.match(self.run_id) or (self.undoes and not RUN_ID.match(self.undoes)):
            raise PlanError("run ids are 12 lower-case hex characters")
        for op in self.ops:
            op.validate()
        return pack_token(self.to_wire())


def plan_from_token(token: str) -> dict[str, Any]:
    data = unpack_token(token)
    if not isinstance(data, dict) or data.get("v") != PLAN_VERSION:
        raise PlanError("not an azrdp plan of this version")
    return data


# --- projection: the planning model of the guest --------------------------------------------------


def project(facts: gf.Facts, op: Op) -> gf.Facts:
    """The facts as they will read after `op` (what later steps are planned against).

    Only what azrdp itself changes is projected; Windows' own reactions are not predicted (a new
    certificate shows as "none in use yet", a listener as TermService's on the new port).
    """
    handler = _PROJECT.get(type(op))
    return handler(facts, op) if handler is not None else facts


def project_all(facts: gf.Facts, ops: Sequence[Op]) -> gf.Facts:
    for op in ops:
        facts = project(facts, op)
    return facts


def _set_reg(facts: gf.Facts, op: Op) -> gf.Facts:
    assert isinstance(op, (RegSet, RegDel))
    kept = [e for e in facts.reg or () if not (e.key == op.key and (e.name or "").lower() == op.name.lower())]
    if isinstance(op, RegSet):
        kind, data = op.value
        kept.append(gf.RegEntry(op.key, op.name, kind, tuple(data) if isinstance(data, list) else data))
    keys = facts.reg_keys if op.key in facts.reg_keys else (*facts.reg_keys, op.key)
    return replace(facts, reg=tuple(kept), reg_keys=keys)


def _acl(facts: gf.Facts, op: Op) -> gf.Facts:
    assert isinstance(op, Acl)
    if op.target_id == "mk":
        return replace(facts, machine_keys=gf.FolderFacts(op.sddl))
    if op.target_id in ("rds", "rdc") and facts.certs is not None:
        if op.target_id == "rds":
            return replace(facts, certs=replace(facts.certs, store_sddl=op.sddl))
        return replace(facts, certs=replace(facts.certs, certs_sddl=op.sddl))
    file = op.target_id.partition(":")[2]
    return _map_keys(facts, lambda k: replace(k, sddl=op.sddl) if k.file == file else k)


def _map_keys(facts: gf.Facts, change: Callable[[gf.KeyFacts], gf.KeyFacts]) -> gf.Facts:
    if facts.certs is None:
        return facts
    certs = tuple(replace(c, key=change(c.key)) if c.key is not None else c for c in facts.certs.certs)
    return replace(facts, certs=replace(facts.certs, certs=certs))


def _rename(facts: gf.Facts, op: Op) -> gf.Facts:
    assert isinstance(op, KeyRename)
    return _map_keys(facts, lambda k: replace(k, exists=False) if k.file == op.name else k)


def _cert_rm(facts: gf.Facts, op: Op) -> gf.Facts:
    assert isinstance(op, CertRemove)
    if facts.certs is None:
        return facts
    kept = tuple(c for c in facts.certs.certs if (c.thumbprint or "").upper() != op.thumbprint.upper())
    removed = len(facts.certs.certs) - len(kept)
    count = (facts.certs.rd_count or 0) - removed
    return replace(facts, certs=replace(facts.certs, certs=kept, rd_count=max(count, 0)))


def _wait_cert(facts: gf.Facts, op: Op) -> gf.Facts:
    # The certificate Windows mints is not known yet: nothing is in use until it appears.
    if facts.ts is None:
        return facts
    return replace(facts, ts=replace(facts.ts, cert_hash=""))


def _svc_cfg(facts: gf.Facts, op: Op) -> gf.Facts:
    assert isinstance(op, ServiceConfig)
    return _map_service(
        facts,
        op.name,
        lambda s: replace(s, start=op.start or s.start, account=op.account or s.account),
    )


def _svc_ctl(facts: gf.Facts, op: Op) -> gf.Facts:
    assert isinstance(op, ServiceControl)
    state = "Stopped" if op.action == "stop" else "Running"
    facts = _map_service(facts, op.name, lambda s: replace(s, state=state))
    service = facts.service(op.name)
    if op.action == "stop" and service is not None:
        for dependent in service.dependents:
            facts = _map_service(facts, dependent, lambda s: replace(s, state="Stopped"))
    if op.name == "TermService" and op.action != "stop":
        port = facts.number("rdptcp", "PortNumber")
        pid = service.pid if service is not None else None
        if port is not None:
            others = tuple(o for o in facts.listeners or () if o.port != port or o.pid != pid)
            facts = replace(facts, listeners=(*others, gf.PortOwner(port, pid, "svchost")))
    return facts


def _map_service(
    facts: gf.Facts, name: str, change: Callable[[gf.ServiceFacts], gf.ServiceFacts]
) -> gf.Facts:
    if facts.services is None:
        return facts
    return replace(
        facts,
        services=tuple(change(s) if (s.name or "").lower() == name.lower() else s for s in facts.services),
    )


def _fw_set(facts: gf.Facts, op: Op) -> gf.Facts:
    assert isinstance(op, RuleSet)
    if facts.firewall is None:
        return facts

    def change(rule: gf.RuleFacts) -> gf.RuleFacts:
        if rule.name != op.name:
            return rule
        return replace(
            rule,
            enabled=op.enabled if op.enabled is not None else rule.enabled,
            action=op.action or rule.action,
            local_ports=op.local_ports or rule.local_ports,
        )

    return replace(
        facts, firewall=replace(facts.firewall, rules=tuple(change(r) for r in facts.firewall.rules))
    )


def _fw_new(facts: gf.Facts, op: Op) -> gf.Facts:
    assert isinstance(op, RuleNew)
    if facts.firewall is None:
        return facts
    rule = gf.RuleFacts(
        op.name,
        True,
        "Inbound",
        "Allow",
        "TCP",
        str(op.port),
        "Any",
        "Any",
        "TermService",
        "Any",
        "",
        "Local",
    )
    rules = (*(r for r in facts.firewall.rules if r.name != op.name), rule)
    return replace(facts, firewall=replace(facts.firewall, rules=rules))


def _fw_del(facts: gf.Facts, op: Op) -> gf.Facts:
    assert isinstance(op, RuleDel)
    if facts.firewall is None:
        return facts
    rules = tuple(r for r in facts.firewall.rules if r.name != op.name)
    return replace(facts, firewall=replace(facts.firewall, rules=rules))


def _fw_prof(facts: gf.Facts, op: Op) -> gf.Facts:
    assert isinstance(op, ProfileSet)
    if facts.firewall is None:
        return facts
    inbound = {"True": True, "False": False}.get(op.inbound)
    profiles = tuple(replace(p, inbound=inbound) if p.name == op.name else p for p in facts.firewall.profiles)
    return replace(facts, firewall=replace(facts.firewall, profiles=profiles))


_PROJECT: dict[type, Callable[[gf.Facts, Any], gf.Facts]] = {
    RegSet: _set_reg,
    RegDel: _set_reg,
    Acl: _acl,
    KeyRename: _rename,
    CertRemove: _cert_rm,
    WaitCert: _wait_cert,
    ServiceConfig: _svc_cfg,
    ServiceControl: _svc_ctl,
    RuleSet: _fw_set,
    RuleNew: _fw_new,
    RuleDel: _fw_del,
    ProfileSet: _fw_prof,
}


def describe_ops(ops: Sequence[Op]) -> list[str]:
    return [op.describe() for op in ops]


def field_names(cls: type[Op]) -> list[str]:
    return [f.name for f in dataclasses.fields(cls) if f.name not in ("check", "of")]
