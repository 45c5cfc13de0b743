"""The Automation entry point, run as Automation runs it: a separate Python process, arguments in
sys.argv, the managed identity reached through IDENTITY_ENDPOINT / IDENTITY_HEADER."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from azrdp.emulator import Emulator

SUB = "00000000-0000-0000-0000-000000000000"


def automation_env(emu: Emulator, home: Path) -> dict[str, str]:
    """What an Automation sandbox has: the identity endpoint and nothing else of ours.

    AZURE_TOKEN_CREDENTIALS is left unset on purpose: the plain DefaultAzureCredential chain must
    find the managed identity by itself.
    """
    exports = emu.exports()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "AZURE_CONFIG_DIR": str(home / ".azure"),
        "IDENTITY_ENDPOINT": exports["IDENTITY_ENDPOINT"],
        "IDENTITY_HEADER": exports["IDENTITY_HEADER"],
        # Only needed because the emulator is not management.azure.com.
        "AZRDP_ARM_ENDPOINT": exports["AZRDP_ARM_ENDPOINT"],
        "AZRDP_CA_BUNDLE": exports["AZRDP_CA_BUNDLE"],
        "AZRDP_POLLING_INTERVAL": "0.02",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    return env


def run_runbook(args: list[str], env: dict[str, str]) -> tuple[int, Any, str]:
    proc = subprocess.run(
        [sys.executable, "-m", "azrdp.runbook", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return proc.returncode, json.loads(proc.stdout), proc.stderr


def test_check_through_managed_identity(make_emulator: Callable[..., Emulator], isolated_env: Path) -> None:
    emu = make_emulator("nsg-blocked")
    doc_code, doc, stderr = run_runbook(
        ["*", "*", emu.subscription_id, "check"], automation_env(emu, isolated_env)
    )
    assert doc["schemaVersion"] == "2"
    assert doc["summary"]["total"] >= 1
    assert doc["summary"]["blocked"] >= 1
    assert doc_code == 4, stderr
    ids = {f["id"] for v in doc["vms"] for f in v["findings"]}
    assert "nsg-denies-rdp" in ids
    # Every ARM request carried a token the identity endpoint issued.
    paths = [r.path for r in emu.requests]
    assert any("virtualMachines" in p for p in paths)
    assert all(r.status != 401 for r in emu.requests)


def test_healthy_vm_exits_zero_with_source_ip(
    make_emulator: Callable[..., Emulator], isolated_env: Path
) -> None:
    emu = make_emulator("healthy")
    code, doc, _ = run_runbook(
        ["*", "*", emu.subscription_id, "check", "203.0.113.7"], automation_env(emu, isolated_env)
    )
    assert code == 0
    assert doc["summary"]["healthy"] == doc["summary"]["total"] >= 1
    assert {v["network"]["source"] for v in doc["vms"]} == {"203.0.113.7"}


def test_diagnose_mode_runs_one_run_command(
    make_emulator: Callable[..., Emulator], isolated_env: Path
) -> None:
    emu = make_emulator("guest-rdp-disabled")
    vm = next(r for r in emu.store.list("Microsoft.Compute/virtualMachines"))
    group = vm["id"].split("/")[4]
    code, doc, stderr = run_runbook(
        [vm["name"], group, emu.subscription_id, "diagnose"], automation_env(emu, isolated_env)
    )
    assert code == 4, stderr
    ids = {f["id"] for f in doc["vms"][0]["findings"]}
    assert "rdp-disabled" in ids
    run_commands = [r for r in emu.requests if r.method == "POST" and r.path.lower().endswith("/runcommand")]
    assert len(run_commands) == 1


def test_bad_arguments_give_a_json_error_and_exit_2(isolated_env: Path) -> None:
    env = {"PATH": os.environ["PATH"], "HOME": str(isolated_env)}
    code, doc, stderr = run_runbook(["web01"], env)
    assert code == 2
    assert doc["error"]["code"] == "UsageError"
    assert "Traceback" not in stderr
    code, doc, _ = run_runbook(["web01", "rg", SUB, "repair"], env)
    assert code == 2
    assert "--yes" in doc["error"]["fix"]
    code, doc, _ = run_runbook(["web01", "rg", SUB, "check", "not-an-ip"], env)
    assert code == 2


def test_not_found_vm_exits_3(make_emulator: Callable[..., Emulator], isolated_env: Path) -> None:
    emu = make_emulator("healthy")
    code, doc, stderr = run_runbook(
        ["nope", "rg-missing", emu.subscription_id], automation_env(emu, isolated_env)
    )
    assert code == 3, stderr
    assert doc["error"]["code"] == "NotFound"


def test_runbook_imports_neither_typer_nor_rich(
    make_emulator: Callable[..., Emulator], isolated_env: Path
) -> None:
    emu = make_emulator("healthy")
    probe = (
        "import sys, io, contextlib\n"
        "from azrdp.runbook import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    code = main(['*', '*', sys.argv[1], 'check'])\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('typer', 'rich', 'click') "
        "or m.startswith('azrdp.cli') or m.startswith('azrdp.emulator'))\n"
        "print(code, bad)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe, emu.subscription_id],
        env=automation_env(emu, isolated_env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.stdout.strip() == "0 []", proc.stderr


def test_plan_then_repair_with_yes(make_emulator: Callable[..., Emulator], isolated_env: Path) -> None:
    emu = make_emulator("guest-rdp-disabled")
    vm = next(r for r in emu.store.list("Microsoft.Compute/virtualMachines"))
    group = vm["id"].split("/")[4]
    env = automation_env(emu, isolated_env)
    code, plan, stderr = run_runbook([vm["name"], group, emu.subscription_id, "plan"], env)
    assert code == 4, stderr  # steps planned, nothing changed
    planned = plan["vms"][0]
    assert planned["dryRun"] is True and planned["applied"] is False
    assert "rdp-listener" in {step["id"] for step in planned["plan"]}
    emu.clear_requests()
    code, doc, stderr = run_runbook([vm["name"], group, emu.subscription_id, "repair", "--yes"], env)
    assert code == 0, stderr
    repaired = doc["vms"][0]
    assert repaired["verified"] is True
    assert [f for f in repaired["remainingFindings"] if f["severity"] == "blocker"] == []
    run_commands = [r for r in emu.requests if r.method == "POST" and r.path.lower().endswith("/runcommand")]
    # The collector, then the executor (which ends by collecting the facts it verifies against).
    assert len(run_commands) == 2
    code, after, _ = run_runbook([vm["name"], group, emu.subscription_id, "diagnose"], env)
    assert code == 0
    assert "rdp-disabled" not in {f["id"] for f in after["vms"][0]["findings"]}
