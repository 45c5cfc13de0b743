"""`azrdp checks list` and `azrdp checks show ID`: the catalogue of checks, repairs and probe findings.

Built from the registries at run time (azrdp.catalog), never from a hand-kept copy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Annotated, Any

import typer

from azrdp.cli.params import NoColorOpt, OutputOpt, QueryOpt
from azrdp.cli.terminal import Terminal, handle_errors

if TYPE_CHECKING:
    from rich.console import Console

KINDS = ("check", "repair", "probeFinding")

checks_app = typer.Typer(
    name="checks",
    help="The catalogue of checks, repairs and probe findings: what each reads or changes, and its RBAC.",
    no_args_is_help=True,
)


def _items(doc: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [*doc["checks"], *doc["repairs"], *doc["probeFindings"]]


def _rows(doc: Mapping[str, Any]) -> Sequence[Mapping[str, Any]]:
    rows = []
    for item in _items(doc):
        rows.append(
            {
                "Id": item["id"],
                "Kind": item["kind"],
                "Severity": item.get("severity") or item.get("risk", ""),
                "Source": item.get("source", ""),
                "Writes": "yes" if item.get("writes") else "no",
                "Rbac": " ".join(item.get("rbac", ())),
                "FixedBy": " ".join(item.get("fixedBy", ())) or " ".join(item.get("fixes", ())),
            }
        )
    return rows


def _list_human(doc: Mapping[str, Any], console: Console) -> None:
    from rich.table import Table

    table = Table(title="azrdp catalogue", title_justify="left", show_lines=False)
    for column in ("Id", "Kind", "Severity", "Source", "What it reads / changes", "RBAC", "Fixes / fixed by"):
        table.add_column(column, overflow="fold")
    for item in _items(doc):
        table.add_row(
            item["id"],
            item["kind"],
            item.get("severity") or item.get("risk", ""),
            item.get("source", ""),
            item.get("reads") or item.get("changes") or "; ".join(item.get("causes", ())),
            "\n".join(item.get("rbac", ())),
            ", ".join(item.get("fixedBy") or item.get("fixes") or ()),
        )
    console.print(table)
    missing = [name for name, present in doc["registries"].items() if not present]
    if missing:
        console.print(f"Not written yet (listed as empty): {', '.join(missing)}.", style="dim")


def _show_human(doc: Mapping[str, Any], console: Console) -> None:
    from rich.table import Table
    from rich.text import Text

    item = doc["item"]
    console.print(Text.assemble((item["id"], "bold cyan"), f"  {item['title']}"))
    grid = Table.grid(padding=(0, 2))
    grid.add_column(no_wrap=True, style="bold")
    grid.add_column(overflow="fold")
    labels = {
        "kind": "kind",
        "severity": "severity",
        "risk": "risk",
        "source": "source",
        "reads": "reads",
        "changes": "changes",
        "backup": "backup",
        "undo": "undo",
        "rbac": "RBAC",
        "writes": "writes",
        "fixes": "fixes",
        "fixedBy": "fixed by",
        "causes": "likely causes",
        "confirm": "confirm with",
        "docsAnchor": "docs",
    }
    for key, label in labels.items():
        if key not in item:
            continue
        value = item[key]
        if isinstance(value, list):
            text = "\n".join(value) if value else "(none)"
        elif isinstance(value, bool):
            text = "yes" if value else "no"
        else:
            text = str(value)
        grid.add_row(label, Text(text))
    console.print(grid)


def _catalog_doc() -> dict[str, Any]:
    from azrdp.catalog import build_catalog, catalog_doc

    return catalog_doc(build_catalog())


@checks_app.command("list")
@handle_errors
def list_command(
    kind: Annotated[
        str | None,
        typer.Option("--kind", help="Only this kind: check, repair or probeFinding.", show_default=False),
    ] = None,
    source: Annotated[
        str | None,
        typer.Option(
            "--source", help="Only checks with this source: controlPlane, networkWatcher, guest or probe."
        ),
    ] = None,
    output: OutputOpt = None,
    query: QueryOpt = None,
    no_color: NoColorOpt = False,
) -> None:
    """List every check, repair and probe finding with its severity, source, reads/changes and RBAC."""
    from azrdp.cli.render import emit
    from azrdp.errors import UsageError

    doc = _catalog_doc()
    if kind is not None:
        if kind not in KINDS:
            raise UsageError(f"Unknown --kind '{kind}'.", fix=f"Use one of: {', '.join(KINDS)}.")
        for key, item_kind in (("checks", "check"), ("repairs", "repair"), ("probeFindings", "probeFinding")):
            if item_kind != kind:
                doc[key] = []
    if source is not None:
        sources = ("controlPlane", "networkWatcher", "guest", "probe")
        if source not in sources:
            raise UsageError(f"Unknown --source '{source}'.", fix=f"Use one of: {', '.join(sources)}.")
        doc["checks"] = [c for c in doc["checks"] if c["source"] == source]
        doc["repairs"] = []
        if source != "probe":
            doc["probeFindings"] = []
    doc["summary"] = {key: len(doc[key]) for key in ("checks", "repairs", "probeFindings")}
    emit(doc, Terminal(no_color=no_color), output, query, human=_list_human, table_rows=_rows)


@checks_app.command("show")
@handle_errors
def show_command(
    item_id: Annotated[
        str, typer.Argument(metavar="ID", help="A check, repair or probe finding id.", show_default=False)
    ],
    output: OutputOpt = None,
    query: QueryOpt = None,
    no_color: NoColorOpt = False,
) -> None:
    """Show one check, repair or probe finding: what it reads or changes, its RBAC and what fixes it."""
    from azrdp.cli.render import emit
    from azrdp.errors import UsageError

    doc = _catalog_doc()
    matches = [item for item in _items(doc) if item["id"] == item_id.strip()]
    if not matches:
        raise UsageError(
            f"No check, repair or probe finding has the id '{item_id}'.",
            fix="Run `azrdp checks list` for the ids.",
        )
    result = {"schemaVersion": doc["schemaVersion"], "item": matches[0]}
    emit(
        result,
        Terminal(no_color=no_color),
        output,
        query,
        human=_show_human,
        table_rows=lambda d: [d["item"]],
    )


def register(app: typer.Typer) -> None:
    app.add_typer(checks_app)
