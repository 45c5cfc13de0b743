"""A model of the Windows state Remote Desktop depends on, and Windows' own reactions to it.

Registry keys with typed values and security descriptors; files with owner and DACL (the
MachineKeys folder, key containers, CAPI or CNG); the Remote Desktop and My certificate stores
with each entry's key-provider link; services with dependencies, pending states and hangs; firewall
rules with their scope in a local and a Group Policy store; the System log; other processes on
ports. The model knows nothing of azrdp's findings or repairs: it executes primitive operations
(azrdp.emulator.windows.executor) and renders the collector's output (.collector) from this state.

Windows' reactions, each from what was measured on marketplace images (reference
windows-rdp-guest.md, "What Windows itself does"; the header of Azure/repair-script-library
src/windows/win-fix-rdp-certificate.ps1):

* With no certificate, Windows mints a self-signed one and a key container with correct
  permissions within seconds of the Remote Desktop services starting (`_certificate_at_start`).
* A valid certificate whose key NETWORK SERVICE cannot read never recovers: nothing is due for
  renewal, the listener keeps using it.
* A MachineKeys folder hardened to SYSTEM and Administrators keeps RDP working, but the next
  container Windows creates lacks the build's third ACE (SessionEnv from 17763).
* A Deny for SYSTEM on the Remote Desktop store key stops the certificate being created.
* An expired certificate that is still there, or one without its key container, blocks the next
  creation (RCM 1057/1058) until the entry is removed.
* The self-signed certificate's key is the CAPI container TSSecKeySet1, whose file name derives
  from the container name and the MachineGuid; an existing container of that name is reused.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from azrdp.emulator.windows.access import allows
from azrdp.guest.sddl import SecurityDescriptor, parse

HKLM = "HKLM:\\"
TS = HKLM + r"SYSTEM\CurrentControlSet\Control\Terminal Server"
RDPTCP = TS + r"\WinStations\RDP-Tcp"
TSPOL = HKLM + r"SOFTWARE\Policies\Microsoft\Windows NT\Terminal Services"
CRYPTOGRAPHY = HKLM + r"SOFTWARE\Microsoft\Cryptography"
RD_STORE = HKLM + r"SOFTWARE\Microsoft\SystemCertificates\Remote Desktop"
RD_CERTIFICATES = RD_STORE + r"\Certificates"
MACHINEKEYS = r"C:\ProgramData\Microsoft\Crypto\RSA\MachineKeys"
CNG_KEYS = r"C:\ProgramData\Microsoft\Crypto\Keys"

SYSTEM = "S-1-5-18"
NETWORK_SERVICE = "S-1-5-20"
EVERYONE = "S-1-1-0"
# Whom SYSTEM's token holds (Learn: "LocalSystem Account": the SYSTEM and Administrators SIDs).
SYSTEM_TOKEN = frozenset({SYSTEM, "S-1-5-32-544", EVERYONE, "S-1-5-11"})
SESSIONENV_SID = "S-1-5-80-4022436659-1090538466-1613889075-870485073-3428993833"  # the reference
TERMSERVICE_SID = "S-1-5-80-446051430-1559341753-4161941529-1950928533-810483104"
# TermService runs as NETWORK SERVICE: the account, Everyone, Authenticated Users, Users (Learn:
# "NetworkService Account"), SERVICE and its own service SID (Learn: "Service SIDs").
TERMSERVICE_TOKEN = frozenset(
    {NETWORK_SERVICE, EVERYONE, "S-1-5-11", "S-1-5-32-545", "S-1-5-6", TERMSERVICE_SID}
)
FILE_READ = 0x120089
FILE_ADD_FILE = 0x2
READ_CONTROL = 0x20000
WRITE_DAC = 0x40000
WRITE_OWNER = 0x80000
KEY_CREATE_SUB_KEY = 0x4
KEY_SET_VALUE = 0x2
SELF_SIGNED_CONTAINER = "TSSecKeySet1"
SELF_SIGNED_PROVIDER = "Microsoft Enhanced RSA and AES Cryptographic Provider"
SELF_SIGNED_DAYS = 180  # "self-signed certs last about 6 months and are auto-renewed" (reference C-CERT)
SERVER_AUTH = "1.3.6.1.5.5.7.3.1"


class ApiError(Exception):
    """An API call the model refuses, with the Win32 or HRESULT code Windows would give."""

    def __init__(self, message: str, code: int = 5) -> None:
        super().__init__(message)
        self.code = code


# --- registry ------------------------------------------------------------------------------------


@dataclass
class RegValue:
    name: str
    kind: str  # RegistryValueKind: DWord, QWord, String, ExpandString, MultiString, Binary; None (REG_NONE)
    data: Any  # int (unsigned), str, list[str], bytes


@dataclass
class RegKey:
    path: str
    values: dict[str, RegValue] = field(default_factory=dict)  # by lower-case name
    sd: SecurityDescriptor | None = None


def _norm(path: str) -> str:
    text = path.replace("HKLM\\", HKLM, 1) if path.upper().startswith("HKLM\\") else path
    return text.rstrip("\\").lower()


class Registry:
    """HKLM, case-insensitive, with a security descriptor where the model tracks one."""

    def __init__(self) -> None:
        self.keys: dict[str, RegKey] = {}

    def key(self, path: str) -> RegKey | None:
        return self.keys.get(_norm(path))

    def ensure(self, path: str) -> RegKey:
        norm = _norm(path)
        if norm not in self.keys:
            shown = path.replace("HKLM\\", HKLM, 1) if path.upper().startswith("HKLM\\") else path
            self.keys[norm] = RegKey(shown.rstrip("\\"))
        return self.keys[norm]

    def get(self, path: str, name: str) -> RegValue | None:
        key = self.key(path)
        return key.values.get(name.lower()) if key is not None else None

    def number(self, path: str, name: str) -> int | None:
        value = self.get(path, name)
        if value is None:
            return None
        if value.kind in ("DWord", "QWord") and isinstance(value.data, int):
            return value.data
        if isinstance(value.data, str) and value.data.strip().isdigit():
            return int(value.data.strip())
        return None

    def set(self, path: str, name: str, kind: str, data: Any) -> None:
        key = self.ensure(path)
        existing = key.values.get(name.lower())
        key.values[name.lower()] = RegValue(existing.name if existing else name, kind, data)

    def delete(self, path: str, name: str) -> None:
        key = self.key(path)
        if key is not None:
            key.values.pop(name.lower(), None)

    def delete_key(self, path: str) -> None:
        norm = _norm(path)
        if any(k.startswith(norm + "\\") for k in self.keys):
            raise ApiError("The key has subkeys.", 1018)
        self.keys.pop(norm, None)

    def has_subkeys(self, path: str) -> bool:
        norm = _norm(path)
        return any(k.startswith(norm + "\\") for k in self.keys)


# --- files, certificates, services, firewall -----------------------------------------------------


@dataclass
class File:
    path: str
    sd: SecurityDescriptor
    corrupt: bool = False  # a key container whose key no longer opens


@dataclass
class KeyProv:
    """CERT_KEY_PROV_INFO: the certificate's link to its key (prov type 0 = CNG)."""

    prov_type: int
    container: str
    provider: str
    key_spec: int = 1
    cng_file: str = ""  # a CNG key's unique file name in Crypto\Keys (CAPI names derive)


