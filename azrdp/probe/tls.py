"""TLS on the negotiated RDP socket, and the server certificate's facts.

There is no STARTTLS in RDP: once the server selects SSL or HYBRID*, the client starts TLS on the
same TCP connection. The context is deliberately lenient (no verification, TLS 1.0 and SECLEVEL 0
allowed) because the probe reports what the server offers; judging it is classify.py's job.
"""

from __future__ import annotations

import hashlib
import socket
import ssl
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography import x509

# Not exported by the ssl module before Python 3.12; OpenSSL's value is stable.
_OP_LEGACY_SERVER_CONNECT = getattr(ssl, "OP_LEGACY_SERVER_CONNECT", 0x4)

LEGACY_VERSIONS = frozenset({"SSLv3", "TLSv1", "TLSv1.1"})


@dataclass(frozen=True)
class TlsSession:
    version: str
    cipher: str
    cipher_bits: int | None
    certificate_der: bytes | None


@dataclass(frozen=True)
class CertificateInfo:
    subject: str
    issuer: str
    common_name: str | None
    subject_alt_names: tuple[str, ...]
    serial_number: str
    not_before: datetime
    not_after: datetime
    expired: bool
    not_yet_valid: bool
    days_remaining: int
    self_signed: bool
    sha1: str
    sha256: str
    key_type: str
    key_size: int | None
    signature_hash: str | None


def lenient_context() -> ssl.SSLContext:
    """A client context that completes a handshake with old Windows servers (TLS 1.0, weak keys)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with warnings.catch_warnings():
        # Python deprecates TLS 1.0; allowing it is the point (2008 R2 without KB3080079).
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = ssl.TLSVersion.TLSv1
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    context.options |= _OP_LEGACY_SERVER_CONNECT
    return context


def handshake(sock: socket.socket, context: ssl.SSLContext | None = None) -> tuple[ssl.SSLSocket, TlsSession]:
    """Run the TLS handshake on `sock` (its timeout applies); raises ssl.SSLError / OSError."""
    context = context or lenient_context()
    tls = context.wrap_socket(sock, server_hostname=None, do_handshake_on_connect=True)
    cipher = tls.cipher()
    der = tls.getpeercert(binary_form=True)
    session = TlsSession(
        version=tls.version() or "unknown",
        cipher=cipher[0] if cipher else "unknown",
        cipher_bits=cipher[2] if cipher else None,
        certificate_der=der,
    )
    return tls, session


def describe_tls_error(exc: BaseException) -> str:
    """A short, stable description of a handshake failure (the OpenSSL reason when there is one)."""
    if isinstance(exc, ssl.SSLError):
        reason = getattr(exc, "reason", None)
        if isinstance(exc, ssl.SSLEOFError) or reason == "UNEXPECTED_EOF_WHILE_READING":
            return "the server closed the connection during the TLS handshake"
        if reason:
            return f"TLS error {reason}"
        return f"TLS error: {exc}"
    if isinstance(exc, ConnectionResetError):
        return "the server reset the connection during the TLS handshake"
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "the TLS handshake timed out"
    return f"{type(exc).__name__}: {exc}"


def _name_attribute(name: x509.Name, oid: x509.ObjectIdentifier) -> str | None:
    values = name.get_attributes_for_oid(oid)
    if not values:
        return None
    value = values[0].value
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def parse_certificate(der: bytes, now: datetime | None = None) -> CertificateInfo:
    """Decode a DER certificate; raises ValueError when it is not one."""
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
    from cryptography.x509.oid import NameOID

    now = now or datetime.now(timezone.utc)
    cert = x509.load_der_x509_certificate(der)
    not_before = cert.not_valid_before_utc
    not_after = cert.not_valid_after_utc

    key = cert.public_key()
    key_type, key_size = "unknown", None
    if isinstance(key, rsa.RSAPublicKey):
        key_type, key_size = "RSA", key.key_size
    elif isinstance(key, ec.EllipticCurvePublicKey):
        key_type, key_size = f"EC {key.curve.name}", key.key_size
    elif isinstance(key, dsa.DSAPublicKey):
        key_type, key_size = "DSA", key.key_size
    elif isinstance(key, ed25519.Ed25519PublicKey):
        key_type, key_size = "Ed25519", 256
    elif isinstance(key, ed448.Ed448PublicKey):
        key_type, key_size = "Ed448", 456

    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        alt_names = tuple(san.get_values_for_type(x509.DNSName)) + tuple(
            str(ip) for ip in san.get_values_for_type(x509.IPAddress)
        )
    except (x509.ExtensionNotFound, ValueError):
        alt_names = ()

    hash_algorithm = cert.signature_hash_algorithm
    return CertificateInfo(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        common_name=_name_attribute(cert.subject, NameOID.COMMON_NAME),
        subject_alt_names=alt_names,
        serial_number=f"{cert.serial_number:X}",
        not_before=not_before,
        not_after=not_after,
        expired=now > not_after,
        not_yet_valid=now < not_before,
        days_remaining=(not_after - now).days,
        # Windows' default RDP certificate is self-issued; issuer == subject is the test mstsc uses.
        self_signed=cert.issuer == cert.subject,
        sha1=hashlib.sha1(der, usedforsecurity=False).hexdigest().upper(),
        sha256=hashlib.sha256(der).hexdigest().upper(),
        key_type=key_type,
        key_size=key_size,
        signature_hash=hash_algorithm.name if hash_algorithm else None,
    )
