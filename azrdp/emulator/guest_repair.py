"""The simulated guest's `repair`, `undo` and `history` modes, applied to guest_sim's GuestState.

Mirrors scripts/repair.ps1: the same evidence triggers (azrdp.repairs.guest, evaluated on the
diagnosis `guest_sim.collect` builds), the same order, a backup item recorded before every change,
a step that fails part-way restoring its own items (never half-changed), and `undo` restoring a
run's items newest first. The backups live where the emulator keeps VM-side bookkeeping that is
never rendered (`vm["_emulator"]["guestBackups"]`), the simulated C:\\ProgramData\\azrdp\\backups.

Faults for tests: `vm["_emulator"]["repairFaults"] = {"<repair id>": N}` makes that step fail
after its N-th change, exercising the rollback.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import asdict, replace
from datetime import datetime, timedelta
from typing import Any

from azrdp.emulator import guest_sim as sim
from azrdp.guest import contract as c
from azrdp.repairs import guest as rg
from azrdp.repairs.outcome import (
    APPLIED,
    FAILED,
    ID_SEPARATOR,
    PLANNED,
    REFUSED,
    RESTORED,
    ROLLED_BACK,
    RUN_ID,
    HistoryRun,
    RepairOutcome,
    RepairReport,
    StepOutcome,
    render_line,
)

BACKUP_ROOT = "C:\\ProgramData\\azrdp\\backups"
CHANGE_TEXT = 48
CHANGES_PER_STEP = 4
SELF_SIGNED_DAYS = 180


class StepFailed(Exception):
    pass


def _backups(vm: dict[str, Any]) -> dict[str, Any]:
    bookkeeping = vm.setdefault("_emulator", {})
    return bookkeeping.setdefault("guestBackups", {})  # type: ignore[no-any-return]


def _faults(vm: dict[str, Any]) -> Mapping[str, int]:
    return dict((vm.get("_emulator") or {}).get("repairFaults") or {})


# --- one step: record, then change -------------------------------------------------------------


class Step:
    """The items of one repair step. Each `record_*` runs before the change it backs up."""

    def __init__(self, repair_id: str, state: sim.GuestState, fail_after: int | None) -> None:
        self.id = repair_id
        self.state = state
        self.items: list[dict[str, Any]] = []
        self.fail_after = fail_after
        self.changes = 0

    def _changed(self) -> None:
        self.changes += 1
        if self.fail_after is not None and self.changes >= self.fail_after:
            raise StepFailed(f"Simulated failure after change {self.changes} of {self.id}.")

    def set_reg(self, path: str, name: str, value: sim.RegValue | None) -> None:
        old = self.state.reg_get(path, name)
        self.items.append({"t": "reg", "k": path, "n": name, "old": _encode(old)})
        if value is None:
            self.state.reg_delete(path, name)
        else:
            self.state.reg_set(path, name, value)
        self._changed()

    def service(self, name: str, **changes: Any) -> None:
        service = self.state.service(name)
        assert service is not None
        self.items.append({"t": "svc", "n": service.name, "old": asdict(service)})
        for attr, value in changes.items():
            setattr(service, attr, value)
        self._changed()

    def cert_removed(self, thumbprint: str) -> None:
        index = next(i for i, x in enumerate(self.state.certs) if x.thumbprint == thumbprint)
        cert = self.state.certs[index]
        self.items.append({"t": "cert", "i": index, "old": _cert_doc(cert)})
        del self.state.certs[index]
        self._changed()

    def cert_added(self, cert: sim.SimCert) -> None:
        self.items.append({"t": "certnew", "tp": cert.thumbprint})
        self.state.certs.append(cert)
        self._changed()

    def cert_fields(self, thumbprint: str, **changes: Any) -> None:
        cert = next(x for x in self.state.certs if x.thumbprint == thumbprint)
        self.items.append({"t": "certacl", "tp": thumbprint, "old": _cert_doc(cert)})
        for attr, value in changes.items():
            setattr(cert, attr, value)
        self._changed()

    def machinekeys(self, sddl: str) -> None:
        self.items.append({"t": "sddl", "old": self.state.machinekeys_sddl})
        self.state.machinekeys_sddl = sddl
        self._changed()

    def rule(self, name: str, create: sim.SimFirewallRule | None = None, **changes: Any) -> None:
        index = next((i for i, r in enumerate(self.state.firewall_rules) if r.name == name), None)
        if index is None:
            assert create is not None
            self.items.append({"t": "fw", "n": name, "old": None})
            self.state.firewall_rules.append(create)
        else:
            rule = self.state.firewall_rules[index]
            self.items.append({"t": "fw", "n": name, "i": index, "old": asdict(rule)})
            for attr, value in changes.items():
                setattr(rule, attr, value)
        self._changed()

    def profile(self, name: str, **changes: Any) -> None:
        profile = next(p for p in self.state.firewall_profiles if p.name == name)
        self.items.append({"t": "fwp", "n": name, "old": asdict(profile)})
        for attr, value in changes.items():
            setattr(profile, attr, value)
        self._changed()


def _encode(value: sim.RegValue | None) -> Any:
    if isinstance(value, bytes):
        return {"hex": value.hex()}
    return copy.copy(value)


def _decode(value: Any) -> sim.RegValue | None:
    if isinstance(value, dict):
        return bytes.fromhex(value["hex"])
    return value  # type: ignore[no-any-return]


def _cert_doc(cert: sim.SimCert) -> dict[str, Any]:
    doc = asdict(cert)
    doc["not_after"] = c.format_time(cert.not_after)
    return doc


def _cert_from(doc: Mapping[str, Any]) -> sim.SimCert:
    values = dict(doc)
    parsed = c.parse_time(str(values.pop("not_after")))
    assert parsed is not None
    return sim.SimCert(not_after=parsed, **values)


def restore(state: sim.GuestState, items: list[dict[str, Any]]) -> None:
    """Put back what `items` recorded, newest first."""
    for item in reversed(items):
        kind = item["t"]
        if kind == "reg":
            old = _decode(item["old"])
            if old is None:
                state.reg_delete(item["k"], item["n"])
            else:
                state.reg_set(item["k"], item["n"], old)
        elif kind == "svc":
            service = state.service(item["n"])
            assert service is not None
            for attr, value in item["old"].items():
                setattr(service, attr, value)
        elif kind == "cert":
            state.certs.insert(int(item["i"]), _cert_from(item["old"]))
        elif kind == "certnew":
            state.certs = [x for x in state.certs if x.thumbprint != item["tp"]]
        elif kind == "certacl":
            index = next(i for i, x in enumerate(state.certs) if x.thumbprint == item["tp"])
            state.certs[index] = _cert_from(item["old"])
        elif kind == "sddl":
            state.machinekeys_sddl = item["old"]
        elif kind == "fw":
            if item["old"] is None:
                state.firewall_rules = [r for r in state.firewall_rules if r.name != item["n"]]
            else:
                state.firewall_rules[int(item["i"])] = sim.SimFirewallRule(**item["old"])
        elif kind == "fwp":
            index = next(i for i, p in enumerate(state.firewall_profiles) if p.name == item["n"])
            state.firewall_profiles[index] = sim.SimFirewallProfile(**item["old"])


# --- the repairs, as the script performs them ----------------------------------------------------


def _listener_cert(state: sim.GuestState) -> sim.SimCert | None:
    return sim._certs(state)[1]


def _start_mode(word: str) -> str:
    return "Auto" if word == "Auto" else "Manual"


def _next_pid(state: sim.GuestState) -> int:
    return max([s.pid for s in state.services.values()] + [4000]) + 4


def _services(step: Step, d: c.Diagnosis, now: datetime, run_id: str, port: int) -> None:
    state = step.state
    for name, (start, account) in rg.SERVICE_DEFAULTS.items():
        info = d.service(name)
        service = state.service(name)
        if info is None or service is None or info.state in (None, "NotFound"):
            continue
        if info.start_mode == "Disabled":
            step.service(name, start_mode=_start_mode(start))
        if info.account is not None and rg._norm_account(info.account) != rg._norm_account(account):
            step.service(name, account=account)
    for name in ("BFE", "MpsSvc", "TermService"):
        service = state.service(name)
        if service is not None and service.state != "Running":
            if service.start_mode == "Disabled":
                raise StepFailed(f"{name} is disabled and cannot start.")
            step.service(name, state="Running", pid=service.pid or _next_pid(state), exit_code=0)


def _machinekeys(step: Step, d: c.Diagnosis, now: datetime, run_id: str, port: int) -> None:
    trigger = rg.trigger_machinekeys(d, now)
    for change in trigger.changes:
        if change.target == "MachineKeys folder SDDL":
            step.machinekeys(rg.MACHINEKEYS_DEFAULT_SDDL)
        else:
            cert = _listener_cert(step.state)
            if cert is None or not cert.key_file:
                raise StepFailed("The listener key file was not found.")
            step.cert_fields(cert.thumbprint, key_readable=True, key_denied=False, key_opens=True)


def _new_thumbprint(run_id: str, state: sim.GuestState) -> str:
    seed = run_id + str(len(state.certs))
    return hashlib.sha1(seed.encode(), usedforsecurity=False).hexdigest().upper()


def _cert(step: Step, d: c.Diagnosis, now: datetime, run_id: str, port: int) -> None:
    state = step.state
    for entry in rg.bad_certificates(d, now):
        if any(x.thumbprint == entry.thumbprint for x in state.certs):
            step.cert_removed(str(entry.thumbprint))
    if rg.stale_pin(d, now):
        step.set_reg(sim.RDPTCP, "SSLCertificateSHA1Hash", None)
    # SessionEnv restarted: Windows issues a self-signed certificate when no usable one is left,
    # and only when it can write the new key into a MachineKeys folder with the default ACL.
    usable = [
        x
        for x in state.certs
        if x.store.lower() == "remote desktop"
        and x.not_after > now
        and x.has_private_key
        and x.key_opens
        and x.key_readable
        and not x.key_denied
    ]
    if usable:
        return
    session_env = state.service("SessionEnv")
    if session_env is None or session_env.start_mode == "Disabled":
        raise StepFailed("SessionEnv is disabled: Windows cannot create the certificate.")
    if state.machinekeys_sddl != rg.MACHINEKEYS_DEFAULT_SDDL:
        raise StepFailed("Windows did not create a new RDP certificate within 60 s.")
    step.cert_added(
        sim.SimCert(
            _new_thumbprint(run_id, state), (now + timedelta(days=SELF_SIGNED_DAYS)).replace(microsecond=0)
        )
    )


def _tls(step: Step, d: c.Diagnosis, now: datetime, run_id: str, port: int) -> None:
    path = sim.TLS_SERVER["1.2"]
    assert d.tls is not None and d.tls.tls12 is not None
    if d.tls.tls12.enabled == 0:
        step.set_reg(path, "Enabled", 1)
    if d.tls.tls12.disabled_by_default == 1:
        step.set_reg(path, "DisabledByDefault", 0)
    if d.tls.cipher_functions == 0:
        step.set_reg(sim.CIPHER_POLICY, "Functions", None)


def _listener(step: Step, d: c.Diagnosis, now: datetime, run_id: str, port: int) -> None:
    rdp = d.rdp
    assert rdp is not None
    if rdp.deny == 1:
        step.set_reg(sim.TS, "fDenyTSConnections", 0)
    if rdp.ts_enabled == 0:
        step.set_reg(sim.TS, "TSEnabled", 1)
    if rdp.winstation_enabled == 0:
        step.set_reg(sim.RDPTCP, "fEnableWinStation", 1)
    if rdp.logon_disabled == 1:
        step.set_reg(sim.RDPTCP, "fLogonDisabled", 0)
    if rdp.ts_user_enabled not in (None, 0):
        step.set_reg(sim.TS, "TSUserEnabled", 0)
    if rdp.terminal_server_mode != 1:  # a Session Host's drain is never ended
        if rdp.drain_mode not in (None, 0):
            step.set_reg(sim.TS, "TSServerDrainMode", 0)
        if rdp.winstations_disabled == 1:
            step.set_reg(sim.WINLOGON, "WinStationsDisabled", "0")


def _port(step: Step, d: c.Diagnosis, now: datetime, run_id: str, port: int) -> None:
    step.set_reg(sim.RDPTCP, "PortNumber", port)
    if not rg.firewall_port_covered(d, port):
        step.rule(rg.RDP_TCP_RULE, local_ports=str(port))


def _firewall(step: Step, d: c.Diagnosis, now: datetime, run_id: str, port: int) -> None:
    trigger = rg.trigger_firewall(d, now)
    listener_port = d.rdp.port if d.rdp is not None and d.rdp.port is not None else rg.DEFAULT_RDP_PORT
    for change in trigger.changes:
        target = change.target
        if target.startswith("firewall profile ") and target.endswith("AllowInboundRules"):
            step.profile(target.split(" ")[2], allow_inbound_rules=True)
        elif target.startswith("firewall profile ") and target.endswith("DoNotAllowExceptions"):
            name = target.split(" ")[2]
            key = sim.FIREWALL_POLICY + "\\" + sim.FIREWALL_PROFILE_KEYS.get(name, name)
            step.set_reg(key, "DoNotAllowExceptions", None)
        elif change.before is None:
            name = c.custom_rule_name(listener_port)
            step.rule(name, create=sim.SimFirewallRule(name, local_ports=str(listener_port), group=""))
        else:
            name = target.split(" ")[2]
            if target.endswith(" action"):
                step.rule(name, action="Allow")
            elif target.endswith(" LocalPort"):
                step.rule(name, local_ports=str(listener_port))
            else:
                step.rule(name, enabled=True)


def _security(step: Step, d: c.Diagnosis, now: datetime, run_id: str, port: int) -> None:
    names = {
        "RDP-Tcp SecurityLayer": "SecurityLayer",
        "RDP-Tcp MinEncryptionLevel": "MinEncryptionLevel",
        "RDP-Tcp fAllowSecProtocolNegotiation": "fAllowSecProtocolNegotiation",
        "RDP-Tcp UserAuthentication": "UserAuthentication",
    }
    for change in rg.trigger_security(d, now).changes:
        if int(change.after) <= int(change.before):
            raise StepFailed(f"Refusing to lower {change.target}.")  # the trigger never plans this
        step.set_reg(sim.RDPTCP, names[change.target], int(change.after))


Apply = Callable[[Step, c.Diagnosis, datetime, str, int], None]
APPLY: dict[str, Apply] = {
    "rdp-services": _services,
    "machinekeys-acl": _machinekeys,
    "rdp-cert-renew": _cert,
    "tls12-server": _tls,
    "rdp-listener": _listener,
    "rdp-port": _port,
    "firewall-rdp-rule": _firewall,
    "rdp-security-restore": _security,
}


def _split(text: str) -> list[str]:
    return [part.strip() for part in (text or "").split(ID_SEPARATOR) if part.strip()]


def _change_texts(trigger: rg.Trigger) -> tuple[str, ...]:
    """As ConvertTo-AzrdpChangeText words them ('to', not '->', which Limit-Text would respell)."""
    texts = (ch.line().replace(" -> ", " to ", 1) for ch in trigger.changes[:CHANGES_PER_STEP])
    return tuple(c.limit_text(text, CHANGE_TEXT) or "" for text in texts)


def _error(stamp: str, mode: str, message: str, code: str = "parameter") -> RepairReport:
    return RepairReport(c.SCHEMA_VERSION, mode, stamp, error=message, error_code=code)


def repair(vm: dict[str, Any], state: sim.GuestState, params: dict[str, str], now: datetime) -> RepairReport:
    stamp = c.format_time(now)
    port = int(params.get("rdpport", "3389"))
    run_id = params.get("runid", "")
    only, skip = _split(params.get("only", "")), _split(params.get("skip", ""))
    dry = params.get("dryrun", "0") == "1"
    if not RUN_ID.match(run_id):
        return _error(stamp, "repair", "RunId must be 12 lower-case hex characters.")
    unknown = [i for i in only + skip if i not in rg.GUEST_ORDER]
    if unknown:
        return _error(stamp, "repair", f"Unknown repair id {unknown[0]}")
    if not dry and run_id in (vm.get("_emulator") or {}).get("guestBackups", {}):
        return _error(stamp, "repair", f"Run {run_id} already exists in this guest.", "internal")
    before = sim.collect(state, port, now)
    selected = [i for i in rg.GUEST_ORDER if i not in skip and (not only or i in only)]
    faults = _faults(vm)
    manifest: dict[str, Any] = {"v": 1, "id": run_id, "t": stamp, "state": "applying", "steps": []}
    results: list[StepOutcome] = []
    for repair_id in selected:
        trigger = rg.evaluate(repair_id, before, now, port)
        if not trigger:
            continue
        texts = _change_texts(trigger)
        reboot = repair_id in rg.REBOOT_REQUIRED
        if trigger.refused is not None:
            results.append(
                StepOutcome(
                    repair_id, REFUSED, texts, c.limit_text(trigger.refused, c.LIMITS["message"]), reboot
                )
            )
            continue
        if repair_id == "rdp-security-restore" and not dry:
            applied = {r.id for r in results if r.status == APPLIED}
            missing = [
                p for p in rg.SECURITY_PREREQUISITES if rg.evaluate(p, before, now) and p not in applied
            ]
            if missing:
                results.append(
                    StepOutcome(repair_id, REFUSED, texts, "Fix the certificate, key or TLS first.", reboot)
                )
                continue
        if dry:
            results.append(StepOutcome(repair_id, PLANNED, texts, None, reboot))
            continue
        if not manifest["steps"]:
            _backups(vm)[run_id] = manifest  # the backup directory exists before the first change
        step = Step(repair_id, state, faults.get(repair_id))
        record: dict[str, Any] = {"id": repair_id, "s": "applying", "items": step.items, "e": None}
        manifest["steps"].append(record)
        try:
            APPLY[repair_id](step, before, now, run_id, port)
            record["s"] = APPLIED
        except StepFailed as exc:
            restore(state, step.items)  # repaired or as it was, never half-changed
            record["s"] = ROLLED_BACK
            record["e"] = c.limit_text(str(exc), c.LIMITS["message"])
        results.append(StepOutcome(repair_id, record["s"], texts, record["e"], reboot))
    backup_dir = None
    after = before
    if manifest["steps"]:
        manifest["state"] = "applied"
        manifest["items"] = sum(len(s["items"]) for s in manifest["steps"])
        backup_dir = f"{BACKUP_ROOT}\\{run_id}"
        if any(r.status == APPLIED and r.id in rg.REBOOT_REQUIRED for r in results):
            runs = sim.pending_reboot_runs(state)
            state.pending_reboot = {"boot": sim.boot_stamp(state), "runs": [*runs, run_id]}
        vm["guest"] = sim.dump_state(state)
        after = sim.collect(state, port, now)
    outcome = RepairOutcome(run_id, backup_dir, dry, tuple(results))
    return fit(RepairReport(c.SCHEMA_VERSION, "repair", stamp, after, repair=outcome, before=before))


def fit(report: RepairReport) -> RepairReport:
    """Like Compress-AzrdpRepairReport: over budget, the change texts go first, then `b`."""
    if len(render_report(report)) <= c.OUTPUT_BUDGET or report.repair is None:
        return report
    steps = tuple(StepOutcome(s.id, s.status, (), s.error, s.reboot) for s in report.repair.steps)
    report = replace(report, repair=replace(report.repair, steps=steps))
    if len(render_report(report)) <= c.OUTPUT_BUDGET:
        return report
    return replace(report, before=None)


def render_report(report: RepairReport) -> str:
    return render_line(report)


def undo(vm: dict[str, Any], state: sim.GuestState, params: dict[str, str], now: datetime) -> RepairReport:
    stamp = c.format_time(now)
    port = int(params.get("rdpport", "3389"))
    run_id = params.get("runid", "")
    if not RUN_ID.match(run_id):
        return _error(stamp, "undo", "RunId must be 12 lower-case hex characters.")
    manifest = _backups(vm).get(run_id)
    if manifest is None:
        return _error(stamp, "undo", f"No backup of run {run_id} in this guest.", "internal")
    results: list[StepOutcome] = []
    if manifest["state"] != "undone":
        for record in reversed(manifest["steps"]):
            if record["s"] != APPLIED:
                continue
            restore(state, record["items"])
            record["s"] = "undone"
            results.append(StepOutcome(record["id"], RESTORED, reboot=record["id"] in rg.REBOOT_REQUIRED))
        manifest["state"] = "undone"
        # As Set-AzrdpPendingReboot: this run no longer waits (its settings are back to what the
        # listener runs with), and a marker from an earlier boot goes.
        rest = [r for r in sim.pending_reboot_runs(state) if r != run_id]
        state.pending_reboot = {"boot": sim.boot_stamp(state), "runs": rest} if rest else None
        vm["guest"] = sim.dump_state(state)
    outcome = RepairOutcome(run_id, f"{BACKUP_ROOT}\\{run_id}", False, tuple(results))
    return RepairReport(c.SCHEMA_VERSION, "undo", stamp, sim.collect(state, port, now), repair=outcome)


def history(vm: dict[str, Any], state: sim.GuestState, params: dict[str, str], now: datetime) -> RepairReport:
    stamp = c.format_time(now)
    port = int(params.get("rdpport", "3389"))
    runs = sorted(_backups(vm).values(), key=lambda m: str(m["t"]), reverse=True)[:10]
    entries = tuple(
        HistoryRun(m["id"], m["t"], m["state"], tuple(f"{s['id']}:{s['s']}" for s in m["steps"]))
        for m in runs
    )
    outcome = RepairOutcome(None, BACKUP_ROOT, False, (), entries)
    return RepairReport(c.SCHEMA_VERSION, "history", stamp, sim.collect(state, port, now), repair=outcome)


MODE_HANDLERS = {"repair": repair, "undo": undo, "history": history}
PARAMETERS = ("runid", "only", "skip", "dryrun")
# The line that tells the repair functions were included into the script (as Get-Command tells
# the real script's dispatch).
ENTRY_FUNCTION = "function Invoke-AzrdpRepairMode {"


def accepts(script: Any, params: Mapping[str, str]) -> bool:
    """A repair/undo/history run of the script with repair.ps1 included."""
    lines = script.splitlines() if isinstance(script, str) else list(script or [])
    return params.get("mode", "diagnose") in MODE_HANDLERS and any(
        line.strip() == ENTRY_FUNCTION for line in lines
    )


def run(vm: dict[str, Any], state: sim.GuestState, params: dict[str, str], now: datetime) -> str:
    """The marker line Invoke-AzrdpRepairMode would have the script print."""
    mode = params.get("mode", "repair")
    stamp = c.format_time(now)
    major = state.ps_version.split(".")[0]
    if major.isdigit() and int(major) < 5:
        message = f"Windows PowerShell {state.ps_version} is too old; azrdp needs 5.1."
        return render_line(_error(stamp, mode, message, "unsupported"))
    port = params.get("rdpport", "3389")
    if not port.strip().isdigit() or not 1 <= int(port) <= 65535:
        return render_line(_error(stamp, mode, "RdpPort must be a TCP port from 1 to 65535."))
    if params.get("dryrun", "0") not in ("0", "1"):
        return render_line(_error(stamp, mode, "DryRun must be 0 or 1."))
    return render_line(MODE_HANDLERS[mode](vm, state, params, now))


__all__ = ["FAILED", "MODE_HANDLERS", "PARAMETERS", "accepts", "history", "repair", "restore", "run", "undo"]
