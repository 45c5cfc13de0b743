"""The guest contract: decoding, validation, clear errors for bad output, and the output budget."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from azrdp.errors import GuestError
from azrdp.guest import contract as c
from azrdp.guest.contract import LIMITS

NOW = "2026-01-15T10:00:00Z"


def worst_case() -> c.GuestReport:
    """Everything broken at once, every string at its cap, every number at its widest."""
    # Backslashes are the one character JSON still prints as two bytes after Limit-Text.
    long = "\\" * 500
    cap = c.limit_text(long, LIMITS["text"])
    services = tuple(
        c.ServiceInfo(name, "Start Pending", "Disabled", c.limit_text(long, LIMITS["account"]), -2147483648)
        for name in c.SERVICE_NAMES
    )
    certs = tuple(
        c.CertEntry("F" * 40, "9999-12-31T23:59:59Z", False, False, "RD") for _ in range(LIMITS["certs"])
    )
    tls = c.TlsProtocol(-2147483648, -2147483648)
    rules = tuple(
        c.FirewallRule(name, True, False, "Block", cap, cap, False)
        for name in (*c.RDP_FIREWALL_RULES, c.custom_rule_name(65535))
    )
    profiles = tuple(
        c.FirewallProfile(name, True, False, False, -2147483648) for name in ("Domain", "Private", "Public")
    )
    errors = tuple(
        c.SectionError("mk.key", c.limit_text(long, LIMITS["message"])) for _ in range(LIMITS["errors"])
    )
    big = -2147483648
    diagnosis = c.Diagnosis(
        os=c.OsInfo("10.0.99999.99999", 99999, "5.1.99999.99999", True),
        rdp=c.RdpSettings(*([big] * 12), 1, 1, 1, big, big, big, big, 1),  # TerminalServerMode is 0 or 1
        listener=c.ListenerInfo(
            4294967295, (c.PortOwner(65535, 4294967295, cap), c.PortOwner(65534, 4294967295, cap))
        ),
        services=services,
        cert=c.CertInfo("F" * 40, 3, 99999, certs),
        machine_keys=c.MachineKeys(c.limit_text(long, LIMITS["sddl"]), True, False, True),
        tls=c.TlsInfo(tls, tls, tls, tls, big, big, 99999),
        firewall=c.FirewallInfo(
            rules, tuple([cap] * LIMITS["blocks"]), profiles, ("Domain", "Private", "Public")
        ),
        events=c.EventCounts(*([LIMITS["events"]] * 6)),
        disk=c.DiskInfo("C:", 99999999999999, 99999999999999),
        errors=errors,
    )
    return c.GuestReport(c.SCHEMA_VERSION, "diagnose", NOW, diagnosis, None, None)


def test_worst_case_fits_the_budget() -> None:
    line = c.render_line(worst_case())
    size = len(line.encode("utf-8"))
    print(f"worst-case marker line: {size} bytes (budget {c.OUTPUT_BUDGET})")
    assert size < c.OUTPUT_BUDGET
    # And the refusal document, with the longest top-level error, is far smaller.
    refusal = c.GuestReport(1, "X" * 32, NOW, None, "E" * LIMITS["fatal"], "unsupported")
    assert len(c.render_line(refusal)) < 400


def test_worst_case_round_trips() -> None:
    report = worst_case()
    assert c.parse_output("noise\n" + c.render_line(report) + "\n") == report


def test_render_keeps_every_key_and_nulls() -> None:
    data = json.loads(c.render_line(c.GuestReport(1, "diagnose", NOW, c.Diagnosis()))[len(c.MARKER) :])
    assert set(data) == {"v", "m", "t", "d", "e", "ec"}
    assert data["d"]["rdp"] is None
    assert data["d"]["err"] == []


def test_unknown_keys_are_ignored_and_missing_ones_are_null() -> None:
    line = c.MARKER + json.dumps({"v": 1, "m": "diagnose", "d": {"rdp": {"deny": 1, "new": 5}}, "extra": 1})
    report = c.parse_output(line)
    assert report.diagnosis is not None and report.diagnosis.rdp is not None
    assert report.diagnosis.rdp.deny == 1
    assert report.diagnosis.rdp.port is None
    assert report.diagnosis.services is None


def expect_error(stdout: str, stderr: str = "") -> c.ContractError:
    with pytest.raises(c.ContractError) as info:
        c.parse_output(stdout, stderr)
    err = info.value
    assert isinstance(err, GuestError)
    assert err.message and err.fix
    assert "\n" not in err.message
    return err


def test_missing_marker() -> None:
    err = expect_error("Hello from somewhere else\r\n")
    assert "printed no AZRDP: line" in err.message
    assert "Hello from somewhere else" in err.raw_tail


def test_stderr_only_is_surfaced() -> None:
    err = expect_error("", "Get-CimInstance : Access denied\r\n+ CategoryInfo: PermissionDenied\r\n")
    assert err.message == "The in-guest script failed: Get-CimInstance : Access denied"
    assert "PermissionDenied" in err.raw_tail


def test_truncated_output_lost_the_marker() -> None:
    line = c.render_line(worst_case())[:-1] + ',"pad":"' + "#" * 5000 + '"}'
    err = expect_error(line[-c.RUN_COMMAND_OUTPUT_LIMIT :])
    assert "truncated" in err.message
    assert "4,096 bytes" in err.message


def test_json_cut_in_the_middle() -> None:
    line = c.render_line(worst_case())
    err = expect_error(line[: len(line) // 2])
    assert err.message == "The in-guest script's JSON was truncated."


def test_invalid_json() -> None:
    err = expect_error('AZRDP:{"v":1,,"m":"diagnose"}')
    assert err.message.startswith("The in-guest script's JSON is invalid:")
    assert "character" in err.message


def test_not_an_object() -> None:
    assert "holds list" in expect_error("AZRDP:[1,2]").message


@pytest.mark.parametrize("version", [2, 0, "1", None])
def test_unknown_schema_version(version: Any) -> None:
    err = expect_error(c.MARKER + json.dumps({"v": version, "m": "diagnose"}))
    assert "contract version" in err.message
    assert "pip install -U azrdp" in err.fix


@pytest.mark.parametrize(
    ("doc", "where"),
    [
        ({"d": {"rdp": {"port": "3389"}}}, "d.rdp.port: expected an integer, got str"),
        ({"d": {"rdp": {"deny": True}}}, "d.rdp.deny: expected an integer, got bool"),
        ({"d": {"svc": {"n": "TermService"}}}, "d.svc: expected a list, got dict"),
        ({"d": {"svc": [{"n": 5}]}}, "d.svc[0].n: expected a string, got int"),
        ({"d": {"fw": {"rules": [{"en": "True"}]}}}, "d.fw.rules[0].en: expected true/false, got str"),
        ({"d": "broken"}, "d: expected an object, got str"),
    ],
)
def test_type_errors_name_the_field(doc: dict[str, Any], where: str) -> None:
    err = expect_error(c.MARKER + json.dumps({"v": 1, **doc}))
    assert where in err.message


def test_the_last_marker_line_wins() -> None:
    first = c.render_line(c.GuestReport(1, "diagnose", NOW, c.Diagnosis(os=c.OsInfo(build=1))))
    second = c.render_line(c.GuestReport(1, "diagnose", NOW, c.Diagnosis(os=c.OsInfo(build=2))))
    report = c.parse_output(f"{first}\n{second}\n")
    assert report.diagnosis and report.diagnosis.os and report.diagnosis.os.build == 2


def test_refusal_is_a_report_not_a_contract_error() -> None:
    line = c.render_line(c.GuestReport(1, "repair", NOW, None, "Mode repair is not implemented.", "mode"))
    report = c.parse_output(line)
    assert report.diagnosis is None
    assert report.error_code == "mode"


def test_listener_cert_prefers_the_pin() -> None:
    old = c.CertEntry("A" * 40, "2020-01-01T00:00:00Z", True, True, "RD")
    new = c.CertEntry("B" * 40, "2030-01-01T00:00:00Z", True, True, "RD")
    assert c.CertInfo(None, 1, 2, (old, new)).listener_cert == new
    assert c.CertInfo("a" * 40, 3, 2, (old, new)).listener_cert == old
    assert c.CertInfo("C" * 40, 3, 2, (old, new)).listener_cert is None


@given(st.text(max_size=300), st.text(max_size=300))
def test_parse_never_crashes(stdout: str, stderr: str) -> None:
    with contextlib.suppress(c.ContractError):
        c.parse_output(stdout, stderr)


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=5),
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(st.sampled_from(sorted(c.wire_keys())), inner, max_size=5)
        ),
        max_leaves=30,
    )
)
def test_any_json_either_decodes_or_fails_cleanly(data: Any) -> None:
    doc = {"v": 1, "d": data}
    with contextlib.suppress(c.ContractError):
        c.parse_output(c.MARKER + json.dumps(doc))


def test_limit_text_prints_one_byte_per_character() -> None:
    # What the script's Limit-Text does before ConvertTo-Json could escape anything into \u00XX.
    assert c.limit_text("Cannot find path 'HKLM:\\X' <a & b> \"q\" caf\u00e9", 99) == (
        "Cannot find path `HKLM:\\X` (a + b) `q` caf?"
    )
    assert c.limit_text("x" * 30, 24) == "x" * 21 + "..."
    assert c.limit_text(None, 5) is None
