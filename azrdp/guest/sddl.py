"""Security descriptors in SDDL: parse, format, and the access a token gets from a DACL.

The collector reports owner + DACL of the MachineKeys folder, the key files and the Remote Desktop
store key as SDDL strings, exactly as Windows prints them; the checks judge them *by meaning*
here, never by string: which rights a given token (NETWORK SERVICE's, SYSTEM's) ends up with.

Access follows the NT access-check walk (Learn: "How DACLs Control Access to an Object"): ACEs in
order, an allow grants the bits not already denied, a deny denies the bits not already granted,
inherit-only ACEs skip the object itself, and the owner implicitly holds READ_CONTROL and
WRITE_DAC. In a DACL in canonical order (explicit denies first) denies therefore beat allows; in
a non-canonical one Windows honours the order, and so does this. Grants split over several ACEs
add up. Generic rights are mapped with the file or registry mapping. Pure.
"""

from __future__ import annotations

import hashlib
import re
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

SYSTEM = "S-1-5-18"
NETWORK_SERVICE = "S-1-5-20"
LOCAL_SERVICE = "S-1-5-19"
ADMINISTRATORS = "S-1-5-32-544"
USERS = "S-1-5-32-545"
EVERYONE = "S-1-1-0"
AUTHENTICATED_USERS = "S-1-5-11"
SERVICE = "S-1-5-6"


def service_sid(name: str) -> str:
    """NT SERVICE\\<name>: S-1-5-80- and the SHA-1 of the upper-cased UTF-16LE name as five DWORDs.

    Derived from the name alone, so the same on every machine (the reference gives SessionEnv's,
    S-1-5-80-4022436659-..., which this reproduces; a test checks it).
    """
    digest = hashlib.sha1(name.upper().encode("utf-16-le"), usedforsecurity=False).digest()
    return "S-1-5-80-" + "-".join(str(part) for part in struct.unpack("<5I", digest))


SESSIONENV = service_sid("SessionEnv")
TERMSERVICE = service_sid("TermService")

# Whom TermService's token holds, running as NETWORK SERVICE: the account, Everyone, Authenticated
# Users and Users (Learn: "NetworkService Account" - the rights of Users and Authenticated Users),
# SERVICE (Learn: well-known SIDs, "all principals that log on as a service") and the service's own
# SID. A key any of them may read is readable by the listener.
NETWORK_SERVICE_TOKEN = frozenset(
    {NETWORK_SERVICE, EVERYONE, AUTHENTICATED_USERS, USERS, SERVICE, TERMSERVICE}
)
# SYSTEM's token holds Administrators too (Learn: "LocalSystem Account").
SYSTEM_TOKEN = frozenset({SYSTEM, ADMINISTRATORS, EVERYONE, AUTHENTICATED_USERS})
EVERYONE_TOKEN = frozenset({EVERYONE})

# SDDL SID strings (Learn: "SID strings"), the machine-independent ones.
SID_ALIASES: dict[str, str] = {
    "AN": "S-1-5-7",
    "AO": "S-1-5-32-548",
    "AU": AUTHENTICATED_USERS,
    "BA": ADMINISTRATORS,
    "BG": "S-1-5-32-546",
    "BO": "S-1-5-32-551",
    "BU": USERS,
    "CG": "S-1-3-1",
    "CO": "S-1-3-0",
    "IU": "S-1-5-4",
    "LS": LOCAL_SERVICE,
    "NS": NETWORK_SERVICE,
    "NU": "S-1-5-2",
    "OW": "S-1-3-4",
    "PS": "S-1-5-10",
    "PU": "S-1-5-32-547",
    "RC": "S-1-5-12",
    "RD": "S-1-5-32-555",
    "RE": "S-1-5-32-552",
    "RU": "S-1-5-32-554",
    "SO": "S-1-5-32-549",
    "SU": SERVICE,
    "SY": SYSTEM,
    "WD": EVERYONE,
    "WR": "S-1-5-33",
    "AC": "S-1-15-2-1",
    "IS": "S-1-5-32-568",
    "CY": "S-1-5-32-569",
    "ER": "S-1-5-32-573",
    "RM": "S-1-5-32-580",
}
ALIAS_OF_SID = {sid: alias for alias, sid in SID_ALIASES.items()}

