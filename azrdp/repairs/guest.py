"""In-guest repairs and their evidence triggers.

Each trigger is a pure function of the guest diagnosis (azrdp.guest.contract.Diagnosis) that
returns what it would change, one `Change` per value, and nothing on a healthy guest. The same
triggers are used three times: by the planner here (what the user confirms), by the emulator's
simulated guest (azrdp.emulator.guest_repair), and, re-implemented line for line in PowerShell, by
scripts/repair.ps1, which evaluates them again in the guest right before it acts. The order of
GUEST_ORDER is the order the script applies them in: services before keys, keys before the
certificate, the certificate and TLS before the security layer is raised.

What these repairs never do: lower SecurityLayer, turn NLA off, lower MinEncryptionLevel, delete a
MachineKeys file, take ownership recursively, touch a Group-Policy-owned value, change FIPS, or
enable TLS 1.0/1.1.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any

from azrdp.guest.contract import (
    CertEntry,
    Diagnosis,
    FirewallInfo,
    FirewallProfile,
    PortOwner,
    RdpSettings,
    custom_rule_name,
)
from azrdp.repairs import RepairFacts, RepairStep, Risk, Where, register_repair, spec

C = "Microsoft.Compute/virtualMachines"
RUN_COMMAND_RBAC = (f"{C}/read", f"{C}/runCommand/action")

MACHINEKEYS_DEFAULT_SDDL = "O:SYG:SYD:PAI(A;;0x12019f;;;WD)(A;;FA;;;BA)"
SESSION_NOTE = "Restarts Remote Desktop Services: every logged-on RDP session is disconnected."
REBOOT_NOTE = (
    "Takes effect only after the VM restarts (Schannel reads it at boot): azrdp reports it as applied, "
    "not verified. Restart the VM (az vm restart), then run `azrdp diagnose` again."
)
# Repairs whose effect no re-diagnosis can prove until the VM restarts.
REBOOT_REQUIRED = frozenset({"tls12-server"})
DEFAULT_RDP_PORT = 3389

# Start mode and account of the services RDP needs (Microsoft's services guidance; shipped defaults).
SERVICE_DEFAULTS: dict[str, tuple[str, str]] = {
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
RDP_TCP_RULE = "RemoteDesktop-UserMode-In-TCP"
RDP_UDP_RULE = "RemoteDesktop-UserMode-In-UDP"
WINLOGON = "Winlogon"


@dataclass(frozen=True)
class Change:
    """One value a repair changes. `target` names it (registry value, service, cert, rule)."""

    target: str
    before: Any
    after: Any

    def line(self) -> str:
        return f"{self.target}: {_show(self.before)} -> {_show(self.after)}"


def _show(value: Any) -> str:
    if value is None:
        return "absent"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


@dataclass(frozen=True)
class Trigger:
    changes: tuple[Change, ...] = ()
    refused: str | None = None
    notes: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.changes) or self.refused is not None


def _norm_account(value: str | None) -> str:
    """Accounts as Win32_Service spells them, compared like the service check does."""
    text = (value or "").lower().replace(" ", "")
    return {"ntauthority\\system": "localsystem", ".\\localsystem": "localsystem"}.get(text, text)


def guest_now(diag_time: datetime | None) -> datetime:
    return diag_time or datetime.now(timezone.utc)


def _expired(entry: CertEntry, now: datetime) -> bool:
    expires = entry.expires
    return expires is not None and expires <= now


# --- triggers (pure; mirrored in repair.ps1) --------------------------------------------------
#
# Each trigger is narrower than the guest check(s) the repair fixes, so a repair never acts
# without a finding that explains it.


def key_acl_broken(d: Diagnosis) -> bool:
    """The listener key file exists but NETWORK SERVICE cannot read it (an ACL problem, repairable)."""
    mk = d.machine_keys
    return mk is not None and mk.key_found is True and (mk.key_readable is False or mk.key_denied is True)


def trigger_machinekeys(d: Diagnosis, now: datetime) -> Trigger:
    mk = d.machine_keys
    if mk is None:
        return Trigger()
    key_broken = key_acl_broken(d)
    listener = d.cert.listener_cert if d.cert else None
    cert_trouble = listener is not None and (listener.key_opens is False or listener.has_private_key is False)
    events = d.events is not None and any(d.events.count(e) > 0 for e in (1057, 1058, 36870))
    changes: list[Change] = []
    # A hardened folder alone does not break RDP: reset it only with evidence that keys suffer.
    if mk.sddl is not None and mk.sddl != MACHINEKEYS_DEFAULT_SDDL and (key_broken or cert_trouble or events):
        changes.append(Change("MachineKeys folder SDDL", mk.sddl, MACHINEKEYS_DEFAULT_SDDL))
    if key_broken:
        changes.append(
            Change("RDP key file ACL", "NETWORK SERVICE cannot read", "SYSTEM F, NETWORK SERVICE R")
        )
    return Trigger(tuple(changes), notes=(SESSION_NOTE,) if changes else ())


def bad_listener(d: Diagnosis, now: datetime) -> bool:
    """The listener's certificate is expired, key-less, or its key is lost (not merely unreadable)."""
    listener = d.cert.listener_cert if d.cert else None
    if listener is None:
        return False
    lost_key = listener.key_opens is False and not key_acl_broken(d)
    return _expired(listener, now) or listener.has_private_key is False or lost_key


