"""Every probe outcome against in-process servers on 127.0.0.1, scripted byte by byte."""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import struct
from typing import Any

import pytest
from rdp_fakes import (
    DISCONNECT_REQUEST,
    HTTP_BANNER,
    LEGACY_CONFIRM,
    NTLM_CHALLENGE,
    TS_REQUEST_ERROR,
    XRDP_PLAINTEXT_ULTIMATUM,
    CertSet,
    FakeServer,
    challenge_with,
    close_after_request,
    confirm,
    credssp_reply,
    failure,
    filtered_port,
    rdp_handler,
    reset_after_request,
    running,
    server_context,
    silent,
    ts_request_with_token,
)

from azrdp.probe import probe

UTC = dt.timezone.utc
SAMPLES = 3
NEGOTIATE_TSREQUEST = bytes.fromhex(
    "3037" "a003020106" "a130" "302e" "302c" "a02a" "0428"
    "4e544c4d53535000" "01000000" "978208e2"
    "0000000000000000" "0000000000000000" "0601b11d0000000f"
)  # fmt: skip


def run(server: FakeServer, **kwargs: Any) -> dict[str, Any]:
    kwargs.setdefault("samples", SAMPLES)
    kwargs.setdefault("timeout", 2.0)
    kwargs.setdefault("sample_interval", 0.0)
    doc, _ = probe("127.0.0.1", server.port, **kwargs)
    return doc


def ids(doc: dict[str, Any]) -> list[str]:
    return [f["id"] for f in doc["findings"]]


def finding(doc: dict[str, Any], id: str) -> dict[str, Any]:
    return next(f for f in doc["findings"] if f["id"] == id)


def windows_like(nla_required: bool) -> Any:
    """A Windows server: HYBRID to SSL|HYBRID|HYBRID_EX; to SSL only, failure 5 or SSL."""

    def answer(requested: int | None) -> bytes:
        if requested is not None and requested & 0x02:
            return confirm(0x02, flags=0x1F)
        if nla_required:
            return failure(5)
        return confirm(0x01 if requested == 0x01 else 0x00, flags=0x1F)

    return answer


# --- Transport outcomes -----------------------------------------------------------------------


def test_refused() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: the kernel answers RST
        doc, findings = probe("127.0.0.1", port, samples=SAMPLES, timeout=2.0, sample_interval=0.0)
    assert doc["reachable"] is False
    assert doc["tcp"]["failures"] == SAMPLES and doc["tcp"]["failureKinds"] == {"refused": SAMPLES}
    assert doc["tcp"]["rttMs"] is None
    assert ids(doc) == ["tcp-refused"]
    assert findings[0].is_blocker
    assert doc["negotiation"]["attempts"] == [] and doc["connections"] == SAMPLES


def test_timeout_on_a_filtered_port() -> None:
    with filtered_port() as port:
        doc, _ = probe("127.0.0.1", port, samples=2, timeout=0.3, sample_interval=0.0)
    assert doc["reachable"] is False
    assert doc["tcp"]["failureKinds"] == {"timeout": 2}
    assert ids(doc) == ["tcp-timeout"]
    assert "no answer within 0.3 s" in doc["findings"][0]["evidence"]


def test_accepted_then_closed() -> None:
    with running(close_after_request) as server:
        doc = run(server)
    assert doc["reachable"] is True
    assert doc["negotiation"]["attempts"][0]["transport"] == "closed"
    assert ids(doc) == ["connection-closed"]
    assert doc["verdict"] == "blocked"


def test_reset_after_the_request() -> None:
    with running(reset_after_request) as server:
        doc = run(server)
    assert doc["negotiation"]["attempts"][0]["transport"] == "reset"
    assert ids(doc) == ["connection-reset"]


def test_silent_listener_times_out() -> None:
    with running(silent) as server:
        doc = run(server, timeout=0.3)
    assert doc["negotiation"]["attempts"][0]["transport"] == "timeout"
    assert ids(doc) == ["no-reply"]


def test_http_service_on_the_port_is_not_rdp() -> None:
    with running(rdp_handler(lambda _: HTTP_BANNER)) as server:
        doc = run(server)
    assert ids(doc) == ["not-rdp"]
    assert "HTTP/1.1 400" in doc["findings"][0]["evidence"]
    assert doc["negotiation"]["selectedProtocol"] is None


