"""Option types shared by every command, each with its environment variable (flag > AZRDP_* > az's)."""

from __future__ import annotations

import enum
from typing import Annotated

import typer


class OutputFormat(str, enum.Enum):
    json = "json"
    jsonc = "jsonc"
    table = "table"
    tsv = "tsv"
    yaml = "yaml"
    none = "none"


class Cloud(str, enum.Enum):
    AzureCloud = "AzureCloud"
    AzureUSGovernment = "AzureUSGovernment"
    AzureChinaCloud = "AzureChinaCloud"


OutputOpt = Annotated[
    OutputFormat | None,
    typer.Option(
        "--output",
        "-o",
        envvar="AZRDP_OUTPUT",
        case_sensitive=False,
        help="Result format. Default: a human view on a terminal, json when piped.",
    ),
]
QueryOpt = Annotated[
    str | None,
    typer.Option("--query", help="JMESPath query applied to the result before formatting."),
]
VerboseOpt = Annotated[
    bool, typer.Option("--verbose", envvar="AZRDP_VERBOSE", help="Plain progress lines on stderr.")
]
DebugOpt = Annotated[
    bool,
    typer.Option(
        "--debug",
        envvar="AZRDP_DEBUG",
        help="SDK HTTP logging (Authorization masked) and tracebacks on stderr.",
    ),
]
OnlyShowErrorsOpt = Annotated[
    bool,
    typer.Option("--only-show-errors", envvar="AZRDP_ONLY_SHOW_ERRORS", help="No warnings or progress."),
]
NoColorOpt = Annotated[
    bool,
    typer.Option("--no-color", envvar=["NO_COLOR", "AZURE_CORE_NO_COLOR"], help="Plain output, no colour."),
]

SubscriptionOpt = Annotated[
    str | None,
    typer.Option(
        "--subscription",
        envvar="AZURE_SUBSCRIPTION_ID",
        help="Subscription name or ID. Default: the one in --ids, then the az CLI default.",
    ),
]
CloudOpt = Annotated[
    Cloud | None,
    typer.Option("--cloud", envvar=["AZRDP_CLOUD", "AZURE_CLOUD"], help="Azure cloud. Default: AzureCloud."),
]
ResourceGroupOpt = Annotated[
    str | None,
    typer.Option(
        "--resource-group",
        "-g",
        envvar=["AZRDP_DEFAULTS_GROUP", "AZURE_DEFAULTS_GROUP"],
        help="Resource group of the VM(s).",
    ),
]
NameOpt = Annotated[str | None, typer.Option("--name", "-n", help="VM name.")]
IdsOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--ids",
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