def bad_certificates(d: Diagnosis, now: datetime) -> list[CertEntry]:
    """Remote Desktop store certificates to remove: expired, key-less, or with a lost key."""
    if d.cert is None:
        return []
    out = []
    for entry in d.cert.certs:
        if entry.store != "RD":
            continue  # the My store holds certificates azrdp did not create: never touched
        lost_key = entry.key_opens is False and not key_acl_broken(d)
        if _expired(entry, now) or entry.has_private_key is False or lost_key:
            out.append(entry)
    return out


def stale_pin(d: Diagnosis, now: datetime) -> bool:
    """SSLCertificateSHA1Hash names a certificate that is missing or expired."""
    cert = d.cert
    if cert is None or not cert.pin:
        return False
    pinned = cert.find(cert.pin)
    return pinned is None or _expired(pinned, now)


def trigger_cert(d: Diagnosis, now: datetime) -> Trigger:
    cert = d.cert
    if cert is None:
        return Trigger()
    pin = stale_pin(d, now)
    if not pin and not bad_listener(d, now):
        return Trigger()
    if cert.pin_type == 2:
        return Trigger(
            refused="Group Policy owns the RDP certificate binding (SSLCertificateSHA1HashType 2): "
            "renew or replace the certificate in that policy."
        )
    changes = [
        Change(f"certificate {e.thumbprint} in Remote Desktop store", "present", "removed")
        for e in bad_certificates(d, now)
    ]
    if pin:
        changes.append(Change("RDP-Tcp SSLCertificateSHA1Hash", cert.pin, None))
    changes.append(Change("Remote Desktop certificate", "none valid", "new self-signed"))
    return Trigger(tuple(changes), notes=(SESSION_NOTE,))


def trigger_services(d: Diagnosis, now: datetime) -> Trigger:
    changes: list[Change] = []
    for name, (start, account) in SERVICE_DEFAULTS.items():
        svc = d.service(name)
        if svc is None or svc.state in (None, "NotFound"):
            continue
        if svc.start_mode == "Disabled":
            changes.append(Change(f"service {name} start type", svc.start_mode, start))
        if svc.account is not None and _norm_account(svc.account) != _norm_account(account):
            changes.append(Change(f"service {name} account", svc.account, account))
        if name in MUST_RUN and svc.state != "Running":
            changes.append(Change(f"service {name} state", svc.state, "Running"))
    notes = (SESSION_NOTE,) if any(c.target.startswith("service TermService") for c in changes) else ()
    return Trigger(tuple(changes), notes=notes)