@dataclass
class Cert:
    thumbprint: str
    not_after: datetime
    not_before: datetime
    subject: str = "CN=vm-rdp01"
    issuer: str = "CN=vm-rdp01"
    eku: tuple[str, ...] = (SERVER_AUTH,)
    key: KeyProv | None = None


@dataclass
class Service:
    name: str
    display: str
    state: str = "Running"  # Running, Stopped, Start Pending, Stop Pending
    start: str = "Manual"  # Auto, Manual, Disabled
    account: str = "LocalSystem"
    exit_code: int = 0
    pid: int = 0
    delayed: bool = False
    depends_on: tuple[str, ...] = ()
    hang: str | None = None  # "start" or "stop": the service never leaves the pending state


@dataclass
class Rule:
    name: str
    enabled: bool = True
    direction: str = "Inbound"
    action: str = "Allow"
    protocol: str = "TCP"
    local_ports: str = "3389"
    remote: str = "Any"
    program: str = r"%SystemRoot%\system32\svchost.exe"
    service: str = "termservice"
    profile: str = "Any"
    group: str = "@FirewallAPI.dll,-28752"
    store: str = "Local"  # Local (PersistentStore) or GroupPolicy


@dataclass
class Profile:
    name: str
    enabled: bool = True
    inbound: str = "NotConfigured"  # AllowInboundRules in the local (Persistent) store
    local_rules: str = "NotConfigured"
    policy_inbound: str = "NotConfigured"  # the same settings from Group Policy (they win)
    policy_local_rules: str = "NotConfigured"

    @property
    def effective_inbound(self) -> str:
        return self.policy_inbound if self.policy_inbound != "NotConfigured" else self.inbound

    @property
    def effective_local_rules(self) -> str:
        return self.policy_local_rules if self.policy_local_rules != "NotConfigured" else self.local_rules


