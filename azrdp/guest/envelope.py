"""The scripts' one line of output, and reading it back out of a Run Command's StdOut.

Both scripts print exactly one line, last: `AZRDP2:` followed by gzip + base64 of compact JSON
(the marker names the contract version). The JSON is an envelope per mode:

    collect   {v, m, t, f: facts, e, ec}
    execute   {v, m, t, f: facts after the run, r: what the run did, e, ec}
    records   {v, m, t, rec: what one run recorded in the guest, e, ec}
    history   {v, m, t, h: the runs kept in the guest, e, ec}

`e`/`ec` say why a script refused to run (PowerShell too old, a bad parameter, the guest lock
held by another run). Run Command returns only the last 4,096 bytes of StdOut; the line stays
under OUTPUT_BUDGET, measured at its worst in tests. Anything off-contract is a ContractError
naming what is wrong, never "healthy". Pure.
"""

from __future__ import annotations

import dataclasses
import re
from datetime import datetime
from typing import Any

from azrdp.errors import GuestError
from azrdp.guest import facts as gf
from azrdp.guest.wire import UnpackError, describe, from_wire, pack, to_wire, unpack, wire, wire_list

VERSION = 2
MARKER = f"AZRDP{VERSION}:"
LEGACY_MARKER = "AZRDP:"  # azrdp 1.x's script printed plain JSON after this
RUN_COMMAND_OUTPUT_LIMIT = 4096
# The marker line's ceiling, with room for a line ending and a stray line before it in the tail.
OUTPUT_BUDGET = 3800
RUN_ID = re.compile(r"[0-9a-f]{12}")
MODES = ("collect", "execute", "records", "history")

# Step and op statuses the executor reports.
APPLIED, REFUSED, FAILED, ROLLED_BACK, NOT_RUN = "applied", "refused", "failed", "rolledBack", "notRun"


@dataclasses.dataclass(frozen=True)
class OpResult:
    index: int | None = wire("i")
    status: str | None = wire("s")  # applied | refused | failed
    error: str | None = wire("e")
    prior: Any = wire("p")  # what the op found (its backup), when it got that far
    after: Any = wire("a")  # what it read back after applying


@dataclasses.dataclass(frozen=True)
class StepResult:
    id: str | None = wire("id")
    status: str | None = wire("s")  # applied | refused | rolledBack | failed | notRun
    error: str | None = wire("e")


@dataclasses.dataclass(frozen=True)
class RunResult:
    run_id: str | None = wire("id")
    state: str | None = wire("st")  # applied | partial | rolledBack | failed | refused
    backup_dir: str | None = wire("dir")
    steps: tuple[StepResult, ...] = wire_list("steps")
    ops: tuple[OpResult, ...] = wire_list("ops")  # dropped (empty) when over the output budget
    complete: bool | None = wire("all")  # false: the ops' prior/after values were dropped for the budget

    def step(self, step_id: str) -> StepResult | None:
        return next((s for s in self.steps if s.id == step_id), None)


@dataclasses.dataclass(frozen=True)
class OpRecord:
    """What the executor wrote in the guest for one op (backups\\<run>\\op-<i>.json)."""

    index: int | None = wire("i")
    step: int | None = wire("g")
    op: Any = wire("op")  # the op as planned (azrdp.guest.plan wire form)
    status: str | None = wire("s")  # applying | applied | refused | failed | rolledBack
    prior: Any = wire("p")
    after: Any = wire("a")


@dataclasses.dataclass(frozen=True)
class RunRecords:
    run_id: str | None = wire("id")
    time: str | None = wire("t")
    boot: str | None = wire("boot")
    state: str | None = wire("st")
    undoes: str | None = wire("u")
    steps: tuple[StepResult, ...] = wire_list("steps")
    ops: tuple[OpRecord, ...] = wire_list("ops")
    complete: bool | None = wire("all")  # false: the list was cut to fit the output budget


@dataclasses.dataclass(frozen=True)
class HistoryRun:
    run_id: str | None = wire("id")
    time: str | None = wire("t")
    state: str | None = wire("st")
    undoes: str | None = wire("u")
    steps: tuple[str, ...] = wire_list("s")  # "<repair id>:<status>"


@dataclasses.dataclass(frozen=True)
class GuestReport:
    version: int | None = wire("v")
    mode: str | None = wire("m")
    time: str | None = wire("t")  # guest clock, UTC
    facts: gf.Facts | None = wire("f")
    run: RunResult | None = wire("r")
    records: RunRecords | None = wire("rec")
    history: tuple[HistoryRun, ...] = wire_list("h")
    error: str | None = wire("e")
    # unsupported | parameter | locked | plan | unknown | budget | internal
    error_code: str | None = wire("ec")

    @property
    def guest_time(self) -> datetime | None:
        return gf.parse_time(self.time)


def render_line(report: GuestReport) -> str:
    """The line the scripts print for this report."""
    return MARKER + pack(to_wire(report))


