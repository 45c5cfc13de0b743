"""The two PowerShell scripts as Run Command receives them, and their parameters.

`scripts/collector.ps1` (read-only; mode `collect`) and `scripts/executor.ps1` (functions only:
modes `execute`, `records`, `history`). `collect` sends the collector alone; the other modes send
the collector with the executor's functions placed at its `# azrdp-include: executor.ps1` line,
so an execute run ends by collecting the facts after. Both are static package data: never
templated, never carrying user data. What is sent is a deterministic compaction (full-line
comments, blank lines and indentation dropped; a test compares the token streams).

Parameters travel on a command line (Run Command passes them unquoted as `-Name value` through
cmd.exe: Azure/azure-powershell#7269, #29880), so every value is one non-empty token of
`[A-Za-z0-9._-]`; the plan is gzip + base64url JSON. cmd.exe's command line ends at 8,191
characters; PARAMETERS_LIMIT keeps azrdp's part well under it (the worst plan is measured in a test).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import cache
from importlib import resources
from typing import Any

from azrdp.errors import UsageError
from azrdp.guest.envelope import VERSION, ContractError

HEADER = f"# azrdp-guest-script v{VERSION}"
COLLECTOR = "collector.ps1"
EXECUTOR = "executor.ps1"
INCLUDE = f"# azrdp-include: {EXECUTOR}"
# Learn documents no script-size limit for action Run Command; azrdp refuses above its own ceiling
# and keeps the scripts under a smaller budget that a test measures.
SCRIPT_LIMIT = 64 * 1024
SCRIPT_BUDGET = 56 * 1024
CMD_LINE_LIMIT = 8191  # cmd.exe (Learn: "Command prompt (Cmd. exe) command-line string limitation")
PARAMETERS_LIMIT = 6000  # ours, leaving room for Run Command's own powershell -File ... prefix
# Run Command's handler puts each parameter on the script's command line as `-Name value`, unquoted,
# through a cmd.exe layer: an empty value leaves `-Name` without its argument, a value starting with
# `-` reads as another parameter's name, and characters outside this set may be split, stripped or
# reinterpreted (a comma, for one, makes an array).
PARAMETER_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]*")
PARAMETER_VALUE = re.compile(r"[A-Za-z0-9._][A-Za-z0-9._-]*")
PARAMETER_NAMES = ("Mode", "RdpPort", "RunId", "Plan")


@cache
def _read(name: str) -> str:
    return resources.files("azrdp.guest").joinpath("scripts").joinpath(name).read_text(encoding="ascii")


def collector_text() -> str:
    return _read(COLLECTOR)


def executor_text() -> str:
    return _read(EXECUTOR)


def composed_text() -> str:
    """The collector with the executor's functions at its include line."""
    base = collector_text()
    if INCLUDE not in base:
        raise ContractError(
            f"The packaged {COLLECTOR} has no '{INCLUDE}' line.",
            fix="Reinstall azrdp; the package is incomplete.",
        )
    return base.replace(INCLUDE, executor_text().rstrip("\n"), 1)


def compact(text: str) -> str:
    """Full-line comments, blank lines and leading indentation dropped; the header stays first."""
    lines = text.splitlines()
    kept = lines[:1] + [ln.strip() for ln in lines[1:] if ln.strip() and not ln.lstrip().startswith("#")]
    return "\n".join(kept) + "\n"


def checked_lines(text: str) -> list[str]:
    sent = compact(text)
    size = len(sent.encode("ascii"))
    if size > SCRIPT_LIMIT:
        raise ContractError(
            f"The in-guest script is {size:,} bytes, "
            f"above azrdp's {SCRIPT_LIMIT:,}-byte limit for Run Command.",
            "The packaged script grew past what azrdp sends in one request.",
            "Reinstall azrdp; report this if it persists.",
        )
    return sent.splitlines()


def script_lines(mode: str) -> list[str]:
    """Run Command's `script` array for a mode: the collector alone for `collect`."""
    return checked_lines(collector_text() if mode == "collect" else composed_text())