# --- Negotiation replies ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "name", "finding_id", "severity"),
    [
        (1, "SSL_REQUIRED_BY_SERVER", "neg-failure-ssl-required", "blocker"),
        (2, "SSL_NOT_ALLOWED_BY_SERVER", "neg-failure-ssl-not-allowed", "warning"),
        (3, "SSL_CERT_NOT_ON_SERVER", "neg-failure-cert-not-on-server", "blocker"),
        (4, "INCONSISTENT_FLAGS", "neg-failure-inconsistent-flags", "blocker"),
        (5, "HYBRID_REQUIRED_BY_SERVER", "neg-failure-hybrid-required", "blocker"),
        (6, "SSL_WITH_USER_AUTH_REQUIRED_BY_SERVER", "neg-failure-ssl-with-user-auth-required", "blocker"),
        (9, "UNKNOWN_9", "neg-failure-unknown", "blocker"),
    ],
)
def test_each_failure_code(code: int, name: str, finding_id: str, severity: str) -> None:
    with running(rdp_handler(lambda _: failure(code))) as server:
        doc = run(server)
    neg = doc["negotiation"]
    assert (neg["selectedProtocol"], neg["failureCode"], neg["failureName"]) == (None, code, name)
    assert ids(doc) == [finding_id]
    assert doc["findings"][0]["severity"] == severity
    assert doc["tls"] is None
    assert len(neg["attempts"]) == 1


def test_failure_2_means_rdp_security_only() -> None:
    with running(rdp_handler(lambda _: failure(2))) as server:
        doc = run(server)
    assert doc["nla"] == {"required": False, "offered": False}
    assert doc["verdict"] == "degraded"


def test_legacy_reply_without_negotiation_data() -> None:
    with running(rdp_handler(lambda _: LEGACY_CONFIRM)) as server:
        doc = run(server)
    assert doc["negotiation"]["legacy"] is True
    assert doc["negotiation"]["selectedProtocol"] == "RDP"
    assert ids(doc) == ["legacy-rdp-only"]


def test_rdp_selected_despite_tls_offered() -> None:
    with running(rdp_handler(lambda _: confirm(0x00))) as server:
        doc = run(server)
    assert ids(doc) == ["rdp-security-only"]
    assert doc["nla"] == {"required": False, "offered": False}


def test_x224_disconnect_request_is_a_protocol_violation() -> None:
    with running(rdp_handler(lambda _: DISCONNECT_REQUEST)) as server:
        doc = run(server)
    assert ids(doc) == ["protocol-violation"]
    assert "Disconnect Request" in doc["findings"][0]["evidence"]


def test_unrequested_protocol_is_not_trusted() -> None:
    # RDSTLS was not requested: a server that "selects" it is broken, whatever it claims.
    with running(rdp_handler(lambda _: confirm(0x04))) as server:
        doc = run(server)
    assert ids(doc) == ["protocol-violation"]
    assert "not requested" in doc["findings"][0]["evidence"]


# --- TLS and certificates ---------------------------------------------------------------------


def test_tls_only_server_with_a_valid_certificate(certs: CertSet) -> None:
    handler = rdp_handler(lambda r: confirm(0x01) if r else failure(1), tls=server_context(certs.valid))
    with running(handler) as server:
        doc = run(server)
    assert doc["tls"]["version"] == "TLSv1.3"
    cert = doc["certificate"]
    assert cert["subject"] == "CN=azrdp-test-valid" and cert["issuer"] == cert["subject"]
    assert cert["expired"] is False and cert["notYetValid"] is False
    assert (cert["keyType"], cert["keySize"]) == ("RSA", 2048)
    assert len(cert["sha1"]) == 40 and len(cert["sha256"]) == 64
    assert doc["nla"] == {"required": False, "offered": False}
    assert doc["negotiation"]["rdpSecurityAllowed"] is False
    assert ids(doc) == ["nla-not-offered", "cert-self-signed"]


