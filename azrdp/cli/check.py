"""`azrdp check`: can RDP reach this VM (or these VMs), and if not, why?

Control-plane only: VM state, guest agent, NICs, NSGs (subnet and NIC), public IP. The engine
(azrdp.engine.check) does the work; this module parses flags, shows progress and renders.
"""

from __future__ import annotations

import json
import os
import sys
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
from azrdp.cli.terminal import Terminal, enable_http_debug_logging, handle_errors
from azrdp.errors import UsageError

if TYPE_CHECKING:
    from rich.console import Console

    from azrdp.engine import Progress

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

_SEVERITY_STYLE = {"blocker": "bold red", "warning": "yellow", "info": "cyan"}
_VERDICT_STYLE = {"allowed": "green", "restricted": "yellow", "denied": "bold red", "unknown": "magenta"}
_STATUS_ORDER = {"blocked": 0, "error": 1, "healthy": 2}
STREAM_THRESHOLD = 200
_TABLE_STATUS = {"blocker": "FAIL", "warning": "WARN", "info": "INFO"}


def _env_group() -> set[str]:
    return {
        v.strip().lower()
        for v in (os.environ.get("AZRDP_DEFAULTS_GROUP"), os.environ.get("AZURE_DEFAULTS_GROUP"))
        if v
    }


