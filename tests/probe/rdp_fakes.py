"""Scripted RDP servers on 127.0.0.1 and test certificates.

Each FakeServer runs one handler per accepted connection in a thread and records every byte it
receives, so tests can assert what the probe sent (no cookie, no credentials) and how many
connections it opened. The byte strings here are written out by hand from MS-RDPBCGR / MS-CSSP /
MS-NLMP, independent of the product's encoders.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import socket
import ssl
import struct
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

UTC = dt.timezone.utc

# --- Recorded / hand-built server bytes ---------------------------------------------------------


def confirm(selected: int, flags: int = 0x01, src_ref: bytes = b"\x12\x34") -> bytes:
    """X.224 CC with RDP_NEG_RSP (what xrdp sends, SRC-REF 0x1234)."""
    return bytes.fromhex("030000130ed00000") + src_ref + b"\x00" + struct.pack("<BBHI", 2, flags, 8, selected)


def failure(code: int) -> bytes:
    return bytes.fromhex("030000130ed0000012340003000800") + struct.pack("<I", code)


LEGACY_CONFIRM = bytes.fromhex("0300000b06d00000123400")
DISCONNECT_REQUEST = bytes.fromhex("0300000b06800000123400")
# xrdp with a certificate whose key does not match: an MCS Disconnect Provider Ultimatum in clear.
XRDP_PLAINTEXT_ULTIMATUM = bytes.fromhex("0300000902f0802180")
HTTP_BANNER = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"

# The NTLM CHALLENGE observed from a workgroup VM named "VM" (MS-NLMP 2.2.1.2), 108 bytes.
NTLM_CHALLENGE = bytes.fromhex(
    "4e544c4d53535000" "02000000"
    "04000400" "38000000"
    "978288e2"
    "c75c3e9c39f96d85" "0000000000000000"
    "30003000" "3c000000"
    "0601b11d0000000f"
    "56004d00"
    "0200040056004d00" "0100040056004d00" "0400040076006d00" "0300040076006d00"
    "070008008055d81a947ddd01" "00000000"
)  # fmt: skip
NTLM_CHALLENGE_TIME = dt.datetime(1601, 1, 1, tzinfo=UTC) + dt.timedelta(
    microseconds=int.from_bytes(bytes.fromhex("8055d81a947ddd01"), "little") // 10
)


def challenge_with(
    version: bytes = bytes.fromhex("0601b11d0000000f"), timestamp: dt.datetime | None = None
) -> bytes:
    """NTLM_CHALLENGE with another Version block and/or Timestamp AV pair."""
    token = NTLM_CHALLENGE[:48] + version + NTLM_CHALLENGE[56:]
    if timestamp is not None:
        ticks = int((timestamp - dt.datetime(1601, 1, 1, tzinfo=UTC)).total_seconds() * 10_000_000)
        at = token.index(bytes.fromhex("07000800")) + 4
        token = token[:at] + ticks.to_bytes(8, "little") + token[at + 8 :]
    return token


def ts_request_with_token(token: bytes, version: int = 6) -> bytes:
    """TSRequest { version, negoTokens { { negoToken } } } for a 108-byte token (short DER lengths)."""
    assert len(token) == 108
    head = bytes.fromhex("307b") + bytes([0xA0, 3, 2, 1, version])
    return head + bytes.fromhex("a174" "3072" "3070" "a06e" "046c") + token  # fmt: skip


# TSRequest v6 carrying errorCode 0xC0000022 (STATUS_ACCESS_DENIED).
TS_REQUEST_ERROR = bytes.fromhex("300e" "a003020106" "a407" "020500c0000022")  # fmt: skip


# --- Certificates ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CertFiles:
    cert: Path
    key: Path
    not_before: dt.datetime
    not_after: dt.datetime
    common_name: str


_KEY_CACHE: dict[int, rsa.RSAPrivateKey] = {}


@dataclass(frozen=True)
class CertSet:
    valid: CertFiles
    expired: CertFiles
    not_yet_valid: CertFiles
    named_vm: CertFiles  # CN=vm, the name in the recorded NTLM CHALLENGE


def make_cert(
    directory: Path,
    name: str,
    *,
    not_before: dt.datetime,
    not_after: dt.datetime,
    common_name: str | None = None,
    key_bits: int = 2048,
) -> CertFiles:
    """A self-signed server certificate (serverAuth) with the given dates, as PEM files."""
    key = _KEY_CACHE.get(key_bits)
    if key is None:
        key = _KEY_CACHE[key_bits] = rsa.generate_private_key(public_exponent=65537, key_size=key_bits)
    cn = common_name or f"azrdp-test-{name}"
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / f"{name}-cert.pem", directory / f"{name}-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return CertFiles(cert_path, key_path, cert.not_valid_before_utc, cert.not_valid_after_utc, cn)


def with_foreign_key(files: CertFiles, directory: Path) -> CertFiles:
    """The same certificate paired with a private key that does not match it."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_path = directory / f"foreign-key-{files.common_name}.pem"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return CertFiles(files.cert, key_path, files.not_before, files.not_after, files.common_name)