def trigger_listener(d: Diagnosis, now: datetime) -> Trigger:
    rdp = d.rdp
    if rdp is None:
        return Trigger()
    if rdp.deny_policy == 1:
        return Trigger(
            refused="Group Policy sets fDenyTSConnections=1 (Remote Desktop turned off by policy); a local "
            "change would be reverted at the next policy refresh. Allow RDP in that GPO."
        )
    changes: list[Change] = []
    if rdp.deny == 1 and rdp.deny_policy is None:
        changes.append(Change("Terminal Server fDenyTSConnections", 1, 0))
    if rdp.ts_enabled == 0:
        changes.append(Change("Terminal Server TSEnabled", 0, 1))
    if rdp.winstation_enabled == 0:
        changes.append(Change("RDP-Tcp fEnableWinStation", 0, 1))
    logons = False
    if rdp.logon_disabled == 1:
        changes.append(Change("RDP-Tcp fLogonDisabled", 1, 0))
        logons = True
    if rdp.ts_user_enabled not in (None, 0):
        changes.append(Change("Terminal Server TSUserEnabled", rdp.ts_user_enabled, 0))
        logons = True
    notes: list[str] = []
    if drained(rdp):
        if rdp.terminal_server_mode == 1:
            # On a Session Host a drain is usually deliberate: flag it, never end it.
            message = (
                "This Session Host is drained or has logons disabled, which is usually deliberate: "
                "ask its owner, then run `change logon /enable` yourself."
            )
            if not changes:
                return Trigger(refused=message)
            notes.append(message)
        else:
            if rdp.drain_mode not in (None, 0):
                changes.append(Change("Terminal Server TSServerDrainMode", rdp.drain_mode, 0))
            if rdp.winstations_disabled == 1:
                changes.append(Change(f"{WINLOGON} WinStationsDisabled", "1", "0"))
            logons = True
    if logons:
        notes.append(SESSION_NOTE)
    elif changes:
        notes.append("Restarts Remote Desktop Services if nothing listens yet (sessions are disconnected).")
    return Trigger(tuple(changes), notes=tuple(notes))


def drained(rdp: RdpSettings) -> bool:
    """Drain mode, or remote logons disabled in Winlogon (change logon /drain or /disable)."""
    return rdp.drain_mode not in (None, 0) or rdp.winstations_disabled == 1


def foreign_owner(d: Diagnosis, port: int | None) -> PortOwner | None:
    listener = d.listener
    if port is None or listener is None:
        return None
    owner = listener.owner(port)
    if owner is None or owner.pid is None or owner.pid == listener.termservice_pid:
        return None
    return owner


def firewall_port_covered(d: Diagnosis, port: int) -> bool:
    rule = d.firewall.rule(RDP_TCP_RULE) if d.firewall else None
    return rule is None or not rule.exists or _port_in(rule.local_ports, port) or custom_rule_admits(d, port)


def custom_rule_admits(d: Diagnosis, port: int) -> bool:
    """azrdp's own azrdp-RDP-<port> rule is enabled, allows and covers the port."""
    rule = d.firewall.rule(custom_rule_name(port)) if d.firewall else None
    return (
        rule is not None
        and rule.enabled is True
        and rule.action == "Allow"
        and _port_in(rule.local_ports, port)
    )


def trigger_port(d: Diagnosis, now: datetime, target_port: int = DEFAULT_RDP_PORT) -> Trigger:
    rdp = d.rdp
    if rdp is None or rdp.port is None:
        return Trigger()
    port = rdp.port
    invalid = not 1 <= port <= 65535
    owner = None if invalid else foreign_owner(d, port)
    if not invalid and owner is None:
        if port != target_port:
            # A deliberately moved port is left alone: its NSG and firewall rules follow it.
            return Trigger(
                refused=f"RDP listens on TCP {port}, not {target_port}, and nothing else holds that port: "
                f"azrdp leaves a moved port alone. Check that path with --port {port}, or set PortNumber "
                f"back to {target_port} yourself."
            )
        return Trigger()
    if owner is not None and port == target_port:
        return Trigger(
            refused=f"{owner.process or 'PID ' + str(owner.pid)} owns TCP {port}, the RDP port. azrdp "
            "does not stop processes: stop it yourself, or pass --port with a free port to move RDP there."
        )
    other = foreign_owner(d, target_port)
    if other is not None:
        return Trigger(
            refused=f"TCP {target_port} is owned by {other.process or 'PID ' + str(other.pid)} too."
        )
    changes = [Change("RDP-Tcp PortNumber", port, target_port)]
    if not firewall_port_covered(d, target_port):
        rule = d.firewall.rule(RDP_TCP_RULE) if d.firewall else None
        changes.append(
            Change(f"firewall rule {RDP_TCP_RULE} LocalPort", rule.local_ports if rule else None, target_port)
        )
    notes = (
        SESSION_NOTE,
        f"RDP will listen on TCP {target_port}: the NSG must allow it, and clients connect to "
        f"host:{target_port}.",
    )
    return Trigger(tuple(changes), notes=notes)


