"""`azrdp diagnose`: the control-plane check, then azrdp's script inside the guest (Run Command).

`azrdp check --guest` is the same command. The engine (azrdp.engine.diagnose) does the work; this
module parses flags, shows a spinner with the elapsed time and renders the result document.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any

import typer

from azrdp.cli.check import AllOpt, EffectiveOpt, PortOpt, SourceIpOpt, TagOpt, human_view, table_rows
from azrdp.cli.params import (
    CloudOpt,
    DebugOpt,
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
)
from azrdp.cli.terminal import Terminal, enable_http_debug_logging, handle_errors
from azrdp.errors import UsageError

if TYPE_CHECKING:
    from rich.console import Console

    from azrdp.engine import Progress

WaitTimeoutOpt = Annotated[
    float,
    typer.Option(
        "--wait-timeout",
        envvar="AZRDP_WAIT_TIMEOUT",
        help="Seconds to wait for a Run Command already in progress on a VM (409 Conflict).",
    ),
]
TimeoutOpt = Annotated[
    float,
    typer.Option(
        "--timeout", envvar="AZRDP_TIMEOUT", help="Seconds to wait for the in-guest script to finish."
    ),
]
ConcurrencyOpt = Annotated[
    int,
    typer.Option(
        "--concurrency", envvar="AZRDP_CONCURRENCY", help="Run Commands in flight at once (fleets)."
    ),
]


def guest_lines(doc: Mapping[str, Any], console: Console) -> None:
    """One line per VM about the in-guest step, after the check's panels."""
    from rich.text import Text

    for vm in doc.get("vms", []):
        guest = vm.get("guest") or {}
        status = guest.get("status")
        line = Text()
        line.append(f"{vm['name']}: ", style="bold")
        if status == "ran":
            os_info = guest.get("os") or {}
            found = sum(1 for f in vm.get("findings", []) if f.get("source") == "guest")
            line.append(
                f"in-guest diagnosis ran in {guest.get('elapsedSeconds', 0):.0f} s "
                f"(Windows {os_info.get('version') or 'unknown'}, listener port "
                f"{guest.get('listenerPort') or 'unknown'}): {found} guest finding(s)."
            )
            for err in guest.get("sectionErrors", []):
                line.append(f"\n  could not read {err['section']}: {err['message']}", style="yellow")
        elif status == "skipped":
            line.append(f"in-guest diagnosis skipped: {guest.get('reason', '')}", style="yellow")
        elif status == "error":
            err = guest.get("error") or {}
            line.append(f"in-guest diagnosis failed: {err.get('message', '')}", style="red")
            if err.get("fix"):
                line.append(f"\n  fix: {err['fix']}", style="dim")
        if guest.get("stderr"):
            line.append(f"\n  StdErr: {guest['stderr'].splitlines()[0]}", style="yellow")
        console.print(line)


def diagnose_human_view(doc: Mapping[str, Any], console: Console) -> None:
    human_view(doc, console)
    guest_lines(doc, console)


class _Spinner:
    """A spinner with the elapsed time on a terminal, plain lines with --verbose, else nothing."""

    def __init__(self, term: Terminal) -> None:
        self.term = term
        self.status: Any = None
        self._last = ""

    def __enter__(self) -> _Spinner:
        if self.term.show_progress:
            self.status = self.term.err.status("Starting")
            self.status.start()
        return self

    def __call__(self, event: Progress) -> None:
        if self.status is not None:
            self.status.update(event.message)
        elif self.term.verbose and not self.term.only_show_errors and event.kind != "guest":
            self.term.err.print(event.message, markup=False)
        elif self.term.verbose and not self.term.only_show_errors:
            # Guest progress ticks several times a second: one line per phase change only.
            head = event.message.split("(")[0]
            if head != self._last:
                self._last = head
                self.term.err.print(event.message, markup=False)

    def __exit__(self, *exc: object) -> None:
        if self.status is not None:
            self.status.stop()


