"""Guest checks: pure functions of the collector's raw facts (azrdp.guest.facts).

Each check reads `GuestFacts` (the facts, the port the control-plane check used, the guest clock)
through the judgements of azrdp.checks.guest_view and returns its findings, with the System-log
events that support a finding attached to it. A section the collector could not read yields no
finding here; the engine reports the section error beside the findings, so "could not read"
never passes for "healthy".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from azrdp.checks import CheckFunc, register_check
from azrdp.checks.guest_view import GuestFacts, KeyState, port_in
from azrdp.guest import facts as gf
from azrdp.model import Finding, Severity, Source

__all__ = ["GuestFacts"]

RUN_COMMAND_RBAC = ("Microsoft.Compute/virtualMachines/runCommand/action",)
TS = r"HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server"
RDPTCP = TS + r"\WinStations\RDP-Tcp"
TSPOL = r"HKLM\SOFTWARE\Policies\Microsoft\Windows NT\Terminal Services"
WINLOGON = r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Winlogon"
LOW_DISK_BYTES = 1024**3
LOW_DISK_FRACTION = 0.05
REPAIR_HINT = "`azrdp repair` fixes this with a backup and verifies it."

# Which System-log events back which finding. Schannel's events name no server, so they are
# evidence in the text only; SCM events count when they name an RDP service.
EVIDENCE_EVENTS: Mapping[str, tuple[int, ...]] = {
    "rdp-cert-expired": (1058, 36872),
    "rdp-cert-missing-private-key": (1057, 1058, 36870),
    "rdp-cert-binding-stale": (36870, 36872),
    "rdp-cert-store-denied": (1057, 1058),
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
    events: Mapping[int, int] | None = None,
) -> Finding:
    detail = dict(details or {})
    counted = dict(events) if events is not None else _events(facts, EVIDENCE_EVENTS.get(check_id, ()))
    if counted:
        detail["events"] = {str(k): v for k, v in counted.items()}
        listed = ", ".join(f"{eid} x{n}" for eid, n in counted.items())
        evidence = f"{evidence} System log, last 7 days: event {listed}."
    return Finding(check_id, severity, title, evidence, recommendation, Source.GUEST, detail)


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + "."


def _events(facts: GuestFacts, ids: Iterable[int]) -> dict[int, int]:
    return {eid: facts.facts.event_count(eid) for eid in ids if facts.facts.event_count(eid) > 0}


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
    if facts.facts.reg is None or facts.number("tspol", "fDenyTSConnections") is not None:
        return []
    if facts.number("ts", "fDenyTSConnections") != 1:
        return []
    return [
        _finding(
            facts,
            "rdp-disabled",
            Severity.BLOCKER,
            "Remote Desktop is turned off in the guest",
            f"fDenyTSConnections is 1 in {TS}, and no Group Policy value overrides it.",
            f"Set fDenyTSConnections to 0 (System Properties > Remote). {REPAIR_HINT}",
            {"fDenyTSConnections": 1},
        )
    ]


@_register(
    "rdp-disabled-by-policy",
    "Group Policy turns Remote Desktop off",
    Severity.BLOCKER,
    "Registry: Terminal Services policy fDenyTSConnections",
)
def rdp_disabled_by_policy(facts: GuestFacts) -> list[Finding]:
    if facts.number("tspol", "fDenyTSConnections") != 1:
        return []
    domain = facts.facts.os.domain if facts.facts.os else None
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
                "fDenyTSConnectionsPolicy": 1,
                "fDenyTSConnections": facts.number("ts", "fDenyTSConnections"),
                "partOfDomain": domain,
            },
        )
    ]


@_register(
    "registry-value-unreadable",
    "An RDP registry value has a type Windows' own readers do not expect",
    Severity.WARNING,
    "Registry: the type of every RDP, SCHANNEL, firewall-policy and CredSSP value the collector reads",
)
def registry_value_unreadable(facts: GuestFacts) -> list[Finding]:
    # A value .NET reads as neither number nor text (REG_NONE and odd kinds: kind Unknown, hex
    # bytes) counts as absent in every other check, which for most switches is the healthy
    # default. Say so, so that "absent, so fine" is never silently assumed for a damaged value.
    odd = [e for e in facts.facts.reg or () if e.kind == gf.REG_UNKNOWN]
    if not odd:
        return []
    names = [f"{gf.REG_KEYS.get(e.key or '', e.key)}\\{e.name}" for e in odd]
    return [
        _finding(
            facts,
            "registry-value-unreadable",
            Severity.WARNING,
            "An RDP registry value has a type Windows' own readers do not expect",
            f"{len(odd)} value(s) are neither a number nor text (e.g. REG_NONE): {', '.join(names[:5])}. "
            "The other checks judged them as absent, which may not be what Windows does with them.",
            "Look at each value with `reg query` and set it to the documented type and value (most RDP "
            "switches are REG_DWORD). azrdp does not rewrite a value whose type it cannot read.",
            {"values": [{"key": e.key, "name": e.name, "data": e.data} for e in odd[:5]]},
        )
    ]


@_register(
    "listener-disabled",
    "The RDP-Tcp listener is disabled",
    Severity.BLOCKER,
    "Registry: RDP-Tcp fEnableWinStation, Terminal Server TSEnabled",
)
def listener_disabled(facts: GuestFacts) -> list[Finding]:
    winstation, enabled = facts.number("rdptcp", "fEnableWinStation"), facts.number("ts", "TSEnabled")
    problems = []
    if winstation == 0:
        problems.append(f"fEnableWinStation is 0 in {RDPTCP}")
    if enabled == 0:
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
            {"fEnableWinStation": winstation, "TSEnabled": enabled},
        )
    ]


@_register(
    "rdp-logons-disabled",
    "Remote Desktop logons are switched off",
    Severity.BLOCKER,
    "Registry: RDP-Tcp fLogonDisabled, Winlogon WinStationsDisabled, Terminal Server TSUserEnabled",
)
def rdp_logons_disabled(facts: GuestFacts) -> list[Finding]:
    logon = facts.number("rdptcp", "fLogonDisabled")
    stations = facts.number("winlogon", "WinStationsDisabled")
    users = facts.number("ts", "TSUserEnabled")
    problems = []
    if logon == 1:
        problems.append(f"fLogonDisabled is 1 in {RDPTCP} (the listener refuses logons)")
    if stations == 1:
        problems.append(f'WinStationsDisabled is "1" in {WINLOGON} (change logon /disable)')
    if users not in (None, 0):
        problems.append(f"TSUserEnabled is {users} in {TS} (users are blocked)")
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
            {"fLogonDisabled": logon, "WinStationsDisabled": stations, "TSUserEnabled": users},
        )
    ]


@_register(
    "rdp-drain-mode",
    "The server is in drain mode: new Remote Desktop logons are refused",
    Severity.BLOCKER,
    "Registry: Terminal Server TSServerDrainMode; CIM TerminalServerMode (Session Host role)",
)
def rdp_drain_mode(facts: GuestFacts) -> list[Finding]:
    drain = facts.number("ts", "TSServerDrainMode")
    if drain in (None, 0):
        return []
    rdsh = facts.facts.ts is not None and facts.facts.ts.mode == 1
    until = " until the next restart" if drain == 2 else ""
    return [
        _finding(
            facts,
            "rdp-drain-mode",
            Severity.BLOCKER,
            "The server is in drain mode: new Remote Desktop logons are refused",
            f"TSServerDrainMode is {drain} in {TS}: new logons are refused{until}"
            + (" (this is a Session Host, where a drain is usually deliberate)." if rdsh else "."),
            "Ask whoever drained this Session Host before ending the drain (change logon /enable)."
            if rdsh
            else f"End the drain: set TSServerDrainMode to 0 (change logon /enable). {REPAIR_HINT}",
            {"TSServerDrainMode": drain, "sessionHost": rdsh},
        )
    ]


@_register(
    "port-mismatch",
    "The RDP listener port differs from the port the network path allows",
    Severity.BLOCKER,
    "Registry: RDP-Tcp PortNumber, compared with the port the NSG check used",
)
def port_mismatch(facts: GuestFacts) -> list[Finding]:
    port = facts.number("rdptcp", "PortNumber")
    if port is None or facts.expected_port is None or port == facts.expected_port:
        return []
    return [
        _finding(
            facts,
            "port-mismatch",
            Severity.BLOCKER,
            "The RDP listener port differs from the port the network path allows",
            f"PortNumber in {RDPTCP} is {port}, but the NSG check evaluated port {facts.expected_port}.",
            f"Connect to port {port} and allow it in the NSGs and the guest firewall, or move the "
            f"listener back to {facts.expected_port}. Rerun with --port {port} to check that path.",
            {"listenerPort": port, "checkedPort": facts.expected_port},
        )
    ]


def termservice_pid(facts: GuestFacts) -> int | None:
    service = facts.facts.service("TermService")
    return service.pid if service is not None and service.pid else None


@_register(
    "port-owned-by-other-process",
    "Another process owns the RDP port",
    Severity.BLOCKER,
    "Get-NetTCPConnection owners of the RDP port vs TermService's process id",
)
def port_owned_by_other_process(facts: GuestFacts) -> list[Finding]:
    owners = facts.facts.listeners
    if owners is None:
        return []
    ts_pid = termservice_pid(facts)
    out = []
    for owner in owners:
        if owner.pid is None or owner.pid == ts_pid or owner.port is None:
            continue
        name = owner.process or "an unknown process"
        ts_text = f"PID {ts_pid}" if ts_pid else "not running"
        out.append(
            _finding(
                facts,
                "port-owned-by-other-process",
                Severity.BLOCKER,
                "Another process owns the RDP port",
                f"TCP port {owner.port} is held by {name} (PID {owner.pid}), not by TermService ({ts_text}).",
                f"Stop or reconfigure {name} so it releases port {owner.port}, or move RDP to a free port "
                "(and follow it in the NSG and the firewall). azrdp never kills processes.",
                {"port": owner.port, "pid": owner.pid, "process": owner.process, "termServicePid": ts_pid},
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
    service = facts.facts.service("TermService")
    if service is None or service.state in ("Running", "NotFound", None):
        return []
    hung = (
        " It hangs in a pending state: azrdp will not touch it until it settles." if service.pending else ""
    )
    return [
        _finding(
            facts,
            "termservice-not-running",
            Severity.BLOCKER,
            "The Remote Desktop Services service (TermService) is not running",
            f"TermService is {service.state} (start mode {service.start}, "
            f"last exit code {service.exit_code})." + hung,
            "Start TermService; check the System log if it stops again. " + REPAIR_HINT,
            {"state": service.state, "startMode": service.start, "exitCode": service.exit_code},
            events=facts.service_events(("TermService",)),
        )
    ]


# Start mode and account of the services RDP needs (Microsoft's services guidance; shipped defaults).
SERVICE_DEFAULTS: Mapping[str, tuple[str, str]] = {
    "TermService": ("Manual", "NT Authority\\NetworkService"),
    "UmRdpService": ("Manual", "LocalSystem"),
    "SessionEnv": ("Manual", "LocalSystem"),
    "KeyIso": ("Manual", "LocalSystem"),
    "CertPropSvc": ("Manual", "LocalSystem"),
    "CryptSvc": ("Auto", "NT Authority\\NetworkService"),
    "MpsSvc": ("Auto", "NT Authority\\LocalService"),
    "BFE": ("Auto", "NT Authority\\LocalService"),
}
# Services whose being stopped is a fault by itself (the others start on demand).
MUST_RUN = ("TermService", "MpsSvc", "BFE")
_ROLES: Mapping[str, tuple[Severity, str, bool]] = {
    # TermService not running has its own check; here only its start mode and account.
    "TermService": (Severity.BLOCKER, "the RDP listener", False),
    "UmRdpService": (Severity.WARNING, "RDP device redirection", False),
    "SessionEnv": (Severity.BLOCKER, "creates the RDP certificate", False),
    "KeyIso": (Severity.BLOCKER, "opens the listener's private key", False),
    "CryptSvc": (Severity.WARNING, "certificate services", False),
    "CertPropSvc": (Severity.WARNING, "certificate propagation", False),
    "MpsSvc": (Severity.BLOCKER, "Windows Firewall", True),
    "BFE": (Severity.BLOCKER, "Base Filtering Engine", True),
    "RdAgent": (Severity.WARNING, "Azure guest agent (Run Command, repairs)", True),
    "WindowsAzureGuestAgent": (Severity.WARNING, "Azure guest agent (Run Command, repairs)", True),
}


def norm_account(value: str | None) -> str:
    """Accounts as Win32_Service spells them, compared the same way by the check and the repair."""
    text = (value or "").lower().replace(" ", "")
    return {"ntauthority\\system": "localsystem", ".\\localsystem": "localsystem"}.get(text, text)


def service_problems(name: str, service: gf.ServiceFacts) -> list[str]:
    _, role, must_run = _ROLES[name]
    if service.state == "NotFound":
        return [f"{name} ({role}) is not installed"]
    problems = []
    if service.start == "Disabled":
        problems.append(f"{name} ({role}) is Disabled")
    elif must_run and service.state != "Running":
        problems.append(f"{name} ({role}) is {service.state}")
    default = SERVICE_DEFAULTS.get(name)
    account = default[1] if default else "LocalSystem"
    if service.account and norm_account(service.account) != norm_account(account):
        problems.append(f"{name} logs on as {service.account}")
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
    for name in _ROLES:
        service = facts.facts.service(name)
        if service is None:
            continue
        found = service_problems(name, service)
        if found:
            problems.extend(found)
            details[name] = {"state": service.state, "startMode": service.start, "account": service.account}
            if _ROLES[name][0] is Severity.BLOCKER:
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
            events=facts.service_events(tuple(details)),
        )
    ]


# --- certificate and keys -----------------------------------------------------------------------


def _cert_details(cert: gf.CertFacts) -> dict[str, Any]:
    return {"thumbprint": cert.thumbprint, "notAfter": cert.not_after, "store": cert.store}


@_register(
    "rdp-cert-expired",
    "The RDP certificate has expired",
    Severity.BLOCKER,
    "Win32_TSGeneralSetting SSLCertificateSHA1Hash (the certificate in use) and its NotAfter",
)
def rdp_cert_expired(facts: GuestFacts) -> list[Finding]:
    cert = facts.listener_cert
    if cert is None or not facts.expired(cert):
        return []
    pinned = bool(facts.pin) and (cert.thumbprint or "").upper() == facts.pin
    how = "the certificate pinned by SSLCertificateSHA1Hash" if pinned else "its self-signed certificate"
    return [
        _finding(
            facts,
            "rdp-cert-expired",
            Severity.BLOCKER,
            "The RDP certificate has expired",
            f"The listener uses {how} ({cert.thumbprint}), which expired on {cert.not_after}.",
            "Replace the pinned certificate with an in-date one."
            if pinned
            else "Delete the expired self-signed certificate and restart the Remote Desktop services so "
            f"Windows issues a new one. {REPAIR_HINT}",
            {**_cert_details(cert), "pinned": pinned},
        )
    ]


@_register(
    "rdp-cert-missing-private-key",
    "The RDP certificate's private key is missing or cannot be opened",
    Severity.BLOCKER,
    "The in-use certificate's key-provider info, its key container file, and whether SYSTEM opens it",
)
def rdp_cert_missing_private_key(facts: GuestFacts) -> list[Finding]:
    cert = facts.listener_cert
    if cert is None:
        return []
    state = facts.key_state(cert)
    what = {
        KeyState.NONE: "has no private key",
        KeyState.MISSING: "points at a key container that no longer exists (Keyset does not exist)",
        KeyState.CORRUPT: "has a key container SYSTEM cannot open although its permissions are right",
    }.get(state)
    if what is None:
        return []
    key = cert.key
    return [
        _finding(
            facts,
            "rdp-cert-missing-private-key",
            Severity.BLOCKER,
            "The RDP certificate's private key is missing or cannot be opened",
            f"The listener certificate {cert.thumbprint} {what}.",
            "Remove the broken certificate and restart the Remote Desktop services so Windows issues a "
            f"new one with a fresh key. {REPAIR_HINT}",
            {
                **_cert_details(cert),
                "keyState": state.value,
                "keyFile": key.file if key else None,
                "keyOpens": key.opens if key else None,
            },
        )
    ]


@_register(
    "rdp-cert-binding-stale",
    "The listener is pinned to a certificate that does not exist",
    Severity.BLOCKER,
    "Registry: RDP-Tcp SSLCertificateSHA1Hash vs the Remote Desktop and My stores",
)
def rdp_cert_binding_stale(facts: GuestFacts) -> list[Finding]:
    pin, certs = facts.pin, facts.facts.certs
    if not pin or certs is None or certs.find(pin) is not None:
        return []
    by_gpo = facts.facts.ts is not None and facts.facts.ts.cert_hash_type == 2
    return [
        _finding(
            facts,
            "rdp-cert-binding-stale",
            Severity.BLOCKER,
            "The listener is pinned to a certificate that does not exist",
            f"SSLCertificateSHA1Hash in {RDPTCP} names {pin}, which is in neither the Remote Desktop nor "
            "the My store" + (" (the pin is set by Group Policy)." if by_gpo else "."),
            "Fix the certificate template in the GPO that pins it."
            if by_gpo
            else "Delete the dangling SSLCertificateSHA1Hash value so the listener uses its self-signed "
            f"certificate, or pin an existing certificate. {REPAIR_HINT}",
            {"pin": pin, "pinType": facts.facts.ts.cert_hash_type if facts.facts.ts else None},
        )
    ]


def needs_new_certificate(facts: GuestFacts) -> bool:
    """The listener has no usable certificate of its own: Windows must mint one."""
    if facts.pin:
        return False
    cert = facts.listener_cert
    if cert is None:
        return True
    return facts.expired(cert) or facts.key_state(cert) in (KeyState.NONE, KeyState.MISSING, KeyState.CORRUPT)


@_register(
    "rdp-cert-store-denied",
    "SYSTEM may not create the RDP certificate in the Remote Desktop store",
    Severity.BLOCKER,
    "The owner and DACL of HKLM\\SOFTWARE\\Microsoft\\SystemCertificates\\Remote Desktop (and Certificates)",
)
def rdp_cert_store_denied(facts: GuestFacts) -> list[Finding]:
    if not facts.store_denies_system:
        return []
    blocked = needs_new_certificate(facts)
    severity = Severity.BLOCKER if blocked else Severity.WARNING
    found = facts.store_sd()
    assert found is not None
    return [
        _finding(
            facts,
            "rdp-cert-store-denied",
            severity,
            "SYSTEM may not create the RDP certificate in the Remote Desktop store",
            "The Remote Desktop store key's DACL denies SYSTEM creating entries, so Windows cannot create "
            "its self-signed certificate (measured)"
            + (", and the listener needs a new one now." if blocked else "; the next renewal will fail."),
            f"Remove the Deny entries for SYSTEM on the store key (nothing else). {REPAIR_HINT}",
            {"key": found[0], "sddl": found[1].text()},
        )
    ]


@_register(
    "machinekeys-acl-corrupt",
    "MachineKeys permissions stop the listener from reading its key",
    Severity.BLOCKER,
    "MachineKeys folder owner and DACL, and the owner and DACL of the listener certificate's key file",
)
def machinekeys_acl_corrupt(facts: GuestFacts) -> list[Finding]:
    cert = facts.listener_cert
    state = facts.key_state(cert) if cert is not None else None
    key_broken = state is KeyState.UNREADABLE
    hardened = facts.folder_hardened is True
    if not key_broken and not hardened:
        return []
    container_trouble = state in (KeyState.UNREADABLE, KeyState.MISSING, KeyState.CORRUPT)
    rcm = facts.rcm_events()
    # A hardened folder alone keeps RDP working; it shapes the next key Windows creates (measured).
    severity = Severity.BLOCKER if (key_broken or container_trouble or rcm) else Severity.WARNING
    parts = []
    if key_broken and cert is not None:
        denied = facts.key_denied(cert)
        parts.append(
            "NETWORK SERVICE cannot read the listener key file"
            + (" (a Deny entry applies)" if denied else "")
        )
    if hardened:
        parts.append(
            "the MachineKeys folder does not grant Everyone its default access (0x12019f): the next key "
            "container Windows creates there will lack part of its permissions"
        )
    mk = facts.facts.machine_keys
    return [
        _finding(
            facts,
            "machinekeys-acl-corrupt",
            severity,
            "MachineKeys permissions stop the listener from reading its key",
            _sentence("; ".join(parts)),
            "Grant NETWORK SERVICE read on the listener key file only and restore the folder's default "
            f"grant (never take ownership of, or grant access to, every key). {REPAIR_HINT}",
            {
                "folderSddl": mk.sddl if mk else None,
                "folderDefault": not hardened,
                "keyReadable": not key_broken if state not in (None, KeyState.UNKNOWN) else None,
                "keyDenied": facts.key_denied(cert) if cert is not None else None,
                "keySddl": cert.key.sddl if cert is not None and cert.key else None,
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
    enabled, by_default = facts.number("tls12", "Enabled"), facts.number("tls12", "DisabledByDefault")
    if enabled != 0 and by_default != 1:
        return []
    return [
        _finding(
            facts,
            "tls12-server-disabled",
            Severity.BLOCKER,
            "TLS 1.2 is disabled for servers in SCHANNEL",
            f"SCHANNEL\\Protocols\\TLS 1.2\\Server has Enabled={enabled}, "
            f"DisabledByDefault={by_default}: the listener has no TLS version clients use.",
            "Set Enabled=1 and DisabledByDefault=0 under TLS 1.2\\Server (or delete both), then reboot; "
            f"do not re-enable TLS 1.0/1.1. {REPAIR_HINT}",
            {"enabled": enabled, "disabledByDefault": by_default},
        )
    ]


@_register(
    "fips-policy-enabled",
    "The FIPS algorithm policy is enabled",
    Severity.WARNING,
    "Registry: Lsa\\FIPSAlgorithmPolicy Enabled",
)
def fips_policy_enabled(facts: GuestFacts) -> list[Finding]:
    if facts.number("fips", "Enabled") != 1:
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
            {"fips": 1},
        )
    ]


# tspkg.dll versions that carry the CVE-2018-0886 CredSSP update (Learn: "CredSSP encryption
# oracle remediation" for Azure VMs, "How to verify that the CredSSP update is installed"), by the
# first three parts of the version; builds from 17763 (Server 2019) shipped with it.
CREDSSP_FIXED: Mapping[tuple[int, int, int], int] = {
    (6, 1, 7601): 24117,  # Windows Server 2008 R2 SP1
    (6, 2, 9200): 22432,  # Windows Server 2012
    (6, 3, 9600): 18999,  # Windows Server 2012 R2
    (10, 0, 14393): 2248,  # Windows Server 2016
    (10, 0, 15063): 1088,  # Windows 10 1703
    (10, 0, 16299): 431,  # Windows 10 1709
}


def credssp_patched(facts: GuestFacts) -> bool | None:
    """Whether the server has the CVE-2018-0886 update, from tspkg.dll's version (None: unknown)."""
    os_ = facts.facts.os
    if os_ is None or not os_.tspkg:
        return None
    try:
        parts = tuple(int(p) for p in os_.tspkg.split("."))
    except ValueError:
        return None
    if len(parts) != 4:
        return None
    if (parts[0], parts[1]) == (10, 0) and parts[2] >= 17763:
        return True
    fixed = CREDSSP_FIXED.get(parts[:3])
    return None if fixed is None else parts[3] >= fixed


