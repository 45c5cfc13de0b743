"""X.224 Connection Request / Confirm with RDP negotiation (MS-RDPBCGR 2.2.1.1 and 2.2.1.2).

Pure byte building and parsing plus one bounded read of a TPKT from a socket. The request never
carries a cookie or routing token: mstsc puts the user name there and the server ignores it.
"""

from __future__ import annotations

import enum
import socket
import struct
from dataclasses import dataclass

TPKT_VERSION = 0x03
X224_CONNECTION_REQUEST = 0xE0
X224_CONNECTION_CONFIRM = 0xD0
X224_DISCONNECT_REQUEST = 0x80
X224_ERROR = 0x70
TYPE_RDP_NEG_REQ = 0x01
TYPE_RDP_NEG_RSP = 0x02
TYPE_RDP_NEG_FAILURE = 0x03
# The spec bounds no CC length; anything this large is not an RDP server's reply.
MAX_CONFIRM_LENGTH = 512
MIN_CONFIRM_LENGTH = 11


class Protocol(enum.IntFlag):
    RDP = 0x00
    SSL = 0x01
    HYBRID = 0x02
    RDSTLS = 0x04
    HYBRID_EX = 0x08
    RDSAAD = 0x10


# What mstsc asks for by default: TLS, CredSSP and CredSSP with early user authorization.
REQUEST_ALL = Protocol.SSL | Protocol.HYBRID | Protocol.HYBRID_EX

PROTOCOL_NAMES: dict[int, str] = {
    0x00: "RDP",
    0x01: "SSL",
    0x02: "HYBRID",
    0x04: "RDSTLS",
    0x08: "HYBRID_EX",
    0x10: "RDSAAD",
}

FAILURE_NAMES: dict[int, str] = {
    1: "SSL_REQUIRED_BY_SERVER",
    2: "SSL_NOT_ALLOWED_BY_SERVER",
    3: "SSL_CERT_NOT_ON_SERVER",
    4: "INCONSISTENT_FLAGS",
    5: "HYBRID_REQUIRED_BY_SERVER",
    6: "SSL_WITH_USER_AUTH_REQUIRED_BY_SERVER",
}

# Selections after which the client starts TLS on the same socket.
TLS_PROTOCOLS = frozenset({0x01, 0x02, 0x08})
NLA_PROTOCOLS = frozenset({0x02, 0x08})


class ReplyKind(str, enum.Enum):
    RESPONSE = "response"  # RDP_NEG_RSP: a protocol was selected
    FAILURE = "failure"  # RDP_NEG_FAILURE with a code
    LEGACY = "legacy"  # CC without negotiation data: Standard RDP Security
    NOT_RDP = "notRdp"  # the first byte is not a TPKT version 3
    REJECTED = "rejected"  # X.224 Disconnect Request or Error TPDU
    MALFORMED = "malformed"  # TPKT framing or negotiation data broken, or an unrequested protocol


@dataclass(frozen=True)
class NegotiationReply:
    kind: ReplyKind
    raw: bytes
    selected_protocol: int | None = None
    flags: int | None = None
    failure_code: int | None = None
    problem: str | None = None

    @property
    def protocol_name(self) -> str | None:
        if self.selected_protocol is None:
            return None
        return PROTOCOL_NAMES.get(self.selected_protocol, f"0x{self.selected_protocol:X}")

    @property
    def failure_name(self) -> str | None:
        if self.failure_code is None:
            return None
        return FAILURE_NAMES.get(self.failure_code, f"UNKNOWN_{self.failure_code}")


def build_connection_request(requested: int | None) -> bytes:
    """A CR with RDP_NEG_REQ for `requested` (flags 0, no cookie), or a legacy CR when None."""
    variable = b""
    if requested is not None:
        variable = struct.pack("<BBHI", TYPE_RDP_NEG_REQ, 0, 8, int(requested))
    x224 = bytes([6 + len(variable), X224_CONNECTION_REQUEST, 0, 0, 0, 0, 0]) + variable
    return struct.pack(">BBH", TPKT_VERSION, 0, 4 + len(x224)) + x224


