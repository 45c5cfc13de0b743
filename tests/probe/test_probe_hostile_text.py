"""The probe's view shows what an RDP server says (certificate subject, NTLM computer and domain
names, TLS errors) as plain text: a hostile server cannot style, link or hide text in it."""

from __future__ import annotations

import datetime as dt
from typing import Any

from hostile_text import MARKUP, assert_inert, hostile_doc, long_payloads, payloads, rendered
from hypothesis import given, settings
from hypothesis import strategies as st
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
from azrdp.cli.render import emit
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

    def show(payload: str, color: bool) -> str:
        bad = hostile_doc(doc, payload)
        return rendered(lambda term: emit(bad, term, None, human=human_view), color=color)

    @settings(max_examples=10, deadline=None)
    @given(payload=payloads, color=st.booleans())
    def short(payload: str, color: bool) -> None:
        assert_inert(show(payload, color), payload)

    @settings(max_examples=2, deadline=None)
    @given(payload=long_payloads)
    def long(payload: str) -> None:
        assert_inert(show(payload, True))

    short()
    long()
    for fragment in MARKUP:
        assert_inert(show(fragment, True), fragment)