def _port_in(ports: str | None, port: int) -> bool:
    for part in (ports or "").split(","):
        text = part.strip()
        if text.lower() == "any":
            return True
        low, _, high = text.partition("-")
        if low.isdigit() and int(low) <= port <= int(high if high.isdigit() else low):
            return True
    return False


def _active_profiles(fw: FirewallInfo) -> list[FirewallProfile]:
    active = set(fw.active)
    return [p for p in fw.profiles if p.enabled and (not active or p.name in active)]


def trigger_firewall(d: Diagnosis, now: datetime) -> Trigger:
    fw = d.firewall
    if fw is None or not _active_profiles(fw):
        return Trigger()
    port = d.rdp.port if d.rdp is not None and d.rdp.port is not None else DEFAULT_RDP_PORT
    changes: list[Change] = []
    notes: list[str] = []
    for profile in _active_profiles(fw):
        if profile.allow_local_rules is False:
            return Trigger(
                refused=f"Group Policy ignores local firewall rules on the {profile.name} profile "
                "(AllowLocalFirewallRules False): allow RDP in that policy."
            )
        if profile.allow_inbound_rules is False:
            changes.append(Change(f"firewall profile {profile.name} AllowInboundRules", False, True))
        if profile.do_not_allow_exceptions == 1:
            changes.append(Change(f"firewall profile {profile.name} DoNotAllowExceptions", 1, None))
    tcp = fw.rule(RDP_TCP_RULE)
    udp = fw.rule(RDP_UDP_RULE)
    if udp is not None and udp.exists and udp.enabled is False:
        changes.append(Change(f"firewall rule {RDP_UDP_RULE}", "disabled", "enabled"))
    if custom_rule_admits(d, port):
        pass  # azrdp's rule for a moved port lets it in: the built-in rule may keep 3389
    elif tcp is None or tcp.exists is False:
        # Not a copy of the built-in rule: azrdp's own, named for the port, which undo deletes.
        changes.append(
            Change(f"firewall rule {custom_rule_name(port)}", None, f"Allow TCP {port} (TermService)")
        )
    else:
        if tcp.enabled is False:
            changes.append(Change(f"firewall rule {RDP_TCP_RULE}", "disabled", "enabled"))
        if tcp.action not in (None, "Allow"):
            changes.append(Change(f"firewall rule {RDP_TCP_RULE} action", tcp.action, "Allow"))
        # An invalid listener port is rdp-port's to fix; the rule must not follow it there.
        if 1 <= port <= 65535 and not _port_in(tcp.local_ports, port):
            changes.append(Change(f"firewall rule {RDP_TCP_RULE} LocalPort", tcp.local_ports, port))
    if fw.blocks:
        notes.append(
            "Inbound Block rules cover the RDP port ("
            + ", ".join(fw.blocks)
            + "); azrdp never removes Block "
            "rules: disable them yourself if they are not intended."
        )
        if not changes:
            return Trigger(refused=notes[0])
    return Trigger(tuple(changes), notes=tuple(notes))