def test_expired_certificate(certs: CertSet) -> None:
    handler = rdp_handler(windows_like(nla_required=True), tls=server_context(certs.expired))
    with running(handler) as server:
        doc = run(server)
    cert = doc["certificate"]
    assert (cert["notBefore"], cert["notAfter"], cert["expired"]) == (
        "2020-01-01T00:00:00Z",
        "2021-01-01T00:00:00Z",
        True,
    )
    assert ids(doc)[0] == "cert-expired"
    assert doc["verdict"] == "blocked"
    assert "2021-01-01" in finding(doc, "cert-expired")["evidence"]


def test_not_yet_valid_certificate(certs: CertSet) -> None:
    handler = rdp_handler(windows_like(nla_required=True), tls=server_context(certs.not_yet_valid))
    with running(handler) as server:
        doc = run(server)
    assert doc["certificate"]["notYetValid"] is True
    assert ids(doc)[0] == "cert-not-yet-valid"


def test_tls_handshake_fails_after_ssl_was_selected() -> None:
    # What xrdp does with a certificate whose key does not match: plaintext MCS bytes instead of TLS.
    handler = rdp_handler(lambda _: confirm(0x01), plaintext_instead_of_tls=XRDP_PLAINTEXT_ULTIMATUM)
    with running(handler) as server:
        doc = run(server)
    assert doc["negotiation"]["selectedProtocol"] == "SSL"
    assert doc["tls"] is None and doc["certificate"] is None
    assert "WRONG_VERSION_NUMBER" in doc["tlsError"]
    assert ids(doc)[0] == "tls-handshake-failed"
    assert doc["verdict"] == "blocked"


def test_tls_handshake_closed_by_server() -> None:
    handler = rdp_handler(lambda _: confirm(0x01), plaintext_instead_of_tls=b"")
    with running(handler) as server:
        doc = run(server)
    assert ids(doc)[0] == "tls-handshake-failed"
    assert doc["tlsError"]


def test_tls_1_0_only_server_is_reached_and_flagged(certs: CertSet) -> None:
    context = server_context(certs.valid, maximum=ssl.TLSVersion.TLSv1)
    handler = rdp_handler(lambda r: confirm(0x01) if r else failure(1), tls=context)
    with running(handler) as server:
        doc = run(server)
    assert doc["tls"]["version"] == "TLSv1"
    assert ids(doc)[0] == "tls-legacy-version"


# --- NLA and the NTLM challenge ---------------------------------------------------------------


def test_nla_required_is_healthy(certs: CertSet) -> None:
    handler = rdp_handler(windows_like(nla_required=True), tls=server_context(certs.valid))
    with running(handler) as server:
        doc = run(server)
    assert doc["negotiation"]["selectedProtocol"] == "HYBRID"
    assert doc["nla"] == {"required": True, "offered": True}
    assert [
        (a["label"], a["selectedProtocol"], a["failureCode"]) for a in doc["negotiation"]["attempts"]
    ] == [
        ("A", "HYBRID", None),
        ("B", None, 5),
    ]
    assert doc["negotiation"]["rdpSecurityAllowed"] is None  # not asked: NLA already forbids it
    assert ids(doc) == ["nla-required", "cert-self-signed"]
    assert doc["verdict"] == "healthy"
    assert doc["connections"] == SAMPLES + 2
    # No NTLM unless asked for.
    assert server.tls_received == [] and doc["ntlm"] is None


def test_nla_offered_but_not_required(certs: CertSet) -> None:
    handler = rdp_handler(windows_like(nla_required=False), tls=server_context(certs.valid))
    with running(handler) as server:
        doc = run(server)
    assert doc["nla"] == {"required": False, "offered": True}
    assert [a["selectedProtocol"] for a in doc["negotiation"]["attempts"]] == ["HYBRID", "SSL", "RDP"]
    assert doc["negotiation"]["rdpSecurityAllowed"] is True
    assert ids(doc)[:2] == ["nla-not-required", "rdp-security-allowed"]
    assert doc["connections"] == SAMPLES + 3


def test_hybrid_ex_selected(certs: CertSet) -> None:
    handler = rdp_handler(
        lambda r: confirm(0x08, flags=0x1F) if r and r & 0x08 else failure(5), tls=server_context(certs.valid)
    )
    with running(handler) as server:
        doc = run(server)
    assert doc["negotiation"]["selectedProtocol"] == "HYBRID_EX"
    assert doc["nla"] == {"required": True, "offered": True}


