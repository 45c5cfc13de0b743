"""`azrdp check`: can RDP reach this VM (or these VMs), and if not, why?

Control-plane only: VM state, guest agent, NICs, NSGs (subnet and NIC), public IP. The engine
(azrdp.engine.check) does the work; this module parses flags, shows progress and renders.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any

import typer

from azrdp.cli.params import (
    CloudOpt,
    DebugOpt,
    IdsOpt,
    NameOpt,
    NoColorOpt,
    OnlyShowErrorsOpt,
    OutputFormat,
    OutputOpt,
    QueryOpt,
    ResourceGroupOpt,
    SubscriptionOpt,
    VerboseOpt,
    VmArg,
)
from azrdp.cli.terminal import ProgressView, Terminal, handle_errors

if TYPE_CHECKING:
    from rich.console import Console

AllOpt = Annotated[bool, typer.Option("--all", help="Every VM in the subscription.")]
TagOpt = Annotated[
    str | None,
    typer.Option("--tag", help="Only VMs with this tag: key=value, or key for any value."),
]
PortOpt = Annotated[int, typer.Option("--port", help="The RDP port the flow is checked for.")]
SourceIpOpt = Annotated[
    str | None,
    typer.Option(
        "--source-ip",
        envvar="AZRDP_SOURCE_IP",
        help="Your public address (or a prefix) as Azure sees it. Default: anywhere on the Internet.",
    ),
]
ProtocolOpt = Annotated[str, typer.Option("--protocol", help="tcp (RDP) or udp (RDP's UDP transport).")]
EffectiveOpt = Annotated[
    bool,
    typer.Option(
        "--effective",
        help="Also ask Azure for the effective security rules of running VMs and report disagreements.",
    ),
]

STREAM_THRESHOLD = 200


def human_view(doc: Mapping[str, Any], console: Console) -> None:
    """check and diagnose: a panel per VM (a table row each for more than three), summary, next steps."""
    from azrdp.cli import views

    vms = views.sorted_vms(doc.get("vms", []))
    diagnose = doc.get("command") == "diagnose"
    if len(vms) <= views.PANEL_LIMIT:
        for vm in vms:
            blocks = [views.findings_block(vm["findings"])] if vm.get("findings") else []
            console.print(views.vm_panel(vm, [*views.state_rows(vm), *views.guest_rows(vm)], blocks))
    else:
        columns: list[tuple[str, Any]] = [
            ("Power", lambda v: v.get("powerState") or ""),
            ("RDP", views.rdp_cell),
        ]
        if diagnose:
            columns.append(("Guest", lambda v: (v.get("guest") or {}).get("status", "")))
        columns += [("Status", views.status_cell), ("Top finding", views.top_finding)]
        console.print(views.fleet_table(vms, columns))
    if not vms:
        console.print(f"No VM matched: {doc.get('target') or 'the target'}.", markup=False)
    summary = doc["summary"]
    guest = summary.get("guest") or {}
    views.print_summary(
        console,
        f"{views.plural(summary['total'], 'VM')} {'diagnosed' if diagnose else 'checked'}",
        [
            ("blocked", summary.get("blocked", 0)),
            ("could not be read", summary.get("errors", 0)),
            ("healthy", summary.get("healthy", 0)),
            ("with the guest step skipped", guest.get("skipped", 0)),
            ("with the guest step failed", guest.get("error", 0)),
        ],
    )
    views.print_next(console, next_steps(doc))


def next_steps(doc: Mapping[str, Any]) -> list[tuple[str, str]]:
    from azrdp.cli import views

    vms = doc.get("vms", [])
    flow = doc.get("flow") or {}
    extra = ""
    if flow.get("source") and flow["source"] != "Internet":
        extra += f" --source-ip {flow['source']}"
    if flow.get("port") and flow["port"] != 3389:
        extra += f" --port {flow['port']}"
    blocked = [v for v in vms if v.get("status") == "blocked"]
    diagnose = doc.get("command") == "diagnose"
    steps: list[tuple[str, str]] = []
    if len(vms) == 1:
        vm, target = vms[0], views.vm_target(vms[0])
        if vm.get("status") == "blocked":
            steps.append(
                (
                    f"azrdp repair {target}{extra} --dry-run",
                    "what azrdp would change; drop --dry-run to apply",
                )
            )
        if not diagnose and not vm.get("error") and vm.get("osType") == "Windows":
            steps.append(
                (f"azrdp diagnose {target}", "look inside the guest too (one read-only Run Command)")
            )
        if vm.get("status") == "healthy":
            steps.append((f"azrdp probe {target}", "test the RDP handshake from this machine"))
    elif blocked:
        groups = sorted({v["resourceGroup"] for v in blocked})
        if len(groups) == 1:
            steps.append(
                (
                    f"azrdp repair -g {groups[0]}{extra} --broken-only --dry-run",
                    f"plan repairs for the {views.plural(len(blocked), 'blocked VM')}",
                )
            )
        steps.append(
            (f"azrdp {'diagnose' if diagnose else 'check'} {views.vm_target(blocked[0])}", "one VM in detail")
        )
    return steps


def table_rows(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    from azrdp.cli.views import finding_rows

    return finding_rows(doc)


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

    Reads VM state, guest agent, NICs, NSGs and public IPs, and evaluates the RDP flow as Azure does.

    Exit codes: 0 all clear, 4 blockers found, 3 not found, 2 usage, 1 error.
    """
    from azrdp.cli.targeting import resolve_targets
    from azrdp.targets import validate_port, validate_protocol, validate_source

    term = Terminal.for_command(
        no_color=no_color, verbose=verbose, debug=debug, only_show_errors=only_show_errors
    )
    if guest:
        from azrdp.cli.diagnose import run_diagnose_command

        return run_diagnose_command(
            term, vm=vm, name=name, resource_group=resource_group, ids=ids, all_vms=all_vms, tag=tag,
            port=port, source_ip=source_ip, protocol=protocol, effective=effective,
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