def server_context(files: CertFiles, maximum: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(files.cert, files.key)
    if maximum is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            context.minimum_version = ssl.TLSVersion.TLSv1
            context.maximum_version = maximum
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
    return context


# --- Servers --------------------------------------------------------------------------------


def read_request(conn: socket.socket) -> bytes:
    """One TPKT from the client; b"" when it closes first (a plain TCP sample)."""
    data = b""
    while len(data) < 4 or len(data) < struct.unpack(">H", data[2:4])[0]:
        try:
            chunk = conn.recv(4096)
        except OSError:
            return data
        if not chunk:
            return data
        data += chunk
    return data


def requested_protocols(request: bytes) -> int | None:
    """requestedProtocols of a CR, None for a legacy CR without RDP_NEG_REQ."""
    if len(request) >= 19 and request[11] == 0x01:
        return int(struct.unpack("<I", request[15:19])[0])
    return None


def drain(conn: socket.socket) -> None:
    """Wait until the client closes (or the server's timeout passes)."""
    with contextlib.suppress(OSError):
        while conn.recv(4096):
            pass


def read_der(conn: ssl.SSLSocket) -> bytes:
    data = b""
    while True:
        if len(data) >= 2:
            first = data[1]
            header = 2 + (first & 0x7F if first & 0x80 else 0)
            length = int.from_bytes(data[2:header], "big") if first & 0x80 else first
            if len(data) >= header + length:
                return data
        chunk = conn.recv(4096)
        if not chunk:
            return data
        data += chunk


Handler = Callable[[socket.socket, "FakeServer"], None]


@dataclass
class FakeServer:
    handler: Handler
    backlog: int = 16
    sock: socket.socket = field(init=False)
    port: int = field(init=False)
    received: list[bytes] = field(default_factory=list)
    tls_received: list[bytes] = field(default_factory=list)
    accepted: int = 0
    _threads: list[threading.Thread] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(self.backlog)
        self.port = int(self.sock.getsockname()[1])
        self.sock.settimeout(0.1)
        thread = threading.Thread(target=self._accept_loop, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            conn.settimeout(5)
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, conn: socket.socket) -> None:
        try:
            self.handler(conn, self)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self.sock.close()
        for thread in self._threads:
            thread.join(timeout=5)

    @property
    def negotiations(self) -> list[bytes]:
        """The non-empty first packets (plain TCP samples send nothing)."""
        return [r for r in self.received if r]


def rdp_handler(
    answer: Callable[[int | None], bytes | None],
    *,
    tls: ssl.SSLContext | None = None,
    after_tls: Callable[[ssl.SSLSocket, FakeServer], None] | None = None,
    plaintext_instead_of_tls: bytes | None = None,
) -> Handler:
    """Answer each CR with `answer(requestedProtocols)`; None closes without a reply.

    After a TLS selection (SSL/HYBRID/HYBRID_EX) the handshake runs with `tls`, then `after_tls`.
    """

    def handle(conn: socket.socket, server: FakeServer) -> None:
        request = read_request(conn)
        server.received.append(request)
        if not request:
            return
        reply = answer(requested_protocols(request))
        if reply is None:
            return
        conn.sendall(reply)
        selected = struct.unpack("<I", reply[15:19])[0] if len(reply) == 19 and reply[11] == 2 else None
        if selected not in (1, 2, 8):
            drain(conn)
            return
        if plaintext_instead_of_tls is not None:
            conn.recv(4096)  # the ClientHello
            if plaintext_instead_of_tls:
                conn.sendall(plaintext_instead_of_tls)
                drain(conn)  # let the client read it before the close
            return
        if tls is None:
            drain(conn)
            return
        with contextlib.suppress(ssl.SSLError, OSError):
            tls_conn = tls.wrap_socket(conn, server_side=True)
            if after_tls is not None:
                after_tls(tls_conn, server)
            else:
                drain(tls_conn)

    return handle


def credssp_reply(reply: bytes | None) -> Callable[[ssl.SSLSocket, FakeServer], None]:
    """Read the client's TSRequest and answer `reply` (None: close)."""

    def after(tls_conn: ssl.SSLSocket, server: FakeServer) -> None:
        server.tls_received.append(read_der(tls_conn))
        if reply is not None:
            tls_conn.sendall(reply)
            # Anything the client sent after the CHALLENGE would be an AUTHENTICATE: record it.
            with contextlib.suppress(OSError):
                while chunk := tls_conn.recv(4096):
                    server.tls_received.append(chunk)

    return after


def close_after_request(conn: socket.socket, server: FakeServer) -> None:
    server.received.append(read_request(conn))


def reset_after_request(conn: socket.socket, server: FakeServer) -> None:
    request = read_request(conn)
    server.received.append(request)
    if request:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def silent(conn: socket.socket, server: FakeServer) -> None:
    request = read_request(conn)
    server.received.append(request)
    if request:
        drain(conn)


def banner(data: bytes) -> Handler:
    def handle(conn: socket.socket, server: FakeServer) -> None:
        request = read_request(conn)
        server.received.append(request)
        if request:
            conn.sendall(data)

    return handle


@contextlib.contextmanager
def running(handler: Handler) -> Iterator[FakeServer]:
    server = FakeServer(handler)
    try:
        yield server
    finally:
        server.close()


@contextlib.contextmanager
def filtered_port() -> Iterator[int]:
    """A port whose SYNs go unanswered: a listener with a full accept queue (Linux drops the SYN)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers: list[socket.socket] = []
    try:
        # Fill the queue; once a connect no longer completes at once, SYNs are being dropped.
        for _ in range(4):
            filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
            fillers.append(filler)
        time.sleep(0.05)
        yield port
    finally:
        for filler in fillers:
            filler.close()
        listener.close()
