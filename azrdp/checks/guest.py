"""Guest checks: pure functions of the in-guest script's report (azrdp.guest.contract).

Each check reads `GuestFacts` (the decoded diagnosis, the port the control-plane check used and
the guest clock) and returns its findings, with the System-log events that support a finding
attached to it. A section the script could not read yields no finding here; the engine reports
the section error beside the findings, so "could not read" never passes for "healthy".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from azrdp.checks import CheckFunc, register_check
from azrdp.guest.contract import (
    MACHINEKEYS_DEFAULT_SDDL,
    RDP_TCP_RULE,
    RDP_UDP_RULE,
    CertEntry,
    Diagnosis,
    FirewallInfo,
    FirewallRule,
    ServiceInfo,
    custom_rule_name,
)
from azrdp.model import Finding, Severity, Source

RUN_COMMAND_RBAC = ("Microsoft.Compute/virtualMachines/runCommand/action",)
TS = r"HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server"
RDPTCP = TS + r"\WinStations\RDP-Tcp"
TSPOL = r"HKLM\SOFTWARE\Policies\Microsoft\Windows NT\Terminal Services"
WINLOGON = r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Winlogon"
LOW_DISK_BYTES = 1024**3
LOW_DISK_FRACTION = 0.05
REPAIR_HINT = "`azrdp repair` fixes this with a backup and verifies it."


@dataclass(frozen=True)
class GuestFacts:
    diagnosis: Diagnosis
    expected_port: int | None = None  # the port the NSG check evaluated; None when unknown
    guest_time: datetime | None = None  # the guest's clock when the script ran

    @property
    def listener_port(self) -> int | None:
        rdp = self.diagnosis.rdp
        port = rdp.port if rdp else None
        return port if port is not None else self.expected_port


# Which System-log events back which finding (RCM 1057/1058, Schannel 3687x, SCM 7022).
EVIDENCE_EVENTS: Mapping[str, tuple[int, ...]] = {
    "termservice-not-running": (7022,),
    "service-misconfigured": (7022,),
    "rdp-cert-expired": (1058, 36872),
    "rdp-cert-missing-private-key": (1057, 1058, 36870),
    "rdp-cert-binding-stale": (36870, 36872),
    "machinekeys-acl-corrupt": (1057, 1058, 36870),
    "tls12-server-disabled": (36871,),
    "fips-policy-enabled": (36871,),
}


def _finding(
    facts: GuestFacts,
    check_id: str,
    severity: Severity,
    title: str,
    evidence: str,
    recommendation: str,
    details: Mapping[str, Any] | None = None,
) -> Finding:
    detail = dict(details or {})
    events = _events(facts, EVIDENCE_EVENTS.get(check_id, ()))
    if events:
        detail["events"] = events
        listed = ", ".join(f"{eid} x{n}" for eid, n in events.items())
        evidence = f"{evidence} System log, last 7 days: event {listed}."
    return Finding(check_id, severity, title, evidence, recommendation, Source.GUEST, detail)


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + "."


def _events(facts: GuestFacts, ids: Iterable[int]) -> dict[str, int]:
    counts = facts.diagnosis.events
    if counts is None:
        return {}
    return {str(eid): counts.count(eid) for eid in ids if counts.count(eid) > 0}


def _register(check_id: str, title: str, severity: Severity, reads: str) -> Callable[[CheckFunc], CheckFunc]:
    return register_check(
        id=check_id, title=title, severity=severity, source=Source.GUEST, reads=reads, rbac=RUN_COMMAND_RBAC
    )


# --- listener and registry ----------------------------------------------------------------------


@_register(
    "rdp-disabled",
    "Remote Desktop is turned off in the guest",
    Severity.BLOCKER,
    "Registry: Terminal Server fDenyTSConnections (local and policy)",
)
def rdp_disabled(facts: GuestFacts) -> list[Finding]:
    rdp = facts.diagnosis.rdp
    if rdp is None or rdp.deny_policy is not None or rdp.deny != 1:
        return []
    return [
        _finding(
            facts,
            "rdp-disabled",
            Severity.BLOCKER,
            "Remote Desktop is turned off in the guest",
            f"fDenyTSConnections is 1 in {TS}, and no Group Policy value overrides it.",
            f"Set fDenyTSConnections to 0 (System Properties > Remote). {REPAIR_HINT}",
            {"fDenyTSConnections": rdp.deny},
        )
    ]


@_register(
    "rdp-disabled-by-policy",
    "Group Policy turns Remote Desktop off",
    Severity.BLOCKER,
    "Registry: Terminal Services policy fDenyTSConnections",
)
def rdp_disabled_by_policy(facts: GuestFacts) -> list[Finding]:
    rdp = facts.diagnosis.rdp
    if rdp is None or rdp.deny_policy != 1:
        return []
    domain = facts.diagnosis.os.part_of_domain if facts.diagnosis.os else None
    where = "the domain GPO that sets it" if domain else "the local policy (gpedit.msc)"
    return [
        _finding(
            facts,
            "rdp-disabled-by-policy",
            Severity.BLOCKER,
            "Group Policy turns Remote Desktop off",
            f"fDenyTSConnections is 1 in {TSPOL}; the policy value wins over the local setting.",
            f"Allow 'Allow users to connect remotely by using Remote Desktop Services' in {where}; "
            "a local change would be reverted at the next policy refresh.",
            {
                "fDenyTSConnectionsPolicy": rdp.deny_policy,
                "fDenyTSConnections": rdp.deny,
                "partOfDomain": domain,
            },
        )
    ]


@_register(
    "listener-disabled",
    "The RDP-Tcp listener is disabled",
    Severity.BLOCKER,
    "Registry: RDP-Tcp fEnableWinStation, Terminal Server TSEnabled",
)
def listener_disabled(facts: GuestFacts) -> list[Finding]:
    rdp = facts.diagnosis.rdp
    if rdp is None:
        return []
    problems = []
    if rdp.winstation_enabled == 0:
        problems.append(f"fEnableWinStation is 0 in {RDPTCP}")
    if rdp.ts_enabled == 0:
        problems.append(f"TSEnabled is 0 in {TS}")
    if not problems:
        return []
    return [
        _finding(
            facts,
            "listener-disabled",
            Severity.BLOCKER,
            "The RDP-Tcp listener is disabled",
            "; ".join(problems) + ".",
            f"Set fEnableWinStation and TSEnabled to 1 and restart TermService. {REPAIR_HINT}",
            {"fEnableWinStation": rdp.winstation_enabled, "TSEnabled": rdp.ts_enabled},
        )
    ]


@_register(
    "rdp-logons-disabled",
    "Remote Desktop logons are switched off",
    Severity.BLOCKER,
    "Registry: RDP-Tcp fLogonDisabled, Winlogon WinStationsDisabled, Terminal Server TSUserEnabled",
)
def rdp_logons_disabled(facts: GuestFacts) -> list[Finding]:
    rdp = facts.diagnosis.rdp
    if rdp is None:
        return []
    problems = []
    if rdp.logon_disabled == 1:
        problems.append(f"fLogonDisabled is 1 in {RDPTCP} (the listener refuses logons)")
    if rdp.winstations_disabled == 1:
        problems.append(f'WinStationsDisabled is "1" in {WINLOGON} (change logon /disable)')
    if rdp.ts_user_enabled not in (None, 0):
        problems.append(f"TSUserEnabled is {rdp.ts_user_enabled} in {TS} (users are blocked)")
    if not problems:
        return []
    return [
        _finding(
            facts,
            "rdp-logons-disabled",
            Severity.BLOCKER,
            "Remote Desktop logons are switched off",
            _sentence("; ".join(problems)),
            'Set fLogonDisabled to 0, WinStationsDisabled to "0" and TSUserEnabled to 0 (or run '
            "`change logon /enable`); the listener accepts the connection but refuses the logon. "
            + REPAIR_HINT,
            {
                "fLogonDisabled": rdp.logon_disabled,
                "WinStationsDisabled": rdp.winstations_disabled,
                "TSUserEnabled": rdp.ts_user_enabled,
            },
        )
    ]


@_register(
    "rdp-drain-mode",
    "The server is in drain mode: new Remote Desktop logons are refused",
    Severity.BLOCKER,
    "Registry: Terminal Server TSServerDrainMode; CIM TerminalServerMode (Session Host role)",
)
def rdp_drain_mode(facts: GuestFacts) -> list[Finding]:
    rdp = facts.diagnosis.rdp
    if rdp is None or rdp.drain_mode in (None, 0):
        return []
    rdsh = rdp.terminal_server_mode == 1
    until = " until the next restart" if rdp.drain_mode == 2 else ""
    return [
        _finding(
            facts,
            "rdp-drain-mode",
            Severity.BLOCKER,
            "The server is in drain mode: new Remote Desktop logons are refused",
            f"TSServerDrainMode is {rdp.drain_mode} in {TS}: new logons are refused{until}"
            + (" (this is a Session Host, where a drain is usually deliberate)." if rdsh else "."),
            "Ask whoever drained this Session Host before ending the drain (change logon /enable)."
            if rdsh
            else f"End the drain: set TSServerDrainMode to 0 (change logon /enable). {REPAIR_HINT}",
            {"TSServerDrainMode": rdp.drain_mode, "sessionHost": rdsh},
        )
    ]


@_register(
    "port-mismatch",
    "The RDP listener port differs from the port the network path allows",
    Severity.BLOCKER,
    "Registry: RDP-Tcp PortNumber, compared with the port the NSG check used",
)
def port_mismatch(facts: GuestFacts) -> list[Finding]:
    rdp = facts.diagnosis.rdp
    if rdp is None or rdp.port is None or facts.expected_port is None or rdp.port == facts.expected_port:
        return []
    return [
        _finding(
            facts,
            "port-mismatch",
            Severity.BLOCKER,
            "The RDP listener port differs from the port the network path allows",
            f"PortNumber in {RDPTCP} is {rdp.port}, but the NSG check evaluated port {facts.expected_port}.",
            f"Connect to port {rdp.port} and allow it in the NSGs and the guest firewall, or move the "
            f"listener back to {facts.expected_port}. Rerun with --port {rdp.port} to check that path.",
            {"listenerPort": rdp.port, "checkedPort": facts.expected_port},
        )
    ]


@_register(
    "port-owned-by-other-process",
    "Another process owns the RDP port",
    Severity.BLOCKER,
    "Get-NetTCPConnection owner of the RDP port vs TermService's process id",
)
def port_owned_by_other_process(facts: GuestFacts) -> list[Finding]:
    listener = facts.diagnosis.listener
    if listener is None:
        return []
    out = []
    for owner in listener.ports:
        if owner.pid is None or owner.pid == listener.termservice_pid:
            continue
        name = owner.process or "an unknown process"
        ts_pid = f"PID {listener.termservice_pid}" if listener.termservice_pid else "not running"
        out.append(
            _finding(
                facts,
                "port-owned-by-other-process",
                Severity.BLOCKER,
                "Another process owns the RDP port",
                f"TCP port {owner.port} is held by {name} (PID {owner.pid}), not by TermService ({ts_pid}).",
                f"Stop or reconfigure {name} so it releases port {owner.port}, or move RDP to a free port "
                "(and follow it in the NSG and the firewall). azrdp never kills processes.",
                {
                    "port": owner.port,
                    "pid": owner.pid,
                    "process": owner.process,
                    "termServicePid": listener.termservice_pid,
                },
            )
        )
    return out


# --- services -----------------------------------------------------------------------------------


@_register(
    "termservice-not-running",
    "The Remote Desktop Services service (TermService) is not running",
    Severity.BLOCKER,
    "Win32_Service TermService state",
)
def termservice_not_running(facts: GuestFacts) -> list[Finding]:
    service = facts.diagnosis.service("TermService")
    if service is None or service.state == "Running":
        return []
    return [
        _finding(
            facts,
            "termservice-not-running",
            Severity.BLOCKER,
            "The Remote Desktop Services service (TermService) is not running",
            f"TermService is {service.state} (start mode {service.start_mode}, "
            f"last exit code {service.exit_code}).",
            "Start TermService (Start-Service TermService); check the System log if it stops again. "
            + REPAIR_HINT,
            {"state": service.state, "startMode": service.start_mode, "exitCode": service.exit_code},
        )
    ]


@dataclass(frozen=True)
class _ServiceRule:
    name: str
    account: str  # the shipped default, normalised by _account()
    must_run: bool  # stopped is a fault (not only Disabled)
    severity: Severity
    role: str


_SERVICE_RULES = (
    # TermService not running has its own check; here only its start mode and account.
    _ServiceRule("TermService", "ntauthority\\networkservice", False, Severity.BLOCKER, "the RDP listener"),
    _ServiceRule("UmRdpService", "localsystem", False, Severity.WARNING, "RDP device redirection"),
    _ServiceRule("SessionEnv", "localsystem", False, Severity.BLOCKER, "creates the RDP certificate"),
    _ServiceRule("KeyIso", "localsystem", False, Severity.BLOCKER, "opens the listener's private key"),
    _ServiceRule("CryptSvc", "ntauthority\\networkservice", False, Severity.WARNING, "certificate services"),
    _ServiceRule("CertPropSvc", "localsystem", False, Severity.WARNING, "certificate propagation"),
    _ServiceRule("MpsSvc", "ntauthority\\localservice", True, Severity.BLOCKER, "Windows Firewall"),
    _ServiceRule("BFE", "ntauthority\\localservice", True, Severity.BLOCKER, "Base Filtering Engine"),
    _ServiceRule(
        "RdAgent", "localsystem", True, Severity.WARNING, "Azure guest agent (Run Command, repairs)"
    ),
    _ServiceRule(
        "WindowsAzureGuestAgent",
        "localsystem",
        True,
        Severity.WARNING,
        "Azure guest agent (Run Command, repairs)",
    ),
)


def _account(value: str | None) -> str:
    """Compared like the rdp-services repair does (azrdp.repairs.guest), so a finding has its fix."""
    text = (value or "").lower().replace(" ", "")
    return {"ntauthority\\system": "localsystem", ".\\localsystem": "localsystem"}.get(text, text)


def _service_problems(rule: _ServiceRule, service: ServiceInfo) -> list[str]:
    if service.state == "NotFound":
        return [f"{rule.name} ({rule.role}) is not installed"]
    problems = []
    if service.start_mode == "Disabled":
        problems.append(f"{rule.name} ({rule.role}) is Disabled")
    elif rule.must_run and service.state != "Running":
        problems.append(f"{rule.name} ({rule.role}) is {service.state}")
    if service.account and _account(service.account) != rule.account:
        problems.append(f"{rule.name} logs on as {service.account}")
    return problems


@_register(
    "service-misconfigured",
    "A service Remote Desktop depends on is disabled, stopped or misconfigured",
    Severity.BLOCKER,
    "Win32_Service state, start mode and account of the RDP, crypto, firewall and agent services",
)
def service_misconfigured(facts: GuestFacts) -> list[Finding]:
    problems: list[str] = []
    details: dict[str, Any] = {}
    severity = Severity.WARNING
    for rule in _SERVICE_RULES:
        service = facts.diagnosis.service(rule.name)
        if service is None:
            continue
        found = _service_problems(rule, service)
        if found:
            problems.extend(found)
            details[rule.name] = {
                "state": service.state,
                "startMode": service.start_mode,
                "account": service.account,
            }
            if rule.severity is Severity.BLOCKER:
                severity = Severity.BLOCKER
    if not problems:
        return []
    return [
        _finding(
            facts,
            "service-misconfigured",
            severity,
            "A service Remote Desktop depends on is disabled, stopped or misconfigured",
            "; ".join(problems) + ".",
            "Restore the default start type and account (TermService: Manual, NT Authority\\NetworkService; "
            f"MpsSvc and BFE: Automatic, running). {REPAIR_HINT}",
            {"services": details},
        )
    ]


# --- certificate and keys -----------------------------------------------------------------------


def _listener_cert(facts: GuestFacts) -> CertEntry | None:
    cert = facts.diagnosis.cert
    return cert.listener_cert if cert else None


def _cert_details(cert: CertEntry) -> dict[str, Any]:
    return {"thumbprint": cert.thumbprint, "notAfter": cert.not_after, "store": cert.store}


@_register(
    "rdp-cert-expired",
    "The RDP certificate has expired",
    Severity.BLOCKER,
    "Cert:\\LocalMachine\\Remote Desktop (and the pinned certificate): NotAfter",
)
def rdp_cert_expired(facts: GuestFacts) -> list[Finding]:
    cert = _listener_cert(facts)
    expires = cert.expires if cert else None
    if cert is None or expires is None or facts.guest_time is None or expires > facts.guest_time:
        return []
    pinned = bool(facts.diagnosis.cert and facts.diagnosis.cert.pin)
    how = (
        "the certificate pinned by SSLCertificateSHA1Hash" if pinned else "the newest self-signed certificate"
    )
    return [
        _finding(
            facts,
            "rdp-cert-expired",
            Severity.BLOCKER,
            "The RDP certificate has expired",
            f"The listener uses {how} ({cert.thumbprint}), which expired on {cert.not_after}.",
            "Replace the pinned certificate with an in-date one."
            if pinned
            else "Delete the expired self-signed certificate and restart SessionEnv so Windows issues a "
            f"new one. {REPAIR_HINT}",
            {**_cert_details(cert), "pinned": pinned},
        )
    ]


@_register(
    "rdp-cert-missing-private-key",
    "The RDP certificate's private key is missing or cannot be opened",
    Severity.BLOCKER,
    "Cert:\\LocalMachine\\Remote Desktop: HasPrivateKey, and whether the key opens",
)
def rdp_cert_missing_private_key(facts: GuestFacts) -> list[Finding]:
    cert = _listener_cert(facts)
    if cert is None or (cert.has_private_key is not False and cert.key_opens is not False):
        return []
    what = (
        "has no private key" if cert.has_private_key is False else "has a private key that cannot be opened"
    )
    return [
        _finding(
            facts,
            "rdp-cert-missing-private-key",
            Severity.BLOCKER,
            "The RDP certificate's private key is missing or cannot be opened",
            f"The listener certificate {cert.thumbprint} {what} (Keyset does not exist).",
            f"Repair the key's permissions if they are wrong, then delete the broken certificate and restart "
            f"SessionEnv so Windows issues a new one. {REPAIR_HINT}",
            {**_cert_details(cert), "hasPrivateKey": cert.has_private_key, "keyOpens": cert.key_opens},
        )
    ]


@_register(
    "rdp-cert-binding-stale",
    "The listener is pinned to a certificate that does not exist",
    Severity.BLOCKER,
    "Registry: RDP-Tcp SSLCertificateSHA1Hash vs the Remote Desktop and My stores",
)
def rdp_cert_binding_stale(facts: GuestFacts) -> list[Finding]:
    cert = facts.diagnosis.cert
    if cert is None or not cert.pin or cert.find(cert.pin) is not None:
        return []
    by_gpo = cert.pin_type == 2
    return [
        _finding(
            facts,
            "rdp-cert-binding-stale",
            Severity.BLOCKER,
            "The listener is pinned to a certificate that does not exist",
            f"SSLCertificateSHA1Hash in {RDPTCP} names {cert.pin}, which is in neither the Remote "
            "Desktop nor the My store" + (" (the pin is set by Group Policy)." if by_gpo else "."),
            "Fix the certificate template in the GPO that pins it."
            if by_gpo
            else "Delete the dangling SSLCertificateSHA1Hash value so the listener uses its self-signed "
            f"certificate, or pin an existing certificate. {REPAIR_HINT}",
            {"pin": cert.pin, "pinType": cert.pin_type},
        )
    ]


@_register(
    "machinekeys-acl-corrupt",
    "MachineKeys permissions stop the listener from reading its key",
    Severity.BLOCKER,
    "MachineKeys folder SDDL and the ACL of the listener certificate's key file",
)
def machinekeys_acl_corrupt(facts: GuestFacts) -> list[Finding]:
    mk = facts.diagnosis.machine_keys
    if mk is None:
        return []
    key_broken = mk.key_readable is False or mk.key_denied is True
    folder_changed = mk.folder_default is False
    if not key_broken and not folder_changed:
        return []
    cert = _listener_cert(facts)
    cert_trouble = cert is not None and (cert.key_opens is False or cert.has_private_key is False)
    rcm_events = bool(_events(facts, (1057, 1058)))
    # A hardened folder alone does not break RDP (it breaks the next key Windows creates).
    severity = Severity.BLOCKER if (key_broken or cert_trouble or rcm_events) else Severity.WARNING
    parts = []
    if key_broken:
        parts.append(
            "NETWORK SERVICE cannot read the listener key file"
            + (" (a Deny entry applies)" if mk.key_denied else "")
        )
    if folder_changed:
        parts.append(
            f"the MachineKeys folder's SDDL is {mk.sddl}, not the default {MACHINEKEYS_DEFAULT_SDDL}"
        )
    return [
        _finding(
            facts,
            "machinekeys-acl-corrupt",
            severity,
            "MachineKeys permissions stop the listener from reading its key",
            _sentence("; ".join(parts)),
            "Grant NETWORK SERVICE read on the listener key file only and restore the folder's default ACL "
            f"(never take ownership of, or grant access to, every key). {REPAIR_HINT}",
            {
                "folderSddl": mk.sddl,
                "folderDefault": folder_changed is False,
                "keyReadable": mk.key_readable,
                "keyDenied": mk.key_denied,
            },
        )
    ]


# --- TLS and policy -----------------------------------------------------------------------------


@_register(
    "tls12-server-disabled",
    "TLS 1.2 is disabled for servers in SCHANNEL",
    Severity.BLOCKER,
    "Registry: SCHANNEL Protocols\\TLS 1.2\\Server Enabled / DisabledByDefault",
)
def tls12_server_disabled(facts: GuestFacts) -> list[Finding]:
    tls = facts.diagnosis.tls
    if tls is None or tls.tls12 is None or not tls.tls12.off:
        return []
    return [
        _finding(
            facts,
            "tls12-server-disabled",
            Severity.BLOCKER,
            "TLS 1.2 is disabled for servers in SCHANNEL",
            f"SCHANNEL\\Protocols\\TLS 1.2\\Server has Enabled={tls.tls12.enabled}, "
            f"DisabledByDefault={tls.tls12.disabled_by_default}: the listener has no TLS version "
            "clients use.",
            "Set Enabled=1 and DisabledByDefault=0 under TLS 1.2\\Server (or delete both), then reboot; "
            f"do not re-enable TLS 1.0/1.1. {REPAIR_HINT}",
            {"enabled": tls.tls12.enabled, "disabledByDefault": tls.tls12.disabled_by_default},
        )
    ]


@_register(
    "fips-policy-enabled",
    "The FIPS algorithm policy is enabled",
    Severity.WARNING,
    "Registry: Lsa\\FIPSAlgorithmPolicy Enabled",
)
def fips_policy_enabled(facts: GuestFacts) -> list[Finding]:
    tls = facts.diagnosis.tls
    if tls is None or tls.fips != 1:
        return []
    return [
        _finding(
            facts,
            "fips-policy-enabled",
            Severity.WARNING,
            "The FIPS algorithm policy is enabled",
            "Lsa\\FIPSAlgorithmPolicy Enabled is 1: only FIPS-compliant TLS suites are offered, which some "
            "RDP clients cannot use.",
            "This is a compliance choice; azrdp never changes it. Use a FIPS-capable client, or change the "
            "policy if it was not intended.",
            {"fips": tls.fips},
        )
    ]


@_register(
    "credssp-oracle-mismatch",
    "CredSSP accepts vulnerable clients (AllowEncryptionOracle = 2)",
    Severity.WARNING,
    "Registry: CredSSP\\Parameters AllowEncryptionOracle",
)
def credssp_oracle_mismatch(facts: GuestFacts) -> list[Finding]:
    tls = facts.diagnosis.tls
    if tls is None or tls.oracle != 2:
        return []
    return [
        _finding(
            facts,
            "credssp-oracle-mismatch",
            Severity.WARNING,
            "CredSSP accepts vulnerable clients (AllowEncryptionOracle = 2)",
            "AllowEncryptionOracle is 2 (Vulnerable) under CredSSP\\Parameters: the VM admits clients that "
            "lack the CVE-2018-0886 update.",
            "Patch the clients, then remove the value (an unpatched client and a patched server "
            "cannot agree).",
            {"allowEncryptionOracle": tls.oracle},
        )
    ]


@_register(
    "nla-or-security-downgraded",
    "RDP security is downgraded (native RDP security or NLA off)",
    Severity.WARNING,
    "Registry: RDP-Tcp and policy SecurityLayer, UserAuthentication; CIM policy sources",
)
def nla_or_security_downgraded(facts: GuestFacts) -> list[Finding]:
    rdp = facts.diagnosis.rdp
    if rdp is None:
        return []
    parts = []
    if rdp.effective_security_layer == 0:
        parts.append("SecurityLayer is 0 (native RDP security, no TLS)")
    if rdp.effective_user_auth == 0:
        parts.append("UserAuthentication is 0 (Network Level Authentication off)")
    if not parts:
        return []
    by_gpo = 1 in (rdp.source_security_layer, rdp.source_user_auth)
    return [
        _finding(
            facts,
            "nla-or-security-downgraded",
            Severity.WARNING,
            "RDP security is downgraded (native RDP security or NLA off)",
            "; ".join(parts)
            + ". The VM still accepts connections but is weaker (ResetRDPCert and DisableNLA "
            "leave it like this).",
            ("Fix it in the Group Policy that sets it: " if by_gpo else "")
            + "set SecurityLayer to 2 (TLS) and UserAuthentication to 1 once the certificate and TLS "
            "checks pass.",
            {
                "securityLayer": rdp.effective_security_layer,
                "userAuthentication": rdp.effective_user_auth,
                "policySourceSecurityLayer": rdp.source_security_layer,
                "policySourceUserAuthentication": rdp.source_user_auth,
            },
        )
    ]


# --- firewall -----------------------------------------------------------------------------------


def _active_enabled_profiles(fw: FirewallInfo) -> list[str]:
    """Profiles where the firewall is on and which apply to a connected network (all when unknown)."""
    active = set(fw.active)
    return [p.name or "" for p in fw.profiles if p.enabled and (not active or p.name in active)]


def _port_in(ports: str | None, port: int) -> bool:
    for part in (ports or "").split(","):
        part = part.strip()
        if part.lower() == "any":
            return True
        low, _, high = part.partition("-")
        if low.isdigit() and int(low) <= port <= int(high if high.isdigit() else low):
            return True
    return False


def _profiles_covered(rule: FirewallRule, active: list[str]) -> bool:
    """The rule applies on every active profile ("Any", or a list such as "Domain, Private")."""
    names = {p.strip().lower() for p in (rule.profile or "Any").split(",")}
    return "any" in names or all(p.lower() in names for p in active)


def _rule_admits(rule: FirewallRule | None, port: int, active: list[str]) -> bool:
    return (
        rule is not None
        and rule.exists is True
        and rule.enabled is True
        and rule.action == "Allow"
        and _port_in(rule.local_ports, port)
        and _profiles_covered(rule, active)
    )


def tcp_port_admitted(fw: FirewallInfo, port: int) -> bool:
    """The built-in TCP rule, or the azrdp-RDP-<port> rule azrdp adds after moving the port, lets it in."""
    active = _active_enabled_profiles(fw)
    return any(_rule_admits(fw.rule(name), port, active) for name in (RDP_TCP_RULE, custom_rule_name(port)))


@_register(
    "firewall-rule-disabled",
    "The Windows Firewall does not let the RDP port in",
    Severity.BLOCKER,
    "Get-NetFirewallRule RemoteDesktop-UserMode-In-TCP and azrdp-RDP-<port> (by name, ActiveStore) and "
    "inbound Block rules",
)
def firewall_rule_disabled(facts: GuestFacts) -> list[Finding]:
    fw = facts.diagnosis.firewall
    port = facts.listener_port
    if fw is None or port is None or not _active_enabled_profiles(fw):
        return []
    rule = fw.rule(RDP_TCP_RULE)
    problems = []
    if tcp_port_admitted(fw, port):
        pass
    elif rule is None or rule.exists is False:
        problems.append(f"the rule {RDP_TCP_RULE} does not exist")
    elif not rule.enabled:
        problems.append(f"the rule {rule.name} is disabled")
    elif rule.action != "Allow":
        problems.append(f"the rule {rule.name} is set to {rule.action}")
    elif not _port_in(rule.local_ports, port):
        problems.append(f"the rule {rule.name} allows port {rule.local_ports}, not the listener's {port}")
    else:
        problems.append(f"the rule {rule.name} applies to the {rule.profile} profile(s), not the active one")
    if fw.blocks:
        problems.append(f"inbound Block rule(s) cover port {port}: {', '.join(fw.blocks)}")
    if not problems:
        return []
    return [
        _finding(
            facts,
            "firewall-rule-disabled",
            Severity.BLOCKER,
            "The Windows Firewall does not let the RDP port in",
            _sentence("; ".join(problems)),
            f"Enable the rule by name (Enable-NetFirewallRule -Name {RDP_TCP_RULE}), cover "
            f"port {port}, and remove Block rules on it. {REPAIR_HINT}",
            {
                "rule": rule.name if rule else RDP_TCP_RULE,
                "exists": rule.exists if rule else False,
                "enabled": rule.enabled if rule else None,
                "localPorts": rule.local_ports if rule else None,
                "blockRules": list(fw.blocks),
                "port": port,
            },
        )
    ]


@_register(
    "firewall-udp-rule-disabled",
    "The Windows Firewall blocks RDP over UDP",
    Severity.INFO,
    "Get-NetFirewallRule RemoteDesktop-UserMode-In-UDP (by name, ActiveStore)",
)
def firewall_udp_rule_disabled(facts: GuestFacts) -> list[Finding]:
    fw = facts.diagnosis.firewall
    if fw is None or not _active_enabled_profiles(fw):
        return []
    rule = fw.rule(RDP_UDP_RULE)
    if rule is None or rule.exists is not True or (rule.enabled is not False and rule.action == "Allow"):
        return []
    state = "disabled" if rule.enabled is False else f"set to {rule.action}"
    return [
        _finding(
            facts,
            "firewall-udp-rule-disabled",
            Severity.INFO,
            "The Windows Firewall blocks RDP over UDP",
            f"The rule {RDP_UDP_RULE} is {state}: clients fall back to TCP, which works but is slower on "
            "lossy or distant links.",
            f"Enable it by name (Enable-NetFirewallRule -Name {RDP_UDP_RULE}) unless UDP is off on purpose; "
            "the NSG must allow UDP too. `azrdp repair` enables it with a backup.",
            {"rule": RDP_UDP_RULE, "enabled": rule.enabled, "action": rule.action},
        )
    ]


@_register(
    "firewall-blocks-all-inbound",
    "A firewall profile blocks all inbound connections",
    Severity.BLOCKER,
    "Get-NetFirewallProfile (ActiveStore) AllowInboundRules; FirewallPolicy DoNotAllowExceptions",
)
def firewall_blocks_all_inbound(facts: GuestFacts) -> list[Finding]:
    fw = facts.diagnosis.firewall
    if fw is None:
        return []
    active = set(fw.active)
    blocking = [
        p
        for p in fw.profiles
        if p.enabled
        and (not active or p.name in active)
        and (p.allow_inbound_rules is False or p.do_not_allow_exceptions == 1)
    ]
    if not blocking:
        return []
    names = ", ".join(p.name or "?" for p in blocking)
    return [
        _finding(
            facts,
            "firewall-blocks-all-inbound",
            Severity.BLOCKER,
            "A firewall profile blocks all inbound connections",
            f"The active {names} profile(s) ignore allow rules (AllowInboundRules False or "
            "DoNotAllowExceptions 1), so no rule can let RDP in.",
            "Allow inbound rules on the active profile only (Set-NetFirewallProfile -Name "
            f"{blocking[0].name} -AllowInboundRules True); never turn the firewall off. {REPAIR_HINT}",
            {
                "profiles": [
                    {
                        "name": p.name,
                        "allowInboundRules": p.allow_inbound_rules,
                        "doNotAllowExceptions": p.do_not_allow_exceptions,
                    }
                    for p in blocking
                ]
            },
        )
    ]


# --- disk ---------------------------------------------------------------------------------------


@_register(
    "low-disk-space",
    "The system drive is almost full",
    Severity.WARNING,
    "Win32_LogicalDisk of the system drive",
)
def low_disk_space(facts: GuestFacts) -> list[Finding]:
    disk = facts.diagnosis.disk
    if disk is None or disk.free_bytes is None:
        return []
    fraction = disk.free_bytes / disk.size_bytes if disk.size_bytes else None
    if disk.free_bytes >= LOW_DISK_BYTES and (fraction is None or fraction >= LOW_DISK_FRACTION):
        return []
    pct = f" ({fraction:.1%})" if fraction is not None else ""
    return [
        _finding(
            facts,
            "low-disk-space",
            Severity.WARNING,
            "The system drive is almost full",
            f"{disk.drive} has {disk.free_bytes / 1024**3:.2f} GiB free{pct}; certificate, key and "
            "logon writes fail on a full disk.",
            "Free space on the system drive or expand the OS disk (az vm disk / portal), then retry.",
            {"drive": disk.drive, "freeBytes": disk.free_bytes, "sizeBytes": disk.size_bytes},
        )
    ]


# --- repairs waiting for a restart --------------------------------------------------------------


@_register(
    "reboot-pending",
    "A repair is waiting for a restart",
    Severity.WARNING,
    "The marker azrdp repair leaves in its backup folder (reboot-pending.json) and LastBootUpTime",
)
def reboot_pending(facts: GuestFacts) -> list[Finding]:
    if facts.diagnosis.reboot_pending != 1:
        return []
    return [
        _finding(
            facts,
            "reboot-pending",
            Severity.WARNING,
            "A repair is waiting for a restart",
            "azrdp repair changed a setting Windows reads only at boot (SCHANNEL TLS 1.2 for servers) "
            "during this boot: the registry already reads repaired, but the RDP listener still runs with "
            "the old setting, so the TLS checks above cannot vouch for it yet.",
            "Restart the VM (az vm restart), then run `azrdp diagnose` again to verify.",
            {"rebootPending": True},
        )
    ]