def test_ntlm_info_reads_the_challenge_and_sends_nothing_else(certs: CertSet) -> None:
    reply = ts_request_with_token(challenge_with(timestamp=dt.datetime.now(UTC)))
    handler = rdp_handler(
        windows_like(nla_required=True), tls=server_context(certs.named_vm), after_tls=credssp_reply(reply)
    )
    with running(handler) as server:
        doc = run(server, ntlm_info=True)
    assert server.tls_received == [NEGOTIATE_TSREQUEST]  # one NEGOTIATE, never an AUTHENTICATE
    ntlm = doc["ntlm"]
    assert ntlm["netbiosComputer"] == "VM" and ntlm["dnsComputer"] == "vm"
    assert ntlm["osVersion"] == "6.1.7601" and ntlm["credsspVersion"] == 6
    assert abs(ntlm["clockSkewSeconds"]) < 60
    assert ids(doc) == ["nla-required", "cert-self-signed", "nla-ok"]


def test_ntlm_names_other_than_the_certificate(certs: CertSet) -> None:
    # The recorded CHALLENGE names the computer "VM"; the test certificate says azrdp-test-valid.
    reply = ts_request_with_token(challenge_with(timestamp=dt.datetime.now(UTC)))
    handler = rdp_handler(
        windows_like(nla_required=True), tls=server_context(certs.valid), after_tls=credssp_reply(reply)
    )
    with running(handler) as server:
        doc = run(server, ntlm_info=True)
    assert "cert-name-mismatch" in ids(doc)


def test_ntlm_clock_skew_and_old_credssp(certs: CertSet) -> None:
    reply = ts_request_with_token(NTLM_CHALLENGE, version=3)  # recorded timestamp: years ago
    handler = rdp_handler(
        windows_like(nla_required=True), tls=server_context(certs.valid), after_tls=credssp_reply(reply)
    )
    with running(handler) as server:
        doc = run(server, ntlm_info=True)
    assert doc["ntlm"]["credsspVersion"] == 3
    assert doc["ntlm"]["clockSkewSeconds"] < -300
    assert {"credssp-outdated", "clock-skew", "nla-ok"} <= set(ids(doc))


def test_credssp_error_code(certs: CertSet) -> None:
    handler = rdp_handler(
        windows_like(nla_required=True),
        tls=server_context(certs.valid),
        after_tls=credssp_reply(TS_REQUEST_ERROR),
    )
    with running(handler) as server:
        doc = run(server, ntlm_info=True)
    assert doc["ntlm"]["errorCode"] == "0xC0000022"
    assert ids(doc)[0] == "credssp-failed"


def test_credssp_closed_after_negotiate(certs: CertSet) -> None:
    handler = rdp_handler(
        windows_like(nla_required=True), tls=server_context(certs.valid), after_tls=credssp_reply(None)
    )
    with running(handler) as server:
        doc = run(server, ntlm_info=True)
    assert ids(doc)[0] == "credssp-failed"
    assert "closed" in doc["ntlm"]["error"]


# --- Safety: what goes on the wire and how often ------------------------------------------------


def test_requests_carry_no_cookie_and_connections_are_bounded(certs: CertSet) -> None:
    handler = rdp_handler(windows_like(nla_required=False), tls=server_context(certs.valid))
    with running(handler) as server:
        doc = run(server, samples=7)
    requests = server.negotiations
    assert [struct.unpack("<I", r[15:19])[0] for r in requests] == [0x0B, 0x01, 0x00]
    for request in requests:
        assert len(request) == 19 and b"Cookie" not in request and b"mstshash" not in request
        assert request[:11] == bytes.fromhex("030000130ee00000000000")
        assert request[11:15] == bytes.fromhex("01000800")  # RDP_NEG_REQ, flags 0
    assert server.accepted == doc["connections"] == 7 + 3
    assert sum(1 for r in server.received if not r) == 7  # the samples send nothing


def test_probe_rejects_unbounded_samples() -> None:
    with pytest.raises(ValueError, match="between 1 and 20"):
        probe("127.0.0.1", 9, samples=21)
