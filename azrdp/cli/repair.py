"""`azrdp repair`, `azrdp undo` and `azrdp history`.

The engine (azrdp.engine.repair) plans, applies and verifies; this module parses flags, asks for
confirmation on a terminal (never without one: exit 2 with a hint), shows progress and renders.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Annotated, Any

import typer

from azrdp.cli.params import (
    CloudOpt,
    DebugOpt,
    DryRunOpt,
    IdsOpt,
    NameOpt,
    NoColorOpt,
    OnlyShowErrorsOpt,
    OutputOpt,
    QueryOpt,
    ResourceGroupOpt,
    SubscriptionOpt,
    VerboseOpt,
    VmArg,
    YesOpt,
)
from azrdp.cli.terminal import Terminal, enable_http_debug_logging, handle_errors
from azrdp.errors import UsageError

if TYPE_CHECKING:
    from rich.console import Console

    from azrdp.engine import Progress
    from azrdp.engine.repair import VmRepair
    from azrdp.targets import Targets

PortOpt = Annotated[
    int, typer.Option("--port", help="The RDP port clients use (the NSG rule and rdp-port target it).")
]
SourceIpOpt = Annotated[
    str | None,
    typer.Option(
        "--source-ip",
        envvar="AZRDP_SOURCE_IP",
        help="Your public address. Needed for nsg-allow-rdp: RDP is never opened to the Internet.",
    ),
]
OnlyOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--only", help="Run only these repairs (repeat or comma-separate; see `azrdp checks list`)."
    ),
]
SkipOpt = Annotated[list[str] | None, typer.Option("--skip", help="Never run these repairs.")]
BrokenOnlyOpt = Annotated[
    bool, typer.Option("--broken-only", help="With -g/--ids: repair only VMs the check finds blocked.")
]
ConcurrencyOpt = Annotated[
    int, typer.Option("--concurrency", min=1, max=50, help="VMs repaired at once (Run Commands in flight).")
]
WaitTimeoutOpt = Annotated[
    float,
    typer.Option("--wait-timeout", min=0, help="Seconds to wait for another Run Command in progress (409)."),
]
RunIdOpt = Annotated[str, typer.Option("--run-id", help="The run to take back (see `azrdp history`).")]
GuestOpt = Annotated[
    bool, typer.Option("--guest", help="Also list the backups kept in the VM (one Run Command).")
]

_STATUS_STYLE = {
    "applied": "green",
    "planned": "cyan",
    "refused": "yellow",
    "declined": "yellow",
    "rolledBack": "bold red",
    "failed": "bold red",
    "notRun": "dim",
}
_VM_STYLE = {
    "repaired": "bold green",
    "healthy": "bold green",
    "planned": "bold cyan",
    "blocked": "bold red",
    "notVerified": "bold red",
    "error": "bold red",
}


def _split(values: Sequence[str] | None) -> tuple[str, ...]:
    out: list[str] = []
    for value in values or ():
        out.extend(part.strip() for part in value.replace(",", " ").split() if part.strip())
    return tuple(dict.fromkeys(out))


def _setup(no_color: bool, verbose: bool, debug: bool, only_show_errors: bool) -> Terminal:
    term = Terminal(no_color=no_color, verbose=verbose, debug=debug, only_show_errors=only_show_errors)
    if debug:
        enable_http_debug_logging()
    return term


def _targets(vm: str | None, name: str | None, resource_group: str | None, ids: list[str] | None) -> Targets:
    from azrdp.targets import parse_targets

    id_values = [i for i in ids or [] if i.strip()]
    if ids is not None and not id_values:
        raise UsageError("--ids was given without any ID.", fix="Pass VM resource IDs.")
    if id_values and resource_group:
        raise UsageError(
            "--ids cannot be combined with -g/--resource-group.",
            fix="Pass either --ids ID... or VM -g GROUP.",
        )
    return parse_targets(vm, name, resource_group, id_values)


def _describe(targets: Targets) -> str:
    if len(targets.vms) == 1:
        return f"VM '{targets.vms[0].name}'"
    return targets.describe()


# --- rendering ------------------------------------------------------------------------------------


def plan_table(vms: Sequence[Mapping[str, Any]], console: Console, title: str = "Plan") -> None:
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title, title_justify="left", show_edge=False, header_style="bold", expand=True)
    for col in ("VM", "Step", "What changes", "Risk", "Backup", "Status"):
        table.add_column(col, overflow="fold")
    for vm in vms:
        for step in vm.get("plan", []):
            what = "\n".join(step["changes"]) or step["title"]
            if step.get("refused"):
                what += f"\nrefused: {step['refused']}"
            for note in step.get("notes", []):
                what += f"\nnote: {note}"
            table.add_row(
                vm["name"],
                step["id"],
                Text(what),
                step["risk"],
                step["backup"],
                Text(step["status"], style=_STATUS_STYLE.get(step["status"], "")),
            )
    console.print(table)


def _vm_panel(vm: Mapping[str, Any], console: Console) -> None:
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    if vm.get("error"):
        grid.add_row("Error", Text(f"{vm['error']['code']}: {vm['error']['message']}", style="red"))
    findings = vm.get("findings", [])
    grid.add_row("Found", Text(", ".join(f["id"] for f in findings) or "nothing wrong"))
    for step in vm.get("plan", []):
        line = Text()
        line.append(f"{step['status']:<11}", style=_STATUS_STYLE.get(step["status"], ""))
        line.append(f" {step['id']}: {step['title']}")
        if step.get("verified") is True:
            line.append("  verified", style="green")
        elif step.get("verified") is False:
            line.append("  NOT verified", style="bold red")
        grid.add_row("Step", line)
        for change in step["changes"]:
            grid.add_row("", Text(f"  {change}"))
        if step.get("refused"):
            grid.add_row("", Text(f"  refused: {step['refused']}", style="yellow"))
        if step.get("error"):
            grid.add_row("", Text(f"  error: {step['error']}", style="red"))
    remaining = vm.get("remainingFindings", [])
    blockers = [f for f in remaining if f["severity"] == "blocker"]
    grid.add_row(
        "Remaining",
        Text(", ".join(f["id"] for f in remaining) or "nothing", style="red" if blockers else "green"),
    )
    for suggestion in vm.get("suggestions", []):
        grid.add_row("Suggestion", Text(f"{suggestion['title']}: {suggestion['how']}"))
    for note in vm.get("notes", []):
        grid.add_row("Note", Text(note))
    if vm.get("backupDir"):
        grid.add_row(
            "Backup",
            Text(
                f"{vm['backupDir']} (undo: azrdp undo {vm['name']} -g {vm['resourceGroup']} "
                f"--run-id {vm['runId']})"
            ),
        )
    title = Text()
    title.append(vm["name"], style="bold")
    title.append(f" ({vm['resourceGroup']})  ")
    title.append(vm.get("status", "").upper(), style=_VM_STYLE.get(vm.get("status", ""), ""))
    console.print(Panel(grid, title=title, title_align="left", expand=True))


def human_view(doc: Mapping[str, Any], console: Console) -> None:
    vms = doc.get("vms", [])
    if len(vms) <= 3:
        for vm in vms:
            _vm_panel(vm, console)
    else:
        plan_table(vms, console, title="Repairs")
    summary = doc["summary"]
    console.print(
        f"{summary['total']} VM(s): {summary['repaired']} repaired, {summary['healthy']} healthy, "
        f"{summary['planned']} planned, {summary['blocked']} blocked, {summary['notVerified']} not verified, "
        f"{summary['errors']} errors."
    )


def table_rows(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for vm in doc.get("vms", []):
        base = {"name": vm["name"], "resourceGroup": vm["resourceGroup"]}
        if vm.get("error"):
            rows.append(
                {**base, "repair": "", "status": "ERROR", "risk": "", "detail": vm["error"]["message"]}
            )
        for step in vm.get("plan", []):
            detail = "; ".join(step["changes"]) or step["title"]
            rows.append(
                {
                    **base,
                    "repair": step["id"],
                    "status": step["status"],
                    "risk": step["risk"],
                    "detail": step.get("refused") or step.get("error") or detail,
                }
            )
        if not vm.get("plan") and not vm.get("error"):
            rows.append(
                {
                    **base,
                    "repair": "",
                    "status": vm.get("status", ""),
                    "risk": "",
                    "detail": "nothing to repair",
                }
            )
    return rows


class _Progress:
    def __init__(self, term: Terminal) -> None:
        self.term = term
        self.status: Any = None
        self.update: Any = None

    def __enter__(self) -> _Progress:
        return self.resume("Checking")

    def resume(self, message: str) -> _Progress:
        self.status = self.term.status(message)
        self.update = self.status.__enter__()
        return self

    def __call__(self, event: Progress) -> None:
        if self.update is not None:
            self.update(event.message)

    def pause(self) -> None:
        if self.status is not None:
            self.status.__exit__(None, None, None)
            self.status = None
            self.update = None

    def __exit__(self, *exc: object) -> None:
        self.pause()


# --- commands -------------------------------------------------------------------------------------


def repair(
    vm: VmArg = None,
    name: NameOpt = None,
    resource_group: ResourceGroupOpt = None,
    ids: IdsOpt = None,
    broken_only: BrokenOnlyOpt = False,
    port: PortOpt = 3389,
    source_ip: SourceIpOpt = None,
    only: OnlyOpt = None,
    skip: SkipOpt = None,
    yes: YesOpt = False,
    dry_run: DryRunOpt = False,
    concurrency: ConcurrencyOpt = 10,
    wait_timeout: WaitTimeoutOpt = 300.0,
    subscription: SubscriptionOpt = None,
    cloud: CloudOpt = None,
    output: OutputOpt = None,
    query: QueryOpt = None,
    verbose: VerboseOpt = False,
    debug: DebugOpt = False,
    only_show_errors: OnlyShowErrorsOpt = False,
    no_color: NoColorOpt = False,
) -> None:
    """Repair what stops RDP, with a backup first and a verification after.

    Checks the VM, diagnoses the guest, shows the plan, asks, applies, re-diagnoses and verifies.
    With --yes the guest is diagnosed, repaired and verified in one Run Command.

    Exit codes: 0 repaired and verified (or nothing to do), 4 planned (dry run) or blockers it
    cannot fix, 5 applied but not verified, 2 refused prompt, 130 interrupted.
    """
    from azrdp.engine.repair import RepairInterrupted, RepairOptions, run_repair, validate_ids
    from azrdp.targets import validate_port, validate_source

    term = _setup(no_color, verbose, debug, only_show_errors)
    targets = _targets(vm, name, resource_group, ids)
    only_ids, skip_ids = _split(only), _split(skip)
    validate_ids(only_ids, skip_ids)
    options = RepairOptions(
        port=validate_port(port),
        source_ip=validate_source(source_ip),
        only=only_ids,
        skip=skip_ids,
        dry_run=dry_run,
        broken_only=broken_only,
        concurrency=concurrency,
        wait_timeout=wait_timeout,
        debug=debug,
    )
    if not (yes or dry_run) and not term.interactive:
        raise UsageError(
            f"Refusing to change {_describe(targets)} without confirmation: stdin is not a terminal.",
            fix="Pass --yes to apply, or --dry-run to print the plan.",
        )
    progress = _Progress(term)
    import threading

    asking = threading.Lock()  # a VM started by the repair is confirmed again from a worker thread

    def confirm(vms: Sequence[VmRepair]) -> bool:
        with asking:
            return ask(vms)

    def ask(vms: Sequence[VmRepair]) -> bool:
        progress.pause()
        docs = [v.to_doc() for v in vms]
        plan_table(docs, term.err, title="Plan (nothing has been changed yet)")
        if any("disconnected" in n for d in docs for s in d["plan"] for n in s["notes"]):
            term.err.print("Logged-on RDP sessions are disconnected when Remote Desktop Services restart.")
        answer = typer.confirm(
            f"Apply {sum(len(v.actionable) for v in vms)} step(s)?", default=False, err=True
        )
        if answer:
            progress.resume("Applying the plan")
        return answer

    try:
        with progress:
            result = run_repair(
                targets,
                options,
                confirm=None if (yes or dry_run) else confirm,
                subscription=subscription,
                cloud=cloud.value if cloud else None,
                observer=progress,
            )
    except RepairInterrupted as err:
        for line in err.changed:
            term.err.print(f"changed: {line}", markup=False)
        raise
    from azrdp.cli.render import emit

    emit(result.to_doc(), term, output, query, human=human_view, table_rows=table_rows)
    code = int(result.exit_code)
    if code:
        raise typer.Exit(code)


def undo(
    vm: VmArg = None,
    name: NameOpt = None,
    resource_group: ResourceGroupOpt = None,
    ids: IdsOpt = None,
    run_id: RunIdOpt = "",
    port: PortOpt = 3389,
    yes: YesOpt = False,
    subscription: SubscriptionOpt = None,
    cloud: CloudOpt = None,
    output: OutputOpt = None,
    query: QueryOpt = None,
    verbose: VerboseOpt = False,
    debug: DebugOpt = False,
    only_show_errors: OnlyShowErrorsOpt = False,
    no_color: NoColorOpt = False,
) -> None:
    """Take back one repair run: restore the guest from its backups and delete the NSG rule it added.

    Exit codes: 0 restored, 3 unknown run, 5 partly restored, 2 refused prompt, 1 error.
    """
    from azrdp.engine.repair import run_undo
    from azrdp.repairs.outcome import validate_run_id
    from azrdp.targets import validate_port

    term = _setup(no_color, verbose, debug, only_show_errors)
    targets = _targets(vm, name, resource_group, ids)
    if not run_id:
        raise UsageError("--run-id is required.", fix="Pick a run from `azrdp history VM -g GROUP`.")
    run_id = validate_run_id(run_id)
    if not yes:
        if not term.interactive:
            raise UsageError(
                f"Refusing to change {_describe(targets)} without confirmation: stdin is not a terminal.",
                fix="Pass --yes to undo the run.",
            )
        if not typer.confirm(f"Undo run {run_id} on {_describe(targets)}?", default=False, err=True):
            raise typer.Exit(2)
    with term.status(f"Undoing run {run_id}"):
        doc = run_undo(
            targets,
            run_id,
            port=validate_port(port),
            subscription=subscription,
            cloud=cloud.value if cloud else None,
        )
    from azrdp.cli.render import emit

    emit(doc, term, output, query, human=_undo_view)
    code = int(doc["summary"]["exitCode"])
    if code:
        raise typer.Exit(code)


def _undo_view(doc: Mapping[str, Any], console: Console) -> None:
    for vm in doc["vms"]:
        console.print(f"[bold]{vm['name']}[/bold] ({vm['resourceGroup']}): undo of run {vm['runId']}")
        for change in vm["controlPlane"]:
            console.print(f"  {change['kind']} {change.get('rule') or ''}: {change['status']}", markup=False)
        guest = vm["guest"]
        restored = ", ".join(guest.get("restored", [])) or guest.get("reason", "")
        console.print(f"  guest: {guest['status']} {restored}".rstrip(), markup=False)
        console.print(f"  findings now: {', '.join(f['id'] for f in vm['findings']) or 'none'}", markup=False)


def history(
    vm: VmArg = None,
    name: NameOpt = None,
    resource_group: ResourceGroupOpt = None,
    ids: IdsOpt = None,
    guest: GuestOpt = False,
    subscription: SubscriptionOpt = None,
    cloud: CloudOpt = None,
    output: OutputOpt = None,
    query: QueryOpt = None,
    verbose: VerboseOpt = False,
    debug: DebugOpt = False,
    only_show_errors: OnlyShowErrorsOpt = False,
    no_color: NoColorOpt = False,
) -> None:
    """List the repair runs of a VM: the local journal, and with --guest the backups in the VM."""
    from azrdp.engine.repair import run_history

    term = _setup(no_color, verbose, debug, only_show_errors)
    targets = _targets(vm, name, resource_group, ids)
    doc = run_history(targets, guest=guest, subscription=subscription, cloud=cloud.value if cloud else None)
    from azrdp.cli.render import emit

    emit(doc, term, output, query, human=_history_view, table_rows=_history_rows)


def _history_rows(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for vm in doc["vms"]:
        for run in vm["runs"]:
            result = run.get("result") or {}
            rows.append(
                {
                    "name": vm["name"],
                    "runId": run["runId"],
                    "time": run["time"],
                    "steps": ",".join(f"{k}:{v}" for k, v in (result.get("steps") or {}).items()),
                    "undone": bool(run["undone"]),
                }
            )
    return rows


def _history_view(doc: Mapping[str, Any], console: Console) -> None:
    from rich.table import Table

    for vm in doc["vms"]:
        table = Table(title=f"{vm['name']} ({vm['resourceGroup']})", title_justify="left", show_edge=False)
        for col in ("Run", "Time", "Steps", "Backup", "Undone"):
            table.add_column(col, overflow="fold")
        for run in vm["runs"]:
            result = run.get("result") or {}
            steps = ", ".join(f"{k} {v}" for k, v in (result.get("steps") or {}).items())
            table.add_row(
                run["runId"],
                run["time"],
                steps,
                str(result.get("backupDir") or ""),
                "yes" if run["undone"] else "",
            )
        console.print(table)
        if not vm["runs"]:
            console.print("No runs in this machine's journal.")
        guest_runs = vm.get("guestRuns")
        if isinstance(guest_runs, list):
            for run in guest_runs:
                console.print(
                    f"guest backup {run['runId']} {run['time']} {run['state']}: {', '.join(run['steps'])}",
                    markup=False,
                )
        elif isinstance(guest_runs, dict):
            console.print(f"guest backups not read: {guest_runs.get('error')}", markup=False)


def register(app: typer.Typer) -> None:
    app.command("repair")(handle_errors(repair))
    app.command("undo")(handle_errors(undo))
    app.command("history")(handle_errors(history))
