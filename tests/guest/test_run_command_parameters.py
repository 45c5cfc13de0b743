"""How Run Command renders the parameters azrdp sends.

The handler writes each parameter on the script's command line as `-Name value`, unquoted,
through a cmd.exe layer (Azure/azure-powershell#7269: a space splits a value; #29880: `^` and
other cmd.exe characters are stripped). So no value may be empty (it would leave `-Name` without
an argument), none may start with `-` (PowerShell would read another parameter name), and every
value must be made of `[A-Za-z0-9._-]` (a comma, for one, makes PowerShell pass an array).
Every mode's parameters are rendered here as the handler does and read back.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from azrdp.errors import UsageError
from azrdp.guest import plan as gp
from azrdp.guest import scripts as s

SAFE = re.compile(r"[A-Za-z0-9._-]+")

ports = st.integers(min_value=1, max_value=65535)
run_ids = st.from_regex(r"[0-9a-f]{12}", fullmatch=True)


def as_the_script_receives(parameters: Sequence[Mapping[str, str]]) -> list[tuple[str, str]]:
    """The rendered command line read back as `-Name value` pairs, split on blanks like cmd.exe."""
    tokens = s.render_command_line(parameters).split(" ")
    assert len(tokens) % 2 == 0, tokens
    pairs = list(zip(tokens[::2], tokens[1::2], strict=True))
    assert all(name.startswith("-") and not value.startswith("-") for name, value in pairs), pairs
    return [(name[1:], value) for name, value in pairs]


def assert_survives_the_command_line(parameters: Sequence[Mapping[str, str]]) -> None:
    received = as_the_script_receives(parameters)
    assert received == [(p["name"], p["value"]) for p in parameters]
    for name, value in received:
        assert value and SAFE.fullmatch(value), (name, value)
    assert len(s.render_command_line(parameters)) <= s.PARAMETERS_LIMIT < s.CMD_LINE_LIMIT


@given(port=ports)
def test_collect_parameters_survive_the_command_line(port: int) -> None:
    assert_survives_the_command_line(s.collect_parameters(port))


@given(port=ports, run_id=run_ids, timeout=st.integers(min_value=0, max_value=3600))
def test_execute_parameters_survive_the_command_line(port: int, run_id: str, timeout: int) -> None:
    steps = (
        gp.make_step("rdp-port", [gp.RegSet("rdptcp", "PortNumber", ("DWord", 3389), ("DWord", port))], 0),
    )
    plan = gp.Plan(run_id, steps, gp.deadline_for(timeout))
    parameters = s.execute_parameters(run_id, plan.token(), port)
    assert_survives_the_command_line(parameters)
    assert dict(as_the_script_receives(parameters))["Plan"].startswith("H4sI")  # gzip's magic, never '-'


@given(run_id=run_ids)
def test_records_and_history_parameters_survive_the_command_line(run_id: str) -> None:
    assert_survives_the_command_line(s.records_parameters(run_id))
    assert_survives_the_command_line(s.history_parameters())


@pytest.mark.parametrize(
    "value",
    [
        "",
        "a,b",
        "-x",
        "a b",
        "a&b",
        "a^b",
        'a"b',
        "a%b",
        "a|b",
        "a;b",
        "a\nb",
        "a'b",
        "a<b",
        "caf\u00e9",
        "a==",
    ],
)
def test_a_value_the_command_line_would_mangle_is_refused_before_sending(value: str) -> None:
    with pytest.raises(UsageError, match="Run Command parameter Plan cannot be sent safely"):
        s.check_parameters([{"name": "Mode", "value": "execute"}, {"name": "Plan", "value": value}])


def test_what_repair_sent_before_fails_the_rule() -> None:
    # azrdp 1.x sent an empty Skip and comma-joined ids: `-Skip -DryRun 0` binds nothing to Skip,
    # and `a,b` reaches a [string] parameter as the array joined with a space.
    with pytest.raises(UsageError, match="value is empty"):
        s.check_parameters([{"name": "Mode", "value": "execute"}, {"name": "RunId", "value": ""}])
    with pytest.raises(UsageError, match="outside"):
        s.check_parameters([{"name": "RunId", "value": "rdp-listener,rdp-port"}])


def test_a_bad_name_and_an_overlong_line_are_refused() -> None:
    with pytest.raises(UsageError, match="name"):
        s.check_parameters([{"name": "Mode Evil", "value": "x"}])
    with pytest.raises(UsageError, match="name"):
        s.check_parameters([{"name": "Skip", "value": "x"}])  # not a parameter of the scripts
    with pytest.raises(UsageError, match="longer than"):
        s.check_parameters([{"name": "Plan", "value": "a" * s.PARAMETERS_LIMIT}])
