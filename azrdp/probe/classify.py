"""Turn what the probe observed into findings.

`PROBE_FINDINGS` is the catalogue (id, severity, title, likely causes on an Azure Windows VM and
the azrdp command that confirms it); `classify` is a pure function of an Observation. Ids are
stable: scripts and the docs catalogue depend on them.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from azrdp.model import Finding, Severity, Source
from azrdp.probe.result import Attempt, Observation, Transport, nla_state
from azrdp.probe.tls import LEGACY_VERSIONS
from azrdp.probe.x224 import FAILURE_NAMES, NLA_PROTOCOLS, Protocol, ReplyKind

# Rendered as is in the catalogue; the placeholder becomes the real VM when the probe knows it.
VM_PLACEHOLDER = "VM -g RG"
CHECK = f"azrdp check {VM_PLACEHOLDER}"
DIAGNOSE = f"azrdp diagnose {VM_PLACEHOLDER}"
# Windows refuses Kerberos beyond 5 minutes of skew; CredSSP/NTLM inherit the same tolerance.
MAX_CLOCK_SKEW_SECONDS = 300
CERT_EXPIRY_WARNING_DAYS = 30
MIN_RSA_BITS = 2048


@dataclass(frozen=True)
class ProbeFindingSpec:
    id: str
    severity: Severity
    title: str
    likely_causes: tuple[str, ...]
    confirm_with: str
    recommendation: str


def _spec(
    id: str, severity: Severity, title: str, causes: tuple[str, ...], confirm: str, recommendation: str
) -> ProbeFindingSpec:
    return ProbeFindingSpec(id, severity, title, causes, confirm, recommendation)


BLOCKER, WARNING, INFO = Severity.BLOCKER, Severity.WARNING, Severity.INFO
_NEG_FAILURE_CAUSES = {
    1: ("Only TLS or CredSSP is allowed and the request offered neither usable to the server",),
    2: (
        "SecurityLayer=0 (RDP Security Layer) on RDP-Tcp, e.g. left behind by Run Command ResetRDPCert",
        "Policy 'Require use of specific security layer for remote (RDP) connections' set to RDP",
    ),
    3: (
        "The RDP certificate or its private key is unreadable (MachineKeys ACL, events 1057/1058, "
        "Schannel 36870)",
        "SSLCertificateSHA1Hash on RDP-Tcp points at a certificate that is not in the store",
        "SessionEnv or KeyIso (CNG Key Isolation) service stopped",
    ),
    4: ("The request's flags contradict the server's configuration (Direct Approach only)",),
    5: ("The server requires CredSSP (NLA) and refused it anyway: CredSSP provider or LSA trouble",),
    6: ("The server demands TLS with client-certificate authentication, which mstsc cannot offer",),
}

PROBE_FINDINGS: dict[str, ProbeFindingSpec] = {
    s.id: s
    for s in (
        _spec(
            "dns-unresolved",
            BLOCKER,
            "The host name does not resolve",
            (
                "A typo in the FQDN or an old DNS label",
                "The VM has no public IP, or its DNS name label was removed",
                "A private DNS zone that this machine cannot query",
            ),
            CHECK,
            "Use the VM's current public IP or DNS label (azrdp probe VM -g RG resolves it for you).",
        ),
        _spec(
            "tcp-timeout",
            BLOCKER,
            "TCP connections to the RDP port time out (filtered)",
            (
                "An NSG or ASG rule denies the port from your address (NIC or subnet NSG)",
                "A UDR sends the traffic through an NVA or Azure Firewall that drops it",
                "Just-in-time access is enabled and no request is active",
                "Windows Firewall blocks 'Remote Desktop - User Mode (TCP-In)'",
                "The VM is stopped or deallocated, or the address belongs to another resource",
            ),
            CHECK,
            "Check power state, effective NSG rules and IP flow verify from the control plane.",
        ),
        _spec(
            "tcp-refused",
            BLOCKER,
            "Connection refused: nothing listens on the RDP port",
            (
                "TermService (Remote Desktop Services) is stopped or disabled",
                "The RDP-Tcp listener uses another PortNumber",
                "fDenyTSConnections=1 (registry or policy) or fEnableWinStation=0 on RDP-Tcp",
                "A load balancer NAT rule forwards to the wrong backend port",
            ),
            DIAGNOSE,
            "Check the TermService state and the RDP-Tcp listener inside the guest.",
        ),
        _spec(
            "tcp-unreachable",
            BLOCKER,
            "The network reports the host unreachable",
            (
                "No route from this machine to the address (VPN, peering or local routing)",
                "A firewall on the path answers with ICMP unreachable",
                "The VM was deallocated and its dynamic public IP released",
            ),
            CHECK,
            "Check the public IP assignment and the route (next hop) from the control plane.",
        ),
        _spec(
            "tcp-unstable",
            WARNING,
            "Some TCP connections to the RDP port failed",
            (
                "Packet loss on the path",
                "SNAT port exhaustion or an overloaded NVA",
                "The VM is overloaded or restarting",
            ),
            CHECK,
            "Check Resource Health and the path; rerun with more --samples to measure the loss.",
        ),
        _spec(
            "connection-reset",
            BLOCKER,
            "The server resets the connection instead of answering the RDP request",
            (
                "The RDP listener is broken or TermService is crashing",
                "A firewall or IPS on the path resets RDP",
                "Another program owns the port and rejects the request",
            ),
            DIAGNOSE,
            "Look at TermService and the listener in the guest (SCM events 7031/7034).",
        ),
        _spec(
            "connection-closed",
            BLOCKER,
            "The server accepts TCP and closes without an RDP answer (mstsc: 0x904)",
            (
                "The RDP listener is broken or TermService crashed (SCM 7022/7031)",
                "A port forward or proxy accepts the connection but has no working backend",
            ),
            DIAGNOSE,
            "Check TermService, the RDP-Tcp listener and recent SCM events in the guest.",
        ),
        _spec(
            "no-reply",
            BLOCKER,
            "The server accepts TCP but never answers the RDP request",
            (
                "TermService is hung",
                "A non-RDP service owns the port and waits for its own protocol",
            ),
            DIAGNOSE,
            "Find the process that owns the port in the guest and restart TermService if it is hung.",
        ),
        _spec(
            "not-rdp",
            BLOCKER,
            "Another service answers on the RDP port",
            (
                "Another program is bound to the RDP port (clients may show 0x1104)",
                "A load balancer NAT rule or port forward points at the wrong backend port",
            ),
            DIAGNOSE,
            "Find the owning process (netstat -anob) in the guest, and check LB NAT rules.",
        ),
        _spec(
            "protocol-violation",
            BLOCKER,
            "The RDP negotiation reply is malformed or rejected at X.224",
            (
                "An RDP gateway or middlebox on the path mangles or refuses the negotiation",
                "A non-Windows RDP implementation with a bug",
            ),
            DIAGNOSE,
            "Capture the exchange and compare it with a direct connection inside the VNet.",
        ),
        _spec(
            "legacy-rdp-only",
            WARNING,
            "The server ignores RDP negotiation (Standard RDP Security only)",
            (
                "A pre-Vista / pre-2008 operating system",
                "A proxy that strips the negotiation data",
            ),
            DIAGNOSE,
            "Use a supported Windows version; modern clients warn about or refuse this security.",
        ),
        _spec(
            "rdp-security-only",
            WARNING,
            "The server selects Standard RDP Security: no TLS, no NLA",
            _NEG_FAILURE_CAUSES[2],
            DIAGNOSE,
            "Restore SecurityLayer to 2 (TLS) and NLA; azrdp never lowers them.",
        ),
        _spec(
            "neg-failure-ssl-required",
            BLOCKER,
            "Negotiation failed: SSL_REQUIRED_BY_SERVER",
            _NEG_FAILURE_CAUSES[1],
            DIAGNOSE,
            "Check SecurityLayer and UserAuthentication on RDP-Tcp and in policy.",
        ),
        _spec(
            "neg-failure-ssl-not-allowed",
            WARNING,
            "Negotiation failed: SSL_NOT_ALLOWED_BY_SERVER (Standard RDP Security only)",
            _NEG_FAILURE_CAUSES[2],
            DIAGNOSE,
            "Restore SecurityLayer to 2 (TLS) and NLA; azrdp never lowers them.",
        ),
        _spec(
            "neg-failure-cert-not-on-server",
            BLOCKER,
            "Negotiation failed: SSL_CERT_NOT_ON_SERVER (no usable RDP certificate)",
            _NEG_FAILURE_CAUSES[3],
            DIAGNOSE,
            "Check the 'Remote Desktop' certificate store, SSLCertificateSHA1Hash and MachineKeys ACLs.",
        ),
        _spec(
            "neg-failure-inconsistent-flags",
            BLOCKER,
            "Negotiation failed: INCONSISTENT_FLAGS",
            _NEG_FAILURE_CAUSES[4],
            DIAGNOSE,
            "Compare SecurityLayer and UserAuthentication with the policy values in the guest.",
        ),
        _spec(
            "neg-failure-hybrid-required",
            BLOCKER,
            "Negotiation failed: HYBRID_REQUIRED_BY_SERVER although CredSSP was offered",
            _NEG_FAILURE_CAUSES[5],
            DIAGNOSE,
            "Check the CredSSP security package and LSA events in the guest.",
        ),
        _spec(
            "neg-failure-ssl-with-user-auth-required",
            BLOCKER,
            "Negotiation failed: SSL_WITH_USER_AUTH_REQUIRED_BY_SERVER",
            _NEG_FAILURE_CAUSES[6],
            DIAGNOSE,
            "Remove the client-certificate requirement, or connect with a client that has one.",
        ),
        _spec(
            "neg-failure-unknown",
            BLOCKER,
            "Negotiation failed with an undocumented failure code",
            ("A non-Windows RDP server or a gateway with its own codes",),
            DIAGNOSE,
            "Capture the exchange; the code is not in MS-RDPBCGR 2.2.1.2.2.",
        ),
        _spec(
            "tls-handshake-failed",
            BLOCKER,
            "The TLS handshake fails after the server selected TLS",
            (
                "The certificate's private key is inaccessible (Schannel 36870, MachineKeys ACL)",
                "No common TLS version (Schannel 36871; SCHANNEL\\Protocols\\TLS 1.x\\Server Enabled=0)",
                "The certificate and key do not match, or a middlebox interferes",
            ),
            DIAGNOSE,
            "Check Schannel events, the SCHANNEL protocol keys and MachineKeys in the guest.",
        ),
        _spec(
            "tls-legacy-version",
            WARNING,
            "The server negotiates only TLS 1.0/1.1",
            (
                "Windows Server 2008 R2 without KB3080079",
                "TLS 1.2 disabled under SCHANNEL\\Protocols",
            ),
            DIAGNOSE,
            "Enable TLS 1.2 for the server; clients with TLS 1.0 disabled cannot connect.",
        ),
        _spec(
            "cert-expired",
            BLOCKER,
            "The RDP certificate has expired",
            (
                "Automatic renewal of the self-signed certificate failed (event 1058, 'Access is denied')",
                "A custom certificate bound through SSLCertificateSHA1Hash was not renewed",
                "The VM's clock is far ahead",
            ),
            DIAGNOSE,
            "Renew the certificate (azrdp repair regenerates the self-signed one) and check MachineKeys.",
        ),
        _spec(
            "cert-not-yet-valid",
            BLOCKER,
            "The RDP certificate is not valid yet",
            (
                "The VM's clock was behind when the certificate was created (time sync broken)",
                "This machine's clock is behind",
            ),
            DIAGNOSE,
            "Fix time sync (w32tm) in the guest, then regenerate the certificate.",
        ),
        _spec(
            "cert-expiring-soon",
            WARNING,
            f"The RDP certificate expires within {CERT_EXPIRY_WARNING_DAYS} days",
            ("A custom certificate close to its end date; Windows renews the self-signed one itself",),
            DIAGNOSE,
            "Plan the renewal of the bound certificate.",
        ),
        _spec(
            "cert-self-signed",
            INFO,
            "The RDP certificate is self-signed",
            ("Windows' default: the server creates its own certificate",),
            DIAGNOSE,
            "Expected on Azure VMs; clients warn once. Pin the thumbprint or deploy a CA-issued certificate.",
        ),
        _spec(
            "cert-weak",
            WARNING,
            "The RDP certificate uses a weak key or signature",
            ("An old custom certificate (RSA under 2048 bits, SHA-1 or MD5 signature)",),
            DIAGNOSE,
            "Replace the certificate with an RSA 2048+ / SHA-256 one.",
        ),
        _spec(
            "cert-name-mismatch",
            WARNING,
            "The RDP certificate names another computer",
            (
                "The certificate was cloned with the image from another machine",
                "A custom certificate was bound to the wrong VM",
            ),
            DIAGNOSE,
            "Compare the thumbprint with SSLCertificateSHA1Hash and regenerate the certificate.",
        ),
        _spec(
            "nla-required",
            INFO,
            "Network Level Authentication is required",
            ("UserAuthentication=1 (the Windows default)",),
            DIAGNOSE,
            "Healthy: sign in with an account allowed to log on through Remote Desktop.",
        ),
        _spec(
            "nla-not-required",
            WARNING,
            "NLA is offered but not required",
            ("UserAuthentication=0 on RDP-Tcp or by policy",),
            DIAGNOSE,
            "Require NLA (UserAuthentication=1): without it anyone can reach the logon screen.",
        ),
        _spec(
            "nla-not-offered",
            WARNING,
            "The server offers TLS only, without NLA",
            (
                "UserAuthentication=0 with CredSSP unavailable on the server",
                "A non-Windows RDP server (xrdp never selects CredSSP)",
            ),
            DIAGNOSE,
            "Enable NLA (UserAuthentication=1) on the VM.",
        ),
        _spec(
            "rdp-security-allowed",
            WARNING,
            "The server also accepts Standard RDP Security when a client asks for it",
            ("SecurityLayer=1 (Negotiate) together with UserAuthentication=0",),
            DIAGNOSE,
            "Set SecurityLayer=2 and require NLA so no client can downgrade the connection.",
        ),
        _spec(
            "nla-ok",
            INFO,
            "NLA answers: the server sent an NTLM challenge",
            (
                "Pre-authentication is healthy; a remaining refusal happens after sign-in: "
                "Remote Desktop Users membership, logon rights, TSUserEnabled, fLogonDisabled, drain mode",
            ),
            DIAGNOSE,
            "If sign-in still fails, check logon rights and session switches in the guest.",
        ),
        _spec(
            "credssp-failed",
            BLOCKER,
            "CredSSP fails before authentication",
            (
                "NTLM restricted by policy (Network security: Restrict NTLM)",
                "LSA or CredSSP provider trouble on the server",
            ),
            DIAGNOSE,
            "Check LSA and CredSSP events and NTLM policies in the guest.",
        ),
        _spec(
            "credssp-outdated",
            WARNING,
            "The server speaks an old CredSSP version (before the CVE-2018-0886 fix)",
            (
                "The VM lacks the May 2018 CredSSP update; patched clients fail with "
                "'CredSSP encryption oracle remediation'",
            ),
            DIAGNOSE,
            "Install the Windows updates in the guest.",
        ),
        _spec(
            "clock-skew",
            WARNING,
            "The server's clock differs from this machine's by more than 5 minutes",
            ("Time sync broken in the guest (w32time, VM IC time provider)",),
            DIAGNOSE,
            "Fix time sync (w32tm /resync) in the guest.",
        ),
    )
}

_FAILURE_IDS = {
    1: "neg-failure-ssl-required",
    2: "neg-failure-ssl-not-allowed",
    3: "neg-failure-cert-not-on-server",
    4: "neg-failure-inconsistent-flags",
    5: "neg-failure-hybrid-required",
    6: "neg-failure-ssl-with-user-auth-required",
}


def _vm_placeholder(obs: Observation) -> str:
    if obs.vm and obs.vm.get("name") and obs.vm.get("resourceGroup"):
        return f"{obs.vm['name']} -g {obs.vm['resourceGroup']}"
    return VM_PLACEHOLDER


def _finding(obs: Observation, id: str, evidence: str, **details: Any) -> Finding:
    spec = PROBE_FINDINGS[id]
    confirm = spec.confirm_with.replace(VM_PLACEHOLDER, _vm_placeholder(obs))
    merged: Mapping[str, Any] = {
        **{k: v for k, v in details.items() if v is not None},
        "likelyCauses": list(spec.likely_causes),
        "confirmWith": confirm,
    }
    return Finding(
        id=spec.id,
        severity=spec.severity,
        title=spec.title,
        evidence=evidence,
        recommendation=f"{spec.recommendation} Confirm with: {confirm}",
        source=Source.PROBE,
        details=merged,
    )


def _printable(raw: bytes) -> str:
    text = "".join(chr(b) if 32 <= b < 127 else "." for b in raw[:32])
    return f"{raw[:32].hex()} ({text!r})"


def _tcp_findings(obs: Observation) -> list[Finding]:
    total, ok = len(obs.samples), obs.tcp_ok
    failed = [s for s in obs.samples if not s.ok]
    if not failed:
        return []
    kinds = Counter((s.failure or Transport.ERROR) for s in failed)
    summary = ", ".join(f"{n} {k.value}" for k, n in kinds.most_common())
    where = f"{obs.address or obs.host}:{obs.port}"
    if ok:
        return [
            _finding(
                obs, "tcp-unstable", f"{len(failed)} of {total} TCP connects to {where} failed ({summary})."
            )
        ]
    dominant = kinds.most_common(1)[0][0]
    evidence = f"All {total} TCP connects to {where} failed ({summary})"
    if dominant is Transport.REFUSED:
        return [_finding(obs, "tcp-refused", evidence + ": the host answered with a reset (RST).")]
    if dominant in (Transport.UNREACHABLE, Transport.ERROR):
        # Local errors (a host firewall's EACCES, no route) also mean the path is missing.
        first_error = next((s.error for s in failed if s.error), None)
        detail = f": {first_error}" if first_error else ""
        return [_finding(obs, "tcp-unreachable", f"{evidence}{detail}.")]
    if dominant is Transport.RESET:
        return [_finding(obs, "connection-reset", evidence + ".")]
    return [_finding(obs, "tcp-timeout", f"{evidence}: no answer within {obs.timeout:g} s.")]


def _transport_finding(obs: Observation, attempt: Attempt) -> Finding:
    after = "after the X.224 Connection Request"
    if attempt.transport is Transport.CLOSED:
        return _finding(
            obs, "connection-closed", f"The server closed the connection {after} without a reply."
        )
    if attempt.transport is Transport.RESET:
        return _finding(obs, "connection-reset", f"The server reset the connection {after}.")
    if attempt.transport is Transport.TIMEOUT:
        return _finding(obs, "no-reply", f"No reply within {obs.timeout:g} s {after}.")
    detail = attempt.error or attempt.transport.value
    return _finding(
        obs, "tcp-unstable", f"The negotiation connection failed ({detail}) although TCP samples connected."
    )


def _reply_findings(obs: Observation, attempt: Attempt) -> list[Finding] | None:
    """Findings that end the analysis at connection A's reply, or None to go on."""
    reply = attempt.reply
    assert reply is not None
    raw = {"bytes": reply.raw[:64].hex()}
    if reply.kind is ReplyKind.NOT_RDP:
        return [
            _finding(obs, "not-rdp", f"The reply starts with {_printable(reply.raw)}, not a TPKT.", **raw)
        ]
    if reply.kind in (ReplyKind.REJECTED, ReplyKind.MALFORMED):
        return [_finding(obs, "protocol-violation", f"{reply.problem}: {reply.raw[:32].hex()}.", **raw)]
    if reply.kind is ReplyKind.LEGACY:
        return [
            _finding(obs, "legacy-rdp-only", "The Connection Confirm carries no negotiation data.", **raw),
        ]
    if reply.kind is ReplyKind.FAILURE:
        code = reply.failure_code or 0
        name = FAILURE_NAMES.get(code, f"code {code}")
        evidence = f"RDP_NEG_FAILURE {name} ({code}) to a request for SSL|HYBRID|HYBRID_EX."
        return [
            _finding(obs, _FAILURE_IDS.get(code, "neg-failure-unknown"), evidence, failureCode=code, **raw)
        ]
    if reply.selected_protocol == int(Protocol.RDP):
        return [
            _finding(
                obs,
                "rdp-security-only",
                "The server selected PROTOCOL_RDP although SSL, HYBRID and HYBRID_EX were offered.",
                **raw,
            )
        ]
    return None


