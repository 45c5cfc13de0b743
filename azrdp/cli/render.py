"""Result document -> json / jsonc / table / tsv / yaml / none, with JMESPath --query applied first.

Without -o the human view is shown on a terminal and json when piped. Only the result goes to
stdout.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from azrdp.cli.params import OutputFormat
from azrdp.cli.terminal import Terminal
from azrdp.errors import UsageError
from azrdp.query import apply_query
from azrdp.text import json_chunks, json_text, printable, printable_doc, unsafe

if TYPE_CHECKING:
    from rich.console import Console

HumanView = Callable[[Mapping[str, Any], "Console"], None]
TableRows = Callable[[Mapping[str, Any]], Sequence[Mapping[str, Any]]]


def _scalar(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return printable(str(value))


def generic_rows(data: Any) -> list[dict[str, Any]]:
    """az's rule for tables: a list of objects is rows of their scalar fields, an object one row."""
    items = data if isinstance(data, list) else [data]
    rows: list[dict[str, Any]] = []
    for item in items:
        if isinstance(item, Mapping):
            rows.append({k: v for k, v in item.items() if not isinstance(v, (dict, list))})
        else:
            rows.append({"Result": item})
    return rows


def _table_text(rows: Sequence[Mapping[str, Any]]) -> str:
    if not rows:
        return ""
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    cells = [[_scalar(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    header = "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=False))
    rule = "  ".join("-" * w for w in widths)
    body = ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=False)).rstrip() for r in cells]
    return "\n".join([header.rstrip(), rule, *body]) + "\n"


def _tsv_text(rows: Sequence[Mapping[str, Any]]) -> str:
    return "".join("\t".join(_scalar(v) for v in row.values()) + "\n" for row in rows)


def format_document(
    doc: Mapping[str, Any],
    output: OutputFormat,
    query: str | None = None,
    table_rows: TableRows | None = None,
) -> str:
    """The text a machine format prints (no ANSI codes), the query applied first."""
    data = apply_query(doc, query)
    if output is OutputFormat.none:
        return ""
    if output in (OutputFormat.json, OutputFormat.jsonc):
        return json_text(data) + "\n"
    if output is OutputFormat.yaml:
        return _yaml_text(data)
    rows = table_rows(doc) if (table_rows and not query) else generic_rows(data)
    return _table_text(rows) if output is OutputFormat.table else _tsv_text(rows)


def _yaml_text(data: Any) -> str:
    """YAML with UTF-8 kept, but a string holding a bidi, zero-width or other invisible character
    written double-quoted with every non-ASCII character escaped (PyYAML would emit those raw)."""
    try:
        import yaml
    except ImportError:
        raise UsageError(
            "Output format yaml needs PyYAML.", fix="pip install 'azrdp[yaml]', or use -o json."
        ) from None

    class Dumper(yaml.SafeDumper):
        def analyze_scalar(self, scalar: str) -> Any:
            analysis = super().analyze_scalar(scalar)
            if unsafe(scalar):
                analysis.allow_flow_plain = analysis.allow_block_plain = False
                analysis.allow_single_quoted = analysis.allow_block = False
            return analysis

        def write_double_quoted(self, text: str, split: bool = True) -> None:
            keep = self.allow_unicode
            self.allow_unicode = keep and not unsafe(text)
            try:
                super().write_double_quoted(text, split)
            finally:
                self.allow_unicode = keep

    return str(yaml.dump(data, Dumper=Dumper, sort_keys=False, allow_unicode=True))


def write_json(data: Any) -> None:
    """Write a (large) document as `-o json` text, chunk by chunk: never the whole text at once."""
    for chunk in json_chunks(data):
        sys.stdout.write(chunk)
    sys.stdout.write("\n")
    sys.stdout.flush()


def emit(
    doc: Mapping[str, Any],
    term: Terminal,
    output: OutputFormat | None,
    query: str | None = None,
    human: HumanView | None = None,
    table_rows: TableRows | None = None,
) -> None:
    """Write the result document to stdout in the chosen format."""
    if output is None:
        if human is not None and term.stdout_is_tty and not query:
            human(printable_doc(doc), term.console("stdout"))
            return
        output = OutputFormat.json
    if output is OutputFormat.jsonc and term.color:
        from rich.json import JSON

        term.console("stdout").print(JSON.from_data(printable_doc(apply_query(doc, query)), indent=2))
        return
    text = format_document(doc, output, query, table_rows)
    if text:
        sys.stdout.write(text)
        sys.stdout.flush()
