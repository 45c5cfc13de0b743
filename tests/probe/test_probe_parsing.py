"""Parsing from recorded or hand-built bytes: what no local server produces."""

from __future__ import annotations

import contextlib
import datetime as dt
import socket
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rdp_fakes import (
    DISCONNECT_REQUEST,
    LEGACY_CONFIRM,
    NTLM_CHALLENGE,
    NTLM_CHALLENGE_TIME,
    TS_REQUEST_ERROR,
    confirm,
    failure,
    ts_request_with_token,
)

from azrdp.probe import ntlm, x224
from azrdp.probe.x224 import ReplyKind

UTC = dt.timezone.utc


# --- X.224 ------------------------------------------------------------------------------------


def test_legacy_request_has_no_negotiation_data() -> None:
    assert x224.build_connection_request(None) == bytes.fromhex("0300000b06e00000000000")


def test_reference_request_bytes_exactly() -> None:
    # MS-RDPBCGR 2.2.1.1 with requestedProtocols 0x0B and no cookie (the reference's example).
    assert x224.build_connection_request(0x0B) == bytes.fromhex(
        "03 00 00 13 0e e0 00 00 00 00 00 01 00 08 00 0b 00 00 00"
    )


@pytest.mark.parametrize(
    ("raw", "requested", "selected", "name"),
    [
        (bytes.fromhex("030000130ed000001234000201080001000000"), 0x0B, 0x01, "SSL"),  # xrdp
        (bytes.fromhex("030000130ed000000000000203080002000000"), 0x0B, 0x02, "HYBRID"),  # FreeRDP
        (confirm(0x08, flags=0x1F), 0x0B, 0x08, "HYBRID_EX"),  # Windows 10+ with flags 0x1F
        (confirm(0x04), 0x04, 0x04, "RDSTLS"),
        (confirm(0x10), 0x1B, 0x10, "RDSAAD"),
        (confirm(0x00), 0x0B, 0x00, "RDP"),
    ],
)
def test_negotiation_responses(raw: bytes, requested: int, selected: int, name: str) -> None:
    reply = x224.parse_connection_confirm(raw, requested)
    assert reply.kind is ReplyKind.RESPONSE
    assert (reply.selected_protocol, reply.protocol_name) == (selected, name)


def test_restricted_admin_flags_are_kept() -> None:
    reply = x224.parse_connection_confirm(confirm(0x02, flags=0x08 | 0x10), 0x0B)
    assert reply.flags == 0x18


@pytest.mark.parametrize(
    ("code", "name"),
    [
        (1, "SSL_REQUIRED_BY_SERVER"),
        (2, "SSL_NOT_ALLOWED_BY_SERVER"),
        (3, "SSL_CERT_NOT_ON_SERVER"),
        (4, "INCONSISTENT_FLAGS"),
        (5, "HYBRID_REQUIRED_BY_SERVER"),
        (6, "SSL_WITH_USER_AUTH_REQUIRED_BY_SERVER"),
    ],
)
def test_failures(code: int, name: str) -> None:
    raw = failure(code)
    assert raw.endswith(bytes.fromhex(f"030008000{code}000000"))
    reply = x224.parse_connection_confirm(raw, 0x0B)
    assert (reply.kind, reply.failure_code, reply.failure_name) == (ReplyKind.FAILURE, code, name)
    assert reply.selected_protocol is None


def test_legacy_confirm() -> None:
    reply = x224.parse_connection_confirm(LEGACY_CONFIRM, 0x0B)
    assert (reply.kind, reply.selected_protocol, reply.protocol_name) == (ReplyKind.LEGACY, 0, "RDP")