def trigger_tls(d: Diagnosis, now: datetime) -> Trigger:
    tls = d.tls
    if tls is None or tls.tls12 is None or not tls.tls12.off:
        return Trigger()
    changes: list[Change] = []
    if tls.tls12.enabled == 0:
        changes.append(Change("SCHANNEL TLS 1.2 Server Enabled", 0, 1))
    if tls.tls12.disabled_by_default == 1:
        changes.append(Change("SCHANNEL TLS 1.2 Server DisabledByDefault", 1, 0))
    if tls.cipher_functions == 0:
        changes.append(Change("SSL cipher suite policy Functions", "empty", None))
    return Trigger(tuple(changes), notes=(REBOOT_NOTE,))


def trigger_security(d: Diagnosis, now: datetime) -> Trigger:
    """Raise SecurityLayer / NLA back to secure values (and what SecurityLayer 2 needs). Never lowers."""
    rdp = d.rdp
    if rdp is None or (rdp.effective_security_layer != 0 and rdp.effective_user_auth != 0):
        return Trigger()
    changes: list[Change] = []
    owned: list[str] = []
    if rdp.effective_security_layer == 0:
        if rdp.security_layer_policy is not None or rdp.source_security_layer == 1:
            owned.append("SecurityLayer")
        else:
            changes.append(Change("RDP-Tcp SecurityLayer", 0, 2))
            # SecurityLayer 2 with MinEncryptionLevel 1 is an invalid pair.
            if (
                rdp.min_encryption is not None
                and rdp.min_encryption < 2
                and rdp.min_encryption_policy is None
            ):
                changes.append(Change("RDP-Tcp MinEncryptionLevel", rdp.min_encryption, 2))
            if rdp.negotiation == 0:
                changes.append(Change("RDP-Tcp fAllowSecProtocolNegotiation", 0, 1))
    if rdp.effective_user_auth == 0:
        if rdp.user_auth_policy is not None or rdp.source_user_auth == 1:
            owned.append("UserAuthentication")
        else:
            changes.append(Change("RDP-Tcp UserAuthentication", 0, 1))
    if owned and not changes:
        return Trigger(
            refused="Group Policy sets " + " and ".join(owned) + " to an insecure value: fix that GPO."
        )
    notes = ("Group Policy owns " + " and ".join(owned) + "; left as it is.",) if owned else ()
    return Trigger(tuple(changes), notes=(*notes, SESSION_NOTE) if changes else notes)


TriggerFunc = Callable[[Diagnosis, datetime], Trigger]

TRIGGERS: dict[str, TriggerFunc] = {
    "rdp-services": trigger_services,
    "machinekeys-acl": trigger_machinekeys,
    "rdp-cert-renew": trigger_cert,
    "tls12-server": trigger_tls,
    "rdp-listener": trigger_listener,
    "rdp-port": trigger_port,
    "firewall-rdp-rule": trigger_firewall,
    "rdp-security-restore": trigger_security,
}
GUEST_ORDER: tuple[str, ...] = tuple(TRIGGERS)
# The security layer is raised only once certificate, key and TLS are healthy (or being fixed
# in the same run): TLS-only security with a broken certificate locks everyone out.
SECURITY_PREREQUISITES = ("machinekeys-acl", "rdp-cert-renew", "tls12-server")


def evaluate(repair_id: str, d: Diagnosis, now: datetime, target_port: int = DEFAULT_RDP_PORT) -> Trigger:
    if repair_id == "rdp-port":
        return trigger_port(d, now, target_port)
    return TRIGGERS[repair_id](d, now)


def security_blocked_by(d: Diagnosis, now: datetime, selected: Sequence[str]) -> list[str]:
    """Prerequisite repairs that are needed but will not run in this plan."""
    return [rid for rid in SECURITY_PREREQUISITES if rid not in selected and evaluate(rid, d, now).changes]


