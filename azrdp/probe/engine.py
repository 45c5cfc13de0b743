"""Run one probe: TCP samples, negotiation attempts, TLS, certificate and optional NTLM challenge.

Connections are bounded: `samples` plain connects, then at most three negotiation connections
(A: SSL|HYBRID|HYBRID_EX, B: SSL only when CredSSP was selected, C: RDP only when NLA is not
required). No retries. Every socket has a timeout. Nothing here sends a user name, a cookie or a
credential.
"""

from __future__ import annotations

import contextlib
import errno
import socket
import ssl
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from azrdp.model import Finding
from azrdp.probe import ntlm, tls, x224
from azrdp.probe.classify import classify
from azrdp.probe.result import (
    Attempt,
    NtlmOutcome,
    Observation,
    TcpSample,
    Transport,
    build_document,
    nla_state,
)

DEFAULT_PORT = 3389
DEFAULT_SAMPLES = 5
MAX_SAMPLES = 20
DEFAULT_TIMEOUT = 5.0
# Spread the samples a little so they measure the path rather than one burst, but keep a
# healthy 5-sample probe well under half a second.
DEFAULT_SAMPLE_INTERVAL = 0.02

Progress = Callable[[str], None]
_UNREACHABLE = {errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EADDRNOTAVAIL}


def _quiet(_: str) -> None:
    return None


def _failure_kind(exc: BaseException) -> Transport:
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return Transport.TIMEOUT
    if isinstance(exc, ConnectionRefusedError):
        return Transport.REFUSED
    if isinstance(exc, (ConnectionResetError, ConnectionAbortedError, BrokenPipeError)):
        return Transport.RESET
    if isinstance(exc, OSError) and exc.errno in _UNREACHABLE:
        return Transport.UNREACHABLE
    return Transport.ERROR


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


