"""Human views and table rows shared by check, diagnose and repair.

One VM is one panel: a title with the VM's status, a grid of facts, then blocks (findings, repair
steps). More than three VMs are one table row each. Every view ends with a one-line summary that
names only the counts that are not zero, and with the commands worth running next.

`-o table`/`tsv` rows are the same six columns for all three commands (cli-and-style.md B3):
name, resourceGroup, check, status, severity, detail. check and diagnose give one row per finding
(FAIL/WARN/INFO; UNKNOWN for a resource on the RDP path that could not be read), PASS for a VM
with none, ERROR for a VM that could not be read and, for the guest step, SKIP or ERROR. repair
gives one row per finding too, its status saying what the repair did (FIXED, APPLIED, UNVERIFIED,
PLANNED, REFUSED, DECLINED, FAILED, ROLLEDBACK, SKIP) or, when no step targets it, the check's own
status.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.table import Table
    from rich.text import Text

PANEL_LIMIT = 3  # more VMs than this: one table row each

SEVERITY_STYLE = {"blocker": "bold red", "warning": "yellow", "info": "cyan"}
VERDICT_STYLE = {"allowed": "green", "restricted": "yellow", "denied": "bold red", "unknown": "magenta"}
VM_STATUS_STYLE = {
    "blocked": "bold red",
    "error": "bold red",
    "notVerified": "bold red",
    "healthy": "bold green",
    "repaired": "bold green",
    "planned": "bold cyan",
    "unknown": "bold magenta",
    "interrupted": "bold yellow",
}
STEP_STYLE = {
    "applied": "green",
    "planned": "cyan",
    "refused": "yellow",
    "declined": "yellow",
    "rolledBack": "bold red",
    "failed": "bold red",
    "notRun": "dim",
    "unconfirmed": "bold yellow",
}
_VM_ORDER = {
    "interrupted": -1,
    "error": 0,
    "unknown": 1,
    "blocked": 2,
    "notVerified": 3,
    "planned": 4,
    "repaired": 5,
    "healthy": 6,
}
_SEVERITY_ORDER = {"blocker": 0, "warning": 1, "info": 2}
_FINDING_STATUS = {"blocker": "FAIL", "warning": "WARN", "info": "INFO"}
_STEP_STATUS = {
    "planned": "PLANNED",
    "refused": "REFUSED",
    "declined": "DECLINED",
    "failed": "FAILED",
    "rolledBack": "ROLLEDBACK",
    "notRun": "SKIP",
    "unconfirmed": "UNCONFIRMED",
}

# Every status a table row can carry; docs/output.md explains each (a test keeps them in step).
TABLE_STATUSES = (
    *_FINDING_STATUS.values(),
    "UNKNOWN",
    "PASS",
    "ERROR",
    "SKIP",
    "FIXED",
    "APPLIED",
    "UNVERIFIED",
    *(status for status in _STEP_STATUS.values() if status != "SKIP"),
)


def sorted_vms(vms: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Worst first, then by group and name."""
    return sorted(
        vms,
        key=lambda v: (
            _VM_ORDER.get(v.get("status", ""), 9),
            str(v.get("resourceGroup", "")).lower(),
            str(v.get("name", "")).lower(),
        ),
    )


