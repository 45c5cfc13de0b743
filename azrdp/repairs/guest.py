"""In-guest repairs: each planned here, in Python, as primitive operations the executor runs.

The guest repairs are planned together, in GUEST_ORDER (services before keys, keys before the
certificate, the certificate and TLS before the security layer is raised). Each is planned on
the state the previous ones leave: its evidence (the findings of the checks it fixes) and its
trigger are evaluated on the facts projected through the operations planned before it
(azrdp.guest.plan.project), so after rdp-port moves the listener, the firewall repair sees the
new port. A trigger returns its operations, or why it refuses, or nothing on a healthy guest.

What these repairs never do: lower SecurityLayer, turn NLA off, lower MinEncryptionLevel, delete
a key file, take ownership of more than one key file (and only after its descriptor is backed
up), replace a descriptor wholesale, touch a Group-Policy-owned value, change FIPS, enable TLS
1.0/1.1, remove a firewall Block rule, or touch the guest agent.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any

from azrdp.checks import run_checks
from azrdp.checks.guest import MUST_RUN, SERVICE_DEFAULTS, needs_new_certificate, norm_account
from azrdp.checks.guest_view import GuestFacts, KeyState, port_in
from azrdp.guest import facts as gf
from azrdp.guest import plan as gp
from azrdp.guest import sddl
from azrdp.model import Source
from azrdp.repairs import RepairFacts, RepairStep, Risk, Where, register_repair, spec

C = "Microsoft.Compute/virtualMachines"
RUN_COMMAND_RBAC = (f"{C}/read", f"{C}/runCommand/action")
SESSION_NOTE = "Restarts Remote Desktop Services: every logged-on RDP session is disconnected."
REBOOT_NOTE = (
    "Takes effect only after the VM restarts (Schannel reads it at boot): azrdp reports it as applied, "
    "not verified. Restart the VM (az vm restart), then run `azrdp diagnose` again."
)
# Repairs whose effect no re-diagnosis can prove until the VM restarts.
REBOOT_REQUIRED = frozenset({"tls12-server"})
DEFAULT_RDP_PORT = 3389
WINLOGON = "Winlogon"


@dataclass(frozen=True)
class Trigger:
    ops: tuple[gp.Op, ...] = ()
    refused: str | None = None
    notes: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.ops) or self.refused is not None


@dataclass(frozen=True)
class Context:
    target_port: int = DEFAULT_RDP_PORT  # the port clients use (--port): where rdp-port moves RDP
    run_id: str = "000000000000"


def guest_now(time: datetime | None) -> datetime:
    return time or datetime.now(timezone.utc)


def _dword(key: str, name: str, facts: GuestFacts, value: int) -> gp.RegSet:
    return gp.RegSet(
        key, name, gp.reg_data(facts.facts.value(key, name)), ("DWord", value), key in facts.facts.reg_keys
    )


def _restart(name: str, view: GuestFacts) -> list[gp.Op]:
    """Restart a service that may run (a disabled one cannot: nothing planned). One that is stopped
    is started instead, so that its inverse (undo, rollback) stops it again."""
    service = view.facts.service(name)
    if service is None or service.state == "NotFound" or service.start == "Disabled" or service.pending:
        return []
    if service.state == "Stopped":
        return [gp.ServiceControl(name, "start", "Stopped")]
    return [gp.ServiceControl(name, "restart")]


def expect_listening(view: GuestFacts) -> int | None:
    """The port TermService should listen on once it (re)starts, or None when it will not."""
    service = view.facts.service("TermService")
    port = view.number("rdptcp", "PortNumber")
    if service is None or service.start == "Disabled" or port is None or not 1 <= port <= 65535:
        return None
    if view.effective("fDenyTSConnections") == 1 or view.number("ts", "TSEnabled") == 0:
        return None
    if view.number("rdptcp", "fEnableWinStation") == 0:
        return None
    ts_pid = service.pid
    if any(o.port == port and o.pid not in (None, ts_pid) for o in view.facts.listeners or ()):
        return None
    return port


def _restart_termservice(view: GuestFacts) -> list[gp.Op]:
    ops = _restart("TermService", view)
    port = expect_listening(view)
    if ops and port is not None:
        ops.append(gp.WaitListener(port))
    return ops


# --- triggers ------------------------------------------------------------------------------------


def trigger_services(view: GuestFacts, ctx: Context) -> Trigger:
    ops: list[gp.Op] = []
    notes: list[str] = []
    for name, (start, account) in SERVICE_DEFAULTS.items():
        service = view.facts.service(name)
        if service is None or service.state in (None, "NotFound"):
            continue
        if service.pending:
            if name == "TermService":
                return Trigger(
                    refused=f"TermService is {service.state}: it hangs, and azrdp never acts on a "
                    "pending service (the wait would hold the VM's Run Command). "
                    "Restart the VM, then run repair again."
                )
            notes.append(f"{name} is {service.state}; azrdp leaves it.")
            continue
        new_start = start if service.start == "Disabled" else ""
        new_account = (
            account if service.account and norm_account(service.account) != norm_account(account) else ""
        )
        if new_start or new_account:
            ops.append(
                gp.ServiceConfig(name, service.start or "", service.account or "", new_start, new_account)
            )
    for name in ("BFE", "MpsSvc", "TermService"):
        service = view.facts.service(name)
        if service is None or service.state in ("Running", "NotFound", None) or service.pending:
            continue
        if name in MUST_RUN:
            ops.append(gp.ServiceControl(name, "start", service.state.replace(" ", "")))
    projected = _project(view, ops)
    port = expect_listening(projected)
    if any(isinstance(o, gp.ServiceControl) and o.name == "TermService" for o in ops) and port is not None:
        ops.append(gp.WaitListener(port))
    if any(o.name == "TermService" for o in ops if isinstance(o, (gp.ServiceConfig, gp.ServiceControl))):
        notes.append(SESSION_NOTE)
    return Trigger(tuple(ops), notes=tuple(notes))


def _key_target(cert: gf.CertFacts) -> str:
    assert cert.key is not None and cert.key.file
    return ("cng:" if cert.key.cng else "key:") + cert.key.file


def _third_ace(view: GuestFacts) -> sddl.Ace:
    build = view.facts.os.build if view.facts.os and view.facts.os.build else 20348
    # Measured: Administrators Read up to 14393, NT SERVICE\SessionEnv Full from 17763.
    if build < 17763:
        return sddl.Ace("A", (), sddl.FILE_READ, sddl.ADMINISTRATORS)
    return sddl.Ace("A", (), sddl.FILE_ALL, sddl.SESSIONENV)


def grant(
    sd: sddl.SecurityDescriptor,
    wanted: Sequence[sddl.Ace],
    deny_sids: frozenset[str],
    mapping: Sequence[int] = sddl.FILE_MAPPING,
) -> sddl.SecurityDescriptor:
    """Add the missing grants and remove only the explicit denies that would take them away.

    `deny_sids`: whose denies may go (the accounts being granted and the groups through which the
    grant reaches them). The DACL comes back in canonical order; nothing else is touched.
    """
    wanted_bits = 0
    for ace in wanted:
        wanted_bits |= sddl.map_generic(ace.mask, mapping)
    remove = [
        a
        for a in sd.dacl or ()
        if a.type == "D"
        and a.explicit
        and a.sid in deny_sids
        and sddl.map_generic(a.mask, mapping) & wanted_bits
    ]
    current = sddl.edit(sd, remove=remove)
    add = [
        a
        for a in wanted
        if not sddl.holds(sddl.access(current, {a.sid}, mapping), sddl.map_generic(a.mask, mapping))
    ]
    return sddl.edit(current, add=add, remove=remove)


def _key_acl(view: GuestFacts, cert: gf.CertFacts) -> gp.Acl | str:
    """The key file's owner and DACL with what the listener needs, or why azrdp will not touch it."""
    sd = view.key_sd(cert)
    if sd is None or cert.key is None:
        return (
            "SYSTEM cannot read the key file's permissions, so azrdp cannot back them up: it will not "
            f"take ownership of it. Run `takeown /f <{cert.key.file if cert.key else 'key file'}>` "
            "yourself, then repair."
        )
    readers = sddl.Ace("A", (), sddl.FILE_READ, sddl.NETWORK_SERVICE)
    wanted = [readers]
    if cert.store == "rd":
        # The self-signed key goes back to the build's measured set: SYSTEM Full, NETWORK SERVICE
        # Read and the third entry. A pinned certificate's key may serve others: only NS Read.
        wanted = [sddl.Ace("A", (), sddl.FILE_ALL, sddl.SYSTEM), readers, _third_ace(view)]
    deny_sids = sddl.NETWORK_SERVICE_TOKEN | {a.sid for a in wanted}
    locked = view.system_locked_out(sd)
    new = grant(sd, wanted, frozenset(deny_sids))
    if locked:
        new = replace(new, owner=sddl.SYSTEM)
    return gp.Acl(
        _key_target(cert),
        cert.key.sddl or "",
        sddl.owner_and_dacl(new).text(),
        owner=locked,
        take_ownership=locked,
    )