GENERIC_ALL, GENERIC_EXECUTE, GENERIC_WRITE, GENERIC_READ = 0x10000000, 0x20000000, 0x40000000, 0x80000000
READ_CONTROL, WRITE_DAC, WRITE_OWNER, DELETE = 0x20000, 0x40000, 0x80000, 0x10000
FILE_ALL = 0x1F01FF
FILE_READ = 0x120089  # FILE_GENERIC_READ: read data, attributes, extended attributes, permissions
FILE_WRITE = 0x120116
FILE_EXECUTE = 0x1200A0
FILE_ADD_FILE = 0x2  # on a folder: create files in it
KEY_ALL = 0xF003F
KEY_READ = 0x20019
KEY_WRITE = 0x20006
KEY_CREATE_SUB_KEY = 0x4
KEY_SET_VALUE = 0x2
# The default MachineKeys folder grants Everyone this (KB 278381; measured on every build).
MACHINEKEYS_EVERYONE = 0x12019F

# Rights strings (Learn: "ACE strings"): whole masks first, then single bits.
RIGHTS_WHOLE = {"FA": FILE_ALL, "FR": FILE_READ, "FW": FILE_WRITE, "FX": FILE_EXECUTE, "KA": KEY_ALL}
RIGHTS_WHOLE |= {"KR": KEY_READ, "KW": KEY_WRITE, "KX": KEY_READ}
RIGHTS_BITS = {
    "GA": GENERIC_ALL,
    "GR": GENERIC_READ,
    "GW": GENERIC_WRITE,
    "GX": GENERIC_EXECUTE,
    "RC": READ_CONTROL,
    "SD": DELETE,
    "WD": WRITE_DAC,
    "WO": WRITE_OWNER,
    "RP": 0x10,
    "WP": 0x20,
    "CC": 0x1,
    "DC": 0x2,
    "LC": 0x4,
    "SW": 0x8,
    "LO": 0x80,
    "DT": 0x40,
    "CR": 0x100,
}
# The order Windows prints the single-bit rights in.
_BIT_ORDER: tuple[str, ...] = ("GA", "GR", "GW", "GX", "RC", "SD", "WD", "WO", "RP", "WP", "CC", "DC", "LC")
_BIT_ORDER += ("SW", "LO", "DT", "CR")
ACE_FLAGS = ("OI", "CI", "NP", "IO", "ID", "SA", "FA")
FILE_MAPPING = (FILE_READ, FILE_WRITE, FILE_EXECUTE, FILE_ALL)
KEY_MAPPING = (KEY_READ, KEY_WRITE, KEY_READ, KEY_ALL)


class SddlError(ValueError):
    """Text that is not an SDDL security descriptor this module understands."""


@dataclass(frozen=True)
class Ace:
    type: str  # "A" allow, "D" deny; other types are kept and ignored by the access walk
    flags: tuple[str, ...]  # OI, CI, NP, IO, ID ...
    mask: int
    sid: str  # always the S-1-... form
    rest: str = ";"  # object guid ; inherit object guid (kept as written; both empty here)

    @property
    def inherited(self) -> bool:
        return "ID" in self.flags

    @property
    def inherit_only(self) -> bool:
        return "IO" in self.flags

    @property
    def explicit(self) -> bool:
        return not self.inherited

    def text(self) -> str:
        return (
            f"({self.type};{''.join(self.flags)};{format_mask(self.mask)};{self.rest};{sid_text(self.sid)})"
        )