def _certificate_findings(obs: Observation) -> list[Finding]:
    cert = obs.certificate
    if cert is None:
        return []
    found: list[Finding] = []
    dates = f"valid {cert.not_before:%Y-%m-%d %H:%M} to {cert.not_after:%Y-%m-%d %H:%M} UTC"
    ident = {"subject": cert.subject, "sha1": cert.sha1}
    if cert.expired:
        found.append(
            _finding(obs, "cert-expired", f"Certificate {cert.subject} is {dates}: expired.", **ident)
        )
    elif cert.not_yet_valid:
        found.append(
            _finding(
                obs, "cert-not-yet-valid", f"Certificate {cert.subject} is {dates}: not valid yet.", **ident
            )
        )
    elif cert.days_remaining < CERT_EXPIRY_WARNING_DAYS and not cert.self_signed:
        found.append(
            _finding(
                obs,
                "cert-expiring-soon",
                f"Certificate {cert.subject} expires in {cert.days_remaining} days.",
                **ident,
            )
        )
    weak = []
    if cert.key_type in ("RSA", "DSA") and (cert.key_size or 0) < MIN_RSA_BITS:
        weak.append(f"{cert.key_type} {cert.key_size} bits")
    if cert.signature_hash in ("sha1", "md5"):
        weak.append(f"{cert.signature_hash.upper()} signature")
    if weak:
        found.append(_finding(obs, "cert-weak", f"Certificate {cert.subject}: {', '.join(weak)}.", **ident))
    mismatch = _name_mismatch(obs)
    if mismatch:
        found.append(_finding(obs, "cert-name-mismatch", mismatch, **ident))
    if cert.self_signed:
        found.append(
            _finding(
                obs,
                "cert-self-signed",
                f"Issuer equals subject ({cert.subject}); SHA-1 {cert.sha1}.",
                **ident,
            )
        )
    return found