def trigger_machinekeys(view: GuestFacts, ctx: Context) -> Trigger:
    ops: list[gp.Op] = []
    cert = view.listener_cert
    state = view.key_state(cert) if cert is not None else None
    if cert is not None and state is KeyState.UNREADABLE:
        acl = _key_acl(view, cert)
        if isinstance(acl, str):
            return Trigger(refused=acl)
        ops.append(acl)
    container_trouble = state in (KeyState.UNREADABLE, KeyState.MISSING, KeyState.CORRUPT)
    if view.folder_hardened and (container_trouble or view.rcm_events()):
        sd = view.folder_sd
        assert sd is not None
        wanted = [
            sddl.Ace("A", (), sddl.MACHINEKEYS_EVERYONE, sddl.EVERYONE),
            sddl.Ace("A", (), sddl.FILE_ALL, sddl.ADMINISTRATORS),
        ]
        new = grant(sd, wanted, frozenset({sddl.EVERYONE, sddl.ADMINISTRATORS}))
        folder = view.facts.machine_keys.sddl if view.facts.machine_keys is not None else None
        ops.insert(0, gp.Acl("mk", folder or "", sddl.owner_and_dacl(new).text()))
    if not ops:
        return Trigger()
    ops += _restart("SessionEnv", view) + _restart_termservice(view)
    return Trigger(tuple(ops), notes=(SESSION_NOTE,))


