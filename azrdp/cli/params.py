"""Option types shared by every command, each with its environment variable (flag > AZRDP_* > az's).

Options are grouped in `--help` the way az groups them: what to look at (Target), how to print the
result (Output) and switches every command takes (Global).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from typing import Annotated

import typer


class OutputFormat(str, enum.Enum):
    json = "json"
    jsonc = "jsonc"
    table = "table"
    tsv = "tsv"
    yaml = "yaml"
    none = "none"


TARGET_PANEL = "Target"
OUTPUT_PANEL = "Output"
GLOBAL_PANEL = "Global options"


class Cloud(str, enum.Enum):
    AzureCloud = "AzureCloud"
    AzureUSGovernment = "AzureUSGovernment"
    AzureChinaCloud = "AzureChinaCloud"


def _compiled_query(value: str | None) -> str | None:
    """--query is compiled while the flags are parsed: a typo is exit 2 before anything runs."""
    from azrdp.query import query_problem

    problem = query_problem(value)
    if problem:
        raise typer.BadParameter(f"not valid JMESPath: {problem}")
    return value


def seconds(*, zero: bool, unit: str = "seconds") -> Callable[[float | None], float | None]:
    """A callback for a duration flag: finite, above 0 (or 0 too with `zero`).

    Click's FloatRange lets nan through (every comparison with nan is false), and inf means never.
    """

    def check(value: float | None) -> float | None:
        if value is None:
            return None
        if not math.isfinite(value):
            raise typer.BadParameter(f"{value} is not a finite number of {unit}")
        if value < 0 or (value == 0 and not zero):
            raise typer.BadParameter(f"{value:g} is too short: pass {'0 or ' if zero else ''}more {unit}")
        return value

    return check


OutputOpt = Annotated[
    OutputFormat | None,
    typer.Option(
        "--output",
        "-o",
        envvar="AZRDP_OUTPUT",
        case_sensitive=False,
        rich_help_panel=OUTPUT_PANEL,
        help="Result format. Default: a human view on a terminal, json when piped.",
    ),
]
QueryOpt = Annotated[
    str | None,
    typer.Option(
        "--query",
        rich_help_panel=OUTPUT_PANEL,
        callback=_compiled_query,
        help="JMESPath query applied to the result before formatting.",
    ),
]
VerboseOpt = Annotated[
    bool,
    typer.Option(
        "--verbose",
        envvar="AZRDP_VERBOSE",
        rich_help_panel=GLOBAL_PANEL,
        help="Plain progress lines on stderr.",
    ),
]
DebugOpt = Annotated[
    bool,
    typer.Option(
        "--debug",
        envvar="AZRDP_DEBUG",
        rich_help_panel=GLOBAL_PANEL,
        help="SDK HTTP logging (Authorization masked) and tracebacks on stderr.",
    ),
]
OnlyShowErrorsOpt = Annotated[
    bool,
    typer.Option(
        "--only-show-errors",
        envvar="AZRDP_ONLY_SHOW_ERRORS",
        rich_help_panel=GLOBAL_PANEL,
        help="No warnings or progress.",
    ),
]
# NO_COLOR turns colour off whatever its value (no-color.org), so it is read by Terminal rather than
# bound here: bound, Typer would reject NO_COLOR=x as "not a valid boolean" and exit 2.
NoColorOpt = Annotated[
    bool,
    typer.Option(
        "--no-color",
        rich_help_panel=GLOBAL_PANEL,
        help="Plain output, no colour. \\[env var: NO_COLOR, AZURE_CORE_NO_COLOR]",
    ),
]

SubscriptionOpt = Annotated[
    str | None,
    typer.Option(
        "--subscription",
        rich_help_panel=TARGET_PANEL,
        # AZURE_SUBSCRIPTION_ID is read by the resolver itself, so the result can say where the
        # subscription came from (argument, environment, az profile).
        help=(
            "Subscription name or ID. Default: the one in --ids, then AZURE_SUBSCRIPTION_ID, then the "
            "az CLI default. \\[env var: AZURE_SUBSCRIPTION_ID]"
        ),
    ),
]
CloudOpt = Annotated[
    Cloud | None,
    typer.Option(
        "--cloud",
        envvar=["AZRDP_CLOUD", "AZURE_CLOUD"],
        rich_help_panel=TARGET_PANEL,
        help="Azure cloud. Default: AzureCloud.",
    ),
]
ResourceGroupOpt = Annotated[
    str | None,
    typer.Option(
        "--resource-group",
        "-g",
        envvar=["AZRDP_DEFAULTS_GROUP", "AZURE_DEFAULTS_GROUP"],
        rich_help_panel=TARGET_PANEL,
        help="Resource group of the VM(s).",
    ),
]
NameOpt = Annotated[str | None, typer.Option("--name", "-n", rich_help_panel=TARGET_PANEL, help="VM name.")]
IdsOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--ids",
        rich_help_panel=TARGET_PANEL,
        help="One or more VM resource IDs (repeat the flag or separate with whitespace).",
    ),
]
VmArg = Annotated[
    str | None,
    typer.Argument(metavar="[VM]", help="VM name, or a full resource ID starting with /subscriptions/."),
]
YesOpt = Annotated[
    bool, typer.Option("--yes", "-y", envvar="AZRDP_YES", help="Apply without asking for confirmation.")
]
DryRunOpt = Annotated[
    bool,
    typer.Option("--dry-run", "--what-if", envvar="AZRDP_DRY_RUN", help="Show the plan; change nothing."),
]

# --------------------------------------------------------------------------------------------
# The flow and what to read, shared by `check` and `diagnose` (and `check --guest`)

AllOpt = Annotated[
    bool, typer.Option("--all", rich_help_panel=TARGET_PANEL, help="Every VM in the subscription.")
]
TagOpt = Annotated[
    str | None,
    typer.Option(
        "--tag", rich_help_panel=TARGET_PANEL, help="Only VMs with this tag: key=value, or key for any value."
    ),
]
PortOpt = Annotated[
    int, typer.Option("--port", help="The VM's RDP port the flow is checked for (a NAT rule's backend port).")
]
SourceIpOpt = Annotated[
    str | None,
    typer.Option(
        "--source-ip",
        envvar="AZRDP_SOURCE_IP",
        help="Your public address (or a prefix) as Azure sees it. Default: anywhere on the Internet.",
    ),
]
ProtocolOpt = Annotated[str, typer.Option("--protocol", help="tcp (RDP) or udp (RDP's UDP transport).")]
EffectiveOpt = Annotated[
    bool,
    typer.Option(
        "--effective",
        help=(
            "Also ask Azure for the effective security rules and routes of running VMs and report "
            "disagreements (two POSTs per VM)."
        ),
    ),
]
VerifyOpt = Annotated[
    bool,
    typer.Option(
        "--verify",
        help="Also ask Network Watcher's IP flow verify for the same flow (one POST per running VM).",
    ),
]
NetworkWatcherOpt = Annotated[
    str | None,
    typer.Option(
        "--network-watcher",
        help="With --verify: the Network Watcher's resource ID. Default: the one in the VM's region.",
    ),
]
BootDiagnosticsOpt = Annotated[
    bool,
    typer.Option(
        "--boot-diagnostics",
        help=(
            "Read the boot screenshot and serial log of running VMs. Default: only for one running "
            "Windows VM whose agent is not Ready."
        ),
    ),
]
HealthOpt = Annotated[
    bool | None,
    typer.Option(
        "--health/--no-health",
        help="Read Resource Health. Default: for one VM yes (one GET), for fleets no (--health: one list).",
        show_default=False,
    ),
]
