from __future__ import annotations

import json
import socket

import pytest
from hypothesis import given
from hypothesis import strategies as st

from azrdp.cli.params import OutputFormat
from azrdp.cli.render import format_document
from azrdp.errors import ExitCode, NotFoundError, UsageError, most_serious
from azrdp.model import Finding, Severity, Source, to_doc

ORDER = [130, 2, 1, 3, 5, 4, 0]


@given(st.lists(st.sampled_from(ORDER), min_size=1))
def test_most_serious_exit_code_wins(codes: list[int]) -> None:
    assert most_serious(codes) == min(codes, key=ORDER.index)


def test_most_serious_of_nothing_is_ok() -> None:
    assert most_serious([]) is ExitCode.OK


def test_errors_carry_exit_code_and_message() -> None:
    err = NotFoundError("VM 'web01' was not found in resource group 'rg'.", fix="Check the name.")
    assert err.exit_code == 3
    assert err.to_dict() == {
        "code": "NotFound",
        "message": "VM 'web01' was not found in resource group 'rg'.",
        "fix": "Check the name.",
    }
    assert UsageError("x").exit_code == 2


def test_finding_to_doc_is_camel_case() -> None:
    f = Finding("nsg-denies-rdp", Severity.BLOCKER, "t", "e", "r", Source.CONTROL_PLANE, {"rule_x": 1})
    assert to_doc(f) == {
        "id": "nsg-denies-rdp",
        "severity": "blocker",
        "title": "t",
        "evidence": "e",
        "recommendation": "r",
        "source": "controlPlane",
        "details": {"rule_x": 1},
    }


DOC = {"schemaVersion": "2", "vms": [{"name": "a", "ok": True, "n": {"x": 1}}, {"name": "b", "ok": False}]}


def test_json_and_query() -> None:
    assert json.loads(format_document(DOC, OutputFormat.json)) == DOC
    assert json.loads(format_document(DOC, OutputFormat.json, "vms[].name")) == ["a", "b"]


def test_table_and_tsv_use_scalar_fields() -> None:
    table = format_document(DOC, OutputFormat.table, "vms")
    assert table.splitlines()[0].split() == ["name", "ok"]
    assert "\x1b" not in table
    assert format_document(DOC, OutputFormat.tsv, "vms") == "a\ttrue\nb\tfalse\n"
    assert format_document(DOC, OutputFormat.none) == ""


def test_invalid_query_is_usage_error() -> None:
    with pytest.raises(UsageError) as info:
        format_document(DOC, OutputFormat.json, "vms[")
    assert info.value.exit_code == 2


def test_socket_guard_refuses_non_loopback() -> None:
    with socket.socket() as s, pytest.raises(OSError, match="loopback only"):
        s.connect(("192.0.2.1", 3389))