def stale_pin(view: GuestFacts) -> bool:
    """SSLCertificateSHA1Hash names a certificate that is missing or expired."""
    pin, certs = view.pin, view.facts.certs
    if not pin or certs is None:
        return False
    pinned = certs.find(pin)
    return pinned is None or view.expired(pinned)


def _store_acl(view: GuestFacts) -> gp.Acl | str | None:
    found = view.store_sd()
    if found is None or not view.store_denies_system:
        return None
    target, sd = found
    system = sddl.SYSTEM_TOKEN
    denies = [a for a in sd.dacl or () if a.type == "D" and a.sid in system and a.explicit]
    inherited = [a for a in sd.dacl or () if a.type == "D" and a.sid in system and a.inherited]
    if not denies and inherited:
        return (
            "The Deny for SYSTEM on the Remote Desktop store key is inherited from a parent key: "
            "fix it there."
        )
    new = sddl.edit(sd, remove=denies)
    text = view.facts.certs.certs_sddl if target == "rdc" else view.facts.certs.store_sddl  # type: ignore[union-attr]
    return gp.Acl(target, text or "", sddl.owner_and_dacl(new).text())


def trigger_cert(view: GuestFacts, ctx: Context) -> Trigger:
    certs = view.facts.certs
    if certs is None:
        return Trigger()
    ops: list[gp.Op] = []
    if view.pin and stale_pin(view):
        if view.facts.ts is not None and view.facts.ts.cert_hash_type == 2:
            return Trigger(
                refused="Group Policy owns the RDP certificate binding (SSLCertificateSHA1HashType 2): renew "
                "or replace the certificate in that policy."
            )
        ops.append(
            gp.RegDel(
                "rdptcp",
                "SSLCertificateSHA1Hash",
                gp.reg_data(view.facts.value("rdptcp", "SSLCertificateSHA1Hash")),
            )
        )
    projected = _project(view, ops)
    pin_removed = bool(ops)
    if pin_removed and projected.facts.ts is not None:
        # Once restarted, TermService falls back on the Remote Desktop store (planned on that).
        ts = replace(projected.facts.ts, cert_hash="")
        projected = replace(projected, facts=replace(projected.facts, ts=ts))
    store = _store_acl(projected)
    if isinstance(store, str):
        return Trigger(refused=store)
    renew = needs_new_certificate(projected) and not projected.pin
    if not renew:
        if store is not None:
            ops.append(store)  # the next renewal would fail; nothing to renew now
        if pin_removed:
            # The certificate the listener falls back on: its key readable first (R2: R1 first).
            fallback = projected.listener_cert
            if fallback is not None and projected.key_state(fallback) is KeyState.UNREADABLE:
                acl = _key_acl(projected, fallback)
                if isinstance(acl, str):
                    return Trigger(refused=acl)
                ops.append(acl)
            ops += _restart("SessionEnv", view) + _restart_termservice(projected)
        return Trigger(tuple(ops), notes=(SESSION_NOTE,) if ops else ())
    if store is not None:
        ops.append(store)
    rd = [c for c in certs.certs if c.store == "rd"]
    bad = [c for c in rd if projected.bad_entry(c) or projected.key_state(c) is KeyState.CORRUPT]
    good = [c for c in rd if c not in bad and not projected.expired(c)]
    if good:
        return Trigger(tuple(ops), notes=(SESSION_NOTE,) if ops else ())
    notes = [SESSION_NOTE]
    if not view.certs_listed:
        notes.append(
            f"The Remote Desktop store holds {certs.rd_count} certificates and azrdp read {len(rd)}: "
            "run repair again if Windows still cannot create one."
        )
    renamed: set[str] = set()
    for cert in bad:
        key = cert.key
        # Windows reuses an existing TSSecKeySet1 container for the next certificate: one that is
        # damaged, or that NETWORK SERVICE cannot read, moves aside first (never deleted).
        if (
            projected.key_state(cert) in (KeyState.CORRUPT, KeyState.UNREADABLE)
            and key is not None
            and key.cng is False
            and key.file
            and key.file not in renamed
        ):
            ops.append(gp.KeyRename(key.file, f"{key.file}.azrdp-{ctx.run_id}"))
            renamed.add(key.file)
        ops.append(gp.CertRemove(str(cert.thumbprint).upper()))
    known = tuple(str(c.thumbprint).upper() for c in rd if c not in bad)
    restarts = _restart("SessionEnv", view) + _restart("TermService", view)
    if not any(isinstance(o, gp.ServiceControl) for o in restarts):
        return Trigger(
            refused="TermService and SessionEnv cannot start (disabled or hung): "
            "Windows would not create a certificate."
        )
    ops += restarts
    ops.append(gp.WaitCert(known))
    port = expect_listening(projected)
    if port is not None:
        ops.append(gp.WaitListener(port))
    return Trigger(tuple(ops), notes=tuple(notes))


