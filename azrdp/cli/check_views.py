"""The human view of `check` and `diagnose` results, shared by both commands (no command imports another)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console


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
            ("unknown (not everything could be read)", summary.get("unknown", 0)),
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
