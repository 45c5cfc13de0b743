"""The emulator's action Run Command on a simulated Windows VM: azrdp's two scripts, answered.

The emulator never executes PowerShell. When runCommand carries azrdp's collector (recognised by
its header line), the VM's `guest` object is loaded into the Windows model, the mode runs against
it (collect; with the executor's functions sent: execute, records, history), the state is stored
back, and the answer is the line the script would print, rendered with the contract's own encoder.
PowerShell's parameter binding is modelled too: an unknown parameter, or one with an empty value
(Run Command passes `-Name value` unquoted, so an empty value leaves `-Name` without an argument),
fails before the script runs, on StdErr only.

Tests may set `vm["_emulator"]["failOps"] = [op index, ...]`: those operations fail in the guest
as if Windows refused them, to exercise the rollback; `failSaves` the same way makes the records
of those operations unwritable once they changed something (a full disk).
"""

from __future__ import annotations

import contextlib
import copy
import re
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from azrdp.emulator.server import RunCommandOutput
from azrdp.emulator.windows import executor, image
from azrdp.emulator.windows import state as w
from azrdp.emulator.windows.collector import collect
from azrdp.guest import envelope as ge
from azrdp.guest import facts as gf
from azrdp.guest import scripts
from azrdp.guest.wire import from_wire, pack, to_wire

OUTPUT_BUDGET = ge.OUTPUT_BUDGET


def guest_epoch(vm: dict[str, Any], now: datetime) -> datetime:
    """The instant a VM's relative scenario times ('+150d') are anchored to: its first Run Command.

    Kept in the VM's emulator bookkeeping, so a certificate keeps one NotAfter across runs and two
    collections of an unchanged guest differ only in the guest clock.
    """
    bookkeeping = vm.setdefault("_emulator", {})
    stamp = bookkeeping.get("guestEpoch")
    epoch = gf.parse_time(stamp) if isinstance(stamp, str) else None
    if epoch is None:
        epoch = now.replace(microsecond=0)
        bookkeeping["guestEpoch"] = gf.format_time(epoch)
    return epoch


def boot_time(vm: dict[str, Any], now: datetime) -> datetime:
    """LastBootUpTime: an hour before the epoch, ten minutes later per boot the emulator counted
    (start and restart raise `_emulator.boots`)."""
    boots = int((vm.get("_emulator") or {}).get("boots", 0))
    return guest_epoch(vm, now) - timedelta(hours=1) + timedelta(minutes=10 * boots)


def machine_of(vm: dict[str, Any], now: datetime) -> tuple[w.Machine, bool]:
    """The VM's machine, and whether it restarted since its state was stored."""
    machine = image.load(vm.get("guest"), guest_epoch(vm, now), boot_time(vm, now))
    machine.clock = now
    return machine, _after_boot(vm, machine)


def _after_boot(vm: dict[str, Any], machine: w.Machine) -> bool:
    """A restart: every service that ran, or starts automatically, starts again (TermService then
    re-reads its port and picks its certificate); a disabled one stays down."""
    bookkeeping = vm.setdefault("_emulator", {})
    boots = int(bookkeeping.get("boots", 0))
    if int(bookkeeping.get("guestBoots", boots)) == boots:
        bookkeeping["guestBoots"] = boots
        return False
    bookkeeping["guestBoots"] = boots
    before = {s.name: s.state for s in machine.services.values()}
    for service in machine.services.values():
        service.state, service.pid = "Stopped", 0
    for service in list(machine.services.values()):
        was = before[service.name]
        if service.start != "Disabled" and (was != "Stopped" or service.start == "Auto"):
            with contextlib.suppress(w.ApiError):
                machine.start_service(service.name)
    return True


def store(vm: dict[str, Any], machine: w.Machine) -> None:
    vm["guest"] = {**image.dump(machine), **_kept(vm.get("guest"))}


def _kept(guest: Any) -> dict[str, Any]:
    """Fault settings belong to the scenario, not to the machine: they survive a stored state."""
    if not isinstance(guest, Mapping):
        return {}
    return {k: copy.deepcopy(guest[k]) for k in ("fault", "latencySeconds") if k in guest}