def trigger_tls(view: GuestFacts, ctx: Context) -> Trigger:
    enabled, by_default = view.number("tls12", "Enabled"), view.number("tls12", "DisabledByDefault")
    if enabled != 0 and by_default != 1:
        return Trigger()
    ops: list[gp.Op] = []
    if enabled == 0:
        ops.append(_dword("tls12", "Enabled", view, 1))
    if by_default == 1:
        ops.append(_dword("tls12", "DisabledByDefault", view, 0))
    functions = view.facts.value("cipher", "Functions")
    if functions is not None and not "".join(
        functions.data if isinstance(functions.data, tuple) else [str(functions.data)]
    ).strip(", "):
        ops.append(gp.RegDel("cipher", "Functions", gp.reg_data(functions)))
    return Trigger(tuple(ops), notes=(REBOOT_NOTE,))


def drained(view: GuestFacts) -> bool:
    return (
        view.number("ts", "TSServerDrainMode") not in (None, 0)
        or view.number("winlogon", "WinStationsDisabled") == 1
    )


def trigger_listener(view: GuestFacts, ctx: Context) -> Trigger:
    if view.number("tspol", "fDenyTSConnections") == 1:
        return Trigger(
            refused="Group Policy sets fDenyTSConnections=1 (Terminal Services policy): "
            "allow Remote Desktop in that policy; a local change would be reverted."
        )
    ops: list[gp.Op] = []
    if view.number("ts", "fDenyTSConnections") == 1:
        ops.append(_dword("ts", "fDenyTSConnections", view, 0))
    if view.number("ts", "TSEnabled") == 0:
        ops.append(_dword("ts", "TSEnabled", view, 1))
    if view.number("rdptcp", "fEnableWinStation") == 0:
        ops.append(_dword("rdptcp", "fEnableWinStation", view, 1))
    if view.number("rdptcp", "fLogonDisabled") == 1:
        ops.append(_dword("rdptcp", "fLogonDisabled", view, 0))
    if view.number("ts", "TSUserEnabled") not in (None, 0):
        ops.append(_dword("ts", "TSUserEnabled", view, 0))
    notes: list[str] = []
    if drained(view):
        if view.facts.ts is not None and view.facts.ts.mode == 1:
            message = (
                "This Session Host is drained or has logons disabled, which is usually deliberate: ask its "
                "owner, then run `change logon /enable` yourself."
            )
            if not ops:
                return Trigger(refused=message)
            notes.append(message)
        else:
            if view.number("ts", "TSServerDrainMode") not in (None, 0):
                ops.append(_dword("ts", "TSServerDrainMode", view, 0))
            if view.number("winlogon", "WinStationsDisabled") == 1:
                current = gp.reg_data(view.facts.value("winlogon", "WinStationsDisabled"))
                ops.append(gp.RegSet("winlogon", "WinStationsDisabled", current, ("String", "0")))
    if not ops:
        return Trigger()
    ops += _restart_termservice(_project(view, ops))
    notes.append(SESSION_NOTE)
    return Trigger(tuple(ops), notes=tuple(notes))


