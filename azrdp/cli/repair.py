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
    seconds,
)
from azrdp.cli.terminal import (
    ProgressView,
    Terminal,
    exit_now_if_abandoned,
    handle_errors,
    interruptible,
    printable,
    printable_doc,
)
from azrdp.cli.views import plural
from azrdp.errors import ExitCode, UsageError

if TYPE_CHECKING:
    from rich.console import Console

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
    int,
    typer.Option(
        "--concurrency",
        envvar="AZRDP_CONCURRENCY",
        min=1,
        max=50,
        help="VMs repaired at once (Run Commands in flight).",
    ),
]
WaitTimeoutOpt = Annotated[
    float,
    typer.Option(
        "--wait-timeout",
        envvar="AZRDP_WAIT_TIMEOUT",
        callback=seconds(zero=True),
        help="Seconds to wait for another Run Command in progress (409).",
    ),
]
TimeLimitOpt = Annotated[
    float | None,
    typer.Option(
        "--timeout",
        envvar="AZRDP_REPAIR_TIMEOUT",
        callback=seconds(zero=False),
        help="Seconds the whole command may take. Every wait in it (NSG writes, VM start, Run Command) "
        "ends when it runs out, saying what it waited for; what has not started by then does not start.",
    ),
]
RunIdOpt = Annotated[str, typer.Option("--run-id", help="The run to take back (see `azrdp history`).")]
GuestOpt = Annotated[
    bool, typer.Option("--guest", help="Also list the backups kept in the VM (one Run Command).")
]


def _split(values: Sequence[str] | None, flag: str) -> tuple[str, ...]:
    """Repair ids from a repeatable, comma- or space-separated flag. An empty item is refused: an
    unset variable (`--only "$X"`) must not turn "only these" into "all of them"."""
    out: list[str] = []
    for value in values or ():
        for item in value.split(","):
            if not item.strip():
                raise UsageError(
                    f"{flag} {value!r} has an empty repair id.",
                    "An empty value (often an unset shell variable) names no repair.",
                    fix=f"Name repairs, e.g. {flag} rdp-services,nsg-allow-rdp (see `azrdp checks list`), "
                    f"or leave {flag} out.",
                )
            out.extend(item.split())
    return tuple(dict.fromkeys(out))


def _describe(targets: Targets) -> str:
    if len(targets.vms) == 1:
        return f"VM '{targets.vms[0].name}'"
    return targets.describe()


# --- rendering ------------------------------------------------------------------------------------


def plan_table(vms: Sequence[Mapping[str, Any]], console: Console, title: str = "Plan") -> None:
    """The plan before the prompt: what each step changes, its risk and its backup."""
    from rich.table import Table

    from azrdp.cli.terminal import inert
    from azrdp.cli.views import STEP_STYLE

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
                inert(vm["name"]),
                inert(step["id"]),
                inert(what),
                inert(step["risk"]),
                inert(step["backup"]),
                inert(step["status"], STEP_STYLE.get(step["status"], "")),
            )
    console.print(table)


def _steps_block(vm: Mapping[str, Any]) -> Any:
    from rich.table import Table
    from rich.text import Text

    from azrdp.cli.views import STEP_STYLE

    grid = Table.grid(padding=(0, 2))
    grid.add_column(no_wrap=True)
    grid.add_column(overflow="fold")
    for step in vm.get("plan", []):
        body = Text()
        body.append(step["id"], style="bold")
        body.append(f"  {step['title']}")
        if step.get("verified") is True:
            body.append("  verified", style="green")
        elif step.get("verified") is False:
            body.append("  NOT verified", style="bold red")
        for change in step["changes"]:
            body.append(f"\n{change}")
        if step.get("refused"):
            body.append(f"\nrefused: {step['refused']}", style="yellow")
        if step.get("error"):
            body.append(f"\nerror: {step['error']}", style="red")
        for note in step.get("notes", []):
            body.append(f"\nnote: {note}", style="dim")
        status = step["status"]
        grid.add_row(Text(status.upper(), style=STEP_STYLE.get(status, "")), body)
    return grid


