"""How Run Command renders the parameters azrdp sends.

The handler writes each parameter on the script's command line as `-Name value`, unquoted,
through a cmd.exe layer (Azure/azure-powershell#7269: a space splits a value; #29880: `^` and
other cmd.exe characters are stripped). So no value may be empty (it would leave `-Name` without
an argument), none may start with `-` (PowerShell would read another parameter name), and every
value must be made of `[A-Za-z0-9._-]` (a comma, for one, makes PowerShell pass an array).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from azrdp.emulator import guest_repair
from azrdp.errors import UsageError
from azrdp.guest import contract as c
from azrdp.repairs import Where, all_repairs
from azrdp.repairs import outcome as ro

SAFE = re.compile(r"[A-Za-z0-9._-]+")
GUEST_IDS = [r.id for r in all_repairs(Where.GUEST)]

ports = st.integers(min_value=1, max_value=65535)
run_ids = st.from_regex(r"[0-9a-f]{12}", fullmatch=True)
id_lists = st.lists(st.sampled_from(GUEST_IDS), unique=True)


def as_the_script_receives(parameters: Sequence[Mapping[str, str]]) -> list[tuple[str, str]]:
    """The rendered command line read back as `-Name value` pairs, split on blanks like cmd.exe."""
    tokens = c.render_command_line(parameters).split(" ")
    assert len(tokens) % 2 == 0, tokens
    pairs = list(zip(tokens[::2], tokens[1::2], strict=True))
    assert all(name.startswith("-") and not value.startswith("-") for name, value in pairs), pairs
    return [(name[1:], value) for name, value in pairs]


def assert_survives_the_command_line(parameters: Sequence[Mapping[str, str]]) -> None:
    received = as_the_script_receives(parameters)
    assert received == [(p["name"], p["value"]) for p in parameters]
    for name, value in received:
        assert value and SAFE.fullmatch(value), (name, value)
    assert len(c.render_command_line(parameters)) <= c.PARAMETERS_LIMIT


@given(port=ports)
def test_diagnose_parameters_survive_the_command_line(port: int) -> None:
    assert_survives_the_command_line(c.build_parameters("diagnose", port))


@given(
    mode=st.sampled_from(ro.REPAIR_MODES),
    port=ports,
    run_id=run_ids,
    only=id_lists,
    skip=id_lists,
    dry_run=st.booleans(),
)
def test_repair_parameters_survive_the_command_line(
    mode: str, port: int, run_id: str, only: list[str], skip: list[str], dry_run: bool
) -> None:
    parameters = ro.build_parameters(
        mode, rdp_port=port, run_id=run_id, only=only, skip=skip, dry_run=dry_run, known_ids=GUEST_IDS
    )
    assert_survives_the_command_line(parameters)
    received = dict(as_the_script_receives(parameters))
    if mode == "repair":
        # Absent lists are not sent (the script defaults them to ''); present ones come back whole
        # through the script's split (mirrored by the simulated guest).
        assert guest_repair._split(received.get("Only", "")) == only
        assert guest_repair._split(received.get("Skip", "")) == skip
        assert received["DryRun"] == ("1" if dry_run else "0")
    else:
        assert {"Only", "Skip", "DryRun"}.isdisjoint(received)


def test_repair_ids_never_contain_the_list_separator() -> None:
    for repair_id in GUEST_IDS:
        assert re.fullmatch(r"[a-z0-9][a-z0-9-]*", repair_id) and ro.ID_SEPARATOR not in repair_id


@pytest.mark.parametrize(
    "value",
    ["", "a,b", "-x", "a b", "a&b", "a^b", 'a"b', "a%b", "a|b", "a;b", "a\nb", "a'b", "a<b", "caf\u00e9"],
)
def test_a_value_the_command_line_would_mangle_is_refused_before_sending(value: str) -> None:
    with pytest.raises(UsageError, match="Run Command parameter Only cannot be sent safely"):
        c.check_parameters([{"name": "Mode", "value": "repair"}, {"name": "Only", "value": value}])


def test_what_repair_sent_before_fails_the_rule() -> None:
    # An empty Skip and comma-joined ids: `-Skip -DryRun 0` binds nothing to Skip, and `a,b` reaches
    # a [string] parameter as the array joined with a space.
    before = [
        {"name": "Mode", "value": "repair"},
        {"name": "RdpPort", "value": "3389"},
        {"name": "RunId", "value": "a1b2c3d4e5f6"},
        {"name": "Only", "value": "rdp-listener,rdp-port"},
        {"name": "Skip", "value": ""},
        {"name": "DryRun", "value": "0"},
    ]
    with pytest.raises(UsageError, match="parameter Only"):
        c.check_parameters(before)
    with pytest.raises(UsageError, match="value is empty"):
        c.check_parameters([p for p in before if p["name"] != "Only"])


def test_a_bad_name_and_an_overlong_line_are_refused() -> None:
    with pytest.raises(UsageError, match="name"):
        c.check_parameters([{"name": "Mode Evil", "value": "x"}])
    with pytest.raises(UsageError, match="longer than"):
        c.check_parameters([{"name": "Only", "value": "a" * c.PARAMETERS_LIMIT}])