def foreign_owner(view: GuestFacts, port: int | None) -> gf.PortOwner | None:
    service = view.facts.service("TermService")
    ts_pid = service.pid if service is not None else None
    return next(
        (o for o in view.facts.listeners or () if o.port == port and o.pid is not None and o.pid != ts_pid),
        None,
    )


def trigger_port(view: GuestFacts, ctx: Context) -> Trigger:
    port = view.number("rdptcp", "PortNumber")
    target = ctx.target_port
    if port is None:
        return Trigger()
    invalid = not 1 <= port <= 65535
    owner = None if invalid else foreign_owner(view, port)
    if not invalid and owner is None:
        if port != target:
            return Trigger(
                refused=f"RDP listens on TCP {port}, not {target}, and nothing else holds that port: "
                f"azrdp leaves a moved port alone. Check that path with --port {port}, "
                f"or set PortNumber back to {target} yourself."
            )
        return Trigger()
    if owner is not None and port == target:
        return Trigger(
            refused=f"{owner.process or 'PID ' + str(owner.pid)} owns TCP {port}, the RDP port. "
            "azrdp does not stop processes: stop it yourself, "
            "or pass --port with a free port to move RDP there."
        )
    other = foreign_owner(view, target)
    if other is not None:
        return Trigger(refused=f"TCP {target} is owned by {other.process or 'PID ' + str(other.pid)} too.")
    ops: list[gp.Op] = [_dword("rdptcp", "PortNumber", view, target)]
    ops += _restart_termservice(_project(view, ops))
    notes = (
        SESSION_NOTE,
        f"RDP will listen on TCP {target}: the NSG must allow it, and clients connect to host:{target}. The "
        "firewall follows in the firewall-rdp-rule step.",
    )
    return Trigger(tuple(ops), notes=notes)


def _rule_expect(rule: gf.RuleFacts) -> dict[str, Any]:
    return {"en": bool(rule.enabled), "act": rule.action or "", "lp": rule.local_ports or ""}


