"""The wire: one schema (azrdp/guest/facts.py, envelope.py, plan.py) decoded strictly, with errors
that name the field; the marker line (gzip + base64) and the plan token (gzip + base64url without
padding, one command-line token)."""

from __future__ import annotations

import json
import re

import pytest
from guest_driver import Guest
from hypothesis import given
from hypothesis import strategies as st

from azrdp.emulator.guest_scenarios import RDPTCP, TS
from azrdp.guest import envelope as ge
from azrdp.guest import facts as gf
from azrdp.guest import plan as gp
from azrdp.guest.wire import from_wire, pack, pack_token, to_wire, unpack, unpack_token, wire_keys


def line(doc: object) -> str:
    return ge.MARKER + pack(doc)


def test_the_facts_of_a_real_collection_round_trip() -> None:
    out = Guest().collect()
    assert out.facts is not None and out.facts.os is not None
    again = from_wire(gf.Facts, json.loads(json.dumps(to_wire(out.facts))))
    assert again == out.facts
    assert ge.parse_output(ge.render_line(out)) == out


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"svc": [{"n": "TermService", "st": 5}]}, "f.svc[0].st: expected a string, got int"),
        ({"os": {"bld": "14393"}}, "f.os.bld: expected an integer, got str"),
        ({"reg": [["rdptcp", "PortNumber", "DWord"]]}, "f.reg[0]: expected a list of 4 values"),
        ({"reg": [["rdptcp", "PortNumber", "DWord", "3389"]]}, "does not fit kind 'DWord'"),
        ({"reg": [["rdptcp", "SSLCertificateSHA1Hash", "Binary", "XYZ"]]}, "does not fit kind 'Binary'"),
        ({"cert": {"l": [{"k": {"x": "yes"}}]}}, "f.cert.l[0].k.x: expected true/false, got str"),
        ({"fw": {"rules": {}}}, "f.fw.rules: expected a list, got dict"),
        ({"evt": [[1058, 3, []]]}, "f.evt[0]: expected a list of 4 values"),
    ],
)
def test_decoding_is_strict_and_names_the_field(patch: dict[str, object], message: str) -> None:
    doc = {"v": ge.VERSION, "m": "collect", "t": "2026-01-15T10:00:00Z", "f": patch}
    with pytest.raises(ge.ContractError) as caught:
        ge.parse_output(line(doc))
    assert message in str(caught.value), str(caught.value)


def test_a_null_list_reads_as_empty_and_unknown_keys_are_ignored() -> None:
    doc = {"v": ge.VERSION, "m": "collect", "t": "t", "f": {"err": None, "later": 1}, "new": True}
    report = ge.parse_output(line(doc))
    assert report.facts is not None and report.facts.errors == ()


def test_other_contract_versions_are_refused_by_name() -> None:
    with pytest.raises(ge.ContractError, match="contract version 1"):
        ge.parse_output('AZRDP:{"v":1}\n')
    with pytest.raises(ge.ContractError, match="contract version 3"):
        ge.parse_output(line({"v": 3}))


def test_the_marker_line_is_the_last_one_and_survives_noise_before_it() -> None:
    report = ge.GuestReport(ge.VERSION, "history", "t")
    out = "WARNING: something\r\n" + ge.render_line(report) + "\r\n"
    assert ge.parse_output(out) == report


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(),
        lambda c: st.lists(c) | st.dictionaries(st.text(), c),
        max_leaves=20,
    )
)
def test_pack_and_token_round_trip(data: object) -> None:
    assert unpack(pack(data)) == data
    token = pack_token(data)
    assert re.fullmatch(r"[A-Za-z0-9_-]+", token) and "=" not in token
    assert unpack_token(token) == data


def test_a_plan_is_one_command_line_token_and_round_trips() -> None:
    guest = Guest({"registry": {TS: {"fDenyTSConnections": 1}, RDPTCP: {"SecurityLayer": 0}}})
    plan, _ = guest.plan()
    token = plan.token()
    assert token.startswith("H4sI") and re.fullmatch(r"[A-Za-z0-9_-]+", token)
    doc = unpack_token(token)
    assert doc["v"] == gp.PLAN_VERSION and doc["run"] == plan.run_id and doc["dl"] == plan.deadline
    kinds = {op["k"] for step in doc["steps"] for op in step["ops"] + step["rb"]}
    assert kinds <= set(gp.KINDS)
    # Every op carries its index, precondition flag, wait bound and kind; the ops round trip.
    for step in doc["steps"]:
        for op in step["ops"]:
            assert {"i", "k", "chk", "of", "w"} <= set(op)
            assert op["k"] == gp.op_from_wire(op).KIND


def test_the_schema_keys_are_short_and_unique_per_class() -> None:
    for cls in (gf.Facts, ge.GuestReport):
        keys = wire_keys(cls)
        assert all(len(k) <= 5 for k in keys), sorted(k for k in keys if len(k) > 5)
    assert gf.FACTS_VERSION >= 2 and ge.VERSION == 2