def _short(name: str) -> str:
    return name.strip().split(".")[0].lower()


def _name_mismatch(obs: Observation) -> str | None:
    """Compare the certificate with the server's own names; the typed host (an IP or a cloudapp
    label) rarely matches the computer name, so it is not evidence."""
    cert = obs.certificate
    assert cert is not None
    expected = list(obs.expected_names)
    if obs.ntlm and obs.ntlm.challenge:
        names = obs.ntlm.challenge.names
        expected += [n for n in (names.get("dnsComputer"), names.get("netbiosComputer")) if n]
    if not expected:
        return None
    cert_names = [n for n in (cert.common_name, *cert.subject_alt_names) if n]
    for name in cert_names:
        try:
            ipaddress.ip_address(name)
            continue
        except ValueError:
            pass
        if any(_short(name) == _short(e) for e in expected):
            return None
    return (
        f"Certificate names {', '.join(cert_names) or '(none)'}; the server calls itself "
        f"{', '.join(dict.fromkeys(expected))}."
    )


def _ntlm_findings(obs: Observation) -> list[Finding]:
    outcome = obs.ntlm
    if outcome is None:
        return []
    if outcome.challenge is None:
        if outcome.error_code is not None:
            evidence = (
                f"The server answered the NTLM NEGOTIATE with TSRequest errorCode 0x{outcome.error_code:08X}."
            )
        else:
            evidence = f"No NTLM CHALLENGE after the NEGOTIATE: {outcome.error or 'no reply'}."
        return [_finding(obs, "credssp-failed", evidence, errorCode=outcome.error_code)]
    challenge = outcome.challenge
    names = challenge.names
    who = names.get("dnsComputer") or names.get("netbiosComputer") or challenge.target_name or "?"
    os_text = f"{challenge.os_version} ({challenge.os_name})" if challenge.os_name else challenge.os_version
    found = [
        _finding(
            obs,
            "nla-ok",
            f"NTLM CHALLENGE from {who}, domain {names.get('netbiosDomain') or '?'}, "
            f"OS {os_text or 'unknown'}.",
            osVersion=challenge.os_version,
        )
    ]
    if outcome.credssp_version is not None and outcome.credssp_version < 5:
        found.append(
            _finding(
                obs,
                "credssp-outdated",
                f"The server's TSRequest version is {outcome.credssp_version}; "
                "patched servers answer 5 or 6.",
            )
        )
    skew = outcome.clock_skew_seconds
    if skew is not None and abs(skew) > MAX_CLOCK_SKEW_SECONDS:
        direction = "ahead of" if skew > 0 else "behind"
        found.append(
            _finding(
                obs,
                "clock-skew",
                f"The server's clock is {abs(skew):.0f} s {direction} this machine's.",
                skewSeconds=round(skew, 1),
            )
        )
    return found