def _repair_panel(vm: Mapping[str, Any]) -> Any:
    from rich.text import Text

    from azrdp.cli import views

    rows: list[tuple[str, Any]] = []
    if vm.get("error"):
        rows.extend(views.state_rows(vm))
    else:
        found = ", ".join(f["id"] for f in views.sorted_findings(vm.get("findings", [])))
        rows.append(("Found", Text(found or "nothing wrong")))
    rows.extend(views.guest_rows(vm))
    for suggestion in vm.get("suggestions", []):
        rows.append(("Suggestion", Text(f"{suggestion['title']}: {suggestion['how']}")))
    for note in vm.get("notes", []):
        rows.append(("Note", Text(note)))
    for change in vm.get("changes", []):
        if change["status"] != "done":
            rows.append((change["status"].capitalize(), Text(change["what"])))
    if vm.get("inFlight"):
        rows.append(("In flight", Text("still running when azrdp stopped waiting")))
    if vm.get("backupDir"):
        rows.append(("Backup", Text(vm["backupDir"])))
    blocks: list[Any] = []
    if vm.get("plan"):
        blocks.append(_steps_block(vm))
    remaining = [f for f in vm.get("remainingFindings", []) if f["severity"] != "info"]
    if remaining and vm.get("status") != "planned":
        blocks.append(views.findings_block(remaining, fix_label="still to do"))
    return views.vm_panel(vm, rows, blocks)


def human_view(doc: Mapping[str, Any], console: Console, *, broken_only: bool = False) -> None:
    """A panel per VM (found, steps, what remains), a table row each for fleets, summary, next steps."""
    from rich.text import Text

    from azrdp.cli import views

    vms = views.sorted_vms(doc.get("vms", []))
    if len(vms) <= views.PANEL_LIMIT:
        for vm in vms:
            console.print(_repair_panel(vm))
    else:

        def steps(vm: Mapping[str, Any]) -> Text:
            return Text(", ".join(f"{s['id']} {s['status']}" for s in vm.get("plan", [])) or "none")

        def remaining(vm: Mapping[str, Any]) -> str:
            if vm.get("error"):
                return str(vm["error"].get("message", ""))
            return ", ".join(f["id"] for f in vm.get("remainingFindings", []) if f["severity"] != "info")

        last = "Findings" if doc.get("dryRun") else "Still blocking"
        console.print(
            views.fleet_table(vms, [("Status", views.status_cell), ("Steps", steps), (last, remaining)])
        )
    summary = doc["summary"]
    dry_run = bool(doc.get("dryRun"))
    declined = sum(1 for v in vms if v.get("declined"))
    views.print_summary(
        console,
        views.plural(summary["total"], "VM") + (" (dry run: nothing was changed)" if dry_run else ""),
        [
            ("repaired", summary.get("repaired", 0)),
            ("with steps planned", summary.get("planned", 0) - declined),
            ("declined at the prompt", declined),
            ("still blocked", summary.get("blocked", 0)),
            ("not verified", summary.get("notVerified", 0)),
            ("could not be repaired (error)", summary.get("errors", 0)),
            ("unknown (not everything could be read)", summary.get("unknown", 0)),
            ("healthy", summary.get("healthy", 0)),
            ("skipped (--broken-only: nothing broken)", summary.get("skipped", 0)),
        ],
    )
    views.print_next(console, next_steps(doc, broken_only=broken_only))