def credssp_admits(
    server_patched: bool, server_value: int | None, client_patched: bool, client_value: int
) -> bool:
    """Microsoft's interoperability matrix (AllowEncryptionOracle 0 Force updated clients, 1
    Mitigated, 2 Vulnerable; absent = 1 since the May 2018 update): whether the connection works."""
    server = 1 if server_value is None else server_value
    if server_patched and not client_patched:
        return server != 0
    if client_patched and not server_patched:
        return client_value == 2
    return True


@_register(
    "credssp-server-unpatched",
    "The server lacks the CredSSP update: updated clients refuse it",
    Severity.BLOCKER,
    "%windir%\\System32\\tspkg.dll file version against the CVE-2018-0886 update",
)
def credssp_server_unpatched(facts: GuestFacts) -> list[Finding]:
    if credssp_patched(facts) is not False:
        return []
    version = facts.facts.os.tspkg if facts.facts.os else None
    return [
        _finding(
            facts,
            "credssp-server-unpatched",
            Severity.BLOCKER,
            "The server lacks the CredSSP update: updated clients refuse it",
            f"tspkg.dll is {version}, older than the CVE-2018-0886 update for this Windows version: every "
            "client updated since May 2018 refuses it (CredSSP encryption oracle remediation).",
            "Install the latest cumulative update on the VM (through the serial console or Run Command), "
            "then restart. Setting clients to Vulnerable is not a fix.",
            {"tspkgVersion": version},
        )
    ]


