"""What a user typing the commands sees: targets, env vars per flag, table rows, next steps.

Each test runs the real CLI (CliRunner) against the emulator and asserts exit code, stdout and
stderr separately.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from azrdp.cli import terminal
from azrdp.cli.app import app
from azrdp.emulator import Emulator

RG, VM = "rg-rdp", "vm-rdp01"
B3 = ["name", "resourceGroup", "check", "status", "severity", "detail"]


def invoke(*args: str, env: dict[str, str] | None = None, input: str | None = None) -> Result:
    return CliRunner().invoke(app, list(args), env=env, input=input)


@pytest.fixture
def start(
    make_emulator: Callable[..., Emulator], arm_env: Callable[[Emulator], dict[str, str]]
) -> Callable[..., Emulator]:
    def go(name: str = "healthy", **kwargs: Any) -> Emulator:
        kwargs.setdefault("runcommand_seconds", 0.02)
        emu = make_emulator(name, **kwargs)
        arm_env(emu)
        return emu

    return go


def vm_id(emu: Emulator) -> str:
    return (
        f"/subscriptions/{emu.subscription_id}/resourceGroups/{RG}"
        f"/providers/Microsoft.Compute/virtualMachines/{VM}"
    )


def table(result: Result) -> list[list[str]]:
    header, rule, *body = result.stdout.splitlines()
    assert header.split() == B3
    assert set(rule.replace(" ", "")) == {"-"}
    return [line.split(None, 5) for line in body]


# --- targets ------------------------------------------------------------------------------------


def test_repair_ids_ignore_a_default_group_from_the_environment(
    start: Callable[..., Emulator], monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = start("guest-rdp-disabled")
    monkeypatch.setenv("AZURE_DEFAULTS_GROUP", "rg-elsewhere")
    result = invoke("repair", "--ids", vm_id(emu), "--dry-run", "-o", "json")
    assert result.exit_code == 4, result.stderr  # planned, not "--ids cannot be combined with -g"
    assert json.loads(result.stdout)["vms"][0]["status"] == "planned"
    assert result.stderr == ""


def test_a_typed_group_still_conflicts_with_ids(start: Callable[..., Emulator]) -> None:
    emu = start()
    result = invoke("repair", "--ids", vm_id(emu), "-g", RG, "--dry-run")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith("error: --ids cannot be combined with -g/--resource-group.")


@pytest.mark.parametrize(
    ("args", "what", "fix"),
    [
        (["history"], "`azrdp history` needs a VM, and none was given.", "`azrdp history VM -g GROUP`"),
        (["history", "-g", RG], "`azrdp history` works on one VM", f"`azrdp history VM -g {RG}`"),
        (["undo", "-g", RG, "--run-id", "0123456789ab"], "`azrdp undo` works on one VM", "azrdp undo VM"),
        (["repair", VM], f"VM '{VM}' needs its resource group.", f"`azrdp repair {VM} -g my-rg`"),
        (["diagnose"], "`azrdp diagnose` needs a VM", "or `--all`"),
        (["repair", "--ids", " "], "--ids was given without any ID.", "az vm list"),
    ],
)
def test_target_errors_name_the_command_typed(args: list[str], what: str, fix: str) -> None:
    result = invoke(*args)
    assert result.exit_code == 2
    assert result.stdout == ""
    first, second = result.stderr.splitlines()
    assert first.startswith("error: ") and what in first
    assert second.startswith("fix: ") and fix in second
    if args[0] in ("history", "undo", "repair"):
        assert "--all" not in result.stderr  # these commands do not take --all


def test_group_env_vars_in_order(start: Callable[..., Emulator]) -> None:
    start()
    both = invoke(
        "check", VM, "-o", "none", env={"AZRDP_DEFAULTS_GROUP": RG, "AZURE_DEFAULTS_GROUP": "rg-nope"}
    )
    assert both.exit_code == 0, both.stderr
    assert both.stdout == "" and both.stderr == ""
    az_only = invoke("check", VM, "-o", "none", env={"AZURE_DEFAULTS_GROUP": RG})
    assert az_only.exit_code == 0, az_only.stderr
    flag_wins = invoke("check", VM, "-g", "rg-nope", "-o", "none", env={"AZRDP_DEFAULTS_GROUP": RG})
    assert flag_wins.exit_code == 3
    assert "rg-nope" in flag_wins.stderr


# --- env var per flag ---------------------------------------------------------------------------


def test_output_verbose_and_only_show_errors_from_the_environment(start: Callable[..., Emulator]) -> None:
    start("nsg-blocked")
    result = invoke("check", VM, "-g", RG, env={"AZRDP_OUTPUT": "table", "AZRDP_VERBOSE": "yes"})
    assert result.exit_code == 4
    assert [row[2:4] for row in table(result)] == [["nsg-denies-rdp", "FAIL"]]
    assert "Checking VM 'vm-rdp01'" in result.stderr  # plain progress lines, on stderr only
    quiet = invoke(
        "check",
        VM,
        "-g",
        RG,
        env={"AZRDP_OUTPUT": "tsv", "AZRDP_VERBOSE": "1", "AZRDP_ONLY_SHOW_ERRORS": "on"},
    )
    assert quiet.exit_code == 4
    assert quiet.stdout.startswith(f"{VM}\t{RG}\tnsg-denies-rdp\tFAIL\t")
    assert quiet.stderr == ""


def test_yes_and_dry_run_from_the_environment(start: Callable[..., Emulator]) -> None:
    start("guest-rdp-disabled")
    planned = invoke("repair", VM, "-g", RG, "-o", "json", env={"AZRDP_DRY_RUN": "true"})
    assert planned.exit_code == 4, planned.stderr
    assert json.loads(planned.stdout)["dryRun"] is True
    applied = invoke("repair", VM, "-g", RG, "-o", "json", env={"AZRDP_YES": "1"})
    assert applied.exit_code == 0, applied.stderr
    assert json.loads(applied.stdout)["vms"][0]["status"] == "repaired"
    refused = invoke("repair", VM, "-g", RG, env={"AZRDP_YES": "0"})
    assert refused.exit_code == 2
    assert refused.stdout == ""
    assert "without confirmation" in refused.stderr


def test_cloud_from_the_environment_is_recorded(start: Callable[..., Emulator]) -> None:
    start()
    result = invoke("check", VM, "-g", RG, "-o", "json", env={"AZURE_CLOUD": "AzureUSGovernment"})
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["context"]["cloud"] == "AzureUSGovernment"


# --- -o table rows (B3) for check, diagnose and repair --------------------------------------------


def test_diagnose_table_shows_a_skipped_guest_step(start: Callable[..., Emulator]) -> None:
    start("deallocated")
    result = invoke("diagnose", VM, "-g", RG, "-o", "table")
    assert result.exit_code == 4
    rows = table(result)
    assert ["vm-not-running", "FAIL"] in [row[2:4] for row in rows]
    (guest,) = [row for row in rows if row[2] == "guest"]
    assert guest[3] == "SKIP"
    assert result.stderr == ""


def test_repair_table_rows_say_what_happened_to_each_finding(start: Callable[..., Emulator]) -> None:
    start("guest-rdp-disabled")
    planned = invoke("repair", VM, "-g", RG, "--dry-run", "-o", "table")
    assert planned.exit_code == 4
    by_check = {row[2]: row for row in table(planned)}
    assert by_check["rdp-disabled"][3:5] == ["PLANNED", "blocker"]
    assert by_check["rdp-disabled"][5].startswith("rdp-listener: Terminal Server fDenyTSConnections")
    fixed = invoke("repair", VM, "-g", RG, "--yes", "-o", "tsv")
    assert fixed.exit_code == 0
    rows = [line.split("\t") for line in fixed.stdout.splitlines()]
    assert all(len(row) == len(B3) for row in rows)
    assert [r[3] for r in rows if r[2] == "rdp-disabled"] == ["FIXED"]


# --- undo without --run-id ----------------------------------------------------------------------


def test_undo_without_run_id_names_the_latest_run(
    start: Callable[..., Emulator], monkeypatch: pytest.MonkeyPatch
) -> None:
    start("guest-rdp-disabled")
    repaired = invoke("repair", VM, "-g", RG, "--yes", "-o", "json")
    run_id = json.loads(repaired.stdout)["vms"][0]["runId"]

    scripted = invoke("undo", VM, "-g", RG, "--yes")
    assert scripted.exit_code == 2
    assert scripted.stdout == ""
    what, fix = scripted.stderr.splitlines()
    assert what.startswith("error: --run-id is required with --yes") and run_id in what
    assert fix == f"fix: Pass --run-id {run_id} (`azrdp history {VM} -g {RG}` lists every run)."

    monkeypatch.setattr(terminal.Terminal, "interactive", property(lambda self: True))
    asked = invoke("undo", VM, "-g", RG, "-o", "json", input="y\n")
    assert asked.exit_code == 0, asked.stderr
    assert f"Undo the latest run on VM '{VM}', run {run_id}" in asked.stderr
    assert json.loads(asked.stdout.split("\n", 1)[1])["vms"][0]["runId"] == run_id


def test_undo_declined_changes_nothing(
    start: Callable[..., Emulator], monkeypatch: pytest.MonkeyPatch
) -> None:
    start()
    monkeypatch.setattr(terminal.Terminal, "interactive", property(lambda self: True))
    result = invoke("undo", VM, "-g", RG, "--run-id", "0123456789ab", input="n\n")
    assert result.exit_code == 2
    assert result.stderr.rstrip().endswith("Declined: nothing was changed.")  # after the prompt


def test_undo_with_an_empty_journal(start: Callable[..., Emulator], monkeypatch: pytest.MonkeyPatch) -> None:
    start()
    monkeypatch.setattr(terminal.Terminal, "interactive", property(lambda self: True))
    result = invoke("undo", VM, "-g", RG, input="y\n")
    assert result.exit_code == 2
    assert result.stdout.strip() == ""
    assert "has no run on VM 'vm-rdp01'" in result.stderr
    assert f"azrdp history {VM} -g {RG} --guest" in result.stderr


# --- history ------------------------------------------------------------------------------------


def test_history_rows_carry_the_resource_group(start: Callable[..., Emulator]) -> None:
    start("guest-rdp-disabled")
    invoke("repair", VM, "-g", RG, "--yes", "-o", "none")
    result = invoke("history", VM, "-g", RG, "-o", "table")
    assert result.exit_code == 0
    header, _, row = result.stdout.splitlines()
    assert header.split() == ["name", "resourceGroup", "runId", "time", "steps", "undone", "unconfirmed"]
    assert row.split()[:2] == [VM, RG]


@pytest.mark.parametrize("command", ["check", "diagnose", "repair", "history"])
def test_missing_vm_is_named_in_our_words(command: str, start: Callable[..., Emulator]) -> None:
    start()
    extra = ["--dry-run"] if command == "repair" else []
    result = invoke(command, "vm-nope", "-g", RG, *extra)
    if command == "history":  # reads only the local journal: an unknown VM simply has no runs
        assert result.exit_code == 0
        return
    assert result.exit_code == 3
    assert result.stdout == ""
    what, fix = result.stderr.splitlines()
    assert what == f"error: VM 'vm-nope' in resource group '{RG}' was not found."
    assert "aka.ms" not in what and fix.startswith("fix: Check the name")


def test_repair_prompt_declined_and_interrupted(
    start: Callable[..., Emulator], monkeypatch: pytest.MonkeyPatch
) -> None:
    start("guest-rdp-disabled")
    monkeypatch.setattr(terminal.Terminal, "interactive", property(lambda self: True))
    declined = invoke("repair", VM, "-g", RG, "-o", "json", input="n\n")
    assert declined.exit_code == 4
    assert "Plan (nothing has been changed yet)" in declined.stderr
    assert "Declined: nothing in the plan was applied." in declined.stderr
    doc = json.loads(declined.stdout[declined.stdout.index("{") :])
    assert doc["vms"][0]["declined"] is True and doc["vms"][0]["applied"] is False
    # EOF at the prompt is what Ctrl-C/Ctrl-D give: exit 130, the document says nothing changed.
    interrupted = invoke("repair", VM, "-g", RG, "-o", "json", input="")
    assert interrupted.exit_code == 130
    doc = json.loads(interrupted.stdout[interrupted.stdout.index("{") :])
    assert doc["interrupted"] is True and doc["vms"][0]["status"] == "interrupted"
    assert doc["summary"]["changes"] == 0 and doc["vms"][0]["changes"] == []
    what = interrupted.stderr.rstrip().splitlines()[-2]
    assert what.startswith("error: Interrupted.") and "Nothing was changed" in what
