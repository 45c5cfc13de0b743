"""A Windows VM of the model driven the way azrdp drives a real one, without the ARM layer.

Every call goes through the real wire: the scripts as sent, their parameters, the Windows model's
Run Command handler, the compressed marker line, and the real parser. Planning uses azrdp's own
checks and planners; undo builds its inverse plan from the records the guest kept (mode records),
as `azrdp undo` does when the local journal lacks them.
"""

from __future__ import annotations

import copy
from datetime import datetime, timezone
from typing import Any

from azrdp.checks import run_checks
from azrdp.checks.guest import GuestFacts
from azrdp.emulator.windows import runcommand
from azrdp.engine.repair import build_plan
from azrdp.guest import envelope, scripts
from azrdp.guest import plan as gp
from azrdp.model import Finding, Source
from azrdp.repairs import RepairFacts, Where, plan_repairs

NOW = datetime(2026, 1, 15, 10, 0, tzinfo=timezone.utc)


class Guest:
    def __init__(self, guest: dict[str, Any] | None = None, port: int = 3389, now: datetime = NOW) -> None:
        self.vm: dict[str, Any] = {"guest": copy.deepcopy(guest or {})}
        self.port = port
        self.now = now
        self.runs = 0

    # -- Run Command --

    def run(self, mode: str, parameters: list[dict[str, str]]) -> envelope.GuestReport:
        body = {
            "commandId": "RunPowerShellScript",
            "script": scripts.script_lines(mode),
            "parameters": parameters,
        }
        out = runcommand.handle_run_command(self.vm, body, now=self.now)
        self.runs += 1
        self.last_line = out.stdout.strip()
        return envelope.parse_output(out.stdout, out.stderr)

    def collect(self) -> envelope.GuestReport:
        return self.run("collect", scripts.collect_parameters(self.port))

    def execute(self, plan: gp.Plan) -> envelope.GuestReport:
        return self.run("execute", scripts.execute_parameters(plan.run_id, plan.token(), self.port))

    def records(self, run_id: str) -> envelope.GuestReport:
        return self.run("records", scripts.records_parameters(run_id))

    def history(self) -> envelope.GuestReport:
        return self.run("history", scripts.history_parameters())

    # -- azrdp's decisions --

    def findings(self, report: envelope.GuestReport | None = None) -> list[Finding]:
        report = report or self.collect()
        assert report.facts is not None, report.error
        return run_checks(GuestFacts(report.facts, self.port, report.guest_time), Source.GUEST)

    def plan(
        self,
        report: envelope.GuestReport | None = None,
        run_id: str = "a1b2c3d4e5f6",
        selected: set[str] | None = None,
    ) -> tuple[gp.Plan, list[Any]]:
        """The plan azrdp would run (actionable guest steps only), and every guest step planned."""
        report = report or self.collect()
        facts = RepairFacts(
            findings=tuple(self.findings(report)),
            guest=report,
            port=self.port,
            selected=frozenset(selected) if selected is not None else None,
            run_id=run_id,
        )
        steps = plan_repairs(facts, where=Where.GUEST)
        actionable = [s for s in steps if s.actionable and s.ops]
        return build_plan(run_id, actionable, 900), steps

    def undo_plan(self, run_id: str, undo_run: str = "0123456789ab") -> gp.Plan:
        rec = self.records(run_id)
        assert rec.records is not None, rec.error
        steps = gp.steps_from_records(
            [s.id or "" for s in rec.records.steps],
            [{"i": r.index, "g": r.step, "op": r.op, "s": r.status} for r in rec.records.ops],
        )
        records = {int(r.index or 0): {"s": r.status, "a": r.after} for r in rec.records.ops}
        numbered = gp.number(gp.undo_steps(steps, records, run_id, undo_run))
        return gp.Plan(
            undo_run,
            tuple(gp.make_step(i, ops, first, run_id=undo_run) for i, ops, first in numbered),
            600,
            run_id,
        )

    # -- the state --

    def machine(self) -> Any:
        return runcommand.machine_of(self.vm, self.now)[0]

    def digest(self, *, set_aside: bool = True) -> str:
        return runcommand.digest(self.machine(), set_aside=set_aside)


def ids(findings: list[Finding]) -> set[str]:
    return {f.id for f in findings}