def is_azrdp_script(script: Sequence[str] | str | None) -> bool:
    if isinstance(script, str):
        first = script.lstrip().splitlines()[:1]
    else:
        first = [ln for ln in (script or []) if ln.strip()][:1]
    return bool(first) and first[0].strip() == HEADER


def script_version(script: Sequence[str] | str | None) -> int | None:
    text = script if isinstance(script, str) else "\n".join(script or [])
    match = re.match(r"\s*# azrdp-guest-script v(\d+)", text)
    return int(match.group(1)) if match else None


def has_executor(script: Sequence[str] | str | None) -> bool:
    lines = script.splitlines() if isinstance(script, str) else list(script or [])
    return any(line.strip() == "function Invoke-AzrdpExecute {" for line in lines)


# --- parameters ----------------------------------------------------------------------------------


def _port(port: int) -> str:
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise UsageError(f"RDP port {port!r} is not valid.", fix="Pass a TCP port from 1 to 65535.")
    return str(port)


def collect_parameters(rdp_port: int = 3389) -> list[dict[str, str]]:
    return check_parameters(
        [{"name": "Mode", "value": "collect"}, {"name": "RdpPort", "value": _port(rdp_port)}]
    )


def execute_parameters(run_id: str, plan_token: str, rdp_port: int = 3389) -> list[dict[str, str]]:
    return check_parameters(
        [
            {"name": "Mode", "value": "execute"},
            {"name": "RdpPort", "value": _port(rdp_port)},
            {"name": "RunId", "value": run_id},
            {"name": "Plan", "value": plan_token},
        ]
    )


def records_parameters(run_id: str) -> list[dict[str, str]]:
    return check_parameters([{"name": "Mode", "value": "records"}, {"name": "RunId", "value": run_id}])


def history_parameters() -> list[dict[str, str]]:
    return check_parameters([{"name": "Mode", "value": "history"}])


def render_command_line(parameters: Sequence[Mapping[str, str]]) -> str:
    """The parameters as Run Command's handler writes them on the script's command line."""
    return " ".join(f"-{p['name']} {p['value']}" for p in parameters)


def check_parameters(parameters: list[dict[str, str]]) -> list[dict[str, str]]:
    """Refuse what Run Command's command line would mangle, before anything is sent.

    Every value azrdp sends is an id, a port, a mode or a plan token built by azrdp itself, so a
    refusal here is a programming error, never user input passed through.
    """
    for p in parameters:
        name, value = p["name"], p["value"]
        why = ""
        if not isinstance(value, str) or not value:
            why = f"its value is empty, so the command line would leave -{name} without an argument"
        elif not PARAMETER_VALUE.fullmatch(value):
            why = "its value has a character outside [A-Za-z0-9._-] or starts with '-'"
        elif not PARAMETER_NAME.fullmatch(name) or name not in PARAMETER_NAMES:
            why = "its name is not one of the scripts' parameters"
        if why:
            raise UsageError(
                f"Run Command parameter {name} cannot be sent safely:",
                why + ".",
                fix="This is a bug in azrdp; report it with the command you ran.",
            )
    if len(render_command_line(parameters)) > PARAMETERS_LIMIT:
        raise UsageError(
            "The Run Command parameters cannot be sent safely:",
            f"their command line is longer than {PARAMETERS_LIMIT:,} characters (cmd.exe stops at "
            f"{CMD_LINE_LIMIT:,}).",
            fix="Repair fewer things at once (--only).",
        )
    return parameters


def parameters_dict(parameters: Sequence[Mapping[str, Any]] | None) -> dict[str, str]:
    """Name -> value (names compared case-insensitively, like PowerShell's binding)."""
    out: dict[str, str] = {}
    for item in parameters or ():
        name = str(item.get("name", ""))
        if name:
            out[name.lower()] = str(item.get("value", ""))
    return out