def sorted_findings(findings: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return sorted(findings, key=lambda f: _SEVERITY_ORDER.get(f.get("severity", ""), 9))


def vm_target(vm: Mapping[str, Any]) -> str:
    """The VM as command arguments: `web01 -g rg`."""
    return f"{vm['name']} -g {vm['resourceGroup']}"


# --- building blocks ---------------------------------------------------------------------------


def _grid() -> Table:
    from rich.table import Table

    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    return grid


def findings_block(findings: Sequence[Mapping[str, Any]], fix_label: str = "fix") -> Table:
    """Severity on the left; id and title, evidence and the fix wrap in their own column."""
    from rich.text import Text

    grid = _grid()
    for f in sorted_findings(findings):
        body = Text()
        body.append(f["id"], style="bold")
        body.append(f"  {f['title']}")
        if f.get("evidence"):
            body.append(f"\n{f['evidence']}")
        if f.get("recommendation"):
            body.append(f"\n{fix_label}: {f['recommendation']}", style="dim")
        severity = f.get("severity", "")
        grid.add_row(Text(severity.upper(), style=SEVERITY_STYLE.get(severity, "")), body)
    return grid


def state_rows(vm: Mapping[str, Any]) -> list[tuple[str, Text]]:
    """The VM's state and, when known, the RDP flow through its NSGs."""
    from rich.text import Text

    if vm.get("error"):
        err = vm["error"]
        return [("Error", Text(f"{err.get('code', '')}: {err.get('message', '')}".lstrip(": "), style="red"))]
    agent = vm.get("agent") or {}
    rows = [
        (
            "State",
            Text(
                f"{vm.get('powerState') or 'unknown'}, {vm.get('osType') or 'unknown OS'}, "
                f"provisioning {vm.get('provisioningState') or 'unknown'}"
            ),
        ),
        ("Agent", Text(f"{agent.get('status') or 'not reported'} {agent.get('version') or ''}".strip())),
    ]
    net = vm.get("network")
    if net:
        verdict = net.get("verdict", "unknown")
        rows.append(("RDP", Text(verdict.upper(), style=VERDICT_STYLE.get(verdict, ""))))
        rows.extend((label, Text(value)) for label, value in _network_lines(net))
    return rows


def _network_lines(net: Mapping[str, Any]) -> list[tuple[str, str]]:
    lines = [
        ("Flow", f"{str(net['protocol']).upper()} {net['port']} from {net['source']}"),
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


def guest_rows(vm: Mapping[str, Any]) -> list[tuple[str, Text]]:
    """What the in-guest step did (diagnose, repair); nothing for a control-plane check."""
    from rich.text import Text

    guest = vm.get("guest")
    if not guest:
        return []
    status = guest.get("status")
    if status == "ran":
        os_info = guest.get("os") or {}
        elapsed = guest.get("elapsedSeconds")
        text = Text(
            ("diagnosed" + (f" in {elapsed:.0f} s" if elapsed is not None else ""))
            + f": Windows {os_info.get('version') or 'unknown'}, listener port "
            + f"{guest.get('listenerPort') or 'unknown'}"
        )
        for err in guest.get("sectionErrors", []):
            text.append(f"\ncould not read {err['section']}: {err['message']}", style="yellow")
    elif status == "skipped":
        text = Text(f"skipped: {guest.get('reason', '')}", style="yellow")
    elif status == "error":
        err = guest.get("error") or {}
        text = Text(f"failed: {err.get('message', '')}", style="red")
        if err.get("fix"):
            text.append(f"\nfix: {err['fix']}", style="dim")
    else:
        return []
    if guest.get("stderr"):
        text.append(f"\nStdErr: {guest['stderr'].splitlines()[0]}", style="yellow")
    return [("Guest", text)]


def vm_panel(
    vm: Mapping[str, Any],
    rows: Sequence[tuple[str, RenderableType]],
    blocks: Sequence[RenderableType] = (),
) -> RenderableType:
    """The one panel every VM view uses: `name (group)  STATUS`, a grid of facts, then blocks."""
    from rich.console import Group
    from rich.panel import Panel
    from rich.text import Text

    grid = _grid()
    for label, value in rows:
        grid.add_row(label, value)
    parts: list[RenderableType] = [grid]
    for block in blocks:
        parts.extend([Text(""), block])
    status = str(vm.get("status", ""))
    title = Text()
    title.append(vm["name"], style="bold")
    title.append(f" ({vm['resourceGroup']})  ")
    title.append(status.upper(), style=VM_STATUS_STYLE.get(status, ""))
    return Panel(Group(*parts), title=title, title_align="left", expand=True)


def fleet_table(
    vms: Sequence[Mapping[str, Any]],
    columns: Sequence[tuple[str, Callable[[Mapping[str, Any]], Text | str]]],
) -> Table:
    from rich.table import Table
    from rich.text import Text

    from azrdp.cli.terminal import inert

    table = Table(show_edge=False, header_style="bold")
    table.add_column("VM", no_wrap=True)
    table.add_column("Group", overflow="fold")
    for header, _ in columns:
        table.add_column(header, overflow="fold")
    for vm in vms:
        status = str(vm.get("status", ""))
        cells = (fn(vm) for _, fn in columns)
        table.add_row(
            inert(vm["name"], VM_STATUS_STYLE.get(status, "").replace("bold ", "")),
            inert(vm["resourceGroup"]),
            *(cell if isinstance(cell, Text) else inert(cell) for cell in cells),
        )
    return table


def status_cell(vm: Mapping[str, Any]) -> Text:
    from rich.text import Text

    status = str(vm.get("status", ""))
    return Text(status, style=VM_STATUS_STYLE.get(status, ""))


def rdp_cell(vm: Mapping[str, Any]) -> Text:
    from rich.text import Text

    net = vm.get("network") or {}
    verdict = net.get("verdict", "")
    running = vm.get("powerState") == "running"
    if verdict == "denied" and running and not net.get("publicIp") and net.get("source") == "Internet":
        return Text("private only", style="dim")  # no public IP: reached over VPN or Bastion
    return Text(verdict, style=VERDICT_STYLE.get(verdict, ""))


def top_finding(vm: Mapping[str, Any]) -> str:
    if vm.get("error"):
        return str(vm["error"].get("message", ""))
    guest_error = ((vm.get("guest") or {}).get("error") or {}).get("message")
    findings = sorted_findings(vm.get("findings", []))
    if findings and findings[0].get("severity") != "info":
        return str(findings[0]["id"])
    return f"guest: {guest_error}" if guest_error else (str(findings[0]["id"]) if findings else "")


def print_summary(console: Console, head: str, counts: Sequence[tuple[str, int]]) -> None:
    """`3 VMs checked: 1 blocked, 2 healthy.` Zero counts are left out."""
    shown = [f"{n} {label}" for label, n in counts if n]
    console.print(f"{head}: {', '.join(shown)}." if shown else f"{head}.", markup=False, highlight=False)


def print_next(console: Console, steps: Sequence[tuple[str, str]]) -> None:
    """The commands worth running next, each with why."""
    from rich.table import Table
    from rich.text import Text

    unique = list(dict.fromkeys(steps))
    if not unique:
        return
    console.print(Text("Next:", style="bold"))
    grid = Table.grid(padding=(0, 3))
    grid.add_column(no_wrap=True)
    grid.add_column(style="dim")
    for command, why in unique:
        grid.add_row(Text("  " + command, style="green"), Text(why))
    console.print(grid)


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


# --- table rows (-o table / tsv) ----------------------------------------------------------------


def _finding_status(finding: Mapping[str, Any]) -> str:
    """FAIL/WARN/INFO by severity; UNKNOWN for a resource on the RDP path that could not be read."""
    from azrdp.engine.check import UNKNOWN_FINDINGS

    if finding.get("id") in UNKNOWN_FINDINGS:
        return "UNKNOWN"
    return _FINDING_STATUS.get(finding.get("severity", ""), "")


def _row(vm: Mapping[str, Any], check: str, status: str, severity: str, detail: str) -> dict[str, Any]:
    return {
        "name": vm["name"],
        "resourceGroup": vm["resourceGroup"],
        "check": check,
        "status": status,
        "severity": severity,
        "detail": detail,
    }


def finding_rows(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """check and diagnose: one row per finding, PASS for a clean VM, ERROR/SKIP for what did not run."""
    rows: list[dict[str, Any]] = []
    for vm in sorted_vms(doc.get("vms", [])):
        if vm.get("error"):
            rows.append(_row(vm, "", "ERROR", "", vm["error"]["message"]))
            continue
        for f in sorted_findings(vm.get("findings", [])):
            rows.append(_row(vm, f["id"], _finding_status(f), f["severity"], f["title"]))
        guest = vm.get("guest") or {}
        if guest.get("status") == "error":
            rows.append(_row(vm, "guest", "ERROR", "", (guest.get("error") or {}).get("message", "")))
        elif guest.get("status") == "skipped":
            rows.append(_row(vm, "guest", "SKIP", "", guest.get("reason", "")))
        if not vm.get("findings") and guest.get("status") not in ("error", "skipped"):
            verdict = (vm.get("network") or {}).get("verdict", "")
            rows.append(_row(vm, "", "PASS", "", f"RDP {verdict}".strip()))
    return rows


def _step_status(step: Mapping[str, Any]) -> str:
    if step["status"] == "applied":
        verified = step.get("verified")
        return "FIXED" if verified is True else "UNVERIFIED" if verified is False else "APPLIED"
    return _STEP_STATUS.get(step["status"], str(step["status"]).upper())


def _step_detail(step: Mapping[str, Any]) -> str:
    why = step.get("refused") or step.get("error")
    if why:
        return f"{step['id']}: {why}"
    return f"{step['id']}: {'; '.join(step.get('changes') or ()) or step['title']}"


def repair_rows(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """repair: one row per finding, its status saying what the step aimed at it did."""
    rows: list[dict[str, Any]] = []
    for vm in sorted_vms(doc.get("vms", [])):
        if vm.get("error"):
            rows.append(_row(vm, "", "ERROR", "", vm["error"]["message"]))
        steps = list(vm.get("plan", []))
        remaining = {f["id"] for f in vm.get("remainingFindings", [])}
        findings = {f["id"]: f for f in vm.get("findings", [])}
        for f in vm.get("remainingFindings", []):
            findings.setdefault(f["id"], f)
        used: set[int] = set()
        for f in sorted_findings(list(findings.values())):
            index = next((i for i, s in enumerate(steps) if f["id"] in s.get("fixes", ())), None)
            if index is not None:
                used.add(index)
                step = steps[index]
                rows.append(_row(vm, f["id"], _step_status(step), f["severity"], _step_detail(step)))
            elif f["id"] in remaining:
                rows.append(_row(vm, f["id"], _finding_status(f), f["severity"], f["title"]))
            else:
                rows.append(_row(vm, f["id"], "PASS", f["severity"], f"{f['title']} (gone after the repair)"))
        for index, step in enumerate(steps):
            if index not in used:
                check = ",".join(step.get("fixes", ())) or step["id"]
                rows.append(_row(vm, check, _step_status(step), "", _step_detail(step)))
        guest = vm.get("guest") or {}
        if guest.get("status") == "error":
            rows.append(_row(vm, "guest", "ERROR", "", (guest.get("error") or {}).get("message", "")))
        if vm.get("status") == "skipped":
            rows.append(
                _row(vm, "", "SKIP", "", "left out by --broken-only: the control plane found nothing")
            )
        elif not findings and not steps and not vm.get("error"):
            rows.append(_row(vm, "", "PASS", "", "nothing to repair"))
    return rows