def run_diagnose_command(
    term: Terminal,
    *,
    vm: str | None,
    name: str | None,
    resource_group: str | None,
    ids: list[str] | None,
    all_vms: bool,
    tag: str | None,
    port: int,
    source_ip: str | None,
    effective: bool,
    subscription: str | None,
    cloud: str | None,
    output: Any,
    query: str | None,
    debug: bool,
    wait_timeout: float = 300.0,
    timeout: float = 900.0,
    concurrency: int = 10,
) -> None:
    """The body of `azrdp diagnose`, shared with `azrdp check --guest`."""
    from azrdp.cli.check import _env_group
    from azrdp.targets import parse_targets, validate_port, validate_source

    if debug:
        enable_http_debug_logging()
        os.environ["AZRDP_DEBUG"] = "1"
    for label, value in (("--wait-timeout", wait_timeout), ("--timeout", timeout)):
        if value < 0:
            raise UsageError(f"{label} must not be negative.", fix=f"Pass seconds, e.g. {label} 300.")
    if concurrency < 1:
        raise UsageError("--concurrency must be at least 1.", fix="Pass e.g. --concurrency 10.")
    id_values = [i for i in ids or [] if i.strip()]
    if (id_values or (vm or "").lower().startswith("/subscriptions/")) and resource_group:
        if resource_group.strip().lower() in _env_group():
            resource_group = None
        else:
            raise UsageError(
                "--ids cannot be combined with -g/--resource-group.",
                "An ID already names the group.",
                fix="Pass either --ids ID... or VM -g GROUP.",
            )
    if ids is not None and not id_values:
        raise UsageError(
            "--ids was given without any ID.",
            fix="Pass VM resource IDs, e.g. --ids \"$(az vm list --query '[].id' -o tsv)\".",
        )
    targets = parse_targets(vm, name, resource_group, id_values, all_vms, tag)

    from azrdp.cli.render import emit
    from azrdp.engine.check import CheckOptions
    from azrdp.engine.diagnose import DiagnoseOptions, run_diagnose

    options = DiagnoseOptions(
        check=CheckOptions(
            port=validate_port(port), source_ip=validate_source(source_ip), effective=effective
        ),
        concurrency=concurrency,
        wait_timeout=wait_timeout,
        timeout=timeout,
        debug=debug,
    )
    with _Spinner(term) as progress:
        result = run_diagnose(targets, options, subscription=subscription, cloud=cloud, observer=progress)
    doc = result.to_doc()
    for vm_doc in doc["vms"]:
        guest = vm_doc.get("guest") or {}
        if guest.get("stderr"):
            term.warn(
                f"{vm_doc['name']}: the in-guest script wrote to StdErr: {guest['stderr'].splitlines()[0]}"
            )
        if debug and guest.get("rawTail"):
            term.err.print(f"{vm_doc['name']}: end of the raw Run Command output:", markup=False)
            term.err.print(guest["rawTail"], markup=False, highlight=False)
    emit(doc, term, output, query, human=diagnose_human_view, table_rows=table_rows)
    code = int(result.exit_code)
    if code:
        raise typer.Exit(code)


def diagnose(
    vm: VmArg = None,
    name: NameOpt = None,
    resource_group: ResourceGroupOpt = None,
    ids: IdsOpt = None,
    all_vms: AllOpt = False,
    tag: TagOpt = None,
    port: PortOpt = 3389,
    source_ip: SourceIpOpt = None,
    effective: EffectiveOpt = False,
    wait_timeout: WaitTimeoutOpt = 300.0,
    timeout: TimeoutOpt = 900.0,
    concurrency: ConcurrencyOpt = 10,
    subscription: SubscriptionOpt = None,
    cloud: CloudOpt = None,
    output: OutputOpt = None,
    query: QueryOpt = None,
    verbose: VerboseOpt = False,
    debug: DebugOpt = False,
    only_show_errors: OnlyShowErrorsOpt = False,
    no_color: NoColorOpt = False,
) -> None:
    """Diagnose RDP inside the VM(s): the control-plane check, then azrdp's read-only script via Run Command.

    One Run Command per VM, read-only. Needs Microsoft.Compute/virtualMachines/runCommand/action
    (Virtual Machine Contributor). Same as `azrdp check --guest`.

    Exit codes: 0 all clear, 4 blockers found, 3 not found, 2 usage, 1 error (including a guest
    diagnosis that could not run), 130 interrupted.
    """
    term = Terminal(no_color=no_color, verbose=verbose, debug=debug, only_show_errors=only_show_errors)
    run_diagnose_command(
        term,
        vm=vm,
        name=name,
        resource_group=resource_group,
        ids=ids,
        all_vms=all_vms,
        tag=tag,
        port=port,
        source_ip=source_ip,
        effective=effective,
        subscription=subscription,
        cloud=cloud.value if cloud else None,
        output=output,
        query=query,
        debug=debug,
        wait_timeout=wait_timeout,
        timeout=timeout,
        concurrency=concurrency,
    )


def register(app: typer.Typer) -> None:
    app.command("diagnose")(handle_errors(diagnose))
