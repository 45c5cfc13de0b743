"""Windows' access check, as the model's own ground truth (never azrdp's decision code).

The model decides what Windows would allow with this walk, written apart from the one azrdp's
checks use (azrdp.guest.sddl.access), so a mistake in either shows up where they disagree (a
property test compares them). The walk follows the NT kernel's maximum-allowed check: ACEs in
order, allow grants the bits not yet denied, deny denies the bits not yet granted, inherit-only
ACEs skip the object, the owner holds READ_CONTROL and WRITE_DAC unless an OWNER RIGHTS ACE says
otherwise (Learn: "How AccessCheck Works", "SID strings: OW"). Only SDDL parsing is shared.
"""

from __future__ import annotations

from collections.abc import Iterable

from azrdp.guest.sddl import SecurityDescriptor

OWNER_RIGHTS = "S-1-3-4"
_GENERIC = {
    # file objects: FILE_GENERIC_READ, _WRITE, _EXECUTE, FILE_ALL_ACCESS
    # (Learn: File Security and Access Rights)
    "file": (0x120089, 0x120116, 0x1200A0, 0x1F01FF),
    # registry keys: KEY_READ, KEY_WRITE, KEY_EXECUTE, KEY_ALL_ACCESS
    # (Learn: Registry Key Security and Access Rights)
    "key": (0x20019, 0x20006, 0x20019, 0xF003F),
}


def _mapped(mask: int, kind: str) -> int:
    read, write, execute, everything = _GENERIC[kind]
    out = mask & 0x0FFFFFFF
    for bit, value in (
        (0x80000000, read),
        (0x40000000, write),
        (0x20000000, execute),
        (0x10000000, everything),
    ):
        if mask & bit:
            out |= value
    return out


def granted(sd: SecurityDescriptor | None, token: Iterable[str], kind: str = "file") -> int:
    """The rights the token is granted on an object with this descriptor."""
    sids = frozenset(token)
    if sd is None or sd.dacl is None:
        return _mapped(0x10000000, kind)
    allowed = 0
    refused = 0
    owner_listed = any(a.sid == OWNER_RIGHTS and "IO" not in a.flags for a in sd.dacl)
    is_owner = sd.owner is not None and sd.owner in sids
    if is_owner and not owner_listed:
        allowed = 0x20000 | 0x40000
    for ace in sd.dacl:
        if "IO" in ace.flags:
            continue
        applies = ace.sid in sids or (ace.sid == OWNER_RIGHTS and is_owner)
        if not applies:
            continue
        bits = _mapped(ace.mask, kind)
        if ace.type == "A":
            allowed |= bits & ~refused
        elif ace.type == "D":
            refused |= bits & ~allowed
    return allowed


def allows(sd: SecurityDescriptor | None, token: Iterable[str], wanted: int, kind: str = "file") -> bool:
    return granted(sd, token, kind) & wanted == wanted