def _sorted_vms(doc: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return sorted(
        doc.get("vms", []),
        key=lambda v: (
            _STATUS_ORDER.get(v.get("status", ""), 3),
            v.get("resourceGroup", "").lower(),
            v.get("name", "").lower(),
        ),
    )


def table_rows(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per finding (name, resourceGroup, check, status, severity, detail); PASS rows for clean VMs."""
    rows: list[dict[str, Any]] = []
    for vm in _sorted_vms(doc):
        base = {"name": vm["name"], "resourceGroup": vm["resourceGroup"]}
        if vm.get("error"):
            rows.append(
                {**base, "check": "", "status": "ERROR", "severity": "", "detail": vm["error"]["message"]}
            )
            continue
        for f in vm.get("findings", []):
            rows.append(
                {
                    **base,
                    "check": f["id"],
                    "status": _TABLE_STATUS.get(f["severity"], ""),
                    "severity": f["severity"],
                    "detail": f["title"],
                }
            )
        if not vm.get("findings"):
            verdict = (vm.get("network") or {}).get("verdict", "")
            rows.append({**base, "check": "", "status": "PASS", "severity": "", "detail": f"RDP {verdict}"})
    return rows


def _network_lines(net: Mapping[str, Any]) -> list[tuple[str, str]]:
    lines = [
        ("Flow", f"{net['protocol'].upper()} {net['port']} from {net['source']}"),
        ("Address", f"public {net.get('publicIp') or 'none'}, private {net.get('privateIp') or 'unknown'}"),
    ]
    nsgs = net.get("nsgs") or {}
    lines.append(("NSGs", f"subnet {nsgs.get('subnet') or '(none)'}, NIC {nsgs.get('nic') or '(none)'}"))
    for d in net.get("decidedBy", []):
        lines.append(
            (
                "Decided by",
                f"{d['layer']} NSG {d['nsg']}: {d['rule']} (priority {d['priority']}, {d['access']})",
            )
        )
    if net.get("verdict") == "restricted":
        sources = net.get("allowedSources", [])
        shown = ", ".join(sources[:8]) + (f" and {len(sources) - 8} more" if len(sources) > 8 else "")
        lines.append(("Allowed from", shown))
    if net.get("reason"):
        lines.append(("Note", net["reason"]))
    eff = net.get("effective")
    if eff:
        lines.append(("Effective", eff.get("error") or eff.get("verdict", "")))
    return lines


def _vm_panel(vm: Mapping[str, Any], console: Console) -> None:
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    if vm.get("error"):
        grid.add_row("Error", Text(f"{vm['error']['code']}: {vm['error']['message']}", style="red"))
    else:
        agent = vm.get("agent") or {}
        grid.add_row(
            "State",
            f"{vm.get('powerState') or 'unknown'}, {vm.get('osType') or 'unknown OS'}, "
            f"provisioning {vm.get('provisioningState') or 'unknown'}",
        )
        grid.add_row("Agent", f"{agent.get('status') or 'not reported'} {agent.get('version') or ''}".strip())
        net = vm.get("network")
        if net:
            verdict = net.get("verdict", "unknown")
            grid.add_row("RDP", Text(verdict.upper(), style=_VERDICT_STYLE.get(verdict, "")))
            for label, value in _network_lines(net):
                grid.add_row(label, Text(value))
    for f in vm.get("findings", []):
        head = Text()
        head.append(f"{f['severity'].upper():8}", style=_SEVERITY_STYLE.get(f["severity"], ""))
        head.append(f" {f['id']}: {f['title']}")
        grid.add_row("", head)
        grid.add_row("", Text(f"  {f['evidence']}"))
        grid.add_row("", Text(f"  fix: {f['recommendation']}", style="dim"))
    status = vm.get("status", "")
    title_style = {"blocked": "bold red", "error": "bold red", "healthy": "bold green"}.get(status, "")
    title = Text()
    title.append(f"{vm['name']}", style="bold")
    title.append(f" ({vm['resourceGroup']})  ")
    title.append(status.upper(), style=title_style)
    console.print(Panel(grid, title=title, title_align="left", expand=True))


def human_view(doc: Mapping[str, Any], console: Console) -> None:
    from rich.table import Table
    from rich.text import Text

    vms = _sorted_vms(doc)
    summary = doc["summary"]
    if len(vms) <= 3:
        for vm in vms:
            _vm_panel(vm, console)
    else:
        table = Table(show_edge=False, header_style="bold")
        for col in ("VM", "Group", "Power", "RDP", "Status", "Top finding"):
            table.add_column(col, overflow="fold")
        for vm in vms:
            net = vm.get("network") or {}
            verdict = net.get("verdict", "")
            top = (
                (vm.get("error") or {}).get("message")
                or next((f["id"] for f in vm.get("findings", []) if f["severity"] == "blocker"), "")
                or next((f["id"] for f in vm.get("findings", [])), "")
            )
            status = vm.get("status", "")
            table.add_row(
                vm["name"],
                vm["resourceGroup"],
                vm.get("powerState") or "",
                Text(verdict, style=_VERDICT_STYLE.get(verdict, "")),
                Text(status, style="red" if status != "healthy" else "green"),
                top,
            )
        console.print(table)
    if not vms:
        console.print(f"No VM matched {doc.get('target') or 'the target'}.")
    console.print(
        f"{summary['total']} checked: {summary['healthy']} healthy, {summary['blocked']} blocked, "
        f"{summary['errors']} errors."
    )


class _ProgressView:
    """Fleet progress on stderr: a live bar on a terminal, plain lines with --verbose, else nothing."""

    def __init__(self, term: Terminal) -> None:
        self.term = term
        self.live: Any = None
        self.task: Any = None

    def __enter__(self) -> _ProgressView:
        if self.term.show_progress:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            self.live = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                console=self.term.err,
                transient=True,
            )
            self.live.start()
            self.task = self.live.add_task("Starting", total=None)
        return self

    def __call__(self, event: Progress) -> None:
        if self.live is not None:
            total = event.total or None
            self.live.update(self.task, description=event.message, completed=event.done, total=total)
        elif self.term.verbose and not self.term.only_show_errors and self._worth_a_line(event):
            self.term.err.print(event.message, markup=False)

    @staticmethod
    def _worth_a_line(event: Progress) -> bool:
        # Plain lines: every listing step, and every hundredth VM.
        return event.kind != "vm" or event.done == event.total or event.done % 100 == 0

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.stop()


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
    from azrdp.targets import parse_targets, validate_port, validate_protocol, validate_source

    term = Terminal(no_color=no_color, verbose=verbose, debug=debug, only_show_errors=only_show_errors)
    if guest:
        from azrdp.cli.diagnose import run_diagnose_command

        return run_diagnose_command(
            term, vm=vm, name=name, resource_group=resource_group, ids=ids, all_vms=all_vms, tag=tag,
            port=port, source_ip=source_ip, effective=effective, subscription=subscription,
            cloud=cloud.value if cloud else None, output=output, query=query, debug=debug,
        )  # fmt: skip
    if debug:
        enable_http_debug_logging()
        os.environ["AZRDP_DEBUG"] = "1"
    id_values = [i for i in ids or [] if i.strip()]
    if (id_values or (vm or "").lower().startswith("/subscriptions/")) and resource_group:
        if resource_group.strip().lower() in _env_group():
            resource_group = None  # a default group from the environment does not conflict with IDs
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

    from azrdp.engine.check import CheckOptions, run_check

    options = CheckOptions(
        port=validate_port(port),
        protocol=validate_protocol(protocol),
        source_ip=validate_source(source_ip),
        effective=effective,
    )
    from azrdp.cli.render import emit

    with _ProgressView(term) as progress:
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
        # Same text as emit's json, written chunk by chunk: an indented dump of a large fleet
        # would otherwise hold every fragment in memory at once.
        json.dump(doc, sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
        sys.stdout.flush()
    else:
        emit(doc, term, output, query, human=human_view, table_rows=table_rows)
    code = int(result.exit_code)
    if code:
        raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    app.command("check")(handle_errors(check))