@pytest.mark.parametrize(
    ("raw", "kind", "problem"),
    [
        (b"", ReplyKind.NOT_RDP, "not a TPKT"),
        (b"SSH-2.0-OpenSSH_9.2\r\n", ReplyKind.NOT_RDP, "not a TPKT"),
        (bytes.fromhex("15030100020228"), ReplyKind.NOT_RDP, "not a TPKT"),  # a TLS alert
        (DISCONNECT_REQUEST, ReplyKind.REJECTED, "Disconnect Request"),
        (bytes.fromhex("0300000b06700000123400"), ReplyKind.REJECTED, "Error TPDU"),
        (bytes.fromhex("0300"), ReplyKind.MALFORMED, "truncated"),
        (bytes.fromhex("03000005"), ReplyKind.MALFORMED, "out of range"),
        (bytes.fromhex("03000fff") + bytes(20), ReplyKind.MALFORMED, "out of range"),
        (bytes.fromhex("030000130ed00000"), ReplyKind.MALFORMED, "shorter"),
        (bytes.fromhex("030000130ee000001234000201080001000000"), ReplyKind.MALFORMED, "not a CC"),
        (bytes.fromhex("030000130fd000001234000201080001000000"), ReplyKind.MALFORMED, "length indicator"),
        (bytes.fromhex("030000130ed000001234000901080001000000"), ReplyKind.MALFORMED, "type 9"),
        (bytes.fromhex("030000130ed000001234000201090001000000"), ReplyKind.MALFORMED, "length 9"),
        (confirm(0x03), ReplyKind.MALFORMED, "not requested"),  # two bits at once
        (confirm(0x04), ReplyKind.MALFORMED, "not requested"),  # RDSTLS to a 0x0B request
    ],
)
def test_hostile_or_broken_replies(raw: bytes, kind: ReplyKind, problem: str) -> None:
    reply = x224.parse_connection_confirm(raw, 0x0B)
    assert reply.kind is kind
    assert problem in (reply.problem or "")


@given(st.binary(max_size=64), st.sampled_from([None, 0, 1, 0x0B]))
def test_parser_never_raises(raw: bytes, requested: int | None) -> None:
    reply = x224.parse_connection_confirm(raw, requested)
    if reply.kind is ReplyKind.RESPONSE:
        assert reply.selected_protocol == 0 or reply.selected_protocol & (requested or 0)


def _feed(chunks: list[bytes]) -> bytes:
    client, server = socket.socketpair()
    client.settimeout(2)

    def send() -> None:
        for chunk in chunks:
            server.sendall(chunk)
        server.close()

    thread = threading.Thread(target=send)
    thread.start()
    try:
        return x224.read_tpkt(client)
    finally:
        thread.join()
        client.close()


def test_read_tpkt_reassembles_a_reply_sent_byte_by_byte() -> None:
    raw = confirm(0x02)
    assert _feed([bytes([b]) for b in raw]) == raw


def test_read_tpkt_returns_a_banner_and_eof() -> None:
    assert _feed([b"HTTP/1.1 400 Bad Request\r\n"]).startswith(b"HTTP/1.1")
    assert _feed([]) == b""
    assert _feed([bytes.fromhex("030000130ed0")]) == bytes.fromhex("030000130ed0")


# --- CredSSP / NTLM ---------------------------------------------------------------------------


def test_negotiate_and_tsrequest_match_the_reference_bytes() -> None:
    negotiate = ntlm.build_negotiate_message()
    assert negotiate == bytes.fromhex(
        "4e544c4d53535000" "01000000" "978208e2" "0000000000000000" "0000000000000000" "0601b11d0000000f"
    )  # fmt: skip
    assert ntlm.build_tsrequest(negotiate) == bytes.fromhex(
        "3037" "a003020106" "a130" "302e" "302c" "a02a" "0428"
    ) + negotiate  # fmt: skip
    # The NEGOTIATE names nobody: empty domain and workstation fields.
    assert negotiate[16:32] == bytes(16)


def test_recorded_challenge() -> None:
    challenge = ntlm.parse_challenge(NTLM_CHALLENGE)
    assert challenge.target_name == "VM"
    assert challenge.names == {
        "netbiosDomain": "VM",
        "netbiosComputer": "VM",
        "dnsDomain": "vm",
        "dnsComputer": "vm",
    }
    assert (challenge.os_version, challenge.os_build) == ("6.1.7601", 7601)
    assert challenge.os_name == "Windows Server 2008 R2 / Windows 7 SP1"
    assert challenge.server_challenge == bytes.fromhex("c75c3e9c39f96d85")
    assert challenge.flags == 0xE2888297
    assert challenge.timestamp == NTLM_CHALLENGE_TIME
    assert challenge.timestamp is not None and challenge.timestamp.year >= 2020


