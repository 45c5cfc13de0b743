"""`azrdp diagnose`: the control-plane check, then azrdp's script inside the guest (Run Command).

`azrdp check --guest` is the same command. The engine (azrdp.engine.diagnose) does the work; this
module parses flags, shows a spinner with the elapsed time and renders the result document.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

import typer

from azrdp.cli.check_views import human_view, table_rows
from azrdp.cli.params import (
    AllOpt,
    BootDiagnosticsOpt,
    CloudOpt,
    DebugOpt,
    EffectiveOpt,
    HealthOpt,
    IdsOpt,
    NameOpt,
    NetworkWatcherOpt,
    NoColorOpt,
    OnlyShowErrorsOpt,
    OutputOpt,
    PortOpt,
    QueryOpt,
    ResourceGroupOpt,
    SourceIpOpt,
    SubscriptionOpt,
    TagOpt,
    VerboseOpt,
    VerifyOpt,
    VmArg,
    seconds,
)
from azrdp.cli.terminal import ProgressView, Terminal, handle_errors, printable
from azrdp.errors import UsageError

WaitTimeoutOpt = Annotated[
    float,
    typer.Option(
        "--wait-timeout",
        envvar="AZRDP_WAIT_TIMEOUT",
        callback=seconds(zero=True),
        help="Seconds to wait for a Run Command already in progress on a VM (409 Conflict).",
    ),
]
TimeoutOpt = Annotated[
    float,
    typer.Option(
        "--timeout",
        envvar="AZRDP_TIMEOUT",
        callback=seconds(zero=False),
        help="Seconds to wait for the in-guest script to finish.",
    ),
]
ConcurrencyOpt = Annotated[
    int,
    typer.Option(
        "--concurrency", envvar="AZRDP_CONCURRENCY", help="Run Commands in flight at once (fleets)."
    ),
]


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
    protocol: str = "tcp",
    verify: bool = False,
    network_watcher: str | None = None,
    boot_diagnostics: bool = False,
    health: bool | None = None,
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
    from azrdp.cli.targeting import resolve_targets
    from azrdp.targets import validate_network_watcher, validate_port, validate_protocol, validate_source

    for label, value, zero in (("--wait-timeout", wait_timeout, True), ("--timeout", timeout, False)):
        if not math.isfinite(value) or value < 0 or (value == 0 and not zero):
            raise UsageError(
                f"{label} {value} is not a usable timeout.", fix=f"Pass seconds, e.g. {label} 300."
            )
    if concurrency < 1:
        raise UsageError("--concurrency must be at least 1.", fix="Pass e.g. --concurrency 10.")
    targets = resolve_targets("diagnose", vm, name, resource_group, ids, all_vms=all_vms, tag=tag)

    from azrdp.cli.render import emit
    from azrdp.engine.check import CheckOptions
    from azrdp.engine.diagnose import DiagnoseOptions, run_diagnose

    options = DiagnoseOptions(
        check=CheckOptions(
            port=validate_port(port),
            protocol=validate_protocol(protocol),
            source_ip=validate_source(source_ip),
            effective=effective,
            verify=verify,
            network_watcher=validate_network_watcher(network_watcher, verify),
            boot_diagnostics=boot_diagnostics,
            health=health,
        ),
        concurrency=concurrency,
        wait_timeout=wait_timeout,
        timeout=timeout,
        debug=debug,
    )
    with ProgressView(term, fleet=targets.is_fleet) as progress:
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
            term.err.print(printable(guest["rawTail"]), markup=False, highlight=False)
    emit(doc, term, output, query, human=human_view, table_rows=table_rows)
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
    verify: VerifyOpt = False,
    network_watcher: NetworkWatcherOpt = None,
    boot_diagnostics: BootDiagnosticsOpt = False,
    health: HealthOpt = None,
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
    term = Terminal.for_command(
        no_color=no_color, verbose=verbose, debug=debug, only_show_errors=only_show_errors
    )
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
        verify=verify,
        network_watcher=network_watcher,
        boot_diagnostics=boot_diagnostics,
        health=health,
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