def parse_connection_confirm(data: bytes, requested: int | None) -> NegotiationReply:
    """Classify one server reply to a CR; never raises on hostile input."""
    if not data or data[0] != TPKT_VERSION:
        return NegotiationReply(ReplyKind.NOT_RDP, data, problem="the reply is not a TPKT packet")
    if len(data) < 4:
        return NegotiationReply(ReplyKind.MALFORMED, data, problem="truncated TPKT header")
    length = struct.unpack(">H", data[2:4])[0]
    if length < MIN_CONFIRM_LENGTH or length > MAX_CONFIRM_LENGTH:
        return NegotiationReply(ReplyKind.MALFORMED, data, problem=f"TPKT length {length} out of range")
    if len(data) < length:
        return NegotiationReply(
            ReplyKind.MALFORMED, data, problem="the packet is shorter than its TPKT length"
        )
    packet = data[:length]
    if len(packet) < 6:
        return NegotiationReply(ReplyKind.MALFORMED, data, problem="no X.224 header")
    li, code = packet[4], packet[5] & 0xF0
    if code in (X224_DISCONNECT_REQUEST, X224_ERROR):
        name = "Disconnect Request" if code == X224_DISCONNECT_REQUEST else "Error TPDU"
        return NegotiationReply(
            ReplyKind.REJECTED, data, problem=f"X.224 {name} instead of a Connection Confirm"
        )
    if code != X224_CONNECTION_CONFIRM:
        return NegotiationReply(
            ReplyKind.MALFORMED, data, problem=f"X.224 code 0x{packet[5]:02X} is not a CC"
        )
    if li + 5 != length or li < 6:
        return NegotiationReply(
            ReplyKind.MALFORMED, data, problem=f"X.224 length indicator {li} inconsistent"
        )
    if li == 6:
        return NegotiationReply(ReplyKind.LEGACY, data, selected_protocol=int(Protocol.RDP))
    neg = packet[11:]
    if len(neg) < 8:
        return NegotiationReply(ReplyKind.MALFORMED, data, problem="negotiation data shorter than 8 bytes")
    neg_type, flags, neg_length, value = struct.unpack("<BBHI", neg[:8])
    if neg_length != 8:
        return NegotiationReply(ReplyKind.MALFORMED, data, problem=f"negotiation length {neg_length}, not 8")
    if neg_type == TYPE_RDP_NEG_FAILURE:
        return NegotiationReply(ReplyKind.FAILURE, data, flags=flags, failure_code=value)
    if neg_type != TYPE_RDP_NEG_RSP:
        return NegotiationReply(ReplyKind.MALFORMED, data, problem=f"negotiation type {neg_type} unknown")
    asked = int(requested or 0)
    # A server may only pick RDP (0) or exactly one bit the client asked for.
    if value != 0 and (value & (value - 1) or not value & asked):
        return NegotiationReply(
            ReplyKind.MALFORMED,
            data,
            selected_protocol=value,
            flags=flags,
            problem=f"selected protocol 0x{value:X} was not requested (asked 0x{asked:X})",
        )
    return NegotiationReply(ReplyKind.RESPONSE, data, selected_protocol=value, flags=flags)


def read_tpkt(sock: socket.socket) -> bytes:
    """Read one TPKT packet, or whatever arrives before EOF when it is not one.

    The socket's own timeout bounds each recv. Returns b"" on EOF before any byte; raises
    socket.timeout / ConnectionResetError unchanged for the caller to classify.
    """
    # Nothing follows a CC until the client speaks again, so a generous first read loses nothing
    # and keeps a non-RDP banner as evidence.
    data = sock.recv(64)
    while data and data[0] == TPKT_VERSION and len(data) < 4:
        chunk = sock.recv(4 - len(data))
        if not chunk:
            return data
        data += chunk
    if not data or data[0] != TPKT_VERSION:
        return data
    length = struct.unpack(">H", data[2:4])[0]
    if length < 4 or length > MAX_CONFIRM_LENGTH:
        return data
    while len(data) < length:
        chunk = sock.recv(length - len(data))
        if not chunk:
            break
        data += chunk
    return data
