"""CredSSP start (MS-CSSP TSRequest) and the NTLM CHALLENGE the server answers (MS-NLMP).

The probe sends one TSRequest holding an anonymous NTLM NEGOTIATE (no user, no domain, no
workstation), reads the CHALLENGE and closes. It never sends an AUTHENTICATE, so no credential
ever leaves the machine and no logon attempt can count towards a lockout.
"""

from __future__ import annotations

import socket
import ssl
import struct
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

NTLM_SIGNATURE = b"NTLMSSP\x00"
# UNICODE, OEM, REQUEST_TARGET, SIGN, LM_KEY, NTLM, ALWAYS_SIGN, EXTENDED_SESSIONSECURITY, VERSION,
# 128, KEY_EXCH, 56: what a Windows client sends, minus SEAL (not needed to read a CHALLENGE).
NEGOTIATE_FLAGS = 0xE2088297
NTLMSSP_NEGOTIATE_TARGET_INFO = 0x00800000
NTLMSSP_NEGOTIATE_VERSION = 0x02000000
CREDSSP_VERSION = 6
MAX_TSREQUEST_LENGTH = 65536

AV_EOL = 0
AV_NAMES = {
    1: "netbiosComputer",
    2: "netbiosDomain",
    3: "dnsComputer",
    4: "dnsDomain",
    5: "dnsTree",
}
AV_TIMESTAMP = 7
_FILETIME_EPOCH = datetime(1601, 1, 1, tzinfo=timezone.utc)

# Build numbers of the Windows Server releases an Azure VM can run.
WINDOWS_BUILDS = {
    (6, 1, 7601): "Windows Server 2008 R2 / Windows 7 SP1",
    (6, 2, 9200): "Windows Server 2012 / Windows 8",
    (6, 3, 9600): "Windows Server 2012 R2 / Windows 8.1",
    (10, 0, 14393): "Windows Server 2016 / Windows 10 1607",
    (10, 0, 17763): "Windows Server 2019 / Windows 10 1809",
    (10, 0, 20348): "Windows Server 2022",
    (10, 0, 26100): "Windows Server 2025 / Windows 11 24H2",
}


class NtlmParseError(ValueError):
    """The bytes are not a well-formed TSRequest or NTLM CHALLENGE."""


@dataclass(frozen=True)
class TsRequest:
    version: int
    nego_tokens: tuple[bytes, ...] = ()
    error_code: int | None = None


@dataclass(frozen=True)
class NtlmChallenge:
    flags: int
    server_challenge: bytes
    target_name: str | None
    os_version: str | None
    os_build: int | None
    os_name: str | None
    timestamp: datetime | None
    names: dict[str, str] = field(default_factory=dict)


# --- DER (only what a TSRequest needs) --------------------------------------------------------


def _der_length(length: int) -> bytes:
    if length < 0x80:
        return bytes([length])
    body = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def _tlv(tag: int, value: bytes) -> bytes:
    return bytes([tag]) + _der_length(len(value)) + value