def trigger_firewall(view: GuestFacts, ctx: Context) -> Trigger:
    fw = view.facts.firewall
    active = view.active_profiles
    if fw is None or not active:
        return Trigger()
    port = view.listener_port or DEFAULT_RDP_PORT
    ops: list[gp.Op] = []
    notes: list[str] = []
    for profile in fw.profiles:
        if profile.name not in active:
            continue
        if profile.local_rules is False:
            return Trigger(
                refused=f"Group Policy ignores local firewall rules on the {profile.name} profile "
                "(AllowLocalFirewallRules False): allow RDP in that policy."
            )
        if profile.inbound is False:
            if profile.inbound_local != "False":
                return Trigger(
                    refused=f"Group Policy blocks all inbound connections on the {profile.name} profile: "
                    "allow inbound rules in that policy."
                )
            ops.append(gp.ProfileSet(profile.name or "", "False", "True"))
        alias = gf.PROFILE_KEYS.get(profile.name or "")
        if alias and view.number(alias, "DoNotAllowExceptions") == 1:
            ops.append(
                gp.RegDel(
                    alias,
                    "DoNotAllowExceptions",
                    gp.reg_data(view.facts.value(alias, "DoNotAllowExceptions")),
                )
            )
    udp = fw.rule(gf.RDP_UDP_RULE)
    if udp is not None and udp.enabled is False and udp.source == "Local":
        ops.append(gp.RuleSet(gf.RDP_UDP_RULE, _rule_expect(udp), enabled=True))
    tcp = fw.rule(gf.RDP_TCP_RULE)
    if 1 <= port <= 65535 and not view.tcp_admitted(port):
        custom = fw.rule(gf.custom_rule_name(port))
        fixable = tcp is not None and tcp.source == "Local" and _scope_ok(view, tcp, port)
        if fixable and tcp is not None:
            change = gp.RuleSet(
                gf.RDP_TCP_RULE,
                _rule_expect(tcp),
                enabled=True if tcp.enabled is False else None,
                action="Allow" if tcp.action != "Allow" else "",
                local_ports=str(port) if not port_in(tcp.local_ports, port) else "",
            )
            if change.enabled is not None or change.action or change.local_ports:
                ops.append(change)
        elif custom is not None and custom.source == "Local":
            ops.append(
                gp.RuleSet(
                    custom.name or gf.custom_rule_name(port),
                    _rule_expect(custom),
                    enabled=True if custom.enabled is False else None,
                    action="Allow" if custom.action != "Allow" else "",
                )
            )
        else:
            # Not a copy of the built-in rule: azrdp's own, named for the port, which undo deletes.
            ops.append(gp.RuleNew(gf.custom_rule_name(port), port))
    everyone, _ = view.blocking_rules(port)
    if everyone:
        message = (
            "Inbound Block rules cover the RDP port ("
            + ", ".join(r.name or "?" for r in everyone)
            + "); azrdp never "
            "removes Block rules: disable them yourself if they are not intended."
        )
        if not ops:
            return Trigger(refused=message)
        notes.append(message)
    return Trigger(tuple(ops), notes=tuple(notes))


def _scope_ok(view: GuestFacts, rule: gf.RuleFacts, port: int) -> bool:
    """Enabling it and setting Action and LocalPort would let RDP in (its other filters fit)."""
    probe = replace(rule, enabled=True, action="Allow", local_ports=str(port))
    return view.rule_applies(probe, port)


def trigger_security(view: GuestFacts, ctx: Context) -> Trigger:
    """Raise SecurityLayer / NLA back to secure values (and what SecurityLayer 2 needs). Never lowers."""
    layer, nla = view.effective("SecurityLayer"), view.effective("UserAuthentication")
    if layer != 0 and nla != 0:
        return Trigger()
    ts = view.facts.ts
    ops: list[gp.Op] = []
    owned: list[str] = []
    if layer == 0:
        if view.number("tspol", "SecurityLayer") is not None or (
            ts is not None and ts.source_security_layer == 1
        ):
            owned.append("SecurityLayer")
        else:
            ops.append(_dword("rdptcp", "SecurityLayer", view, 2))
            level = view.number("rdptcp", "MinEncryptionLevel")
            # SecurityLayer 2 with MinEncryptionLevel 1 is an invalid pair.
            if level is not None and level < 2 and view.number("tspol", "MinEncryptionLevel") is None:
                ops.append(_dword("rdptcp", "MinEncryptionLevel", view, 2))
            if view.number("rdptcp", "fAllowSecProtocolNegotiation") == 0:
                ops.append(_dword("rdptcp", "fAllowSecProtocolNegotiation", view, 1))
    if nla == 0:
        if view.number("tspol", "UserAuthentication") is not None or (
            ts is not None and ts.source_user_auth == 1
        ):
            owned.append("UserAuthentication")
        else:
            ops.append(_dword("rdptcp", "UserAuthentication", view, 1))
    if owned and not ops:
        return Trigger(
            refused="Group Policy sets " + " and ".join(owned) + " to an insecure value: fix that GPO."
        )
    blockers = [f.id for f in _findings(view) if f.id in SECURITY_PREREQUISITE_FINDINGS and f.is_blocker]
    if blockers:
        return Trigger(
            refused="The certificate, key or TLS fault must be fixed first ("
            + ", ".join(blockers)
            + " remains): "
            "raising the security layer now would lock every client out."
        )
    for op in ops:
        assert isinstance(op, gp.RegSet) and int(op.value[1]) > int(
            (op.expect or ("", 0))[1]
        )  # only ever raises
    ops += _restart_termservice(_project(view, ops))
    notes = ("Group Policy owns " + " and ".join(owned) + "; left as it is.",) if owned else ()
    return Trigger(tuple(ops), notes=(*notes, SESSION_NOTE))