def _security_prerequisites(facts: RepairFacts, step: RepairStep | None) -> RepairStep | None:
    """Refuse to raise the security layer while a certificate, key or TLS fault cannot be fixed.

    The planner does not know --only/--skip; the engine re-checks with the selection
    (`security_blocked_by`). Here: prerequisites that are refused outright.
    """
    if step is None or step.refused is not None:
        return step
    diagnosis = facts.guest.diagnosis
    now = guest_now(getattr(facts.guest, "guest_time", None))
    refused = [rid for rid in SECURITY_PREREQUISITES if evaluate(rid, diagnosis, now).refused]
    if not refused:
        return step
    return replace(
        step,
        refused="The certificate, key or TLS fault must be fixed first (" + ", ".join(refused) + " cannot "
        "run): raising the security layer now would lock every client out.",
    )


# --- registration -------------------------------------------------------------------------------


def _plan(repair_id: str, facts: RepairFacts) -> RepairStep | None:
    repair = spec(repair_id)
    report = facts.guest
    diagnosis = getattr(report, "diagnosis", None)
    present = [f.id for f in facts.present(*repair.fixes)]
    # Evidence first: no finding this repair fixes, no step (the triggers are narrower still).
    if diagnosis is None or not present:
        return None
    now = guest_now(getattr(report, "guest_time", None))
    trigger = evaluate(repair_id, diagnosis, now, facts.port or DEFAULT_RDP_PORT)
    if not trigger:
        return None
    lines = [c.line() for c in trigger.changes]
    return repair.step(present, lines, refused=trigger.refused, notes=trigger.notes)


def _register(
    repair_id: str,
    *,
    title: str,
    fixes: tuple[str, ...],
    risk: Risk,
    changes: str,
    backup: str,
    undo: str,
    verify: str,
    order: int,
) -> None:
    def planner(facts: RepairFacts) -> RepairStep | None:
        step = _plan(repair_id, facts)
        if repair_id == "rdp-security-restore":
            return _security_prerequisites(facts, step)
        return step

    planner.__name__ = "plan_" + repair_id.replace("-", "_")
    register_repair(
        id=repair_id,
        title=title,
        fixes=fixes,
        risk=risk,
        rbac=RUN_COMMAND_RBAC,
        changes=changes,
        backup=backup,
        undo=undo,
        verify=verify,
        where=Where.GUEST,
        order=order,
    )(planner)