@_register(
    "credssp-oracle-mismatch",
    "CredSSP refuses clients without the CVE-2018-0886 update (AllowEncryptionOracle = 0)",
    Severity.WARNING,
    "Registry: CredSSP\\Parameters AllowEncryptionOracle, with the server's update state",
)
def credssp_oracle_mismatch(facts: GuestFacts) -> list[Finding]:
    value = facts.number("credssp", "AllowEncryptionOracle")
    if value != 0 or credssp_patched(facts) is False:
        return []
    return [
        _finding(
            facts,
            "credssp-oracle-mismatch",
            Severity.WARNING,
            "CredSSP refuses clients without the CVE-2018-0886 update (AllowEncryptionOracle = 0)",
            "AllowEncryptionOracle is 0 (Force updated clients) under CredSSP\\Parameters: clients that lack "
            "the CVE-2018-0886 update cannot connect; updated clients can.",
            "Update the clients that fail; set the value to 1 (Mitigated) only while they cannot be updated.",
            {"allowEncryptionOracle": value},
        )
    ]


@_register(
    "credssp-oracle-vulnerable",
    "CredSSP accepts vulnerable clients (AllowEncryptionOracle = 2)",
    Severity.WARNING,
    "Registry: CredSSP\\Parameters AllowEncryptionOracle",
)
def credssp_oracle_vulnerable(facts: GuestFacts) -> list[Finding]:
    value = facts.number("credssp", "AllowEncryptionOracle")
    if value != 2:
        return []
    return [
        _finding(
            facts,
            "credssp-oracle-vulnerable",
            Severity.WARNING,
            "CredSSP accepts vulnerable clients (AllowEncryptionOracle = 2)",
            "AllowEncryptionOracle is 2 (Vulnerable) under CredSSP\\Parameters: every client gets in, "
            "including those open to CVE-2018-0886. Not a connection fault: a security one.",
            "Update the clients, then remove the value (the default, Mitigated, admits updated and old "
            "clients alike on an updated server).",
            {"allowEncryptionOracle": value},
        )
    ]


