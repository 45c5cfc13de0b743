"""Classification from observations, and the finding catalogue as data."""

from __future__ import annotations

import ast
import datetime as dt
import re
from pathlib import Path

import pytest
from rdp_fakes import confirm, failure

from azrdp.model import Severity, Source
from azrdp.probe import PROBE_FINDINGS, classify
from azrdp.probe.classify import catalogue
from azrdp.probe.result import Attempt, Observation, TcpSample, Transport, build_document
from azrdp.probe.tls import CertificateInfo
from azrdp.probe.x224 import parse_connection_confirm

UTC = dt.timezone.utc
CLASSIFY_SOURCE = Path(__file__).resolve().parents[2] / "azrdp" / "probe" / "classify.py"


def _obs(**kwargs: object) -> Observation:
    obs = Observation(host="203.0.113.7", port=3389, address="203.0.113.7")
    for key, value in kwargs.items():
        setattr(obs, key, value)
    return obs


def _ok(n: int) -> list[TcpSample]:
    return [TcpSample(ok=True, rtt_ms=1.0 + i) for i in range(n)]


def _reply(raw: bytes, requested: int = 0x0B, label: str = "A") -> Attempt:
    return Attempt(label, requested, Transport.REPLY, reply=parse_connection_confirm(raw, requested))


def _cert(**overrides: object) -> CertificateInfo:
    base: dict[str, object] = {
        "subject": "CN=vm01",
        "issuer": "CN=vm01",
        "common_name": "vm01",
        "subject_alt_names": (),
        "serial_number": "1",
        "not_before": dt.datetime(2025, 1, 1, tzinfo=UTC),
        "not_after": dt.datetime(2026, 1, 1, tzinfo=UTC),
        "expired": False,
        "not_yet_valid": False,
        "days_remaining": 200,
        "self_signed": True,
        "sha1": "AB" * 20,
        "sha256": "CD" * 32,
        "key_type": "RSA",
        "key_size": 2048,
        "signature_hash": "sha256",
    }
    base.update(overrides)
    return CertificateInfo(**base)  # type: ignore[arg-type]


def test_catalogue_is_complete_and_consistent() -> None:
    assert len(PROBE_FINDINGS) >= 30
    for id, spec in PROBE_FINDINGS.items():
        assert spec.id == id
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)+", id), id
        assert spec.likely_causes and all(c.strip() for c in spec.likely_causes)
        assert spec.confirm_with.startswith("azrdp ")
        assert isinstance(spec.severity, Severity)
    rows = catalogue()
    assert [r["id"] for r in rows] == list(PROBE_FINDINGS)
    assert all(r["source"] == "probe" and r["confirmWith"].endswith("VM -g RG") for r in rows)


def test_every_id_used_by_classify_is_catalogued_and_every_entry_is_used() -> None:
    tree = ast.parse(CLASSIFY_SOURCE.read_text())
    used = {
        node.args[1].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and getattr(node.func, "id", None) == "_finding"
        and len(node.args) > 1
        and isinstance(node.args[1], ast.Constant)
    }
    failure_ids = {"neg-failure-unknown"} | {
        v.value
        for v in ast.walk(tree)
        if isinstance(v, ast.Constant) and str(v.value).startswith("neg-failure-")
    }
    assert used <= set(PROBE_FINDINGS)
    assert set(PROBE_FINDINGS) <= used | failure_ids


def test_brief_ids_exist() -> None:
    for id in (
        "tcp-refused",
        "tcp-timeout",
        "not-rdp",
        "neg-failure-ssl-required",
        "tls-handshake-failed",
        "cert-expired",
        "cert-not-yet-valid",
        "nla-not-required",
        "rdp-security-only",
    ):
        assert id in PROBE_FINDINGS


def test_unresolved_name() -> None:
    findings = classify(
        Observation(host="nope.example", port=3389, resolve_error="Name or service not known")
    )
    assert [f.id for f in findings] == ["dns-unresolved"]
    assert findings[0].source is Source.PROBE and findings[0].is_blocker
    assert "nope.example" in findings[0].evidence


def test_some_samples_failed_is_unstable_not_blocked() -> None:
    samples = [*_ok(3), TcpSample(ok=False, failure=Transport.TIMEOUT, error="timed out")]
    findings = classify(_obs(samples=samples, attempts=[_reply(failure(2))]))
    assert [f.id for f in findings] == ["tcp-unstable", "neg-failure-ssl-not-allowed"]
    assert "1 of 4" in findings[0].evidence and "1 timeout" in findings[0].evidence