TriggerFunc = Callable[[GuestFacts, Context], Trigger]
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
# The security layer is raised only with these findings gone in the state the earlier steps leave.
SECURITY_PREREQUISITE_FINDINGS = (
    "machinekeys-acl-corrupt",
    "rdp-cert-expired",
    "rdp-cert-missing-private-key",
    "rdp-cert-binding-stale",
    "tls12-server-disabled",
)


def _project(view: GuestFacts, ops: Sequence[gp.Op]) -> GuestFacts:
    return replace(view, facts=gp.project_all(view.facts, ops)) if ops else view


def _findings(view: GuestFacts) -> list[Any]:
    return run_checks(view, Source.GUEST)


# --- planning the guest as a whole --------------------------------------------------------------


@dataclass(frozen=True)
class Planned:
    repair_id: str
    trigger: Trigger
    fixes: tuple[str, ...]  # the findings of this repair present when it was planned


def plan_guest(
    view: GuestFacts, selected: Sequence[str] | None = None, ctx: Context | None = None
) -> list[Planned]:
    """The guest repairs in order, each on the facts the earlier ones leave; only evidenced ones."""
    ctx = ctx or Context()
    out: list[Planned] = []
    for repair_id in GUEST_ORDER:
        if selected is not None and repair_id not in selected:
            continue
        fixes = spec(repair_id).fixes
        present = tuple(dict.fromkeys(f.id for f in _findings(view) if f.id in fixes))
        if not present:
            continue
        trigger = TRIGGERS[repair_id](view, ctx)
        if not trigger:
            continue
        out.append(Planned(repair_id, trigger, present))
        if trigger.refused is None:
            view = _project(view, trigger.ops)
    return out


def guest_view(facts: RepairFacts) -> GuestFacts | None:
    report = facts.guest
    guest_facts = getattr(report, "facts", None)
    if guest_facts is None:
        return None
    return GuestFacts(guest_facts, facts.port or DEFAULT_RDP_PORT, getattr(report, "guest_time", None))


_CACHE = "_azrdp_guest_plan"


def _planned_for(facts: RepairFacts) -> dict[str, Planned]:
    cached = facts.__dict__.get(_CACHE)
    if cached is None:
        view = guest_view(facts)
        selected = None if facts.selected is None else tuple(facts.selected)
        ctx = Context(facts.port or DEFAULT_RDP_PORT, facts.run_id or "000000000000")
        cached = {p.repair_id: p for p in plan_guest(view, selected, ctx)} if view is not None else {}
        object.__setattr__(facts, _CACHE, cached)
    return cached


def _plan(repair_id: str, facts: RepairFacts) -> RepairStep | None:
    planned = _planned_for(facts).get(repair_id)
    if planned is None:
        return None
    trigger = planned.trigger
    return spec(repair_id).step(
        planned.fixes,
        gp.describe_ops(trigger.ops),
        refused=trigger.refused,
        notes=trigger.notes,
        ops=trigger.ops if trigger.refused is None else (),
        boot=repair_id in REBOOT_REQUIRED,
    )