@_register(
    "nla-or-security-downgraded",
    "RDP security is downgraded (native RDP security or NLA off)",
    Severity.WARNING,
    "Registry: RDP-Tcp and policy SecurityLayer, UserAuthentication; CIM policy sources",
)
def nla_or_security_downgraded(facts: GuestFacts) -> list[Finding]:
    layer, nla = facts.effective("SecurityLayer"), facts.effective("UserAuthentication")
    parts = []
    if layer == 0:
        parts.append("SecurityLayer is 0 (native RDP security, no TLS)")
    if nla == 0:
        parts.append("UserAuthentication is 0 (Network Level Authentication off)")
    if not parts:
        return []
    ts = facts.facts.ts
    by_gpo = ts is not None and 1 in (ts.source_security_layer, ts.source_user_auth)
    return [
        _finding(
            facts,
            "nla-or-security-downgraded",
            Severity.WARNING,
            "RDP security is downgraded (native RDP security or NLA off)",
            "; ".join(parts)
            + ". The VM still accepts connections but is weaker (ResetRDPCert and DisableNLA leave it "
            "like this).",
            ("Fix it in the Group Policy that sets it: " if by_gpo else "")
            + "set SecurityLayer to 2 (TLS) and UserAuthentication to 1 once the certificate and TLS "
            "checks pass.",
            {
                "securityLayer": layer,
                "userAuthentication": nla,
                "policySourceSecurityLayer": ts.source_security_layer if ts else None,
                "policySourceUserAuthentication": ts.source_user_auth if ts else None,
            },
        )
    ]