def next_steps(doc: Mapping[str, Any], *, broken_only: bool = False) -> list[tuple[str, str]]:
    from azrdp.cli.views import plural, vm_target

    vms = doc.get("vms", [])
    flow = doc.get("flow") or {}
    extra = f" --source-ip {flow['source']}" if flow.get("source") not in (None, "Internet") else ""
    if flow.get("port") not in (None, 3389):
        extra += f" --port {flow['port']}"
    steps: list[tuple[str, str]] = []
    planned = [v for v in vms if v.get("status") == "planned"]
    if doc.get("dryRun") and planned:
        if len(planned) == 1:
            target = vm_target(planned[0])
        else:
            groups = sorted({v["resourceGroup"] for v in planned})
            fleet = len(groups) == 1 and (broken_only or len(planned) == len(vms))
            target = f"-g {groups[0]}" + (" --broken-only" if broken_only else "") if fleet else "..."
        if target != "...":
            why = (
                "apply the plan" if len(planned) == 1 else f"apply the plans of {plural(len(planned), 'VM')}"
            )
            steps.append((f"azrdp repair {target}{extra}", why))
    settling = [vm for vm in vms if vm.get("settle")]
    for vm in settling[:3]:
        for command in vm["settle"]:
            what = "what the in-guest run did" if "--guest" in command else "take back what this run changed"
            steps.append((command, what))
    for vm in vms[:3]:
        if vm in settling:
            continue
        if vm.get("runId") and vm.get("applied"):
            steps.append(
                (
                    f"azrdp undo {vm_target(vm)} --run-id {vm['runId']}",
                    "take this run back (from its backups)",
                )
            )
        if vm.get("status") in ("repaired", "healthy") and vm.get("applied"):
            steps.append((f"azrdp probe {vm_target(vm)}", "test the RDP handshake from this machine"))
        if vm.get("status") in ("blocked", "notVerified"):
            steps.append((f"azrdp diagnose {vm_target(vm)}", "see what still stops RDP"))
    return steps