@dataclass(frozen=True)
class SecurityDescriptor:
    owner: str | None = None
    group: str | None = None
    dacl_flags: str = ""  # P (protected), AI, AR
    dacl: tuple[Ace, ...] | None = field(default=())  # None: no DACL at all (everyone full access)

    def text(self) -> str:
        out = ""
        if self.owner is not None:
            out += "O:" + sid_text(self.owner)
        if self.group is not None:
            out += "G:" + sid_text(self.group)
        if self.dacl is None:
            return out + "D:NO_ACCESS_CONTROL"
        return out + "D:" + self.dacl_flags + "".join(a.text() for a in self.dacl)


def sid_text(sid: str) -> str:
    return ALIAS_OF_SID.get(sid, sid)


def parse_sid(text: str) -> str:
    text = text.strip()
    if text.upper() in SID_ALIASES:
        return SID_ALIASES[text.upper()]
    if re.fullmatch(r"S-1-\d+(-\d+)*", text, re.I):
        return "S" + text[1:]
    raise SddlError(f"unknown SID {text!r}")


def format_mask(mask: int) -> str:
    """As Windows prints a mask: a whole-mask alias, else single-bit aliases, else hex."""
    for alias, value in RIGHTS_WHOLE.items():
        if mask == value:
            return alias
    parts, left = [], mask
    for alias in _BIT_ORDER:
        bit = RIGHTS_BITS[alias]
        if left & bit:
            parts.append(alias)
            left &= ~bit
    if left == 0 and parts:
        return "".join(parts)
    return f"0x{mask:x}"


def parse_mask(text: str) -> int:
    text = text.strip()
    if text.lower().startswith("0x"):
        return int(text, 16)
    if text.isdigit():
        return int(text)
    if text.upper() in RIGHTS_WHOLE:
        return RIGHTS_WHOLE[text.upper()]
    mask = 0
    for i in range(0, len(text), 2):
        alias = text[i : i + 2].upper()
        if alias not in RIGHTS_BITS:
            raise SddlError(f"unknown rights {text!r}")
        mask |= RIGHTS_BITS[alias]
    return mask


def parse_ace(text: str) -> Ace:
    body = text.strip()
    if not (body.startswith("(") and body.endswith(")")):
        raise SddlError(f"an ACE is written in parentheses: {text!r}")
    parts = body[1:-1].split(";")
    if len(parts) != 6:
        raise SddlError(f"an ACE has six fields: {text!r}")
    kind, flags, rights, guid, inherit_guid, sid = parts
    if not re.fullmatch(r"[A-Z]{1,2}", kind):
        raise SddlError(f"unknown ACE type in {text!r}")
    flag_list = tuple(flags[i : i + 2].upper() for i in range(0, len(flags), 2))
    if any(f not in ACE_FLAGS for f in flag_list):
        raise SddlError(f"unknown ACE flags in {text!r}")
    return Ace(kind, flag_list, parse_mask(rights), parse_sid(sid), f"{guid};{inherit_guid}")


_SECTION = re.compile(r"([OGDS]):")


def parse(text: str) -> SecurityDescriptor:
    """An SDDL string (owner, group, DACL; a SACL is ignored) as a SecurityDescriptor."""
    if not isinstance(text, str) or not text.strip():
        raise SddlError("empty security descriptor")
    text = text.strip()
    spans = [(m.group(1), m.start(), m.end()) for m in _SECTION.finditer(text) if _starts_section(text, m)]
    if not spans or spans[0][1] != 0:
        raise SddlError(f"not SDDL: {text[:40]!r}")
    owner = group = None
    dacl: tuple[Ace, ...] | None = ()
    dacl_flags = ""
    for i, (name, _, end) in enumerate(spans):
        stop = spans[i + 1][1] if i + 1 < len(spans) else len(text)
        value = text[end:stop]
        if name == "O":
            owner = parse_sid(value)
        elif name == "G":
            group = parse_sid(value)
        elif name == "D":
            if value.upper().startswith("NO_ACCESS_CONTROL"):
                dacl = None
                continue
            head = value.split("(", 1)[0]
            if not re.fullmatch(r"(P|AI|AR)*", head):
                raise SddlError(f"unknown DACL flags {head!r}")
            dacl_flags = head
            aces = re.findall(r"\([^()]*\)", value[len(head) :])
            if "".join(aces) != value[len(head) :]:
                raise SddlError(f"damaged DACL {value[:40]!r}")
            dacl = tuple(parse_ace(a) for a in aces)
    return SecurityDescriptor(owner, group, dacl_flags, dacl)