# --- firewall -----------------------------------------------------------------------------------


def _rule_details(rule: gf.RuleFacts | None) -> dict[str, Any]:
    if rule is None:
        return {"rule": gf.RDP_TCP_RULE, "exists": False}
    return {
        "rule": rule.name,
        "exists": True,
        "enabled": rule.enabled,
        "action": rule.action,
        "localPorts": rule.local_ports,
        "remoteAddress": rule.remote,
        "program": rule.program,
        "service": rule.service,
        "profile": rule.profile,
    }


@_register(
    "firewall-rule-disabled",
    "The Windows Firewall does not let the RDP port in",
    Severity.BLOCKER,
    "Get-NetFirewallRule RemoteDesktop-UserMode-In-TCP and azrdp-RDP-<port> (by name, ActiveStore) with "
    "their port, address, program and service filters, and inbound Block rules",
)
def firewall_rule_disabled(facts: GuestFacts) -> list[Finding]:
    fw, port = facts.facts.firewall, facts.listener_port
    if fw is None or port is None or not 1 <= port <= 65535 or not facts.active_profiles:
        return []
    rule = fw.rule(gf.RDP_TCP_RULE)
    problems = []
    admitted = facts.tcp_admitted(port)
    if not admitted:
        if rule is None:
            problems.append(f"the rule {gf.RDP_TCP_RULE} does not exist")
        elif not rule.enabled:
            problems.append(f"the rule {rule.name} is disabled")
        elif rule.action != "Allow":
            problems.append(f"the rule {rule.name} is set to {rule.action}")
        elif not port_in(rule.local_ports, port):
            problems.append(f"the rule {rule.name} allows port {rule.local_ports}, not the listener's {port}")
        else:
            problems.append(
                f"the rule {rule.name} applies to program {rule.program}, service {rule.service} on the "
                f"{rule.profile} profile(s), which is not RDP on the active profile"
            )
    else:
        admitting = [
            r for r in (rule, fw.rule(gf.custom_rule_name(port))) if r and facts.rule_admits(r, port)
        ]
        if all((r.remote or "Any").lower() != "any" for r in admitting):
            problems.append(f"the rule {admitting[0].name} admits only {admitting[0].remote}")
    everyone, some = facts.blocking_rules(port)
    if everyone:
        problems.append(
            f"inbound Block rule(s) cover port {port}: {', '.join(r.name or '?' for r in everyone)}"
        )
    elif some:
        scoped = ", ".join(f"{r.name} ({r.remote})" for r in some)
        problems.append(f"inbound Block rule(s) refuse some addresses on port {port}: {scoped}")
    if not problems:
        return []
    # Scoped rules let some clients in: worth knowing, not a blocker for everyone.
    severity = Severity.BLOCKER if (everyone or not admitted) else Severity.WARNING
    return [
        _finding(
            facts,
            "firewall-rule-disabled",
            severity,
            "The Windows Firewall does not let the RDP port in",
            _sentence("; ".join(problems)),
            f"Enable the rule by name (Enable-NetFirewallRule -Name {gf.RDP_TCP_RULE}), cover port {port}, "
            f"and check the Block rules named. {REPAIR_HINT}",
            {
                **_rule_details(rule),
                "blockRules": [r.name for r in (*everyone, *some)],
                "blockRulesTotal": fw.block_count,
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
    fw = facts.facts.firewall
    if fw is None or not facts.active_profiles:
        return []
    rule = fw.rule(gf.RDP_UDP_RULE)
    if rule is None or (rule.enabled is not False and rule.action == "Allow"):
        return []
    state = "disabled" if rule.enabled is False else f"set to {rule.action}"
    return [
        _finding(
            facts,
            "firewall-udp-rule-disabled",
            Severity.INFO,
            "The Windows Firewall blocks RDP over UDP",
            f"The rule {gf.RDP_UDP_RULE} is {state}: clients fall back to TCP, which works but is slower on "
            "lossy or distant links.",
            f"Enable it by name (Enable-NetFirewallRule -Name {gf.RDP_UDP_RULE}) unless UDP is off on "
            "purpose; the NSG must allow UDP too. `azrdp repair` enables it with a backup.",
            {"rule": gf.RDP_UDP_RULE, "enabled": rule.enabled, "action": rule.action},
        )
    ]


@_register(
    "firewall-blocks-all-inbound",
    "A firewall profile blocks all inbound connections",
    Severity.BLOCKER,
    "Get-NetFirewallProfile (ActiveStore) AllowInboundRules; FirewallPolicy DoNotAllowExceptions",
)
def firewall_blocks_all_inbound(facts: GuestFacts) -> list[Finding]:
    fw = facts.facts.firewall
    if fw is None:
        return []
    blocking = [
        p
        for p in fw.profiles
        if p.name in facts.active_profiles
        and (
            p.inbound is False
            or facts.number(gf.PROFILE_KEYS.get(p.name or "", ""), "DoNotAllowExceptions") == 1
        )
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
                        "allowInboundRules": p.inbound,
                        "doNotAllowExceptions": facts.number(
                            gf.PROFILE_KEYS.get(p.name or "", ""), "DoNotAllowExceptions"
                        ),
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
    disk = facts.facts.disk
    if disk is None or disk.free is None:
        return []
    fraction = disk.free / disk.size if disk.size else None
    if disk.free >= LOW_DISK_BYTES and (fraction is None or fraction >= LOW_DISK_FRACTION):
        return []
    pct = f" ({fraction:.1%})" if fraction is not None else ""
    return [
        _finding(
            facts,
            "low-disk-space",
            Severity.WARNING,
            "The system drive is almost full",
            f"{disk.drive} has {disk.free / 1024**3:.2f} GiB free{pct}; certificate, key and logon writes "
            "fail on a full disk.",
            "Free space on the system drive or expand the OS disk (az vm disk / portal), then retry.",
            {"drive": disk.drive, "freeBytes": disk.free, "sizeBytes": disk.size},
        )
    ]


# --- repairs waiting for a restart --------------------------------------------------------------


@_register(
    "reboot-pending",
    "A repair is waiting for a restart",
    Severity.WARNING,
    "azrdp's run records in C:\\ProgramData\\azrdp (trusted only when SYSTEM or Administrators own it) "
    "and LastBootUpTime",
)
def reboot_pending(facts: GuestFacts) -> list[Finding]:
    runs = facts.reboot_pending()
    if not runs:
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
            {"rebootPending": True, "runs": runs},
        )
    ]