def _nla_findings(obs: Observation) -> list[Finding]:
    first = obs.attempt("A")
    assert first is not None
    required, offered = nla_state(obs)
    found: list[Finding] = []
    if first.selected == int(Protocol.SSL):
        found.append(
            _finding(obs, "nla-not-offered", "The server selected PROTOCOL_SSL although HYBRID was offered.")
        )
    elif first.selected in NLA_PROTOCOLS:
        second = obs.attempt("B")
        if required:
            found.append(
                _finding(
                    obs, "nla-required", "A request for TLS only was refused with HYBRID_REQUIRED_BY_SERVER."
                )
            )
        elif required is False and offered:
            found.append(
                _finding(
                    obs, "nla-not-required", "A request for TLS only was accepted (PROTOCOL_SSL selected)."
                )
            )
        elif second is not None and second.reply is not None and second.reply.kind is ReplyKind.FAILURE:
            pass  # another refusal of TLS-only tells nothing about NLA
    third = obs.attempt("C")
    if third is not None and third.selected == int(Protocol.RDP):
        found.append(
            _finding(
                obs,
                "rdp-security-allowed",
                "A request for Standard RDP Security only was accepted (PROTOCOL_RDP selected).",
            )
        )
    return found


def classify(obs: Observation) -> list[Finding]:
    """All findings for one probe, blockers first."""
    if obs.resolve_error is not None:
        return [_finding(obs, "dns-unresolved", f"Resolving {obs.host!r} failed: {obs.resolve_error}.")]
    findings = _tcp_findings(obs)
    first = obs.attempt("A")
    if obs.tcp_ok == 0 or first is None:
        return _sorted(findings)
    if first.transport is not Transport.REPLY or first.reply is None:
        return _sorted([*findings, _transport_finding(obs, first)])
    final = _reply_findings(obs, first)
    if final is not None:
        return _sorted(findings + final)
    if obs.tls_error is not None:
        protocol = first.reply.protocol_name
        findings.append(
            _finding(
                obs,
                "tls-handshake-failed",
                f"The server selected {protocol}, then the TLS handshake failed: {obs.tls_error}.",
            )
        )
    elif obs.tls is not None and obs.tls.version in LEGACY_VERSIONS:
        findings.append(
            _finding(
                obs,
                "tls-legacy-version",
                f"The handshake settled on {obs.tls.version} ({obs.tls.cipher}) "
                "with a client that allows up to TLS 1.3.",
            )
        )
    findings += _nla_findings(obs)
    findings += _certificate_findings(obs)
    findings += _ntlm_findings(obs)
    return _sorted(findings)


_ORDER = {Severity.BLOCKER: 0, Severity.WARNING: 1, Severity.INFO: 2}


def _sorted(findings: list[Finding]) -> list[Finding]:
    return sorted(findings, key=lambda f: _ORDER[f.severity])


def catalogue() -> list[dict[str, Any]]:
    """The finding catalogue as data, for `azrdp checks list` and the docs."""
    return [
        {
            "id": spec.id,
            "severity": spec.severity.value,
            "title": spec.title,
            "likelyCauses": list(spec.likely_causes),
            "confirmWith": spec.confirm_with,
            "recommendation": spec.recommendation,
            "source": Source.PROBE.value,
        }
        for spec in PROBE_FINDINGS.values()
    ]
