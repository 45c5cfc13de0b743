"""Result document -> json / jsonc / table / tsv / yaml / none, with JMESPath --query applied first.

Without -o the human view is shown on a terminal and json when piped. Only the result goes to
stdout.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from azrdp.cli.params import OutputFormat
from azrdp.cli.terminal import Terminal, printable, printable_doc
from azrdp.errors import UsageError
from azrdp.query import apply_query

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


_C1 = re.compile(r"[\x7f-\x9f]")


def _escape_c1(text: str) -> str:
    """JSON escapes C0 controls itself; DEL and C1 (which some terminals obey) get \\u escapes too."""
    return _C1.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


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
        return _escape_c1(json.dumps(data, indent=2, ensure_ascii=False)) + "\n"
    if output is OutputFormat.yaml:
        try:
            import yaml
        except ImportError:
            raise UsageError(
                "Output format yaml needs PyYAML.", fix="pip install 'azrdp[yaml]', or use -o json."
            ) from None
        return str(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    rows = table_rows(doc) if (table_rows and not query) else generic_rows(data)
    return _table_text(rows) if output is OutputFormat.table else _tsv_text(rows)


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