def table_rows(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    from azrdp.cli.views import repair_rows

    return repair_rows(doc)


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
    timeout: TimeLimitOpt = None,
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
    Two Run Commands per VM: a read-only collection, then the executor with the plan (it records
    every change in the guest before making it, and ends by collecting the facts to verify).

    Every change is journalled before it is made. One VM's failure is that VM's error: the result
    lists every VM and every change. The first Ctrl-C stops new work and waits a few seconds for
    the steps in flight, then prints the result (what changed, what is still in flight); a second
    exits at once.

    Exit codes: 0 repaired and verified (or nothing to do), 4 planned (dry run) or blockers it
    cannot fix or a declined prompt, 5 applied but not verified, 2 no terminal to confirm on
    (pass --yes or --dry-run), 1 an error on a VM, 130 interrupted; with several VMs the most
    serious.
    """
    from azrdp.cli.targeting import resolve_targets
    from azrdp.engine.control import Stop, grace_seconds
    from azrdp.engine.repair import RepairOptions, run_repair, validate_ids
    from azrdp.targets import validate_port, validate_source

    term = Terminal.for_command(
        no_color=no_color, verbose=verbose, debug=debug, only_show_errors=only_show_errors
    )
    targets = resolve_targets("repair", vm, name, resource_group, ids)
    only_ids, skip_ids = _split(only, "--only"), _split(skip, "--skip")
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
        time_limit=timeout,
    )
    grace = grace_seconds()
    if not (yes or dry_run) and not term.interactive:
        raise UsageError(
            f"Refusing to change {_describe(targets)} without confirmation: stdin is not a terminal.",
            fix="Pass --yes to apply, or --dry-run to print the plan.",
        )
    progress = ProgressView(term, fleet=targets.is_fleet, message="Checking")
    import threading

    asking = threading.Lock()  # a VM started by the repair is confirmed again from a worker thread

    def confirm(vms: Sequence[VmRepair]) -> bool:
        with asking:
            return ask(vms)

    def ask(vms: Sequence[VmRepair]) -> bool:
        progress.pause()
        docs = [v.to_doc() for v in vms]
        plan_table(printable_doc(docs), term.err, title="Plan (nothing has been changed yet)")
        if any("disconnected" in n for d in docs for s in d["plan"] for n in s["notes"]):
            term.err.print("Logged-on RDP sessions are disconnected when Remote Desktop Services restart.")
        count = sum(len(v.actionable) for v in vms)
        signals.prompting = threading.current_thread() is threading.main_thread()
        try:
            answer = typer.confirm(f"Apply {plural(count, 'step')}?", default=False, err=True)
        except typer.Abort:
            # Ctrl-C at the prompt: the engine stops and lists what an earlier prompt let it change.
            term.err.print("")
            raise KeyboardInterrupt from None
        finally:
            signals.prompting = False
        if answer:
            progress.resume("Applying the plan")
        else:
            term.err.print("Declined: nothing in the plan was applied.", markup=False)
        return answer

    stop = Stop(timeout)
    settle = (
        f"azrdp history {targets.vms[0].name} -g {targets.vms[0].resource_group}"
        if len(targets.vms) == 1 and not targets.is_fleet
        else "azrdp history VM -g GROUP"
    )
    with interruptible(stop, grace, settle) as signals, progress:
        result = run_repair(
            targets,
            options,
            confirm=None if (yes or dry_run) else confirm,
            subscription=subscription,
            cloud=cloud.value if cloud else None,
            observer=progress,
            stop=stop,
            grace=grace,
        )
    from azrdp.cli.render import emit

    doc = result.to_doc()
    emit(
        doc,
        term,
        output,
        query,
        human=lambda doc, console: human_view(doc, console, broken_only=broken_only),
        table_rows=table_rows,
    )
    code = int(result.exit_code)
    if result.stopped:
        stopped_message(doc, term)
    exit_now_if_abandoned(result.unfinished, code)
    if code:
        raise typer.Exit(code)


def stopped_message(doc: Mapping[str, Any], term: Terminal) -> None:
    """After a Ctrl-C or --timeout: every change the journal holds for this run, on stderr, and
    how to settle what is unconfirmed. Never "nothing changed" while the journal says otherwise."""
    from azrdp.errors import AzrdpError

    changes = [(vm, c) for vm in doc["vms"] for c in vm.get("changes", [])]
    seen: set[str] = set()
    for vm, change in changes:
        if change["entryId"] in seen:
            continue
        seen.add(change["entryId"])
        term.err.print(f"changed: {printable(vm['name'])}: {printable(change['what'])} ({change['status']})")
    unconfirmed = sum(1 for _, c in changes if c["status"] == "unconfirmed")
    in_flight = [vm for vm in doc["vms"] if vm.get("inFlight")]
    what = "Interrupted" if doc.get("interrupted") else "The --timeout ran out"
    if not seen:
        why = "Nothing was changed: the journal holds no change of this run."
    else:
        why = f"{plural(len(seen), 'change')} made before stopping (listed above)"
        if unconfirmed:
            why += f", {unconfirmed} of them not confirmed: azrdp stopped waiting before their result"
        why += "."
    if in_flight:
        why += f" Still in flight on {plural(len(in_flight), 'VM')}: " + ", ".join(
            vm["name"] for vm in in_flight[:5]
        )
        why += "." if len(in_flight) <= 5 else f" and {len(in_flight) - 5} more."
    settle = [cmd for vm in doc["vms"] for cmd in vm.get("settle", [])]
    if settle:
        fix = "Settle it with " + ", ".join(f"`{c}`" for c in settle[:4])
        fix += f" and {len(settle) - 4} more (each VM's `settle` in the result)." if len(settle) > 4 else "."
        fix += " History --guest shows what an in-guest run did; undo takes a run back."
    else:
        fix = "Rerun `azrdp repair` to finish."
    term.error(AzrdpError(f"{what}.", why, fix))


def undo(
    vm: VmArg = None,
    name: NameOpt = None,
    resource_group: ResourceGroupOpt = None,
    ids: IdsOpt = None,
    run_id: RunIdOpt = "",
    port: PortOpt = 3389,
    yes: YesOpt = False,
    timeout: TimeLimitOpt = None,
    subscription: SubscriptionOpt = None,
    cloud: CloudOpt = None,
    output: OutputOpt = None,
    query: QueryOpt = None,
    verbose: VerboseOpt = False,
    debug: DebugOpt = False,
    only_show_errors: OnlyShowErrorsOpt = False,
    no_color: NoColorOpt = False,
) -> None:
    """Take back one repair run: restore the guest from its backups, delete the NSG rule it added,
    and return a VM it started to the power state it had.

    Works from what the run journalled before each change; what was never confirmed is asked of
    Azure or the guest. Only what is verified taken back is marked undone; anything left is named.

    Exit codes: 0 restored, 3 unknown run, 5 partly restored (something changed since), 2 refused
    prompt, 1 error, 130 interrupted.
    """
    from azrdp.cli.targeting import resolve_targets
    from azrdp.engine.control import Stop, grace_seconds
    from azrdp.engine.repair import RepairOptions
    from azrdp.engine.undo import run_undo
    from azrdp.journal import validate_run_id
    from azrdp.targets import validate_port

    term = Terminal.for_command(
        no_color=no_color, verbose=verbose, debug=debug, only_show_errors=only_show_errors
    )
    targets = resolve_targets("undo", vm, name, resource_group, ids, one_vm=True)
    what = _describe(targets)
    if run_id:
        run_id = validate_run_id(run_id)
        question = f"Undo run {run_id} on {what}?"
    else:
        latest = _latest_run(targets, subscription, cloud.value if cloud else None)
        if yes or not term.interactive:
            raise UsageError(
                "--run-id is required with --yes or without a terminal.",
                f"The latest run on {what} that is not undone yet is {latest['runId']}.",
                fix=f"Pass --run-id {latest['runId']} (`azrdp history {_vm_args(targets)}` lists every run).",
            )
        run_id = str(latest["runId"])
        question = f"Undo the latest run on {what}, {_run_summary(latest)}?"
    if not yes:
        if not term.interactive:
            raise UsageError(
                f"Refusing to change {what} without confirmation: stdin is not a terminal.",
                fix="Pass --yes to undo the run.",
            )
        # The run summary comes from the journal: shown like any other foreign text.
        if not typer.confirm(printable(question), default=False, err=True):
            term.err.print("Declined: nothing was changed.", markup=False)
            raise typer.Exit(int(ExitCode.USAGE))
    grace = grace_seconds()
    stop = Stop(timeout)
    with (
        interruptible(stop, grace, f"azrdp history {_vm_args(targets)}"),
        term.status(f"Undoing run {run_id}"),
    ):
        doc = run_undo(
            targets,
            run_id,
            port=validate_port(port),
            subscription=subscription,
            cloud=cloud.value if cloud else None,
            options=RepairOptions(port=validate_port(port), time_limit=timeout),
            stop=stop,
            grace=grace,
        )
    from azrdp.cli.render import emit

    unfinished = int(doc.pop("unfinished", 0))
    emit(doc, term, output, query, human=_undo_view, table_rows=_undo_rows)
    code = int(doc["summary"]["exitCode"])
    left = [line for vm in doc["vms"] for line in vm.get("left", [])]
    if left:
        from azrdp.errors import AzrdpError

        term.error(
            AzrdpError(
                ("Interrupted: " if doc.get("interrupted") else "")
                + f"run {run_id} is not entirely taken back.",
                "Left: " + "; ".join(left) + ".",
                f"Rerun `azrdp undo {_vm_args(targets)} --run-id {run_id}` once that is settled "
                f"(`azrdp history {_vm_args(targets)} --guest` shows the guest's records).",
            )
        )
    exit_now_if_abandoned(unfinished, code)
    if code:
        raise typer.Exit(code)


def _vm_args(targets: Targets) -> str:
    ref = targets.vms[0]
    return f"{ref.name} -g {ref.resource_group}"


def _run_summary(run: Mapping[str, Any]) -> str:
    steps = ", ".join(f"{k} {v}" for k, v in ((run.get("result") or {}).get("steps") or {}).items())
    return f"run {run['runId']} of {run['time']}" + (f" ({steps})" if steps else "")


def _latest_run(targets: Targets, subscription: str | None, cloud: str | None) -> Mapping[str, Any]:
    """The newest run of this machine's journal that is not undone yet."""
    from azrdp.engine.undo import run_history

    doc = run_history(targets, subscription=subscription, cloud=cloud)
    runs = [r for r in doc["vms"][0]["runs"] if not r.get("undone")]
    if not runs:
        raise UsageError(
            f"--run-id is required: this machine's journal has no run on {_describe(targets)} to undo.",
            fix=f"List the backups kept in the VM with `azrdp history {_vm_args(targets)} --guest`.",
        )
    return max(runs, key=lambda r: str(r.get("time", "")))


def _undo_view(doc: Mapping[str, Any], console: Console) -> None:
    from rich.text import Text

    from azrdp.cli import views
    from azrdp.cli.terminal import inert

    for vm in doc["vms"]:
        rows: list[tuple[str, Any]] = [("Run", Text(str(vm["runId"])))]
        for change in vm["controlPlane"]:
            label = "NSG rule" if change["kind"] == "nsg-rule" else "VM"
            target = change.get("rule") or change.get("powerStateBefore") or ""
            rows.append((label, inert(f"{change['kind']} {target}: {change['status']}")))
            if change.get("note"):  # a rule one fleet run shared with other VMs
                rows.append(("Shared", Text(change["note"])))
        guest = vm["guest"]
        restored = ", ".join(guest.get("restored", [])) or guest.get("reason", "")
        rows.append(("Guest", inert(f"{guest['status']} {restored}".rstrip())))
        for line in vm.get("left", []):
            rows.append(("Left", inert(line)))
        blocks = [views.findings_block(vm["findings"])] if vm.get("findings") else []
        if not vm.get("findings"):
            rows.append(("Findings", Text("none")))
        console.print(views.vm_panel({**vm, "status": "undone"}, rows, blocks))
        console.print(
            "The findings above are the VM's state after the undo, as before the repair.", style="dim"
        )


def _undo_rows(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    from azrdp.cli.views import finding_rows

    return finding_rows(doc)


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
    from azrdp.cli.targeting import resolve_targets
    from azrdp.engine.undo import run_history

    term = Terminal.for_command(
        no_color=no_color, verbose=verbose, debug=debug, only_show_errors=only_show_errors
    )
    targets = resolve_targets("history", vm, name, resource_group, ids, one_vm=True)
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
                    "resourceGroup": vm["resourceGroup"],
                    "runId": run["runId"],
                    "time": run["time"],
                    "steps": ",".join(f"{k}:{v}" for k, v in (result.get("steps") or {}).items()),
                    "undone": bool(run["undone"]),
                    "unconfirmed": ",".join(run.get("unconfirmed") or ()),
                }
            )
    return rows


