"""The repair part of the guest script's output (modes repair, undo, history) and its parameters.

The marker line of those modes is the diagnose contract (azrdp.guest.contract.GuestReport: `d` is
the diagnosis *after* the repair or undo) plus one key, `r`, defined here with the same wire
helpers so the same decoder validates it. The emulator's simulated guest renders it through
`render_line`, like the diagnose report.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable
from typing import Any

from azrdp.errors import UsageError
from azrdp.guest import contract as c
from azrdp.guest.contract import wire, wire_list
from azrdp.journal import validate_run_id

REPAIR_MODES = ("repair", "undo", "history")
# Separates repair ids in the Only and Skip parameters (repair.ps1 Split-AzrdpIdList splits on it).
ID_SEPARATOR = "."
RUN_ID = re.compile(r"^[0-9a-f]{12}$")
__all__ = ["validate_run_id"]  # re-exported: the one run-id rule
# Step statuses the script reports.
PLANNED, APPLIED, ROLLED_BACK, FAILED, REFUSED, RESTORED = (
    "planned",
    "applied",
    "rolledBack",
    "failed",
    "refused",
    "restored",
)


@dataclasses.dataclass(frozen=True)
class StepOutcome:
    id: str | None = wire("id")
    status: str | None = wire("s")
    changes: tuple[str, ...] = wire_list("ch")  # short texts; dropped first when over budget
    error: str | None = wire("e")
    reboot: bool | None = wire("rb")  # takes effect only after a restart (tls12-server)


@dataclasses.dataclass(frozen=True)
class HistoryRun:
    run_id: str | None = wire("id")
    time: str | None = wire("t")
    state: str | None = wire("state")  # applying | applied | undone
    steps: tuple[str, ...] = wire_list("st")  # "<repair id>:<status>"


@dataclasses.dataclass(frozen=True)
class RepairOutcome:
    run_id: str | None = wire("id")
    backup_dir: str | None = wire("dir")  # null when nothing was changed
    dry_run: bool | None = wire("dry")
    steps: tuple[StepOutcome, ...] = wire_list("st")
    history: tuple[HistoryRun, ...] = wire_list("h")

    def step(self, repair_id: str) -> StepOutcome | None:
        return next((s for s in self.steps if s.id == repair_id), None)


@dataclasses.dataclass(frozen=True)
class RepairReport(c.GuestReport):
    """`d` is the diagnosis after the run, `before` the one before it.

    On the wire `b` carries only the sections of the diagnosis before that differ from `d` (both
    whole diagnoses would not fit the output budget); the script drops `b` when even that does
    not fit, and `before` is then None.
    """

    before: c.Diagnosis | None = dataclasses.field(default=None, metadata={"wire": "b"})
    repair: RepairOutcome | None = dataclasses.field(default=None, metadata={"wire": "r"})


def parse_repair_output(stdout: str, stderr: str = "") -> RepairReport:
    """The report of a repair/undo/history run; off-contract output raises ContractError like diagnose."""
    base = c.parse_output(stdout, stderr)  # marker, JSON, schema version and the diagnosis
    line = [ln.strip() for ln in stdout.splitlines() if ln.strip().startswith(c.MARKER)][-1]
    data = json.loads(line[len(c.MARKER) :])
    delta, after = data.get("b"), data.get("d")
    if isinstance(delta, dict) and isinstance(after, dict):
        data["b"] = merge_delta(after, delta)
    try:
        report = c.from_wire(RepairReport, data)
    except ValueError as exc:
        raise c.ContractError(
            "The in-guest script's repair result does not follow the contract:",
            f"{exc}.",
            raw_tail=stdout[-600:],
        ) from None
    if base.error is None and report.repair is None:
        raise c.ContractError(
            "The in-guest script did not report what it repaired.",
            "Its output has no repair result (`r`).",
            "Use the same azrdp version for the script and the CLI.",
            raw_tail=stdout[-600:],
        )
    return report


def diff_delta(after: dict[str, Any], before: dict[str, Any]) -> dict[str, Any]:
    """What differs in `before`: whole sections, or for object sections only the changed keys."""
    delta: dict[str, Any] = {}
    for key, value in before.items():
        new = after.get(key)
        if new == value:
            continue
        if isinstance(value, dict) and isinstance(new, dict):
            delta[key] = {k: v for k, v in value.items() if new.get(k) != v}
        else:
            delta[key] = value
    return delta


def merge_delta(after: dict[str, Any], delta: dict[str, Any]) -> dict[str, Any]:
    merged = dict(after)
    for key, value in delta.items():
        current = merged.get(key)
        merged[key] = {**current, **value} if isinstance(value, dict) and isinstance(current, dict) else value
    return merged


def render_line(report: RepairReport) -> str:
    """The marker line as the script prints it, `b` reduced to the sections that changed."""
    data = c.to_wire(report)
    before, after = data.get("b"), data.get("d")
    if isinstance(before, dict) and isinstance(after, dict):
        data["b"] = diff_delta(after, before)
    return c.MARKER + json.dumps(data, separators=(",", ":"), ensure_ascii=True)


def build_parameters(
    mode: str,
    *,
    rdp_port: int = 3389,
    run_id: str = "",
    only: Iterable[str] = (),
    skip: Iterable[str] = (),
    dry_run: bool = False,
    known_ids: Iterable[str] = (),
) -> list[dict[str, str]]:
    """Run Command parameters for the repair modes, every value checked against a fixed set."""
    if mode not in REPAIR_MODES:
        raise UsageError(
            f"Mode {mode!r} is not a repair mode.", fix=f"Use one of: {', '.join(REPAIR_MODES)}."
        )
    if isinstance(rdp_port, bool) or not isinstance(rdp_port, int) or not 1 <= rdp_port <= 65535:
        raise UsageError(f"RDP port {rdp_port!r} is not valid.", fix="Pass a TCP port from 1 to 65535.")
    known = set(known_ids)
    for repair_id in [*only, *skip]:
        if repair_id not in known:
            raise UsageError(
                f"{repair_id!r} is not an in-guest repair.", fix=f"Use one of: {', '.join(sorted(known))}."
            )
    params = [{"name": "Mode", "value": mode}, {"name": "RdpPort", "value": str(rdp_port)}]
    if mode != "history":
        params.append({"name": "RunId", "value": validate_run_id(run_id)})
    if mode == "repair":
        # Lists are dot-separated and sent only when not empty (the script defaults them to ''):
        # Run Command's command line cannot carry an empty value or a comma (contract.check_parameters).
        only, skip = list(only), list(skip)
        if only:
            params.append({"name": "Only", "value": ID_SEPARATOR.join(only)})
        if skip:
            params.append({"name": "Skip", "value": ID_SEPARATOR.join(skip)})
        params.append({"name": "DryRun", "value": "1" if dry_run else "0"})
    return c.check_parameters(params)


# --- the script sent for the repair modes -------------------------------------------------------

REPAIR_SCRIPT = "repair.ps1"
INCLUDE_MARKER = "# azrdp-include: repair.ps1"


def repair_script_text() -> str:
    """azrdp.ps1 with repair.ps1's functions placed at its include marker (both static package data)."""
    from importlib import resources

    base = c.script_text()
    functions = (
        resources.files("azrdp.guest").joinpath("scripts").joinpath(REPAIR_SCRIPT).read_text(encoding="ascii")
    )
    if INCLUDE_MARKER not in base:
        raise c.ContractError(
            f"The packaged {c.SCRIPT_NAME} has no '{INCLUDE_MARKER}' line for the repair functions.",
            fix="Reinstall azrdp; the package is incomplete.",
        )
    return base.replace(INCLUDE_MARKER, functions.rstrip("\n"), 1)


def repair_script_lines() -> list[str]:
    """The composed script as sent (compacted; refused above contract.SCRIPT_LIMIT)."""
    return c.checked_lines(repair_script_text())