@dataclass
class Event:
    id: int
    time: datetime
    source: str = ""  # SCM events: the display name they name


@dataclass
class Lock:
    run: str
    until: datetime
    # The file holds no JSON (the run was killed, or the VM lost power, while writing it): `until`
    # is when it was written plus the longest a lock lasts (azrdp.guest.plan.LOCK_LONGEST).
    torn: bool = False


@dataclass
class AzrdpData:
    """C:\\ProgramData\\azrdp: the executor's runs (run.json + op records + backups) and lock."""

    exists: bool = False  # the folder exists
    owner: str = SYSTEM
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)  # run id -> run.json, ops, backups
    order: list[str] = field(default_factory=list)  # creation order
    lock: Lock | None = None


# --- the machine ---------------------------------------------------------------------------------


@dataclass
class Machine:
    clock: datetime
    boot: datetime
    version: str = "10.0.20348"
    build: int = 20348
    ps_version: str = "5.1.20348.2849"
    # The script ran in a 32-bit powershell.exe (SysWOW64): WOW64 redirects HKLM\SOFTWARE and System32.
    ps_32bit: bool = False
    domain: bool = False
    machine_guid: str = "3d5a2b9e-8c1f-4e6a-9b2d-7f0e1c4a5b6d"
    computer: str = "vm-rdp01"
    tspkg: str = "10.0.20348.2849"
    ts_mode: int = 0  # 1 = Remote Desktop Session Host role
    policy_sources: dict[str, int] = field(default_factory=dict)
    hash_type: int = 1  # Win32_TSGeneralSetting.SSLCertificateSHA1HashType when a pin is set
    registry: Registry = field(default_factory=Registry)
    files: dict[str, File] = field(default_factory=dict)  # lower-case path -> file or folder
    rd_store: dict[str, Cert] = field(default_factory=dict)
    my_store: dict[str, Cert] = field(default_factory=dict)
    services: dict[str, Service] = field(default_factory=dict)
    rules: list[Rule] = field(default_factory=list)
    profiles: dict[str, Profile] = field(default_factory=dict)
    active: list[str] = field(default_factory=lambda: ["Public"])
    events: list[Event] = field(default_factory=list)
    listeners: dict[int, tuple[int, str]] = field(default_factory=dict)  # other processes on ports
    drive: str = "C:"
    disk_free: int = 96 * 1024**3
    disk_size: int = 127 * 1024**3
    # TermService's view since it last started: the port it read and the certificate it uses.
    ts_port: int | None = None
    ts_cert: str = ""
    azrdp: AzrdpData = field(default_factory=AzrdpData)
    next_pid: int = 5000
    service_seconds: int = 2  # how long a start or stop takes
    mint_seconds: int = 3  # a new certificate appears this long after the services start
    minted_at: datetime | None = None
    failing_sections: list[str] = field(default_factory=list)

    # -- files --

    def file(self, path: str) -> File | None:
        return self.files.get(path.lower())

    def put_file(self, path: str, sd: SecurityDescriptor, corrupt: bool = False) -> File:
        item = File(path, sd, corrupt)
        self.files[path.lower()] = item
        return item

    # -- keys --

    def capi_file_name(self, container: str) -> str:
        """CAPI's key file name: MD5 of the lower-case container name and its NUL as four
        little-endian words, then the MachineGuid (TSSecKeySet1 -> f686aace... in the reference)."""
        digest = hashlib.md5((container.lower() + "\0").encode("ascii"), usedforsecurity=False).digest()
        return "".join(f"{word:08x}" for word in struct.unpack("<4I", digest)) + "_" + self.machine_guid

    def key_path(self, key: KeyProv) -> str:
        if key.prov_type == 0:
            return CNG_KEYS + "\\" + key.cng_file
        return MACHINEKEYS + "\\" + self.capi_file_name(key.container)

    def key_file(self, key: KeyProv | None) -> File | None:
        return self.file(self.key_path(key)) if key is not None else None

    def key_sd_for_build(self, folder_hardened: bool) -> SecurityDescriptor:
        """A new TSSecKeySet1 container: SYSTEM Full, NETWORK SERVICE Read, plus Administrators Read
        up to 14393 or SessionEnv Full from 17763 (measured), absent under a hardened folder."""
        third = "(A;;FR;;;BA)" if self.build < 17763 else f"(A;;FA;;;{SESSIONENV_SID})"
        return parse("O:SYD:P(A;;FA;;;SY)(A;;FR;;;NS)" + ("" if folder_hardened else third))

    # -- services --

    def service(self, name: str) -> Service | None:
        return self.services.get(name.lower())

    def start_service(self, name: str) -> None:
        """StartService as the SCM does it: dependencies first; a disabled service refuses."""
        service = self.service(name)
        if service is None:
            raise ApiError(f"Service {name} was not found.", 1060)
        if service.state == "Running":
            return
        if "Pending" in service.state:
            raise ApiError(f"{name} is {service.state}.", 1056)
        if service.start == "Disabled":
            raise ApiError(f"Cannot start service {name}: it is disabled.", 1058)
        for dependency in service.depends_on:
            try:
                self.start_service(dependency)
            except ApiError:
                raise ApiError(f"A dependency of {name} failed to start.", 1068) from None
        if service.hang == "start":
            service.state = "Start Pending"  # event 7022 territory: it never reaches Running
            return
        self.next_pid += 4
        service.pid = self.next_pid
        service.state = "Running"
        service.exit_code = 0
        if service.name in ("TermService", "SessionEnv"):
            self._remote_desktop_started(service.name)

    def stop_service(self, name: str) -> None:
        """ServiceController.Stop: running dependents first (dotnet corefx ServiceController.cs)."""
        service = self.service(name)
        if service is None:
            raise ApiError(f"Service {name} was not found.", 1060)
        for dependent in self.dependents(service.name):
            if dependent.state == "Running":
                self.stop_service(dependent.name)
        if service.state == "Stopped":
            return
        if service.hang == "stop":
            service.state = "Stop Pending"
            return
        service.state = "Stopped"
        service.pid = 0

    def dependents(self, name: str) -> list[Service]:
        return [s for s in self.services.values() if name.lower() in (d.lower() for d in s.depends_on)]

    # -- Remote Desktop --

    def rdp_allowed(self) -> bool:
        policy = self.registry.number(TSPOL, "fDenyTSConnections")
        deny = policy if policy is not None else self.registry.number(TS, "fDenyTSConnections")
        return deny != 1

    def listening(self) -> int | None:
        """The port TermService listens on, if any: it reads PortNumber when it starts, and listens
        while RDP is allowed (the policy value wins), TSEnabled and fEnableWinStation are not 0
        and no other process holds the port (reference C-DENY, C-TSENABLED, C-LISTENER)."""
        ts = self.service("TermService")
        port = self.ts_port
        if ts is None or ts.state != "Running" or port is None or port in self.listeners:
            return None
        if not self.rdp_allowed() or self.registry.number(TS, "TSEnabled") == 0:
            return None
        if self.registry.number(RDPTCP, "fEnableWinStation") == 0:
            return None
        return port

    def pin(self) -> str:
        value = self.registry.get(RDPTCP, "SSLCertificateSHA1Hash")
        return value.data.hex().upper() if value is not None and isinstance(value.data, bytes) else ""

    def _remote_desktop_started(self, name: str) -> None:
        if name == "TermService":
            port = self.registry.number(RDPTCP, "PortNumber")
            self.ts_port = port if port is not None and 1 <= port <= 65535 else None
        self._certificate_at_start()

    def usable_key(self, key: KeyProv | None) -> bool:
        """The key exists and is intact (SYSTEM could open it); NETWORK SERVICE may not read it."""
        item = self.key_file(key)
        return item is not None and not item.corrupt

    def _certificate_at_start(self) -> None:
        """Which certificate the listener uses, and whether Windows mints one (the module docstring)."""
        pin = self.pin()
        if pin:
            self.ts_cert = pin
            return
        entries = sorted(self.rd_store.values(), key=lambda c: c.not_after, reverse=True)
        valid = [c for c in entries if c.not_after > self.clock and c.key is not None]
        if valid:
            # Even when its key is unreadable or gone: nothing is due for renewal, it never recovers.
            self.ts_cert = valid[0].thumbprint
            if not self.usable_key(valid[0].key):
                self.events.append(Event(1057, self.clock))  # "Keyset does not exist"
            return
        if entries:
            # Expired or key-less entries block the next creation (RCM 1057/1058).
            self.ts_cert = entries[0].thumbprint
            event = 1058 if any(c.not_after <= self.clock for c in entries) else 1057
            self.events.append(Event(event, self.clock))
            return
        self.ts_cert = ""
        created = self._mint()
        if created is None:
            self.events.append(Event(1058, self.clock))

    def _mint(self) -> Cert | None:
        store = self.registry.key(RD_CERTIFICATES) or self.registry.key(RD_STORE)
        if (
            store is not None
            and store.sd is not None
            and not allows(store.sd, SYSTEM_TOKEN, KEY_CREATE_SUB_KEY | KEY_SET_VALUE, "key")
        ):
            return None  # a Deny for SYSTEM on the store key stops the creation
        key = KeyProv(24, SELF_SIGNED_CONTAINER, SELF_SIGNED_PROVIDER)
        path = self.key_path(key)
        if self.file(path) is None:
            folder = self.file(MACHINEKEYS)
            if folder is not None and not allows(folder.sd, SYSTEM_TOKEN, FILE_ADD_FILE):
                return None
            hardened = folder is not None and not allows(folder.sd, {EVERYONE}, 0x12019F)
            self.put_file(path, self.key_sd_for_build(hardened))
        # An existing TSSecKeySet1 container is reused as it is.
        seed = f"{self.machine_guid}:{self.clock.isoformat()}:{len(self.events)}:{self.next_pid}"
        thumbprint = hashlib.sha1(seed.encode(), usedforsecurity=False).hexdigest().upper()
        now = self.clock.replace(microsecond=0)
        cert = Cert(
            thumbprint,
            now + timedelta(days=SELF_SIGNED_DAYS),
            now,
            f"CN={self.computer}",
            f"CN={self.computer}",
            (SERVER_AUTH,),
            key,
        )
        self.registry.ensure(RD_CERTIFICATES)
        self.rd_store[thumbprint] = cert
        self.ts_cert = thumbprint
        self.minted_at = self.clock
        return cert

    # -- what TermService can do with its certificate (not reported: Windows' own outcome) --

    def listener_key_readable(self) -> bool:
        cert = self.rd_store.get(self.ts_cert) or self.my_store.get(self.ts_cert)
        if cert is None or not self.usable_key(cert.key):
            return False
        item = self.key_file(cert.key)
        assert item is not None
        return allows(item.sd, TERMSERVICE_TOKEN, FILE_READ)

    # -- time --

    def advance(self, seconds: float) -> None:
        self.clock += timedelta(seconds=seconds)

    def count_events(self, event_id: int, days: int = 7) -> list[Event]:
        since = self.clock - timedelta(days=days)
        return [e for e in self.events if e.id == event_id and e.time >= since]
