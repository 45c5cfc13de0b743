"""What one probe observed (the input of classify.py) and the result document built from it."""

from __future__ import annotations

import enum
import statistics
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from azrdp.model import SCHEMA_VERSION, Finding, Severity, to_doc
from azrdp.probe.ntlm import NtlmChallenge
from azrdp.probe.tls import CertificateInfo, TlsSession
from azrdp.probe.x224 import NLA_PROTOCOLS, PROTOCOL_NAMES, NegotiationReply, Protocol, ReplyKind


class Transport(str, enum.Enum):
    """How a connection ended when no RDP reply came back."""

    REPLY = "reply"
    CLOSED = "closed"  # EOF before any byte (mstsc shows 0x904)
    RESET = "reset"
    TIMEOUT = "timeout"
    REFUSED = "refused"
    UNREACHABLE = "unreachable"
    ERROR = "error"


@dataclass(frozen=True)
class TcpSample:
    ok: bool
    rtt_ms: float | None = None
    failure: Transport | None = None
    error: str | None = None


@dataclass(frozen=True)
class Attempt:
    """One X.224 negotiation on its own connection."""

    label: str  # "A": SSL|HYBRID|HYBRID_EX, "B": SSL only, "C": RDP only
    requested: int
    transport: Transport
    reply: NegotiationReply | None = None
    error: str | None = None
    elapsed_ms: float | None = None

    @property
    def selected(self) -> int | None:
        if self.reply is None or self.reply.kind not in (ReplyKind.RESPONSE, ReplyKind.LEGACY):
            return None
        return self.reply.selected_protocol

    @property
    def failure_code(self) -> int | None:
        if self.reply is None or self.reply.kind is not ReplyKind.FAILURE:
            return None
        return self.reply.failure_code


@dataclass(frozen=True)
class NtlmOutcome:
    credssp_version: int | None = None
    challenge: NtlmChallenge | None = None
    error_code: int | None = None
    error: str | None = None
    clock_skew_seconds: float | None = None


@dataclass
class Observation:
    host: str
    port: int
    address: str | None = None
    resolve_error: str | None = None
    timeout: float = 5.0
    samples: list[TcpSample] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)
    tls: TlsSession | None = None
    tls_error: str | None = None
    certificate: CertificateInfo | None = None
    certificate_error: str | None = None
    ntlm_requested: bool = False
    ntlm: NtlmOutcome | None = None
    # Names the certificate should carry (the VM's computerName when resolved through Azure).
    expected_names: tuple[str, ...] = ()
    # Where the target came from when it was resolved through the control plane.
    vm: dict[str, Any] | None = None
    connections: int = 0
    elapsed_ms: float = 0.0

    def attempt(self, label: str) -> Attempt | None:
        return next((a for a in self.attempts if a.label == label), None)

    @property
    def tcp_ok(self) -> int:
        return sum(1 for s in self.samples if s.ok)

    @property
    def reachable(self) -> bool:
        """A TCP connection to the port succeeded at least once."""
        return self.tcp_ok > 0


def nla_state(obs: Observation) -> tuple[bool | None, bool | None]:
    """(required, offered) from connections A and B, None where the probe could not tell."""
    first = obs.attempt("A")
    if first is None or first.reply is None:
        return None, None
    reply = first.reply
    if reply.kind is ReplyKind.LEGACY or (reply.kind is ReplyKind.FAILURE and reply.failure_code == 2):
        return False, False
    if reply.kind is ReplyKind.FAILURE and reply.failure_code == 5:
        return True, None
    selected = first.selected
    if selected is None:
        return None, None
    if selected not in NLA_PROTOCOLS:
        return False, False
    second = obs.attempt("B")
    if second is None or second.reply is None:
        return None, True
    if second.failure_code == 5:
        return True, True
    if second.selected == int(Protocol.SSL):
        return False, True
    return None, True


def _rtt(samples: list[TcpSample]) -> dict[str, float] | None:
    values = [s.rtt_ms for s in samples if s.ok and s.rtt_ms is not None]
    if not values:
        return None
    return {
        "min": round(min(values), 3),
        "median": round(statistics.median(values), 3),
        "max": round(max(values), 3),
    }


def _attempt_doc(attempt: Attempt) -> dict[str, Any]:
    reply = attempt.reply
    return {
        "label": attempt.label,
        "requested": [name for bit, name in PROTOCOL_NAMES.items() if bit and attempt.requested & bit]
        or ["RDP"],
        "transport": attempt.transport.value,
        "reply": reply.kind.value if reply else None,
        "selectedProtocol": reply.protocol_name if reply and reply.kind is not ReplyKind.FAILURE else None,
        "failureCode": reply.failure_code if reply else None,
        "failureName": reply.failure_name if reply else None,
        "flags": reply.flags if reply else None,
        "problem": (reply.problem if reply else None) or attempt.error,
        "bytes": reply.raw[:64].hex() if reply else None,
        "elapsedMs": round(attempt.elapsed_ms, 3) if attempt.elapsed_ms is not None else None,
    }


