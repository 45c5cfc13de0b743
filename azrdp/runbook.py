"""Azure Automation entry point: arguments in, one JSON document out.

    python -m azrdp.runbook VM RESOURCE_GROUP SUBSCRIPTION [MODE] [SOURCE_IP] [--port N] [--yes]

MODE is check (default), diagnose, plan (a repair dry run) or repair (needs --yes: a runbook never
prompts). VM `*` means every VM in the group; RESOURCE_GROUP `*` every VM in the subscription.
Automation passes runbook parameters positionally in sys.argv; the same flags work from a shell.

No typer, no rich, no colour, no prompts: this module and what it imports must load in a bare
Automation Python 3.10 sandbox with only the Azure wheels uploaded. The credential is
DefaultAzureCredential, which finds the Automation account's managed identity through
IDENTITY_ENDPOINT / IDENTITY_HEADER (set AZURE_CLIENT_ID for a user-assigned identity).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from azrdp import __version__
from azrdp.errors import AzrdpError, ExitCode, UsageError
from azrdp.model import SCHEMA_VERSION
from azrdp.text import json_text, printable

MODES = ("check", "diagnose", "plan", "repair")
ALL = "*"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"Bad runbook arguments: {message}.", fix=f"Usage: {self.format_usage().strip()}")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="azrdp.runbook", description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("vm", help="VM name, or * for every VM in the group")
    p.add_argument("resource_group", help="resource group, or * for the whole subscription")
    p.add_argument("subscription", help="subscription ID")
    p.add_argument("mode", nargs="?", default="check", choices=MODES)
    p.add_argument("source_ip", nargs="?", default=None, help="the client's public IP (NSG evaluation)")
    p.add_argument("--port", type=int, default=3389, help="RDP port (default 3389)")
    p.add_argument("--yes", action="store_true", help="apply repairs (mode repair)")
    p.add_argument("--query", default=None, help="JMESPath query applied to the result")
    p.add_argument("--version", action="version", version=f"azrdp {__version__}")
    return p


def _targets(args: argparse.Namespace) -> Any:
    from azrdp.targets import parse_targets

    # Only `*` means every VM: an empty parameter (left unset in the job) is refused, never a fleet.
    for label, value, scope in (
        ("VM", args.vm, "group"),
        ("RESOURCE_GROUP", args.resource_group, "subscription"),
    ):
        if not value.strip():
            raise UsageError(
                f"The runbook parameter {label} is empty.",
                "An empty parameter never stands for every VM.",
                fix=f"Pass the name, or * for every VM of the {scope}.",
            )
    vm = None if args.vm == ALL else args.vm
    group = None if args.resource_group == ALL else args.resource_group
    if vm and not group:
        raise UsageError("A VM name needs its resource group.", fix="Pass the group, or * for the VM.")
    return parse_targets(vm=vm, resource_group=group, all_vms=group is None)


def run(argv: Sequence[str]) -> tuple[dict[str, Any], int]:
    """Run one job; returns the result document and the exit code. Raises only AzrdpError."""
    from azrdp.engine.check import CheckOptions, run_check
    from azrdp.query import compile_query
    from azrdp.targets import validate_port, validate_source

    args = _parser().parse_args(list(argv))
    compile_query(args.query)  # before any work: a typo must not cost a repair that already ran
    options = CheckOptions(port=validate_port(args.port), source_ip=validate_source(args.source_ip))
    targets = _targets(args)
    subscription = args.subscription
    if args.mode == "check":
        result: Any = run_check(targets, options, subscription=subscription)
    elif args.mode == "diagnose":
        from azrdp.engine.diagnose import DiagnoseOptions, run_diagnose

        result = run_diagnose(targets, DiagnoseOptions(check=options), subscription=subscription)
    else:
        if args.mode == "repair" and not args.yes:
            raise UsageError(
                "Mode repair changes VMs and a runbook cannot ask for confirmation.",
                fix="Add --yes to apply, or use mode plan to see what would change.",
            )
        from azrdp.engine.repair import RepairOptions, run_repair

        repair_options = RepairOptions(
            port=options.port, source_ip=options.source_ip, dry_run=args.mode == "plan"
        )
        result = run_repair(targets, repair_options, subscription=subscription)
    doc = result.to_doc()
    if args.query:
        from azrdp.query import apply_query

        doc = apply_query(doc, args.query)
    return doc, int(result.exit_code)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the result document on stdout; return the exit code (non-zero fails the job)."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        doc, code = run(argv)
    except AzrdpError as err:
        doc, code = {"schemaVersion": SCHEMA_VERSION, "error": err.to_dict()}, int(err.exit_code)
        print(printable(f"azrdp: {err.message}" + (f" Fix: {err.fix}" if err.fix else "")), file=sys.stderr)
    except KeyboardInterrupt:
        doc, code = {"schemaVersion": SCHEMA_VERSION, "error": {"code": "Interrupted"}}, ExitCode.INTERRUPTED
    except Exception as exc:  # the job must still end with a document and a failing exit code
        message = f"Unexpected {type(exc).__name__}: {' '.join(str(exc).split())}"
        doc, code = {"schemaVersion": SCHEMA_VERSION, "error": {"code": "Unexpected", "message": message}}, 1
        print(printable(f"azrdp: {message}"), file=sys.stderr)
    print(json_text(doc))
    sys.stdout.flush()
    return int(code)


if __name__ == "__main__":
    raise SystemExit(main())
