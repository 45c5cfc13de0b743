"""`azrdp demo`: the whole job on the built-in emulator, no Azure subscription needed.

It starts the emulator with a fleet in which every VM fails RDP for a different reason, diagnoses
the group (control plane and, through Run Command, each guest), repairs the broken VMs with
`--yes` semantics (one more Run Command per VM, the diagnosis reused; backed up and verified),
diagnoses again and shows the before / after. Nothing leaves this machine: the emulator listens
on 127.0.0.1 only, and the journal of control-plane changes goes to a temporary directory.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Annotated, Any

import typer

from azrdp.cli.params import DebugOpt, NoColorOpt, OnlyShowErrorsOpt, OutputOpt, QueryOpt, VerboseOpt
from azrdp.cli.render import emit
from azrdp.cli.terminal import Terminal, handle_errors
from azrdp.errors import UsageError
from azrdp.model import SCHEMA_VERSION

if TYPE_CHECKING:
    from rich.console import Console

    from azrdp.engine import Progress

RunCommandSecondsOpt = Annotated[
    float,
    typer.Option(
        "--runcommand-seconds",
        help="Simulated Run Command duration per VM (Azure takes about 20 s; the demo default is 3).",
    ),
]


@contextlib.contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, old in saved.items():
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old


def _blockers(vm_doc: Mapping[str, Any]) -> list[str]:
    ids = [f["id"] for f in vm_doc.get("findings", []) if f.get("severity") == "blocker"]
    if vm_doc.get("error"):
        ids.append(f"error:{vm_doc['error'].get('code', 'Error')}")
    return ids


def _warnings(vm_doc: Mapping[str, Any]) -> list[str]:
    return [f["id"] for f in vm_doc.get("findings", []) if f.get("severity") == "warning"]


def run_demo(runcommand_seconds: float, observer: Any) -> dict[str, Any]:
    """Run the demo and return its document (the engines' documents are kept in it)."""
    from azrdp.azure.auth import resolve_context
    from azrdp.azure.clients import Clients
    from azrdp.emulator import Emulator
    from azrdp.emulator.demo import DEMO_SOURCE_IP, DEMO_VMS, GROUP, demo_scenario
    from azrdp.engine.check import CheckOptions
    from azrdp.engine.diagnose import DiagnoseOptions, DiagnoseVmResult, run_diagnose
    from azrdp.engine.repair import RepairOptions, run_repair
    from azrdp.targets import parse_targets

    started = time.monotonic()
    diagnose_options = DiagnoseOptions(check=CheckOptions(source_ip=DEMO_SOURCE_IP))
    with (
        tempfile.TemporaryDirectory(prefix="azrdp-demo-") as config_dir,
        Emulator(demo_scenario(), runcommand_seconds=runcommand_seconds) as emu,
        # Poll the seconds-long Run Commands like a person would watch them, not every 50 ms.
        _environment({**emu.exports(), "AZRDP_CONFIG_DIR": config_dir, "AZRDP_POLLING_INTERVAL": "0.5"}),
    ):
        clients = Clients(resolve_context())
        group = parse_targets(resource_group=GROUP)
        observer_note(observer, f"Emulator on {emu.endpoint}: {len(DEMO_VMS)} VMs in {GROUP}")
        diagnosed = run_diagnose(group, diagnose_options, clients=clients, observer=observer)
        before = diagnosed.to_doc()
        broken = [vm["id"] for vm in before["vms"] if _blockers(vm)]
        observer_note(observer, f"Repairing {len(broken)} VM(s) with --yes")
        repair_doc: dict[str, Any] = {"vms": []}
        if broken:
            repair_doc = run_repair(
                parse_targets(ids=broken),
                RepairOptions(source_ip=DEMO_SOURCE_IP),
                clients=clients,
                observer=observer,
                # The facts the diagnose just collected: one Run Command (the executor) per VM.
                prior=[vm for vm in diagnosed.vms if isinstance(vm, DiagnoseVmResult)],
            ).to_doc()
        after = run_diagnose(group, diagnose_options, clients=clients, observer=observer).to_doc()
        run_commands = sum(
            1 for r in emu.requests if r.method == "POST" and r.path.lower().endswith("/runcommand")
        )
        request_count = len(emu.requests)
        clients.close()

    failures = {spec.name: spec.failure for spec in DEMO_VMS}
    repairs_by_vm = {vm["name"]: vm for vm in repair_doc["vms"]}
    after_by_vm = {vm["name"]: vm for vm in after["vms"]}
    rows = []
    for vm in before["vms"]:
        fixed = repairs_by_vm.get(vm["name"], {})
        rows.append(
            {
                "name": vm["name"],
                "failure": failures.get(vm["name"], ""),
                "before": _blockers(vm),
                "repairs": [s["id"] for s in fixed.get("repairs", []) if s.get("applied")],
                "after": _blockers(after_by_vm[vm["name"]]),
                "warningsAfter": _warnings(after_by_vm[vm["name"]]),
                # repaired (verified), notVerified (e.g. a reboot is due), ... ; None: nothing to repair
                "repairStatus": fixed.get("status"),
                "rebootRequired": any(s.get("rebootRequired") for s in fixed.get("repairs", [])),
                "runId": fixed.get("runId"),
            }
        )
    return {
        "schemaVersion": SCHEMA_VERSION,
        "command": "demo",
        "sourceIp": DEMO_SOURCE_IP,
        "vms": rows,
        "summary": {
            "total": len(rows),
            "blockedBefore": sum(1 for r in rows if r["before"]),
            "repaired": sum(1 for r in rows if r["repairStatus"] == "repaired"),
            "notVerified": sum(1 for r in rows if r["repairStatus"] == "notVerified"),
            "blockedAfter": sum(1 for r in rows if r["after"]),
            "runCommands": run_commands,
            "requests": request_count,
            "elapsedSeconds": round(time.monotonic() - started, 1),
        },
        "before": before,
        "repair": repair_doc,
        "after": after,
    }


def observer_note(observer: Any, message: str) -> None:
    from azrdp.engine import Progress

    observer(Progress("start", message))


def _human(doc: Mapping[str, Any], console: Console) -> None:
    from rich.table import Table
    from rich.text import Text

    from azrdp.cli.terminal import inert

    table = Table(title="azrdp demo: before and after", title_justify="left", expand=False)
    for column in ("VM", "what is wrong", "before", "repairs applied", "after"):
        table.add_column(column, overflow="fold")
    for row in doc["vms"]:
        after = inert(", ".join(row["after"])) if row["after"] else Text("RDP clear", style="green")
        if row["rebootRequired"]:
            after = Text("applied: restart the VM to verify", style="yellow")
        if row["warningsAfter"]:
            after.append("\n")
            after.append_text(inert("warning: " + ", ".join(row["warningsAfter"]), "yellow"))
        table.add_row(
            inert(row["name"]),
            inert(row["failure"]),
            inert(", ".join(row["before"]) or "RDP clear"),
            inert(", ".join(row["repairs"]) or "-"),
            after,
        )
    console.print(table)
    s = doc["summary"]
    console.print(
        f"{s['blockedBefore']} of {s['total']} VMs could not take RDP: {s['repaired']} repaired and "
        f"verified, {s['notVerified']} applied but not verified until a restart, {s['blockedAfter']} "
        f"still blocked. {s['runCommands']} Run Commands, "
        f"{s['requests']} ARM requests, {s['elapsedSeconds']} s. Every in-guest change was backed up "
        "first and can be undone with `azrdp undo VM -g GROUP --run-id ID` (the demo's emulator is gone "
        "now; try it on one that stays: see Next)."
    )
    console.print(
        "Next: `azrdp emulator serve --scenario guest-rdp-cert-expired`, source the exports it prints, then "
        "`azrdp repair vm-rdp01 -g rg-rdp` and `azrdp undo vm-rdp01 -g rg-rdp`; or `az login` and "
        "`azrdp check MyVm -g MyGroup` on a real VM."
    )


def _table_rows(doc: Mapping[str, Any]) -> Sequence[Mapping[str, Any]]:
    return [
        {
            "name": r["name"],
            "failure": r["failure"],
            "before": ",".join(r["before"]),
            "repairs": ",".join(r["repairs"]),
            "after": ",".join(r["after"]),
            "warningsAfter": ",".join(r["warningsAfter"]),
            "repairStatus": r["repairStatus"] or "",
        }
        for r in doc["vms"]
    ]


def register(app: typer.Typer) -> None:
    @app.command("demo")
    @handle_errors
    def demo(
        runcommand_seconds: RunCommandSecondsOpt = 3.0,
        output: OutputOpt = None,
        query: QueryOpt = None,
        verbose: VerboseOpt = False,
        debug: DebugOpt = False,
        only_show_errors: OnlyShowErrorsOpt = False,
        no_color: NoColorOpt = False,
    ) -> None:
        """Run check, repair and check again on a built-in emulated fleet (no Azure needed)."""
        if not 0 <= runcommand_seconds <= 120:
            raise UsageError(
                f"--runcommand-seconds {runcommand_seconds} is out of range.",
                fix="Use 0 to 120 seconds (Azure's Run Command takes about 20).",
            )
        term = Terminal(no_color=no_color, verbose=verbose, debug=debug, only_show_errors=only_show_errors)

        def observer(event: Progress) -> None:
            if event.kind in ("start", "done"):
                term.info(event.message)

        doc = run_demo(runcommand_seconds, observer)
        emit(doc, term, output, query, human=_human, table_rows=_table_rows)