def test_unreachable_network() -> None:
    samples = [TcpSample(ok=False, failure=Transport.UNREACHABLE, error="No route to host")] * 3
    assert [f.id for f in classify(_obs(samples=samples))] == ["tcp-unreachable"]


def test_all_samples_reset() -> None:
    samples = [TcpSample(ok=False, failure=Transport.RESET, error="reset")] * 2
    assert [f.id for f in classify(_obs(samples=samples))] == ["connection-reset"]


def test_negotiation_connection_fails_after_good_samples() -> None:
    attempt = Attempt("A", 0x0B, Transport.REFUSED, error="Connection refused")
    findings = classify(_obs(samples=_ok(2), attempts=[attempt]))
    assert [f.id for f in findings] == ["tcp-unstable"]


def test_vm_name_in_the_confirm_command() -> None:
    obs = _obs(
        samples=_ok(1), attempts=[_reply(confirm(0))], vm={"name": "web01", "resourceGroup": "rg-prod"}
    )
    (finding,) = classify(obs)
    assert finding.recommendation.endswith("Confirm with: azrdp diagnose web01 -g rg-prod")
    assert finding.details["confirmWith"] == "azrdp diagnose web01 -g rg-prod"


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"expired": True, "days_remaining": -10}, "cert-expired"),
        ({"not_yet_valid": True}, "cert-not-yet-valid"),
        ({"self_signed": False, "issuer": "CN=CA", "days_remaining": 5}, "cert-expiring-soon"),
        ({"key_size": 1024}, "cert-weak"),
        ({"signature_hash": "sha1"}, "cert-weak"),
    ],
)
def test_certificate_findings(overrides: dict[str, object], expected: str) -> None:
    obs = _obs(
        samples=_ok(1),
        attempts=[_reply(confirm(1)), _reply(failure(1), 0, "C")],
        certificate=_cert(**overrides),
    )
    assert expected in [f.id for f in classify(obs)]


def test_self_signed_certificate_near_expiry_is_not_a_warning() -> None:
    # Windows renews its self-signed RDP certificate by itself.
    obs = _obs(samples=_ok(1), attempts=[_reply(confirm(1))], certificate=_cert(days_remaining=3))
    assert "cert-expiring-soon" not in [f.id for f in classify(obs)]


def test_certificate_name_matches_the_vm_computer_name() -> None:
    attempts = [_reply(confirm(1)), _reply(failure(1), 0, "C")]
    good = _obs(samples=_ok(1), attempts=attempts, certificate=_cert(), expected_names=("VM01",))
    bad = _obs(samples=_ok(1), attempts=attempts, certificate=_cert(), expected_names=("web02",))
    assert "cert-name-mismatch" not in [f.id for f in classify(good)]
    mismatch = next(f for f in classify(bad) if f.id == "cert-name-mismatch")
    assert "web02" in mismatch.evidence and "vm01" in mismatch.evidence


def test_document_shape() -> None:
    obs = _obs(samples=_ok(3), attempts=[_reply(confirm(2)), _reply(failure(5), 1, "B")], certificate=_cert())
    findings = classify(obs)
    doc = build_document(obs, findings, dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    assert doc["schemaVersion"] == "2"
    assert doc["target"] == {"host": "203.0.113.7", "port": 3389, "address": "203.0.113.7"}
    assert doc["probedAt"] == "2026-01-02T03:04:05Z"
    assert doc["tcp"]["rttMs"] == {"min": 1.0, "median": 2.0, "max": 3.0}
    assert doc["negotiation"]["selectedProtocol"] == "HYBRID"
    assert doc["negotiation"]["failureCode"] is None
    assert doc["nla"] == {"required": True, "offered": True}
    assert doc["certificate"]["notAfter"] == "2026-01-01T00:00:00Z"
    assert set(doc["findings"][0]) >= {"id", "severity", "title", "evidence", "recommendation"}
    assert doc["verdict"] == "healthy"


def test_local_connect_errors_count_as_unreachable() -> None:
    samples = [TcpSample(ok=False, failure=Transport.ERROR, error="Permission denied")] * 2
    (finding,) = classify(_obs(samples=samples))
    assert finding.id == "tcp-unreachable"
    assert finding.evidence.endswith("(2 error): Permission denied.")
