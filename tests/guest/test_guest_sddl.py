"""Security descriptors as azrdp reads them: parsed from SDDL, evaluated for the access a token
gets (denies before allows, split grants summed, group SIDs of NETWORK SERVICE counted, inherit-only
skipped), edited canonically, never wholesale. The Windows model evaluates with its own walk
(azrdp/emulator/windows/access.py); a property test keeps the two in agreement."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from azrdp.emulator.windows.access import granted
from azrdp.guest import sddl as s

NS_READ = s.FILE_READ


def ns_reads(text: str) -> bool:
    return s.holds(s.access(s.parse(text), s.NETWORK_SERVICE_TOKEN), NS_READ)


def test_the_service_sid_is_derived_from_the_name_as_windows_does() -> None:
    # The reference's measured value for NT SERVICE\SessionEnv.
    assert s.SESSIONENV == "S-1-5-80-4022436659-1090538466-1613889075-870485073-3428993833"
    assert s.service_sid("sessionenv") == s.SESSIONENV  # upper-cased before hashing


def test_parse_and_print_round_trip_with_aliases_and_masks() -> None:
    text = "O:SYG:SYD:PAI(A;;FA;;;SY)(A;;FR;;;NS)(A;OICI;0x12019f;;;WD)(D;;FA;;;S-1-5-21-1-2-3-1001)"
    sd = s.parse(text)
    assert sd.owner == s.SYSTEM and sd.dacl_flags == "PAI"
    assert [a.sid for a in sd.dacl or ()] == [s.SYSTEM, s.NETWORK_SERVICE, s.EVERYONE, "S-1-5-21-1-2-3-1001"]
    assert s.parse(sd.text()) == sd
    assert s.owner_and_dacl(sd).group is None  # azrdp never writes the group (nor the SACL)
    with pytest.raises(s.SddlError):
        s.parse("D:(A;;FA;;;NOT-A-SID")


@pytest.mark.parametrize(
    ("text", "reads"),
    [
        # The measured self-signed key: NETWORK SERVICE Read.
        ("O:SYD:P(A;;FA;;;SY)(A;;FR;;;NS)(A;;FR;;;BA)", True),
        # Readable through a group NETWORK SERVICE's token holds (defect 6: group SIDs).
        ("O:SYD:P(A;;FA;;;SY)(A;;FR;;;BU)", True),  # Users
        ("O:SYD:P(A;;FA;;;SY)(A;;FR;;;S-1-5-6)", True),  # SERVICE
        ("O:SYD:P(A;;FA;;;SY)(A;;FR;;;AU)", True),  # Authenticated Users
        ("O:SYD:P(A;;FA;;;SY)(A;;FR;;;WD)", True),  # Everyone
        (f"O:SYD:P(A;;FA;;;SY)(A;;FR;;;{s.TERMSERVICE})", True),  # TermService's service SID
        # A split grant: the read bits from two ACEs add up (defect 6).
        ("O:SYD:P(A;;FA;;;SY)(A;;0x120001;;;NS)(A;;0x000088;;;BU)", True),
        ("O:SYD:P(A;;FA;;;SY)(A;;0x120001;;;NS)", False),
        # A deny first beats any allow; an allow first keeps the bits it granted.
        ("O:SYD:P(D;;FA;;;NS)(A;;FA;;;SY)(A;;FR;;;NS)", False),
        ("O:SYD:P(D;;FR;;;WD)(A;;FR;;;NS)", False),  # a deny through a group
        ("O:SYD:P(A;;FR;;;NS)(D;;FA;;;NS)", True),  # non-canonical: order decides
        # Inherit-only ACEs do not apply to the object.
        ("O:SYD:P(A;;FA;;;SY)(A;IO;FR;;;NS)", False),
        # Generic rights map to the file rights.
        ("O:SYD:P(A;;GR;;;NS)", True),
        # No grant at all; and the NULL DACL that lets everyone in.
        ("O:SYD:P(A;;FA;;;SY)(A;;FA;;;BA)", False),
        ("O:SYD:NO_ACCESS_CONTROL", True),
        # Owner rights alone are READ_CONTROL and WRITE_DAC, not read.
        ("O:NSD:P(A;;FA;;;SY)", False),
    ],
)
def test_network_service_read_access(text: str, reads: bool) -> None:
    assert ns_reads(text) is reads
    # The model's own walk agrees.
    assert s.holds(granted(s.parse(text), s.NETWORK_SERVICE_TOKEN), NS_READ) is reads


def test_edit_adds_removes_and_rebuilds_canonically_keeping_inherited_aces() -> None:
    messy = s.parse("O:SYD:AI(A;;FR;;;NS)(A;ID;FA;;;BA)(D;;FA;;;NS)(A;;FA;;;SY)")
    assert not s.canonical(messy.dacl or ())
    deny = s.parse("D:(D;;FA;;;NS)").dacl[0]  # type: ignore[index]
    grant = s.Ace("A", (), s.FILE_READ, s.NETWORK_SERVICE)
    out = s.edit(messy, add=[grant], remove=[deny])
    assert s.canonical(out.dacl or ())
    assert out.text() == "O:SYD:AI(A;;FR;;;NS)(A;;FA;;;SY)(A;ID;FA;;;BA)"
    assert ns_reads(out.text())
    # The owner changes only when asked.
    assert s.edit(messy, owner=s.ADMINISTRATORS).owner == s.ADMINISTRATORS


# --- property: azrdp's access walk and the model's agree ------------------------------------------

SIDS = [
    s.SYSTEM,
    s.NETWORK_SERVICE,
    s.ADMINISTRATORS,
    s.USERS,
    s.EVERYONE,
    s.AUTHENTICATED_USERS,
    s.SERVICE,
    s.TERMSERVICE,
    s.SESSIONENV,
    "S-1-3-4",
    "S-1-5-21-1-2-3-1001",
]
MASKS = [s.FILE_ALL, s.FILE_READ, 0x120001, 0x000088, 0x12019F, 0x80000000, 0x10000000, 0x40000, 0x20000, 0x1]
aces = st.builds(
    s.Ace,
    st.sampled_from(["A", "D"]),
    st.lists(st.sampled_from(["OI", "CI", "IO", "ID"]), max_size=2, unique=True).map(tuple),
    st.sampled_from(MASKS),
    st.sampled_from(SIDS),
)
descriptors = st.builds(
    s.SecurityDescriptor,
    st.sampled_from([s.SYSTEM, s.NETWORK_SERVICE, s.ADMINISTRATORS, "S-1-5-21-1-2-3-1001"]),
    st.none(),
    st.sampled_from(["", "P", "PAI"]),
    st.lists(aces, max_size=6).map(tuple),
)
tokens = st.sampled_from([s.NETWORK_SERVICE_TOKEN, s.SYSTEM_TOKEN, s.EVERYONE_TOKEN])


@settings(max_examples=400, deadline=None)
@given(descriptors, tokens)
def test_azrdp_and_the_model_compute_the_same_access(sd: s.SecurityDescriptor, token: frozenset[str]) -> None:
    assert s.access(sd, token) == granted(sd, token, "file")
    assert s.access(sd, token, s.KEY_MAPPING) == granted(sd, token, "key")
    # Printing and parsing back changes nothing.
    assert s.parse(sd.text()) == sd


@settings(max_examples=200, deadline=None)
@given(descriptors, st.lists(aces, max_size=3), st.lists(aces, max_size=3))
def test_edits_are_canonical_and_never_lose_inherited_aces(
    sd: s.SecurityDescriptor, add: list[s.Ace], remove: list[s.Ace]
) -> None:
    out = s.edit(sd, add=[a for a in add if a.explicit], remove=remove)
    assert s.canonical(out.dacl or ())
    assert [a for a in out.dacl or () if a.inherited] == [a for a in sd.dacl or () if a.inherited]
    for ace in add:
        if ace.explicit:
            assert ace in (out.dacl or ())