# --- registration -------------------------------------------------------------------------------


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
        return _plan(repair_id, facts)

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
        "Restores the default start type and account of TermService, UmRdpService, SessionEnv and their "
        "dependencies (KeyIso, CertPropSvc, CryptSvc, MpsSvc, BFE) and starts TermService, MpsSvc and BFE, "
        "each wait bounded. Never switches a Manual service to Automatic, never acts on a service hung in a "
        "pending state, never touches the guest agent."
    ),
    backup="Each service's start type and account (and state) recorded in the guest before the change.",
    undo="Puts back start type and account, and stops services azrdp started.",
    verify="Services running with their default configuration; TermService owns the RDP port.",
    order=100,
)
_register(
    "machinekeys-acl",
    title="Repair the MachineKeys folder and RDP key file permissions",
    fixes=("machinekeys-acl-corrupt",),
    risk=Risk.MEDIUM,
    changes=(
        "Adds what is missing to the listener key file's DACL (SYSTEM Full, NETWORK SERVICE Read, and the "
        "build's third entry for the self-signed key; only NETWORK SERVICE Read for a pinned certificate's "
        "key) and removes only the Deny entries that take it away; restores Everyone's default grant on the "
        "MachineKeys folder when a key container suffers. Only the DACL is written (and the owner, after "
        "takeown of that one file, when SYSTEM is locked out of it); never recursive, never a key deleted."
    ),
    backup="Owner and DACL (SDDL) of each object, recorded in the guest before the change.",
    undo="Sets the recorded owner and DACL back (only when they are still what the run left).",
    verify="Re-diagnose: key readable by NETWORK SERVICE, folder default.",
    order=110,
)
_register(
    "rdp-cert-renew",
    title="Renew the RDP self-signed certificate",
    fixes=(
        "rdp-cert-expired",
        "rdp-cert-missing-private-key",
        "rdp-cert-binding-stale",
        "rdp-cert-store-denied",
    ),
    risk=Risk.MEDIUM,
    changes=(
        "Removes only expired or key-less entries of the Remote Desktop store (by thumbprint), moves a "
        "damaged or unreadable key container aside so Windows does not reuse it (never deletes it), clears "
        "an SSLCertificateSHA1Hash binding that names a missing or expired certificate (and makes the key of "
        "the certificate the listener falls back on readable), removes Deny entries for SYSTEM on the store "
        "key, restarts SessionEnv and TermService and waits (bounded) for Windows to create a new "
        "certificate. Never touches a Group Policy binding or the My store."
    ),
    backup="The serialized store entry of each removed certificate "
    "(public part and key link; never the key).",
    undo="Puts the removed entries back, restores the binding and the container name, "
    "removes the new certificate.",
    verify="A new in-date certificate whose key NETWORK SERVICE can read, and no stale binding.",
    order=120,
)
_register(
    "tls12-server",
    title="Re-enable TLS 1.2 for the server side",
    fixes=("tls12-server-disabled",),
    risk=Risk.LOW,
    changes=(
        "Sets SCHANNEL TLS 1.2 Server Enabled=1 and DisabledByDefault=0; removes an empty cipher suite "
        "policy. Leaves the Client keys, TLS 1.0/1.1 and FIPS alone."
    ),
    backup="Each value's type and data (or its absence), recorded in the guest before the change.",
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
        "TermService so it reads them. Refuses when Group Policy enforces fDenyTSConnections, and never ends "
        "a drain on a Session Host (the finding explains)."
    ),
    backup="Each value's type and data, recorded in the guest before the change.",
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
        "another process, restarts TermService and waits for it to listen there; the firewall step then "
        "follows the new port. The NSG must allow it."
    ),
    backup="PortNumber's previous value, recorded in the guest before the change.",
    undo="Restores PortNumber.",
    verify="TermService owns the new port.",
    order=150,
)
_register(
    "firewall-rdp-rule",
    title="Enable the Windows Firewall rule for RDP",
    fixes=("firewall-rule-disabled", "firewall-blocks-all-inbound", "firewall-udp-rule-disabled"),
    risk=Risk.LOW,
    changes=(
        "Enables RemoteDesktop-UserMode-In-TCP/-UDP by rule name (not a localized display name) and points "
        "the TCP rule at the listener port, or adds azrdp-RDP-<port> when the built-in rule is gone or owned "
        "by Group Policy; lets the active profile accept inbound rules. Never turns the firewall off or "
        "removes Block rules."
    ),
    backup="The rules' and profiles' previous settings, recorded in the guest before the change.",
    undo="Puts the rules and profiles back, removes azrdp's rule.",
    verify="Re-diagnose: the rule admits the listener port in the ActiveStore.",
    order=160,
)
_register(
    "rdp-security-restore",
    title="Restore RDP security settings (NLA, TLS security layer)",
    fixes=("nla-or-security-downgraded",),
    risk=Risk.LOW,
    changes=(
        "Raises SecurityLayer 0 to 2, UserAuthentication 0 to 1, MinEncryptionLevel 1 to 2 and "
        "fAllowSecProtocolNegotiation 0 to 1 when a previous fix downgraded them. Never lowers any; leaves "
        "Group Policy values alone; runs only when the certificate, key and TLS faults are gone (or fixed "
        "earlier in the same run)."
    ),
    backup="Each value's type and data, recorded in the guest before the change.",
    undo="Restores the previous values.",
    verify="Re-diagnose: the values are secure.",
    order=170,
)


def guest_now_of(report: Any) -> datetime:
    return guest_now(getattr(report, "guest_time", None))


def key_acl_wanted(view: GuestFacts, cert: gf.CertFacts) -> gp.Acl | str:
    """For tests and docs: the ACL operation azrdp would plan for this key."""
    return _key_acl(view, cert)