_register(
    "rdp-services",
    title="Restore the Remote Desktop services",
    fixes=("termservice-not-running", "service-misconfigured"),
    risk=Risk.MEDIUM,
    changes=(
        "Restores the default start type and account of TermService, UmRdpService, SessionEnv and "
        "their dependencies (KeyIso, CertPropSvc, CryptSvc, MpsSvc, BFE) and starts them. Never "
        "switches a Manual service to Automatic; never touches the guest agent."
    ),
    backup="Service configuration (start type, account, type, state) in the run's manifest.",
    undo="Puts back start type and account, and stops services azrdp started.",
    verify="Services running with their default configuration; TermService owns the RDP port.",
    order=100,
)
_register(
    "machinekeys-acl",
    title="Repair the MachineKeys folder and RDP key file permissions",
    fixes=("machinekeys-acl-corrupt", "rdp-cert-missing-private-key"),
    risk=Risk.MEDIUM,
    changes=(
        "Resets the MachineKeys folder to its default SDDL and the RDP key file's ACL to SYSTEM Full, "
        "NETWORK SERVICE Read plus the build's third entry, by well-known SIDs. Targeted: never a "
        "recursive takeown/grant, never deletes a key."
    ),
    backup="icacls /save of the folder and key file, plus owner+DACL SDDL of both, in the manifest.",
    undo="Re-applies the saved SDDL (owner included).",
    verify="Re-diagnose: key readable by NETWORK SERVICE, folder SDDL default.",
    order=110,
)
_register(
    "rdp-cert-renew",
    title="Renew the RDP self-signed certificate",
    fixes=("rdp-cert-expired", "rdp-cert-missing-private-key", "rdp-cert-binding-stale"),
    risk=Risk.MEDIUM,
    changes=(
        "Removes only expired or key-less certificates from the Remote Desktop store (by "
        "thumbprint), clears an SSLCertificateSHA1Hash binding that names a missing or expired "
        "certificate, restarts SessionEnv and TermService, and waits for Windows to create a new "
        "certificate. Never touches a Group Policy binding or the My store."
    ),
    backup="Export-Certificate (public part only) of each removed certificate, and the binding value.",
    undo="Re-imports the removed certificates, restores the binding and removes the new certificate.",
    verify="A new in-date certificate whose key opens, and no stale binding.",
    order=120,
)
_register(
    "tls12-server",
    title="Re-enable TLS 1.2 for the server side",
    fixes=("tls12-server-disabled",),
    risk=Risk.LOW,
    changes=(
        "Sets SCHANNEL TLS 1.2 Server Enabled=1 and DisabledByDefault=0; removes an empty cipher "
        "suite policy. Leaves the Client keys, TLS 1.0/1.1 and FIPS alone."
    ),
    backup="reg export of the TLS 1.2 Server key (and the cipher policy value) in the manifest.",
    undo="Restores the previous values (or their absence).",
    verify="Only after a reboot (Schannel reads the keys at boot): reported as applied, not verified.",
    order=130,
)
_register(
    "rdp-listener",
    title="Turn the RDP listener back on",
    fixes=(
        "rdp-disabled",
        "listener-disabled",
        "rdp-disabled-by-policy",
        "rdp-logons-disabled",
        "rdp-drain-mode",
    ),
    risk=Risk.LOW,
    changes=(
        "Sets fDenyTSConnections=0, TSEnabled=1 and fEnableWinStation=1; turns logons back on "
        '(fLogonDisabled=0, TSUserEnabled=0, TSServerDrainMode=0, WinStationsDisabled="0") and restarts '
        "TermService so it reads them. Refuses when Group Policy enforces fDenyTSConnections, and never "
        "ends a drain on a Session Host (the finding explains)."
    ),
    backup="reg export of the values in the manifest.",
    undo="Restores the previous values.",
    verify="Re-diagnose: RDP enabled and the listener up.",
    order=140,
)
_register(
    "rdp-port",
    title="Move RDP back to a working port",
    fixes=("port-owned-by-other-process", "port-mismatch"),
    risk=Risk.HIGH,
    changes=(
        "Sets RDP-Tcp PortNumber to 3389 (or --port) only when the current port is invalid or owned by "
        "another process, adds a firewall rule for a non-default port, restarts TermService. The NSG "
        "must allow the new port."
    ),
    backup="reg export of PortNumber; the firewall rule azrdp adds is recorded.",
    undo="Restores PortNumber and removes azrdp's firewall rule.",
    verify="TermService owns the new port.",
    order=150,
)
_register(
    "firewall-rdp-rule",
    title="Enable the Windows Firewall rule for RDP",
    fixes=("firewall-rule-disabled", "firewall-blocks-all-inbound", "firewall-udp-rule-disabled"),
    risk=Risk.LOW,
    changes=(
        "Enables RemoteDesktop-UserMode-In-TCP/-UDP by rule name (not a localized display name) and "
        "points the TCP rule at the listener port, or adds azrdp-RDP-<port> when the built-in rule is "
        "gone; lets the active profile accept inbound rules. Never turns the firewall off or removes "
        "Block rules."
    ),
    backup="The rules' and profiles' previous settings in the manifest.",
    undo="Disables the rules again, restores the profile settings, removes azrdp's rule.",
    verify="Re-diagnose: the rule is enabled in the ActiveStore for the listener port.",
    order=160,
)
_register(
    "rdp-security-restore",
    title="Restore RDP security settings (NLA, TLS security layer)",
    fixes=("nla-or-security-downgraded",),
    risk=Risk.LOW,
    changes=(
        "Raises SecurityLayer 0 to 2, UserAuthentication 0 to 1, MinEncryptionLevel 1 to 2 and "
        "fAllowSecProtocolNegotiation 0 to 1 when a previous fix downgraded them. Never lowers any; "
        "leaves Group Policy values alone; runs only when certificate, key and TLS are healthy."
    ),
    backup="reg export of the values in the manifest.",
    undo="Restores the previous values.",
    verify="Re-diagnose: the values are secure.",
    order=170,
)
