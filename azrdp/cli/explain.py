"""`azrdp explain CODE [--extended CODE]`: what an RDP error code means and what to run next.

Imports only the stdlib knowledge base (azrdp.codes), never azure.*, so it answers at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Annotated, Any

import typer

from azrdp.cli.params import NoColorOpt, OutputOpt, QueryOpt
from azrdp.cli.terminal import Terminal, handle_errors

if TYPE_CHECKING:
    from rich.console import Console

_STATUS_TEXT = {
    "documented": "documented",
    "range": "covered by a documented range",
    "undocumented": "NOT DOCUMENTED by any authoritative table",
    "unknown": "UNKNOWN: no authoritative table defines it",
}


def _grid() -> Any:
    from rich.table import Table

    grid = Table.grid(padding=(0, 2))
    grid.add_column(no_wrap=True, style="bold")
    grid.add_column(overflow="fold")
    return grid


def _sources_text(sources: Sequence[Mapping[str, str]]) -> str:
    return "\n".join(f"{s['title']}\n  {s['url']}" for s in sources)


def _code_block(console: Console, label: str, code: Mapping[str, Any]) -> None:
    from rich.text import Text

    head = Text.assemble((f"{label} {code['hex']}", "bold"), f" ({code['value']})")
    if code["name"]:
        head.append(f"  {code['name']}", style="bold cyan")
    console.print(head)
    grid = _grid()
    grid.add_row("  status", Text(_STATUS_TEXT[code["status"]]))
    if code["layer"]:
        grid.add_row("  layer", Text(code["layer"]))
    if code["meaning"]:
        grid.add_row("  meaning", Text(code["meaning"]))
    for entry in code["entries"]:
        how = {"exact": "defines it as", "range": "covers it with", "equivalent": "same value:"}[
            entry["match"]
        ]
        lines = [f"{entry['tableTitle']} {how} {entry['name']}"]
        if entry["meaning"] != code["meaning"]:
            lines.append(entry["meaning"])
        if entry["note"]:
            lines.append(f"Note: {entry['note']}")
        grid.add_row("  table", Text("\n".join(lines)))
        grid.add_row("  source", Text(_sources_text(entry["sources"]), style="dim"))
    for note in code["notes"]:
        grid.add_row(f"  {note['kind']}", Text(note["text"]))
        if note["sources"]:
            grid.add_row("  source", Text(_sources_text(note["sources"]), style="dim"))
    console.print(grid)


def _human(doc: Mapping[str, Any], console: Console) -> None:
    from rich.text import Text

    _code_block(console, "Code", doc["code"])
    if doc["extended"] is not None:
        console.print()
        _code_block(console, "Extended", doc["extended"])
    pair = doc["pair"]
    if pair is not None:
        console.print()
        console.print(Text("Together (inference)" if pair["inference"] else "Together", style="bold"))
        grid = _grid()
        grid.add_row("  reading", Text(pair["summary"]))
        grid.add_row("  note", Text(pair["note"]))
        grid.add_row("  source", Text(_sources_text(pair["sources"]), style="dim"))
        console.print(grid)
    console.print()
    if not doc["causes"]:
        console.print("No likely causes on the VM side are recorded for this code.")
        return
    console.print(Text("Likely causes on an Azure Windows VM, and how to confirm each", style="bold"))
    grid = _grid()
    for number, cause in enumerate(doc["causes"], 1):
        grid.add_row(f"  {number}.", Text(cause["cause"]))
        for confirm in cause["confirm"]:
            line = Text.assemble(("-> ", "dim"), (confirm["command"], "green"), f": {confirm['shows']}")
            if confirm["checks"]:
                line.append(f" (checks: {', '.join(confirm['checks'])})", style="dim")
            grid.add_row("", line)
    console.print(grid)


def _rows(doc: Mapping[str, Any]) -> Sequence[Mapping[str, Any]]:
    rows: list[dict[str, Any]] = []
    for part in ("code", "extended"):
        answer = doc[part]
        if answer is None:
            continue
        if not answer["entries"]:
            rows.append(
                {"Code": answer["hex"], "Status": answer["status"], "Table": "", "Name": "", "Layer": ""}
            )
        for entry in answer["entries"]:
            rows.append(
                {
                    "Code": answer["hex"],
                    "Status": answer["status"],
                    "Table": entry["table"],
                    "Name": entry["name"],
                    "Layer": entry["layer"],
                }
            )
    return rows


def register(app: typer.Typer) -> None:
    @app.command(
        "explain",
        epilog=(
            "Examples: azrdp explain 0x904 --extended 0x7 | azrdp explain 2308 | "
            "azrdp explain disconnectReasonAtClientWinsockFDCLOSE -o json"
        ),
    )
    @handle_errors
    def explain_command(
        code: Annotated[
            str,
            typer.Argument(
                metavar="CODE",
                help="The code as the client shows it: hex (0x904, 904h), decimal (2308) or a name.",
                show_default=False,
            ),
        ],
        extended: Annotated[
            str | None,
            typer.Option(
                "--extended",
                "-e",
                metavar="CODE",
                help="The extended disconnect reason shown beside the code (e.g. 0x7).",
            ),
        ] = None,
        output: OutputOpt = None,
        query: QueryOpt = None,
        no_color: NoColorOpt = False,
    ) -> None:
        """Explain an RDP error code: name, layer, meaning, likely causes and the command that confirms each.

        Knows the client disconnect reasons, the extended disconnect reasons and the server's Set
        Error Info codes, with the public source of each. Codes no authoritative table defines are
        reported as unknown, never guessed. Needs no Azure sign-in.
        """
        from azrdp.cli.render import emit
        from azrdp.codes import explain, explanation_doc

        doc = explanation_doc(explain(code, extended))
        emit(doc, Terminal(no_color=no_color), output, query, human=_human, table_rows=_rows)
