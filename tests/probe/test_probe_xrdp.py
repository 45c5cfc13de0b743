"""The probe against a real third-party RDP server: Debian's xrdp, on 127.0.0.1.

Each case starts xrdp with one security_layer and a generated certificate and checks that the
probe reports what xrdp really selects (xrdp never selects CredSSP) and the certificate's real
dates and thumbprint.
"""

from __future__ import annotations

import hashlib
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from rdp_fakes import CertFiles, CertSet, with_foreign_key
from xrdp_runner import Xrdp

from azrdp.probe import probe

pytestmark = pytest.mark.xrdp


def _sha1_of(cert: CertFiles) -> str:
    der = ssl.PEM_cert_to_DER_cert(cert.cert.read_text())
    return hashlib.sha1(der).hexdigest().upper()


def _ids(doc: dict[str, Any]) -> set[str]:
    return {f["id"] for f in doc["findings"]}


def _attempts(doc: dict[str, Any]) -> dict[str, tuple[str | None, str | None]]:
    return {a["label"]: (a["selectedProtocol"], a["failureName"]) for a in doc["negotiation"]["attempts"]}


def _probe(server: Xrdp) -> dict[str, Any]:
    doc, _ = probe("127.0.0.1", server.port, samples=3, timeout=5.0)
    return doc


def test_negotiate_selects_tls_and_allows_rdp_security(xrdp: Callable[..., Xrdp], certs: CertSet) -> None:
    doc = _probe(xrdp("negotiate", certs.valid))
    assert doc["reachable"] is True
    assert doc["tcp"] == {**doc["tcp"], "samples": 3, "failures": 0}
    assert doc["negotiation"]["selectedProtocol"] == "SSL"
    # xrdp answers a request for RDP only with PROTOCOL_RDP: the downgrade is possible.
    assert _attempts(doc) == {"A": ("SSL", None), "C": ("RDP", None)}
    assert doc["negotiation"]["rdpSecurityAllowed"] is True
    assert doc["nla"] == {"required": False, "offered": False}
    assert doc["tls"]["version"] in ("TLSv1.2", "TLSv1.3")
    cert = doc["certificate"]
    assert cert["subject"] == "CN=azrdp-test-valid"
    assert cert["notBefore"] == certs.valid.not_before.isoformat().replace("+00:00", "Z")
    assert cert["notAfter"] == certs.valid.not_after.isoformat().replace("+00:00", "Z")
    assert cert["expired"] is False and cert["selfSigned"] is True
    assert cert["sha1"] == _sha1_of(certs.valid)
    assert _ids(doc) == {"nla-not-offered", "rdp-security-allowed", "cert-self-signed"}
    assert doc["verdict"] == "degraded"
    assert doc["connections"] == 3 + 2


def test_tls_layer_refuses_rdp_security(xrdp: Callable[..., Xrdp], certs: CertSet) -> None:
    doc = _probe(xrdp("tls", certs.valid))
    assert _attempts(doc) == {"A": ("SSL", None), "C": (None, "SSL_REQUIRED_BY_SERVER")}
    assert doc["negotiation"]["rdpSecurityAllowed"] is False
    assert doc["certificate"]["sha1"] == _sha1_of(certs.valid)
    assert _ids(doc) == {"nla-not-offered", "cert-self-signed"}


def test_rdp_layer_is_rdp_security_only(xrdp: Callable[..., Xrdp], certs: CertSet) -> None:
    doc = _probe(xrdp("rdp", certs.valid))
    # xrdp selects PROTOCOL_RDP (it does not send failure 2) and no TLS follows.
    assert _attempts(doc) == {"A": ("RDP", None)}
    assert doc["tls"] is None and doc["certificate"] is None
    assert doc["nla"] == {"required": False, "offered": False}
    assert _ids(doc) == {"rdp-security-only"}
    assert doc["verdict"] == "degraded"


@pytest.mark.parametrize("layer", ["negotiate", "tls"])
def test_expired_certificate_is_served_and_reported(
    xrdp: Callable[..., Xrdp], certs: CertSet, layer: str
) -> None:
    doc = _probe(xrdp(layer, certs.expired))
    cert = doc["certificate"]
    assert cert["notBefore"] == "2020-01-01T00:00:00Z"
    assert cert["notAfter"] == "2021-01-01T00:00:00Z"
    assert cert["expired"] is True
    assert cert["sha1"] == _sha1_of(certs.expired)
    assert "cert-expired" in _ids(doc)
    assert doc["verdict"] == "blocked"


def test_cli_exit_code_against_xrdp(xrdp: Callable[..., Xrdp], certs: CertSet) -> None:
    from typer.testing import CliRunner

    from azrdp.cli.app import app

    server = xrdp("tls", certs.expired)
    result = CliRunner().invoke(app, ["probe", f"127.0.0.1:{server.port}", "--samples", "2", "-o", "json"])
    assert result.exit_code == 4, result.output
    assert '"cert-expired"' in result.stdout


def test_key_mismatch_fails_tls_after_ssl_was_selected(
    xrdp: Callable[..., Xrdp], certs: CertSet, tmp_path: Path
) -> None:
    # xrdp selects SSL, then answers the ClientHello with plaintext MCS bytes.
    doc = _probe(xrdp("tls", with_foreign_key(certs.valid, tmp_path)))
    assert doc["negotiation"]["selectedProtocol"] == "SSL"
    assert doc["tls"] is None and doc["certificate"] is None
    # The Disconnect Provider Ultimatum (03 00 00 09 ...) read as a TLS record header.
    assert "WRONG_VERSION_NUMBER" in doc["tlsError"]
    assert "tls-handshake-failed" in _ids(doc)
    assert doc["verdict"] == "blocked"


def test_tls_1_0_only_server(xrdp: Callable[..., Xrdp], certs: CertSet) -> None:
    server = xrdp("tls", certs.valid, ssl_protocols="TLSv1", tls_ciphers="DEFAULT:@SECLEVEL=0")
    doc = _probe(server)
    assert doc["tls"]["version"] == "TLSv1"
    assert "tls-legacy-version" in _ids(doc)