def test_windows_server_2022_build() -> None:
    version = bytes([10, 0]) + (20348).to_bytes(2, "little") + bytes([0, 0, 0, 15])
    challenge = ntlm.parse_challenge(NTLM_CHALLENGE[:48] + version + NTLM_CHALLENGE[56:])
    assert (challenge.os_version, challenge.os_name) == ("10.0.20348", "Windows Server 2022")


def test_tsrequest_with_challenge_and_echoed_client_nonce() -> None:
    nonce_field = bytes.fromhex("a5220420") + bytes(range(32))
    plain = ts_request_with_token(NTLM_CHALLENGE)
    # FreeRDP echoes the client's nonce: an extra [5] field the parser must skip.
    body = plain[2:] + nonce_field
    with_nonce = bytes([0x30, 0x81, len(body)]) + body
    for raw in (plain, with_nonce):
        request = ntlm.parse_tsrequest(raw)
        assert request.version == 6
        assert request.nego_tokens == (NTLM_CHALLENGE,)
        assert request.error_code is None


def test_tsrequest_error_code() -> None:
    request = ntlm.parse_tsrequest(TS_REQUEST_ERROR)
    assert (request.version, request.nego_tokens, request.error_code) == (6, (), 0xC0000022)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x31\x00",
        bytes.fromhex("3005a003020106")[:-1],
        bytes.fromhex("3003a40102"),
        bytes.fromhex("3085"),
    ],
)
def test_broken_tsrequests_raise_parse_errors(raw: bytes) -> None:
    with pytest.raises(ntlm.NtlmParseError):
        ntlm.parse_tsrequest(raw)


@pytest.mark.parametrize(
    "token",
    [
        b"NTLMSSP\x00",
        NTLM_CHALLENGE[:8] + b"\x01\x00\x00\x00" + NTLM_CHALLENGE[12:],  # a NEGOTIATE, not a CHALLENGE
        b"XTLMSSP\x00" + NTLM_CHALLENGE[8:],
        NTLM_CHALLENGE[:-20],  # target info runs past the end
    ],
)
def test_broken_challenges_raise_parse_errors(token: bytes) -> None:
    with pytest.raises(ntlm.NtlmParseError):
        ntlm.parse_challenge(token)


@given(st.binary(max_size=200))
def test_ntlm_parsers_fail_only_with_parse_errors(raw: bytes) -> None:
    for parse in (ntlm.parse_tsrequest, ntlm.parse_challenge):
        with contextlib.suppress(ntlm.NtlmParseError):
            parse(raw)


@given(st.binary(min_size=56, max_size=56), st.binary(max_size=80))
def test_challenge_fuzz_with_valid_header(fields: bytes, tail: bytes) -> None:
    token = NTLM_CHALLENGE[:12] + fields[12:] + tail
    with contextlib.suppress(ntlm.NtlmParseError):
        ntlm.parse_challenge(token)


def test_read_der_message_waits_for_the_whole_tsrequest() -> None:
    raw = ts_request_with_token(NTLM_CHALLENGE)
    client, server = socket.socketpair()
    client.settimeout(2)
    try:
        for index in range(0, len(raw), 7):
            server.sendall(raw[index : index + 7])
        assert ntlm.read_der_message(client) == raw
        server.close()
        assert ntlm.read_der_message(client) == b""
    finally:
        client.close()


def test_read_der_message_rejects_a_huge_length() -> None:
    client, server = socket.socketpair()
    client.settimeout(2)
    try:
        server.sendall(bytes.fromhex("3084ffffffff"))
        with pytest.raises(ntlm.NtlmParseError, match="implausibly large"):
            ntlm.read_der_message(client)
    finally:
        client.close()
        server.close()