def handle_run_command(
    vm: dict[str, Any], body: Mapping[str, Any], now: datetime | None = None
) -> RunCommandOutput:
    """Answer an action Run Command on a simulated Windows VM, as azrdp's scripts would."""
    now = (now or datetime.now(timezone.utc)).replace(microsecond=0)
    script = body.get("script")
    if body.get("commandId") != "RunPowerShellScript" or not scripts.is_azrdp_script(script):
        return RunCommandOutput(
            "",
            "The emulator's simulated guest runs only azrdp's own scripts (first line "
            f"'{scripts.HEADER}'); it does not execute PowerShell or built-in commands.",
        )
    try:
        fault, latency = image.faults(vm.get("guest"))
        machine, rebooted = machine_of(vm, now)
    except (image.ScenarioError, ValueError, TypeError, KeyError) as exc:
        return RunCommandOutput("", f"The simulated guest's scenario is malformed: {exc}")
    binding = _bind(body.get("parameters"))
    if binding is not None:
        return RunCommandOutput("", binding, latency)
    params = scripts.parameters_dict(body.get("parameters"))
    report = _run(vm, machine, params, script, fault, now)
    if rebooted:
        store(vm, machine)
    line = ge.render_line(report)
    if fault is not None:
        faulted = _fault(fault, line)
        if faulted is not None:
            return RunCommandOutput(faulted[0], faulted[1], latency)
    return RunCommandOutput(line + "\n", "", latency)


def _bind(parameters: Any) -> str | None:
    """PowerShell's parameter binding, before the script runs."""
    for item in parameters or ():
        name = str(item.get("name", ""))
        if name.lower() not in {p.lower() for p in scripts.PARAMETER_NAMES}:
            return f"collector.ps1 : A parameter cannot be found that matches parameter name '{name}'."
        if str(item.get("value", "")) == "":
            return (
                f"collector.ps1 : Missing an argument for parameter '{name}'. Specify a parameter of type "
                "'System.String' and try again."
            )
    return None


def _run(
    vm: dict[str, Any], m: w.Machine, params: Mapping[str, str], script: Any, fault: str | None, now: datetime
) -> ge.GuestReport:
    mode = params.get("mode", "collect")
    base = {"v": ge.VERSION, "m": gf.limit_text(mode), "t": gf.format_time(now), "e": None, "ec": None}
    if fault == "unsupported":
        m.ps_version = "4.0"
    port_text = params.get("rdpport", "3389")
    doc: dict[str, Any] = dict(base)
    if int(m.ps_version.split(".")[0]) < 5:
        doc.update(ec="unsupported", e=f"Windows PowerShell {m.ps_version} is too old; azrdp needs 5.1.")
    elif m.ps_32bit:
        doc.update(
            ec="unsupported",
            e="This is a 32-bit Windows PowerShell on 64-bit Windows, which sees a redirected registry and "
            "System32; azrdp needs the 64-bit one.",
        )
    elif not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        doc.update(ec="parameter", e="RdpPort must be a TCP port from 1 to 65535.")
    elif mode == "collect":
        _fit_facts(doc, collect(m, int(port_text)))
        if _size(doc) > OUTPUT_BUDGET:
            doc.update(f=None, ec="budget", e="The facts do not fit Run Command output even trimmed.")
    elif not scripts.has_executor(script):
        doc.update(ec="parameter", e="Mode must be collect: the executor was not sent with this script.")
    elif mode == "execute":
        bookkeeping = vm.get("_emulator") or {}
        fail = frozenset(int(i) for i in bookkeeping.get("failOps", ()))
        unsaved = frozenset(int(i) for i in bookkeeping.get("failSaves", ()))
        result, error, code = executor.execute(
            m, params.get("runid", ""), params.get("plan", ""), fail, unsaved
        )
        if error is not None:
            doc.update(e=error, ec=code)
        else:
            doc["r"] = result
            facts = collect(m, int(port_text))
            doc["f"] = to_wire(facts)
            # As Invoke-AzrdpExecute: over the budget, the per-op values go first (they stay in
            # the guest: mode records), then the facts are trimmed, then the op list goes; the
            # steps' results always come back, and facts that still do not fit stay behind.
            if _size(doc) > OUTPUT_BUDGET:
                for op in doc["r"]["ops"]:
                    op["p"] = op["a"] = None
                doc["r"]["all"] = False
            _fit_facts(doc, facts)
            if _size(doc) > OUTPUT_BUDGET:
                doc["r"]["ops"] = []
            if _size(doc) > OUTPUT_BUDGET:
                doc["f"] = None
        store(vm, m)
    elif mode == "records":
        rec, error, code = executor.records(m, params.get("runid", ""))
        if error is not None:
            doc.update(e=error, ec=code)
        else:
            doc["rec"] = rec
            assert rec is not None
            while _size(doc) > OUTPUT_BUDGET and rec["ops"]:
                rec["ops"].pop()
                rec["all"] = False
    elif mode == "history":
        if m.azrdp.exists and m.azrdp.owner not in (w.SYSTEM, "S-1-5-32-544"):
            doc.update(
                ec="internal",
                e=gf.limit_text(
                    f"C:\\ProgramData\\azrdp is owned by {m.azrdp.owner}, not SYSTEM or Administrators; "
                    "azrdp will not use it.",
                    gf.LIMITS["fatal"],
                ),
            )
        else:
            runs = executor.history(m)
            doc["h"] = runs
            while _size(doc) > OUTPUT_BUDGET and runs:
                runs.pop()
    else:
        doc.update(ec="parameter", e="Mode must be one of: collect, execute, records, history.")
    return from_wire(ge.GuestReport, doc)