def _certificate_doc(cert: CertificateInfo) -> dict[str, Any]:
    return {
        "subject": cert.subject,
        "issuer": cert.issuer,
        "commonName": cert.common_name,
        "subjectAltNames": list(cert.subject_alt_names),
        "serialNumber": cert.serial_number,
        "notBefore": to_doc(cert.not_before),
        "notAfter": to_doc(cert.not_after),
        "expired": cert.expired,
        "notYetValid": cert.not_yet_valid,
        "daysRemaining": cert.days_remaining,
        "selfSigned": cert.self_signed,
        "sha1": cert.sha1,
        "sha256": cert.sha256,
        "keyType": cert.key_type,
        "keySize": cert.key_size,
        "signatureHash": cert.signature_hash,
    }


def _ntlm_doc(outcome: NtlmOutcome) -> dict[str, Any]:
    challenge = outcome.challenge
    doc: dict[str, Any] = {
        "credsspVersion": outcome.credssp_version,
        "errorCode": f"0x{outcome.error_code:08X}" if outcome.error_code is not None else None,
        "error": outcome.error,
        "clockSkewSeconds": (
            round(outcome.clock_skew_seconds, 1) if outcome.clock_skew_seconds is not None else None
        ),
    }
    if challenge is not None:
        doc.update(
            {
                "targetName": challenge.target_name,
                "netbiosComputer": challenge.names.get("netbiosComputer"),
                "netbiosDomain": challenge.names.get("netbiosDomain"),
                "dnsComputer": challenge.names.get("dnsComputer"),
                "dnsDomain": challenge.names.get("dnsDomain"),
                "dnsTree": challenge.names.get("dnsTree"),
                "osVersion": challenge.os_version,
                "osName": challenge.os_name,
                "serverTime": to_doc(challenge.timestamp) if challenge.timestamp else None,
            }
        )
    return doc


def verdict(findings: list[Finding]) -> str:
    if any(f.severity is Severity.BLOCKER for f in findings):
        return "blocked"
    if any(f.severity is Severity.WARNING for f in findings):
        return "degraded"
    return "healthy"


def build_document(obs: Observation, findings: list[Finding], probed_at: datetime) -> dict[str, Any]:
    """The `azrdp probe` result document (camelCase, schemaVersion 1)."""
    first = obs.attempt("A")
    reply = first.reply if first else None
    required, offered = nla_state(obs)
    failures = [s for s in obs.samples if not s.ok]
    failure_kinds: dict[str, int] = {}
    for sample in failures:
        kind = (sample.failure or Transport.ERROR).value
        failure_kinds[kind] = failure_kinds.get(kind, 0) + 1
    third = obs.attempt("C")
    return {
        "schemaVersion": SCHEMA_VERSION,
        "target": {"host": obs.host, "port": obs.port, "address": obs.address},
        "vm": obs.vm,
        "probedAt": to_doc(probed_at),
        "verdict": verdict(findings),
        "reachable": obs.reachable,
        "tcp": {
            "samples": len(obs.samples),
            "failures": len(failures),
            "failureKinds": failure_kinds,
            "rttMs": _rtt(obs.samples),
            "timeoutSeconds": obs.timeout,
        },
        "negotiation": {
            "selectedProtocol": (
                reply.protocol_name
                if reply and reply.kind in (ReplyKind.RESPONSE, ReplyKind.LEGACY)
                else None
            ),
            "failureCode": reply.failure_code if reply else None,
            "failureName": reply.failure_name if reply else None,
            "legacy": bool(reply and reply.kind is ReplyKind.LEGACY),
            "rdpSecurityAllowed": (
                None if third is None or third.reply is None else third.selected == int(Protocol.RDP)
            ),
            "attempts": [_attempt_doc(a) for a in obs.attempts],
        },
        "nla": {"required": required, "offered": offered},
        "tls": (
            {"version": obs.tls.version, "cipher": obs.tls.cipher, "bits": obs.tls.cipher_bits}
            if obs.tls
            else None
        ),
        "tlsError": obs.tls_error,
        "certificate": _certificate_doc(obs.certificate) if obs.certificate else None,
        "certificateError": obs.certificate_error,
        "ntlm": _ntlm_doc(obs.ntlm) if obs.ntlm else None,
        "connections": obs.connections,
        "elapsedMs": round(obs.elapsed_ms, 1),
        "findings": [to_doc(f) for f in findings],
    }