class _Session:
    """The per-probe connection factory; counts every connection it opens."""

    def __init__(self, sockaddr: tuple[Any, ...], family: int, timeout: float) -> None:
        self.sockaddr = sockaddr
        self.family = family
        self.timeout = timeout
        self.connections = 0

    def connect(self) -> socket.socket:
        sock = socket.socket(self.family, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        self.connections += 1
        try:
            sock.connect(self.sockaddr)
        except BaseException:
            sock.close()
            raise
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def sample(self) -> TcpSample:
        started = time.perf_counter()
        try:
            sock = self.connect()
        except OSError as exc:
            return TcpSample(ok=False, failure=_failure_kind(exc), error=_error_text(exc))
        rtt = (time.perf_counter() - started) * 1000
        sock.close()
        return TcpSample(ok=True, rtt_ms=rtt)

    def negotiate(self, label: str, requested: int) -> tuple[Attempt, socket.socket | None]:
        """One CR on a new connection; the socket stays open when the caller must start TLS."""
        started = time.perf_counter()

        def elapsed() -> float:
            return (time.perf_counter() - started) * 1000

        try:
            sock = self.connect()
        except OSError as exc:
            return Attempt(label, requested, _failure_kind(exc), error=_error_text(exc)), None
        try:
            sock.sendall(x224.build_connection_request(requested))
            data = x224.read_tpkt(sock)
        except OSError as exc:
            sock.close()
            return Attempt(
                label, requested, _failure_kind(exc), error=_error_text(exc), elapsed_ms=elapsed()
            ), None
        if not data:
            sock.close()
            return Attempt(label, requested, Transport.CLOSED, elapsed_ms=elapsed()), None
        reply = x224.parse_connection_confirm(data, requested)
        return Attempt(label, requested, Transport.REPLY, reply=reply, elapsed_ms=elapsed()), sock


def _resolve(host: str, port: int) -> tuple[int, tuple[Any, ...]]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    # Prefer IPv4: Azure public IPs are IPv4 unless a dual-stack IP is configured.
    infos.sort(key=lambda info: 0 if info[0] == socket.AF_INET else 1)
    family, _, _, _, sockaddr = infos[0]
    return int(family), tuple(sockaddr)


def _read_challenge(tls_sock: ssl.SSLSocket, now: datetime) -> NtlmOutcome:
    try:
        tls_sock.sendall(ntlm.build_tsrequest(ntlm.build_negotiate_message()))
        data = ntlm.read_der_message(tls_sock)
    except (OSError, ntlm.NtlmParseError) as exc:
        return NtlmOutcome(error=tls.describe_tls_error(exc) if isinstance(exc, OSError) else str(exc))
    if not data:
        return NtlmOutcome(error="the server closed the connection after the NTLM NEGOTIATE")
    try:
        request = ntlm.parse_tsrequest(data)
    except ntlm.NtlmParseError as exc:
        return NtlmOutcome(error=f"unreadable TSRequest: {exc}")
    if not request.nego_tokens:
        return NtlmOutcome(
            credssp_version=request.version,
            error_code=request.error_code,
            error=None if request.error_code is not None else "TSRequest without a negoToken",
        )
    try:
        challenge = ntlm.parse_challenge(request.nego_tokens[0])
    except ntlm.NtlmParseError as exc:
        return NtlmOutcome(credssp_version=request.version, error=f"unreadable NTLM CHALLENGE: {exc}")
    skew = (challenge.timestamp - now).total_seconds() if challenge.timestamp else None
    return NtlmOutcome(credssp_version=request.version, challenge=challenge, clock_skew_seconds=skew)


def observe(
    host: str,
    port: int = DEFAULT_PORT,
    *,
    samples: int = DEFAULT_SAMPLES,
    timeout: float = DEFAULT_TIMEOUT,
    ntlm_info: bool = False,
    sample_interval: float = DEFAULT_SAMPLE_INTERVAL,
    progress: Progress = _quiet,
    now: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
) -> Observation:
    """Talk to the endpoint and record what happened; classification is separate."""
    if not 1 <= samples <= MAX_SAMPLES:
        raise ValueError(f"samples must be between 1 and {MAX_SAMPLES}")
    if timeout <= 0:
        raise ValueError("timeout must be positive")
    started = time.perf_counter()
    obs = Observation(host=host, port=port, timeout=timeout, ntlm_requested=ntlm_info)
    try:
        family, sockaddr = _resolve(host, port)
    except (OSError, UnicodeError) as exc:
        obs.resolve_error = _error_text(exc)
        obs.elapsed_ms = (time.perf_counter() - started) * 1000
        return obs
    obs.address = str(sockaddr[0])
    session = _Session(sockaddr, family, timeout)

    progress(f"Connecting to {obs.address}:{port} ({samples} TCP samples)")
    for index in range(samples):
        if index:
            time.sleep(sample_interval)
        obs.samples.append(session.sample())

    if obs.tcp_ok:
        progress("Negotiating RDP security")
        _negotiate(session, obs, ntlm_info, now, progress)
    obs.connections = session.connections
    obs.elapsed_ms = (time.perf_counter() - started) * 1000
    return obs


def _negotiate(
    session: _Session, obs: Observation, ntlm_info: bool, now: Callable[[], datetime], progress: Progress
) -> None:
    first, sock = session.negotiate("A", int(x224.REQUEST_ALL))
    obs.attempts.append(first)
    selected = first.selected
    if sock is not None:
        try:
            if selected in x224.TLS_PROTOCOLS:
                progress("TLS handshake")
                _tls(sock, obs, ntlm_info and selected in x224.NLA_PROTOCOLS, now)
        finally:
            sock.close()
    if selected in x224.NLA_PROTOCOLS:
        second, sock = session.negotiate("B", int(x224.Protocol.SSL))
        if sock is not None:
            sock.close()
        obs.attempts.append(second)
    required, _ = nla_state(obs)
    # Whether a client may downgrade to Standard RDP Security matters only when NLA does not
    # already forbid it.
    if selected in x224.TLS_PROTOCOLS and required is False:
        third, sock = session.negotiate("C", int(x224.Protocol.RDP))
        if sock is not None:
            sock.close()
        obs.attempts.append(third)


def _tls(sock: socket.socket, obs: Observation, read_ntlm: bool, now: Callable[[], datetime]) -> None:
    try:
        tls_sock, session = tls.handshake(sock)
    except (OSError, ValueError) as exc:
        obs.tls_error = tls.describe_tls_error(exc)
        return
    try:
        obs.tls = session
        if session.certificate_der:
            try:
                obs.certificate = tls.parse_certificate(session.certificate_der, now())
            except ValueError as exc:
                obs.certificate_error = f"unreadable certificate: {exc}"
        if read_ntlm:
            obs.ntlm = _read_challenge(tls_sock, now())
    finally:
        tls_sock.close()


def probe(
    host: str,
    port: int = DEFAULT_PORT,
    *,
    samples: int = DEFAULT_SAMPLES,
    timeout: float = DEFAULT_TIMEOUT,
    ntlm_info: bool = False,
    sample_interval: float = DEFAULT_SAMPLE_INTERVAL,
    expected_names: tuple[str, ...] = (),
    vm: dict[str, Any] | None = None,
    progress: Progress = _quiet,
) -> tuple[dict[str, Any], list[Finding]]:
    """Probe HOST:PORT and return (result document, findings)."""
    probed_at = datetime.now(timezone.utc)
    obs = observe(
        host,
        port,
        samples=samples,
        timeout=timeout,
        ntlm_info=ntlm_info,
        sample_interval=sample_interval,
        progress=progress,
    )
    obs.expected_names = expected_names
    obs.vm = vm
    findings = classify(obs)
    return build_document(obs, findings, probed_at), findings