def _size(doc: Mapping[str, Any]) -> int:
    """The length of the line this document prints (as the scripts measure what they print)."""
    return len(ge.render_line(from_wire(ge.GuestReport, doc)))


def _fit_facts(doc: dict[str, Any], facts: gf.Facts) -> None:
    """As Limit-AzrdpFacts: over the budget, the facts are trimmed one step of gf.TRIMS at a time."""
    doc["f"] = to_wire(facts)
    for step in gf.TRIMS:
        if _size(doc) <= OUTPUT_BUDGET:
            return
        facts = gf.trim(facts, step)
        doc["f"] = to_wire(facts)


def _fault(fault: str, line: str) -> tuple[str, str] | None:
    if fault == "no-marker":
        return "WARNING: something else answered\n", ""
    if fault == "truncated":
        # The line outgrew the limit: Run Command keeps only the last 4,096 bytes of StdOut.
        return (line + "A" * 5000)[-ge.RUN_COMMAND_OUTPUT_LIMIT :], ""
    if fault == "damaged":
        return ge.MARKER + "!!" + line[len(ge.MARKER) + 2 :] + "\n", ""
    if fault == "cut":
        return line[: len(line) // 2] + "\n", ""
    if fault == "stderr-only":
        return "", (
            "Get-CimInstance : Access denied\r\n"
            "At C:\\Packages\\Plugins\\Microsoft.CPlat.Core.RunCommandWindows\\1.1.18\\Downloads\\"
            "script0.ps1:120 char:11\r\n"
            "    + CategoryInfo          : PermissionDenied: (:) [Get-CimInstance], CimException\r\n"
        )
    if fault == "unknown-schema":
        return ge.MARKER + pack({"v": ge.VERSION + 1, "m": "collect"}) + "\n", ""
    if fault == "legacy":
        return 'AZRDP:{"v":1,"m":"diagnose","d":null}\n', ""
    return None


def digest(m: w.Machine, *, set_aside: bool = True) -> str:
    """A digest of the Windows state azrdp may change (registry, ACLs, files, certificates,
    services' configuration and state, firewall), without what only moves forward: the clock,
    the System log, process ids, TermService's runtime view and azrdp's own records.

    With `set_aside=False` it also leaves out the key containers an undo or a rollback moved
    aside (`<file>.azrdp-<run>-new`): azrdp never deletes key material, so a certificate
    Windows minted during a run that is then undone stays on disk under that name."""
    import hashlib
    import json

    doc = image.dump(m)
    for key in ("events", "runtime", "azrdp"):
        doc.pop(key, None)
    if not set_aside:
        doc["files"] = {
            p: f for p, f in doc["files"].items() if not re.search(r"\.azrdp-[0-9a-f]{12}-new$", p)
        }
    for service in doc["services"].values():
        service.pop("pid", None)
        service.pop("exitCode", None)
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()