def _change_line(change: Mapping[str, Any]) -> str:
    target = change.get("rule") or change.get("guestRun") or change.get("powerStateBefore") or ""
    line = f"{change['kind']} {target}".rstrip() + f": {change['outcome']}"
    return line + (", undone" if change.get("undone") else "")


def _history_view(doc: Mapping[str, Any], console: Console) -> None:
    from rich.table import Table

    from azrdp.cli import views
    from azrdp.cli.terminal import inert

    for vm in doc["vms"]:
        title = inert(f"{vm['name']} ({vm['resourceGroup']})")
        table = Table(title=title, title_justify="left", show_edge=False)
        for col in ("Run", "Time", "Changes", "Backup", "Undone"):
            table.add_column(col, overflow="fold")
        for run in vm["runs"]:
            result = run.get("result") or {}
            steps = ", ".join(f"{k} {v}" for k, v in (result.get("steps") or {}).items())
            changes = "\n".join(_change_line(c) for c in run.get("changes", []))
            if not result:
                steps = "(no summary: the run did not end normally)"
            table.add_row(
                inert(run["runId"]),
                inert(run["time"]),
                inert("\n".join(x for x in (changes, steps) if x)),
                inert(result.get("backupDir") or ""),
                "yes" if run["undone"] else "",
            )
        if vm["runs"]:
            console.print(table)
        else:
            console.print(
                f"No repair run of {vm['name']} in this machine's journal"
                + (
                    "."
                    if "guestRuns" in vm and vm["guestRuns"] is not None
                    else "; --guest lists the backups in the VM."
                ),
                markup=False,
            )
        guest_runs = vm.get("guestRuns")
        if isinstance(guest_runs, list):
            for run in guest_runs:
                console.print(
                    f"guest backup {run['runId']} {run['time']} {run['state']}: {', '.join(run['steps'])}",
                    markup=False,
                )
        elif isinstance(guest_runs, dict):
            console.print(f"guest backups not read: {guest_runs.get('error')}", markup=False)
        pending = [r for r in vm["runs"] if not r["undone"]]
        if pending:
            latest = max(pending, key=lambda r: str(r["time"]))
            views.print_next(
                console,
                [
                    (
                        f"azrdp undo {views.vm_target(vm)} --run-id {latest['runId']}",
                        "take the latest run back (from its backups)",
                    )
                ],
            )


def register(app: typer.Typer) -> None:
    app.command("repair")(handle_errors(repair))
    app.command("undo")(handle_errors(undo))
    app.command("history")(handle_errors(history))
