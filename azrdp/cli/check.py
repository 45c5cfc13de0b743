"""`azrdp check`: can RDP reach this VM (or these VMs), and if not, why?

Control-plane only: VM state, guest agent, NICs, NSGs (subnet and NIC), public IP. The engine
(azrdp.engine.check) does the work; this module parses flags, shows progress and renders.
"""

from __future__ import annotations

from typing import Annotated

import typer

from azrdp.cli.check_views import human_view, next_steps, table_rows
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
    OutputFormat,
    OutputOpt,
    PortOpt,
    ProtocolOpt,
    QueryOpt,
    ResourceGroupOpt,
    SourceIpOpt,
    SubscriptionOpt,
    TagOpt,
    VerboseOpt,
    VerifyOpt,
    VmArg,
)
from azrdp.cli.terminal import ProgressView, Terminal, handle_errors

__all__ = ["check", "human_view", "next_steps", "register", "table_rows"]

STREAM_THRESHOLD = 200


def check(
    vm: VmArg = None,
    name: NameOpt = None,
    resource_group: ResourceGroupOpt = None,
    ids: IdsOpt = None,
    all_vms: AllOpt = False,
    tag: TagOpt = None,
    port: PortOpt = 3389,
    source_ip: SourceIpOpt = None,
    protocol: ProtocolOpt = "tcp",
    effective: EffectiveOpt = False,
    verify: VerifyOpt = False,
    network_watcher: NetworkWatcherOpt = None,
    boot_diagnostics: BootDiagnosticsOpt = False,
    health: HealthOpt = None,
    guest: Annotated[
        bool, typer.Option("--guest", help="Also diagnose inside the guest (same as `azrdp diagnose`).")
    ] = False,
    subscription: SubscriptionOpt = None,
    cloud: CloudOpt = None,
    output: OutputOpt = None,
    query: QueryOpt = None,
    verbose: VerboseOpt = False,
    debug: DebugOpt = False,
    only_show_errors: OnlyShowErrorsOpt = False,
    no_color: NoColorOpt = False,
) -> None:
    """Check from the control plane whether RDP can reach the VM(s), and why not.

    Reads VM state, guest agent, NICs, NSGs, public IPs, load balancer NAT rules, route tables,
    Virtual Network Manager admin rules and Resource Health, and evaluates the RDP flow as Azure does.

    Exit codes: 0 all clear, 4 blockers found, 3 not found, 2 usage, 1 error.
    """
    from azrdp.cli.targeting import resolve_targets
    from azrdp.targets import validate_network_watcher, validate_port, validate_protocol, validate_source

    term = Terminal.for_command(
        no_color=no_color, verbose=verbose, debug=debug, only_show_errors=only_show_errors
    )
    if guest:
        from azrdp.cli.diagnose import run_diagnose_command

        return run_diagnose_command(
            term, vm=vm, name=name, resource_group=resource_group, ids=ids, all_vms=all_vms, tag=tag,
            port=port, source_ip=source_ip, protocol=protocol, effective=effective, verify=verify,
            network_watcher=network_watcher, boot_diagnostics=boot_diagnostics, health=health,
            subscription=subscription, cloud=cloud.value if cloud else None, output=output,
            query=query, debug=debug,
        )  # fmt: skip
    targets = resolve_targets("check", vm, name, resource_group, ids, all_vms=all_vms, tag=tag)

    from azrdp.engine.check import CheckOptions, run_check

    options = CheckOptions(
        port=validate_port(port),
        protocol=validate_protocol(protocol),
        source_ip=validate_source(source_ip),
        effective=effective,
        verify=verify,
        network_watcher=validate_network_watcher(network_watcher, verify),
        boot_diagnostics=boot_diagnostics,
        health=health,
    )
    from azrdp.cli.render import emit, write_json

    with ProgressView(term, fleet=targets.is_fleet) as progress:
        result = run_check(
            targets,
            options,
            subscription=subscription,
            cloud=cloud.value if cloud else None,
            observer=progress,
        )
    doc = result.to_doc()
    if (
        len(doc["vms"]) > STREAM_THRESHOLD
        and query is None
        and (output is OutputFormat.json or (output is None and not term.stdout_is_tty))
    ):
        # Same text as emit's json (escapes included), written chunk by chunk: an indented dump of
        # a large fleet would otherwise hold every fragment in memory at once.
        write_json(doc)
    else:
        emit(doc, term, output, query, human=human_view, table_rows=table_rows)
    code = int(result.exit_code)
    if code:
        raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    app.command("check")(handle_errors(check))