class ContractError(GuestError):
    """The scripts' output does not follow the contract. `raw_tail` keeps its end for --debug."""

    code = "GuestOutputInvalid"

    def __init__(self, what: str, why: str = "", fix: str = "", raw_tail: str = "") -> None:
        super().__init__(what, why, fix)
        self.raw_tail = raw_tail


_TAIL = 600
_FIX = "Rerun with --debug to see the end of the raw output, and report it with the VM's OS version."


def parse_output(stdout: str, stderr: str = "", *, run_id: str | None = None) -> GuestReport:
    """The report in a Run Command's StdOut; anything off-contract raises ContractError.

    `run_id`: the run the script was asked about (modes execute and records): a report of another
    run is refused. Every run id and backup folder a guest reports must have the shape the scripts
    write (they reach the local journal and `history`), or the report is refused before anything is
    recorded."""
    stdout = stdout or ""
    stderr = (stderr or "").strip()
    tail = stdout[-_TAIL:]
    lines = [ln.strip() for ln in stdout.splitlines()]
    marked = [ln for ln in lines if ln.startswith(MARKER)]
    if not marked:
        legacy = [ln for ln in lines if ln.startswith(LEGACY_MARKER)]
        if legacy:
            raise ContractError(
                f"The in-guest script answered with contract version 1; this azrdp reads version {VERSION}.",
                fix="Use the same azrdp version for the script and the CLI (pip install -U azrdp).",
                raw_tail=tail,
            )
        if len(stdout.encode("utf-8", "replace")) >= RUN_COMMAND_OUTPUT_LIMIT - 200:
            raise ContractError(
                "The in-guest script's output was truncated:",
                f"Run Command keeps only the last {RUN_COMMAND_OUTPUT_LIMIT:,} bytes and the {MARKER} line "
                "was cut off.",
                "Something in the guest printed more than expected; " + _FIX,
                raw_tail=tail,
            )
        if stderr:
            raise ContractError(
                "The in-guest script failed:",
                _first_line(stderr),
                "Fix the cause shown above (the full StdErr is in --debug), then rerun.",
                raw_tail=f"{tail}\n[stderr]\n{stderr[-_TAIL:]}",
            )
        raise ContractError(
            f"The in-guest script printed no {MARKER} line.",
            "It was probably stopped before it finished, or another script answered.",
            _FIX,
            raw_tail=tail,
        )
    try:
        data = unpack(marked[-1][len(MARKER) :])
    except UnpackError as exc:
        raise ContractError(
            "The in-guest script's output was truncated."
            if exc.truncated
            else f"The in-guest script's output is damaged: {exc}.",
            fix=_FIX,
            raw_tail=tail,
        ) from None
    if not isinstance(data, dict):
        raise ContractError(
            f"The in-guest script's {MARKER} line holds {describe(data)}, not an object.",
            fix=_FIX,
            raw_tail=tail,
        )
    version = data.get("v")
    if version != VERSION:
        raise ContractError(
            f"The in-guest script answered with contract version {version!r}; this azrdp reads "
            f"version {VERSION}.",
            fix="Use the same azrdp version for the script and the CLI (pip install -U azrdp).",
            raw_tail=tail,
        )
    try:
        report = from_wire(GuestReport, data)
    except ValueError as exc:
        raise ContractError(
            "The in-guest script's output does not follow the contract:", f"{exc}.", _FIX, raw_tail=tail
        ) from None
    why = _identifiers(report, run_id)
    if why:
        raise ContractError(
            "The in-guest script's output does not follow the contract:",
            why,
            "Use the same azrdp version for the script and the CLI; if it is the same, the guest's "
            "output was tampered with.",
            raw_tail=tail,
        )
    return report


def _identifiers(report: GuestReport, run_id: str | None) -> str:
    """Why the run ids and backup folder a report carries are not what the scripts write ("" if they are)."""

    def run(value: str | None, *, empty: bool = False) -> bool:
        return (empty and not value) or (value is not None and RUN_ID.fullmatch(value) is not None)

    if report.error is not None:
        return ""
    found = report.run
    if found is not None:
        if not run(found.run_id):
            return "its run id is not 12 lower-case hex characters."
        if run_id is not None and found.run_id != run_id:
            return f"it reports another run than {run_id}."
        if found.backup_dir != f"{gf.BACKUP_ROOT}\\{found.run_id}":
            return f"its backup folder is not {gf.BACKUP_ROOT}\\{found.run_id}."
    records = report.records
    if records is not None:
        if not run(records.run_id) or (run_id is not None and records.run_id != run_id):
            return f"its records are not those of run {run_id}."
        if not run(records.undoes, empty=True):
            return "a run id it names is not 12 lower-case hex characters."
    runs = [(h.run_id, h.undoes) for h in report.history]
    azr = report.facts.azrdp if report.facts is not None else None
    if azr is not None:
        runs += [(r.id, r.undoes) for r in azr.runs] + [(azr.lock_run or "0" * 12, "")]
    if not all(run(a) and run(b, empty=True) for a, b in runs):
        return "a run id it names is not 12 lower-case hex characters."
    return ""


def _first_line(text: str) -> str:
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return line if len(line) <= 300 else line[:297] + "..."
