"""Client-side RDP probe: TCP sampling, X.224 negotiation, TLS, certificate, NTLM challenge.

Pure stdlib sockets plus `cryptography` (imported only when a certificate is decoded). Nothing is
imported from azure.* here; resolving a VM to an address is the CLI's job.
"""

from __future__ import annotations

from azrdp.probe.classify import PROBE_FINDINGS, classify
from azrdp.probe.engine import DEFAULT_PORT, observe, probe

__all__ = ["DEFAULT_PORT", "PROBE_FINDINGS", "classify", "observe", "probe"]
