"""The code knowledge base: parsing, table answers, sources, unknown codes, data integrity."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from azrdp.codes import TABLE_ORDER, all_entries, explain, explanation_doc, load_data, lookup, parse_code
from azrdp.errors import UsageError


@pytest.mark.parametrize("text", ["0x904", "0X904", "0x00000904", "904h", "904H", "2308", " 2308 "])
def test_number_spellings_are_the_same_code(text: str) -> None:
    assert parse_code(text) == (2308, None)


@pytest.mark.parametrize(
    ("name", "table", "value"),
    [
        ("disconnectReasonAtClientWinsockFDCLOSE", "disconnectReason", 0x904),
        ("disconnectreasonatclientwinsockfdclose", "disconnectReason", 0x904),
        ("AtClientWinsockFDCLOSE", "disconnectReason", 0x904),
        ("SSL_ERR_LOGON_FAILURE", "disconnectReason", 0x807),
        ("exDiscReasonServerDeniedConnection", "extendedDisconnectReason", 7),
        ("ERRINFO_SERVER_DENIED_CONNECTION", "errorInfo", 7),
        # The spec spells it OTHERCONNECTION, FreeRDP OTHER_CONNECTION: both work.
        ("ERRINFO_DISCONNECTED_BY_OTHER_CONNECTION", "errorInfo", 5),
        ("ERRINFO_DISCONNECTED_BY_OTHERCONNECTION", "errorInfo", 5),
    ],
)
def test_names_resolve_to_their_table(name: str, table: str, value: int) -> None:
    assert parse_code(name) == (value, table)


@pytest.mark.parametrize("text", ["", "zz", "0x", "0xZZ", "-1", "9.5", "0x1FFFFFFFF", "no-such-code"])
def test_bad_input_is_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_code(text)
    assert info.value.exit_code == 2
    assert info.value.fix


def test_ambiguous_short_name_asks_for_the_full_name() -> None:
    with pytest.raises(UsageError, match="more than one code"):
        parse_code("NoInfo")


def test_0x904_with_extended_7_is_the_documented_pair_read_as_an_inference() -> None:
    doc = explanation_doc(explain("0x904", "0x7"))
    code, ext, pair = doc["code"], doc["extended"], doc["pair"]
    assert code["status"] == "documented"
    assert code["name"] == "disconnectReasonAtClientWinsockFDCLOSE"
    assert code["answeredBy"] == ["disconnectReason"]
    assert code["entries"][0]["sources"][0]["url"].endswith("/termserv/imstscaxevents-ondisconnected")
    assert ext["name"] == "exDiscReasonServerDeniedConnection"
    assert ext["meaning"] == "The server denied the connection."
    assert [e["table"] for e in ext["entries"]] == ["extendedDisconnectReason", "errorInfo"]
    assert ext["entries"][1]["name"] == "ERRINFO_SERVER_DENIED_CONNECTION"
    assert ext["entries"][1]["match"] == "equivalent"
    assert pair is not None and pair["inference"] is True
    assert "No Microsoft page documents" in pair["note"]
    cause_ids = [c["id"] for c in doc["causes"]]
    assert cause_ids[:2] == ["logon-rights", "session-switches"]
    assert "rdp-certificate" in cause_ids
    for cause in doc["causes"]:
        for confirm in cause["confirm"]:
            assert confirm["command"].startswith("azrdp ")


def test_2308_decimal_is_0x904() -> None:
    assert explanation_doc(explain("2308"))["code"] == {
        **explanation_doc(explain("0x904"))["code"],
        "input": "2308",
    }


def test_0x1104_is_undocumented_and_says_which_table_covers_it() -> None:
    doc = explanation_doc(explain("0x1104"))
    code = doc["code"]
    assert code["status"] == "undocumented"
    assert code["documented"] is False
    assert code["name"] is None and code["meaning"] is None
    # Not a client disconnect reason, not a Set Error Info value; only the extended range covers it.
    assert lookup("disconnectReason", 0x1104) is None
    assert lookup("errorInfo", 0x1104) is None
    assert code["answeredBy"] == ["extendedDisconnectReason"]
    assert code["entries"][0]["match"] == "range"
    kinds = [n["kind"] for n in code["notes"]]
    assert kinds == ["community", "inference"]
    assert "TCP 3389" in code["notes"][0]["text"]
    assert code["notes"][0]["sources"], "the community note names its source"
    assert [c["id"] for c in doc["causes"]] == ["port-taken"]


@pytest.mark.parametrize("text", ["0x12345", "0xFFFFFFF0", "0x905", "99999"])
def test_unknown_codes_say_unknown_and_guess_nothing(text: str) -> None:
    doc = explanation_doc(explain(text))
    code = doc["code"]
    assert code["status"] == "unknown"
    assert code["documented"] is False
    assert code["name"] is None and code["layer"] is None and code["meaning"] is None
    assert code["entries"] == []
    assert code["notes"][0]["kind"] == "unknown"
    assert "does not guess" in code["notes"][0]["text"]
    assert doc["causes"] == []


def test_digits_that_only_make_sense_in_hex_get_a_hint() -> None:
    code = explanation_doc(explain("904"))["code"]
    assert code["status"] == "unknown"
    hints = [n for n in code["notes"] if n["kind"] == "hint"]
    assert len(hints) == 1 and "0x904" in hints[0]["text"]


def test_extended_protocol_range_maps_to_the_error_info_code() -> None:
    ext = explanation_doc(explain("0x3", "0x10D3"))["extended"]
    assert ext["status"] == "range"
    assert [e["match"] for e in ext["entries"]] == ["range", "equivalent"]
    assert ext["entries"][1]["name"] == "ERRINFO_CONNECT_FAILED"


def test_a_client_reason_is_refused_as_extended() -> None:
    with pytest.raises(UsageError, match="not an extended reason"):
        explain("0x3", "disconnectReasonAtClientWinsockFDCLOSE")


def test_reference_table_values() -> None:
    """Spot values from the reference tables, each in the table it belongs to."""
    expected = {
        ("disconnectReason", 0x3): "disconnectReasonByServer",
        ("disconnectReason", 0x204): "disconnectReasonSocketConnectFailed",
        ("disconnectReason", 0xD07): "SSL_ERR_ACCOUNT_LOCKED_OUT",
        ("disconnectReason", 0x2207): "SSL_ERR_SMARTCARD_CARD_BLOCKED",
        ("extendedDisconnectReason", 12): "exDiscReasonLogoffByUser",
        ("extendedDisconnectReason", 26): "exDiscReasonReboot",
        ("extendedDisconnectReason", 267): "exDiscReasonLicenseCreatingLicStoreAccDenied",
        ("extendedDisconnectReason", 768): "exDiscReasonRdpEncInvalidCredentials",
        ("errorInfo", 0x19): "ERRINFO_SERVER_SHUTDOWN",
        ("errorInfo", 0x1A): "ERRINFO_SERVER_REBOOT",
        ("errorInfo", 0x10EA): "ERRINFO_BAD_CAPABILITIES",
        ("errorInfo", 0x1126): "ERRINFO_SECURITY_DATA_TOO_SHORT23",
        ("errorInfo", 0x112F): "ERRINFO_GRAPHICS_SUBSYSTEM_FAILED",
        ("errorInfo", 0x1196): "ERRINFO_PEER_DISCONNECTED",
    }
    for (table, value), name in expected.items():
        entry = lookup(table, value)
        assert entry is not None and entry.match == "exact", (table, hex(value))
        assert entry.name == name


def test_every_entry_has_sources_layer_and_valid_references() -> None:
    data = load_data()
    layers = {"session", "network", "security", "authentication", "client", "licensing", "server", "broker"}
    layers.add("protocol")
    seen: set[tuple[str, int]] = set()
    for table, raw in all_entries():
        key = (table["id"], raw["value"])
        assert key not in seen, f"duplicate {key}"
        seen.add(key)
        assert raw["sources"], raw["name"]
        assert all(s in data["sources"] for s in raw["sources"]), raw["name"]
        assert raw["layer"] in layers, raw["name"]
        assert raw["meaning"].endswith("."), raw["name"]
        assert all(c in data["causes"] for c in raw["causes"]), raw["name"]
    for source in data["sources"].values():
        assert re.match(r"^https://", source["url"])
    for item in data["undocumented"]:
        # Quoted online as a client disconnect reason, so that table must really lack it.
        assert lookup("disconnectReason", item["value"]) is None
    assert {t["id"] for t in data["tables"]} == set(TABLE_ORDER)


@given(st.integers(min_value=0, max_value=0xFFFFFFFF))
def test_any_32_bit_value_gets_an_answer_in_every_spelling(value: int) -> None:
    as_hex = explanation_doc(explain(f"0x{value:x}"))["code"]
    as_dec = explanation_doc(explain(str(value)))["code"]
    assert as_hex["value"] == as_dec["value"] == value
    assert as_hex["status"] in {"documented", "range", "undocumented", "unknown"}
    assert (as_hex["status"], as_hex["entries"]) == (as_dec["status"], as_dec["entries"])


def test_0x4_is_no_client_reason_but_the_other_tables_define_it() -> None:
    code = explanation_doc(explain("0x4"))["code"]
    assert code["status"] == "documented"
    assert code["answeredBy"] == ["extendedDisconnectReason", "errorInfo"]
    assert code["notes"][0]["kind"] == "community"
    assert "macOS" in code["notes"][0]["text"]


def test_confirming_commands_name_real_checks_and_probe_findings() -> None:
    """Every id a cause points at exists in the registry its command reports from."""
    from azrdp.checks import all_checks
    from azrdp.probe.classify import PROBE_FINDINGS

    check_ids = {c.id for c in all_checks()}
    known = {"probe": set(PROBE_FINDINGS), "check": check_ids, "diagnose": check_ids}
    referenced = 0
    for cause_id, cause in load_data()["causes"].items():
        for confirm in cause["confirm"]:
            command = confirm["command"].split()[1]
            assert command in known, (cause_id, confirm["command"])
            for finding_id in confirm["checks"]:
                referenced += 1
                assert finding_id in known[command], (
                    f"{cause_id}: {confirm['command']} never reports {finding_id}"
                )
    assert referenced > 30