def _starts_section(text: str, match: re.Match[str]) -> bool:
    """A section letter outside an ACE's parentheses (SIDs inside ACEs contain no ':')."""
    return text[: match.start()].count("(") == text[: match.start()].count(")")


def map_generic(mask: int, mapping: Sequence[int] = FILE_MAPPING) -> int:
    read, write, execute, everything = mapping
    out = mask & ~(GENERIC_READ | GENERIC_WRITE | GENERIC_EXECUTE | GENERIC_ALL)
    if mask & GENERIC_READ:
        out |= read
    if mask & GENERIC_WRITE:
        out |= write
    if mask & GENERIC_EXECUTE:
        out |= execute
    if mask & GENERIC_ALL:
        out |= everything
    return out


def access(sd: SecurityDescriptor, token: Iterable[str], mapping: Sequence[int] = FILE_MAPPING) -> int:
    """The rights `token` ends up with on an object with this descriptor."""
    sids = set(token)
    if sd.dacl is None:
        return map_generic(GENERIC_ALL, mapping)
    granted = denied = 0
    owner_rights = [a for a in sd.dacl if a.sid == "S-1-3-4" and not a.inherit_only]
    if sd.owner is not None and sd.owner in sids and not owner_rights:
        granted |= READ_CONTROL | WRITE_DAC
    for ace in sd.dacl:
        if ace.inherit_only:
            continue
        if ace.sid not in sids and not (ace.sid == "S-1-3-4" and sd.owner in sids):
            continue
        mask = map_generic(ace.mask, mapping)
        if ace.type == "A":
            granted |= mask & ~denied
        elif ace.type == "D":
            denied |= mask & ~granted
    return granted


def holds(rights: int, wanted: int) -> bool:
    return rights & wanted == wanted


def canonical(aces: Sequence[Ace]) -> bool:
    """Explicit denies, then explicit allows, then inherited ACEs (Learn: "Order of ACEs in a DACL")."""
    rank = [_rank(a) for a in aces]
    return rank == sorted(rank)


def _rank(ace: Ace) -> int:
    if ace.inherited:
        return 2
    return 0 if ace.type == "D" else 1


def in_canonical_order(aces: Sequence[Ace]) -> tuple[Ace, ...]:
    """The same ACEs in canonical order; each group keeps its own order (a stable sort)."""
    return tuple(sorted(aces, key=_rank))


def edit(
    sd: SecurityDescriptor,
    add: Sequence[Ace] = (),
    remove: Sequence[Ace] = (),
    owner: str | None = None,
) -> SecurityDescriptor:
    """The descriptor with explicit ACEs removed and added, rebuilt in canonical order.

    Inherited ACEs, the group and the DACL flags are kept; the owner changes only when given.
    """
    kept = [a for a in sd.dacl or () if a.inherited or a not in remove]
    for ace in add:
        if ace not in kept:
            kept.append(ace)
    return replace(sd, owner=owner if owner is not None else sd.owner, dacl=in_canonical_order(kept))


def owner_and_dacl(sd: SecurityDescriptor) -> SecurityDescriptor:
    """The sections azrdp reads and writes (never the group, never the SACL)."""
    return replace(sd, group=None)
