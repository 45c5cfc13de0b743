"""The probe's view shows what an RDP server says (certificate subject, NTLM computer and domain
names, TLS errors) as plain text: a hostile server cannot style, link or hide text in it."""

from __future__ import annotations

import datetime as dt
from typing import Any

from hostile_text import fuzz_view
from rdp_fakes import (
    CertSet,
    challenge_with,
    confirm,
    credssp_reply,
    failure,
    rdp_handler,
    running,
    server_context,
    ts_request_with_token,
)

from azrdp.cli.probe import human_view
from azrdp.probe import probe


def _doc(certs: CertSet) -> dict[str, Any]:
    """A real probe of a Windows-like NLA server, with its NTLM challenge read."""
    reply = ts_request_with_token(challenge_with(timestamp=dt.datetime.now(dt.timezone.utc)))

    def answer(requested: int | None) -> bytes:
        return confirm(0x02, flags=0x1F) if requested is not None and requested & 0x02 else failure(5)

    handler = rdp_handler(answer, tls=server_context(certs.named_vm), after_tls=credssp_reply(reply))
    with running(handler) as server:
        doc, _ = probe("127.0.0.1", server.port, samples=1, timeout=2.0, ntlm_info=True, sample_interval=0.0)
    assert doc["ntlm"] and doc["certificate"]
    return {**doc, "tlsError": "handshake failed", "vm": {"name": "vm", "resourceGroup": "rg"}}


def test_the_probe_view_over_hostile_text(certs: CertSet) -> None:
    doc = _doc(certs)

    fuzz_view(doc, human_view)