def _der_integer(value: int) -> bytes:
    body = value.to_bytes(max(1, (value.bit_length() + 8) // 8), "big", signed=True)
    return _tlv(0x02, body)


def _read_tlv(data: bytes, offset: int) -> tuple[int, bytes, int]:
    """(tag, value, next offset) of the element at `offset`."""
    if offset + 2 > len(data):
        raise NtlmParseError("truncated DER element")
    tag, first = data[offset], data[offset + 1]
    offset += 2
    if first & 0x80:
        count = first & 0x7F
        if count == 0 or count > 4 or offset + count > len(data):
            raise NtlmParseError("unsupported DER length")
        length = int.from_bytes(data[offset : offset + count], "big")
        offset += count
    else:
        length = first
    if offset + length > len(data):
        raise NtlmParseError("DER element longer than the data")
    return tag, data[offset : offset + length], offset + length


def _children(data: bytes) -> list[tuple[int, bytes]]:
    items, offset = [], 0
    while offset < len(data):
        tag, value, offset = _read_tlv(data, offset)
        items.append((tag, value))
    return items


def build_negotiate_message() -> bytes:
    """An anonymous NTLM NEGOTIATE: empty domain and workstation, Version 6.1.7601 rev 15."""
    empty_fields = struct.pack("<HHI", 0, 0, 0)
    version = struct.pack("<BBH3xB", 6, 1, 7601, 15)
    return NTLM_SIGNATURE + struct.pack("<II", 1, NEGOTIATE_FLAGS) + empty_fields * 2 + version


def build_tsrequest(token: bytes, version: int = CREDSSP_VERSION) -> bytes:
    """TSRequest { version [0], negoTokens [1] { { negoToken [0] OCTET STRING } } }."""
    nego_item = _tlv(0x30, _tlv(0xA0, _tlv(0x04, token)))
    body = _tlv(0xA0, _der_integer(version)) + _tlv(0xA1, _tlv(0x30, nego_item))
    return _tlv(0x30, body)


def parse_tsrequest(data: bytes) -> TsRequest:
    tag, body, _ = _read_tlv(data, 0)
    if tag != 0x30:
        raise NtlmParseError("a TSRequest starts with a SEQUENCE")
    version: int | None = None
    tokens: list[bytes] = []
    error_code: int | None = None
    for field_tag, value in _children(body):
        if field_tag == 0xA0:
            inner_tag, integer, _ = _read_tlv(value, 0)
            if inner_tag != 0x02 or not integer:
                raise NtlmParseError("TSRequest version is not an INTEGER")
            version = int.from_bytes(integer, "big", signed=True)
        elif field_tag == 0xA1:
            seq_tag, items, _ = _read_tlv(value, 0)
            if seq_tag != 0x30:
                raise NtlmParseError("negoTokens is not a SEQUENCE OF")
            for item_tag, item in _children(items):
                if item_tag != 0x30:
                    continue
                for token_field, token_value in _children(item):
                    if token_field == 0xA0:
                        octet_tag, token, _ = _read_tlv(token_value, 0)
                        if octet_tag == 0x04:
                            tokens.append(token)
        elif field_tag == 0xA4:
            inner_tag, integer, _ = _read_tlv(value, 0)
            if inner_tag == 0x02 and integer:
                # NTSTATUS / HRESULT values are unsigned 32-bit codes.
                error_code = int.from_bytes(integer, "big", signed=True) & 0xFFFFFFFF
        # authInfo, pubKeyAuth and clientNonce (FreeRDP echoes it) are irrelevant here.
    if version is None:
        raise NtlmParseError("TSRequest without a version")
    return TsRequest(version=version, nego_tokens=tuple(tokens), error_code=error_code)


def read_der_message(sock: socket.socket | ssl.SSLSocket) -> bytes:
    """Read one complete DER element (the outer TSRequest) from the socket; b"" on EOF."""
    data = b""
    while True:
        if len(data) >= 2:
            first = data[1]
            header = 2 + (first & 0x7F if first & 0x80 else 0)
            if len(data) >= header:
                length = int.from_bytes(data[2:header], "big") if first & 0x80 else first
                if header + length > MAX_TSREQUEST_LENGTH:
                    raise NtlmParseError(f"TSRequest of {header + length} bytes is implausibly large")
                if len(data) >= header + length:
                    return data[: header + length]
        chunk = sock.recv(4096)
        if not chunk:
            if data:
                raise NtlmParseError("connection closed in the middle of a TSRequest")
            return b""
        data += chunk


def _utf16(data: bytes) -> str:
    return data.decode("utf-16-le", "replace")


def parse_challenge(token: bytes) -> NtlmChallenge:
    """Decode an NTLM CHALLENGE_MESSAGE (MS-NLMP 2.2.1.2) and its AV_PAIRs."""
    if len(token) < 48 or token[:8] != NTLM_SIGNATURE:
        raise NtlmParseError("not an NTLMSSP message")
    (message_type,) = struct.unpack("<I", token[8:12])
    if message_type != 2:
        raise NtlmParseError(f"NTLM message type {message_type}, expected CHALLENGE (2)")
    name_len, _, name_offset = struct.unpack("<HHI", token[12:20])
    (flags,) = struct.unpack("<I", token[20:24])
    server_challenge = token[24:32]
    info_len, _, info_offset = struct.unpack("<HHI", token[40:48])

    target_name = None
    if name_len and name_offset + name_len <= len(token):
        target_name = _utf16(token[name_offset : name_offset + name_len])

    os_version = os_name = None
    os_build = None
    if flags & NTLMSSP_NEGOTIATE_VERSION and len(token) >= 56:
        major, minor, build = struct.unpack("<BBH", token[48:52])
        os_version, os_build = f"{major}.{minor}.{build}", build
        os_name = WINDOWS_BUILDS.get((major, minor, build))

    names: dict[str, str] = {}
    timestamp = None
    if info_len:
        if info_offset + info_len > len(token):
            raise NtlmParseError("target info runs past the message")
        info, offset = token[info_offset : info_offset + info_len], 0
        while offset + 4 <= len(info):
            av_id, av_len = struct.unpack("<HH", info[offset : offset + 4])
            value = info[offset + 4 : offset + 4 + av_len]
            offset += 4 + av_len
            if av_id == AV_EOL:
                break
            if av_id in AV_NAMES:
                names[AV_NAMES[av_id]] = _utf16(value)
            elif av_id == AV_TIMESTAMP and len(value) == 8:
                ticks = int.from_bytes(value, "little")
                timestamp = _FILETIME_EPOCH + timedelta(microseconds=ticks // 10)
    return NtlmChallenge(
        flags=flags,
        server_challenge=server_challenge,
        target_name=target_name,
        os_version=os_version,
        os_build=os_build,
        os_name=os_name,
        timestamp=timestamp,
        names=names,
    )
