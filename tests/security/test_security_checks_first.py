"""Every input is checked before the first change, and before the first request.

An empty VM name (an unset shell variable) used to repair every VM of the group, `--only ""` meant
every repair, an invalid --query was refused after the repair had run, `nan` disabled a timeout,
three inputs ended in "Unexpected" instead of a usage error, and an untrusted journal was noticed
only at its first write, after a guest-only repair had already changed the guest. Each input
below must end in exit 2 with one what/why line and one fix line, and the emulator's request log
must show that azrdp sent nothing at all.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import azrdp
from azrdp import journal
from azrdp.cli.app import app
from azrdp.emulator import Emulator
from azrdp.errors import UsageError

RG, VM = "rg-rdp", "vm-rdp01"
RUN = "a1b2c3d4e5f6"
DEEP_QUERY = "[" * 5000 + "]" * 5000
posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX file types and modes")


def vm_id(emu: Emulator) -> str:
    group = f"/subscriptions/{emu.subscription_id}/resourceGroups/{RG}"
    return f"{group}/providers/Microsoft.Compute/virtualMachines/{VM}"


def assert_refused_before_anything(emu: Emulator, result: Any, *words: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 2 and lines[0].startswith("error: ") and lines[1].startswith("fix: "), result.stderr
    assert "Unexpected" not in result.stderr and "Traceback" not in result.output
    for word in words:
        assert word in result.stderr
    assert result.stdout == ""
    assert emu.requests == []  # not one ARM request, so certainly no write


REPAIR = ["repair", VM, "-g", RG, "--yes", "--source-ip", "203.0.113.7"]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["repair", "", "-g", RG, "--yes"], ["VM name is empty"]),
        (["repair", "   ", "-g", RG, "--yes"], ["VM name is empty"]),
        (["repair", "-n", "", "-g", RG, "--yes"], ["-n/--name is empty"]),
        (["repair", VM, "-g", "", "--yes"], ["-g/--resource-group is empty"]),
        (["repair", "--ids", "", "--yes"], ["--ids"]),
        (["repair", "--ids", "{id}", "--ids", " ", "--yes"], ["--ids value is empty"]),
        ([*REPAIR, "--only", ""], ["--only '' has an empty repair id"]),
        ([*REPAIR, "--only", ","], ["empty repair id"]),
        ([*REPAIR, "--only", "nsg-allow-rdp,,rdp-services"], ["empty repair id"]),
        ([*REPAIR, "--skip", " "], ["--skip"]),
        ([*REPAIR, "--query", "vms[?"], ["--query", "JMESPath"]),
        ([*REPAIR, "--query", DEEP_QUERY], ["--query", "nests too deeply"]),
        ([*REPAIR, "--wait-timeout", "nan"], ["--wait-timeout", "finite"]),
        ([*REPAIR, "--wait-timeout", "inf"], ["--wait-timeout", "finite"]),
        ([*REPAIR, "--wait-timeout", "-1"], ["--wait-timeout"]),
        (["undo", VM, "-g", RG, "--run-id", RUN, "--yes", "--query", "[["], ["--query"]),
        (["undo", "", "-g", RG, "--run-id", RUN, "--yes"], ["VM name is empty"]),
        (["diagnose", VM, "-g", RG, "--timeout", "nan"], ["--timeout", "finite"]),
        (["diagnose", VM, "-g", RG, "--timeout", "inf"], ["--timeout", "finite"]),
        (["diagnose", VM, "-g", RG, "--timeout", "0"], ["--timeout", "too short"]),
        (["diagnose", VM, "-g", RG, "--timeout", "-5"], ["--timeout"]),
        (["diagnose", VM, "-g", RG, "--wait-timeout", "nan"], ["--wait-timeout"]),
        (["diagnose", "", "-g", RG], ["VM name is empty"]),
        (["check", "", "-g", RG], ["VM name is empty"]),
        (["check", VM, "-g", RG, "--query", DEEP_QUERY], ["nests too deeply"]),
        (["check", "--guest", "-n", " ", "-g", RG], ["-n/--name is empty"]),
        (["history", "", "-g", RG], ["VM name is empty"]),
        (["history", VM, "-g", RG, "--query", "{"], ["--query"]),
    ],
)
def test_bad_input_is_refused_before_any_request(
    live_emulator: Callable[..., Emulator], args: list[str], words: list[str]
) -> None:
    emu = live_emulator("guest-rdp-cert-expired")
    args = [a.replace("{id}", vm_id(emu)) for a in args]
    assert_refused_before_anything(emu, CliRunner().invoke(app, args), *words)


@pytest.mark.parametrize(
    ("variable", "value", "args"),
    [
        ("AZRDP_WAIT_TIMEOUT", "nan", REPAIR),
        ("AZRDP_WAIT_TIMEOUT", "inf", ["diagnose", VM, "-g", RG]),
        ("AZRDP_TIMEOUT", "nan", ["diagnose", VM, "-g", RG]),
        ("AZRDP_POLLING_INTERVAL", "nan", REPAIR),
        ("AZRDP_POLLING_INTERVAL", "inf", ["check", VM, "-g", RG]),
        ("AZRDP_RETRY_TOTAL", "nan", REPAIR),
    ],
)
def test_bad_durations_from_the_environment(
    live_emulator: Callable[..., Emulator],
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
    value: str,
    args: list[str],
) -> None:
    emu = live_emulator("guest-rdp-cert-expired")
    monkeypatch.setenv(variable, value)
    assert_refused_before_anything(emu, CliRunner().invoke(app, args), variable)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["explain", "1" * 5000], ["larger than any RDP error code", "(5000 characters)"]),
        (["explain", "0x" + "f" * 5000], ["larger than any RDP error code"]),
        (["explain", "0x" + "0" * 5000 + "904", "-o", "none"], []),  # leading zeros are fine
        (["explain", "0x904", "--extended", "9" * 5000], ["larger than any RDP error code"]),
        (["explain", "0x904", "--query", DEEP_QUERY], ["nests too deeply"]),
        (["probe", "127.0.0.1", "--timeout", "nan"], ["--timeout", "finite"]),
        (["probe", "127.0.0.1", "--timeout", "inf"], ["--timeout"]),
        (["probe", "127.0.0.1", "--query", "a[", "--samples", "1"], ["--query"]),
        (["checks", "list", "--query", "[?"], ["--query"]),
        (["emulator", "serve", "--latency-ms", "nan"], ["--latency-ms", "finite number of ms"]),
        (["emulator", "serve", "--runcommand-seconds", "inf"], ["--runcommand-seconds"]),
        (["demo", "--runcommand-seconds", "nan"], ["--runcommand-seconds"]),
    ],
)
def test_offline_commands_refuse_bad_input_as_usage_errors(args: list[str], words: list[str]) -> None:
    result = CliRunner().invoke(app, args)
    if not words:
        assert result.exit_code == 0, result.output
        return
    assert result.exit_code == 2, result.output
    assert "Unexpected" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 2 and lines[0].startswith("error: ") and lines[1].startswith("fix: "), result.stderr
    assert len(lines[0]) < 300  # a 5000-character input is not echoed back whole
    for word in words:
        assert word in result.stderr


def test_the_python_api_refuses_an_empty_name() -> None:
    for call in (
        lambda: azrdp.repair("", "rg", yes=True),
        lambda: azrdp.check(" ", "rg"),
        lambda: azrdp.diagnose(None, "", all_vms=False),
        lambda: azrdp.repair(ids=[""], yes=True),
    ):
        with pytest.raises(UsageError, match="empty"):
            call()


# --- the journal is judged before the first change of any kind -----------------------------------


def _symlink(path: Path) -> None:
    elsewhere = path.parent.parent / "planted.jsonl"
    elsewhere.write_text("")
    path.symlink_to(elsewhere)


def _shared(path: Path) -> None:
    path.write_text("")
    path.chmod(0o666)


def _fifo(path: Path) -> None:
    os.mkfifo(path, 0o600)


def _invoke_with_deadline(args: list[str], seconds: float = 30) -> Any:
    """A FIFO used to hang the command: run it where a hang fails the test instead of the suite."""
    box: list[Any] = []
    worker = threading.Thread(target=lambda: box.append(CliRunner().invoke(app, args)), daemon=True)
    worker.start()
    worker.join(seconds)
    assert box, f"azrdp {' '.join(args)} hung"
    return box[0]


@posix_only
@pytest.mark.parametrize("plant", [_symlink, _shared, _fifo], ids=["symlink", "mode-0666", "fifo"])
@pytest.mark.parametrize(
    "args",
    [
        ["repair", VM, "-g", RG, "--yes"],  # guest-only: nothing for the journal until the end
        ["repair", VM, "-g", RG, "--yes", "--only", "rdp-cert-renew"],
        ["undo", VM, "-g", RG, "--run-id", RUN, "--yes"],
    ],
)
def test_an_untrusted_journal_is_refused_before_the_first_change(
    live_emulator: Callable[..., Emulator], plant: Callable[[Path], None], args: list[str]
) -> None:
    emu = live_emulator("guest-rdp-cert-expired")
    guest_before = repr(emu.vm(RG, VM)["guest"])  # type: ignore[index]
    journal.config_dir().mkdir(parents=True, mode=0o700)
    plant(journal.journal_path())
    result = _invoke_with_deadline(args)
    assert_refused_before_anything(emu, result, "journal")
    assert repr(emu.vm(RG, VM)["guest"]) == guest_before  # type: ignore[index]


@posix_only
def test_history_with_a_fifo_journal_is_refused_not_hung(live_emulator: Callable[..., Emulator]) -> None:
    emu = live_emulator("guest-rdp-cert-expired")
    journal.config_dir().mkdir(parents=True, mode=0o700)
    _fifo(journal.journal_path())
    result = _invoke_with_deadline(["history", VM, "-g", RG])
    assert result.exit_code == 2 and "not a regular file" in result.stderr, result.output
    assert [r for r in emu.requests if r.method != "GET"] == []


# --- the runbook ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["", RG, "{sub}", "repair", "--yes"],  # an unset Automation parameter is not `*`
        [VM, "", "{sub}", "plan"],
        [" ", RG, "{sub}", "check"],
        [VM, RG, "{sub}", "repair", "--yes", "--query", "vms[?"],
        [VM, RG, "{sub}", "plan", "--query", DEEP_QUERY],
    ],
)
def test_the_runbook_checks_its_parameters_first(
    live_emulator: Callable[..., Emulator], capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    from azrdp.runbook import main

    emu = live_emulator("guest-rdp-cert-expired")
    assert main([a.replace("{sub}", emu.subscription_id) for a in argv]) == 2
    out = capsys.readouterr()
    assert '"UsageError"' in out.out and "Unexpected" not in out.err
    assert emu.requests == []
