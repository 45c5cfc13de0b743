"""mkdocs hook: generate the reference parts of the site from the code at build time.

A page holds a marker comment such as `<!-- azrdp:commands -->`; the hook replaces it with
Markdown built from the live CLI (typer), the check / repair / probe-finding registries
(azrdp.catalog) and the error-code tables (azrdp.codes). Nothing generated is committed, so the
docs cannot drift from the code.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

MARKER = re.compile(r"<!--\s*azrdp:([a-z-]+)\s*-->")


def _cell(text: str) -> str:
    # Not for code spans: inside backticks Python-Markdown keeps pipes and would show the backslash.
    return " ".join(str(text).split()).replace("|", "\\|")


def _code(text: str) -> str:
    return f"`{text}`" if text else ""


# --- command reference ---------------------------------------------------------------------------


def iter_commands() -> Iterator[tuple[list[str], Any, Any]]:
    """(path, command, context) for every leaf command of the azrdp CLI, in help order."""
    import typer

    from azrdp.cli.app import app

    root = typer.main.get_command(app)
    root_ctx = root.make_context("azrdp", [], resilient_parsing=True)

    def walk(group: Any, ctx: Any, path: list[str]) -> Iterator[tuple[list[str], Any, Any]]:
        for name in group.list_commands(ctx):
            command = group.get_command(ctx, name)
            if command is None or command.hidden:
                continue
            sub_ctx = command.make_context(name, [], parent=ctx, resilient_parsing=True)
            if hasattr(command, "commands"):
                yield from walk(command, sub_ctx, [*path, name])
            else:
                yield [*path, name], command, sub_ctx

    yield from walk(root, root_ctx, [])


def command_anchor(path: Sequence[str]) -> str:
    return "azrdp-" + "-".join(path)


def _help_text(command: Any) -> str:
    return (command.help or "").strip()


def commands_markdown() -> str:
    lines: list[str] = []
    commands = list(iter_commands())
    lines.append("| Command | Summary |")
    lines.append("|---|---|")
    for path, command, _ in commands:
        summary = _help_text(command).split("\n\n")[0]
        lines.append(f"| [`azrdp {' '.join(path)}`](#{command_anchor(path)}) | {_cell(summary)} |")
    lines.append("")
    for path, command, ctx in commands:
        lines.append(f"## azrdp {' '.join(path)} {{#{command_anchor(path)}}}")
        lines.append("")
        usage = command.get_usage(ctx).replace("Usage: ", "", 1).strip()
        lines.append("```text")
        lines.append(usage)
        lines.append("```")
        lines.append("")
        help_text = _help_text(command)
        if help_text:
            for para in help_text.split("\n\n"):
                lines.append(" ".join(para.split()))
                lines.append("")
        rows = []
        for param in command.params:
            if param.hidden:
                continue
            record = param.get_help_record(ctx)
            if record is None:
                continue
            flags, text = record
            kind = "argument" if param.param_type_name == "argument" else "option"
            rows.append(f"| `{' '.join(flags.split())}` | {kind} | {_cell(text)} |")
        if rows:
            lines.append("| Parameter | Kind | Description |")
            lines.append("|---|---|---|")
            lines.extend(rows)
            lines.append("")
        if command.epilog:
            lines.append(_cell(command.epilog))
            lines.append("")
    return "\n".join(lines)


# --- checks, repairs, probe findings -------------------------------------------------------------


def _anchor_of(docs_anchor: str) -> str:
    return docs_anchor.split("#", 1)[1]


def checks_markdown() -> str:
    from azrdp.catalog import build_catalog

    catalog = build_catalog()
    lines: list[str] = []
    order = ["controlPlane", "networkWatcher", "guest", "probe"]
    sources = sorted(
        {c.source for c in catalog.checks}, key=lambda s: (order.index(s) if s in order else 9, s)
    )
    lines.append(
        f"{len(catalog.checks)} checks, {len(catalog.probe_findings)} probe findings and "
        f"{len(catalog.repairs)} [repairs](repairs.md), read from the registries when this page was built."
    )
    lines.append("")
    missing = [name for name, present in catalog.registries.items() if not present]
    if missing:
        lines.append(
            f'!!! note "Not written yet"\n    Registries not present in this build: {", ".join(missing)}.'
        )
        lines.append("")
    if catalog.checks:
        lines.append("| Id | Severity | Source | Reads | Fixed by |")
        lines.append("|---|---|---|---|---|")
        for c in catalog.checks:
            fixed = ", ".join(f"[`{r}`](repairs.md#{r})" for r in c.fixed_by) or "—"
            link = f"[`{c.id}`](#{_anchor_of(c.docs_anchor)})"
            lines.append(f"| {link} | {c.severity} | {c.source} | {_cell(c.reads)} | {fixed} |")
        lines.append("")
    for source in sources:
        titles = {
            "controlPlane": "Control-plane checks",
            "networkWatcher": "Network Watcher checks",
            "guest": "In-guest checks",
        }
        title = titles.get(source, f"{source} checks")
        lines.append(f"## {title}")
        lines.append("")
        for c in (c for c in catalog.checks if c.source == source):
            lines.append(f"### {c.id} {{#{_anchor_of(c.docs_anchor)}}}")
            lines.append("")
            lines.append(f"**{_cell(c.title)}**")
            lines.append("")
            lines.append(f"- Severity: {c.severity}")
            lines.append(f"- Source: {c.source}")
            lines.append(f"- Reads: {_cell(c.reads)}")
            lines.append("- Changes: nothing (checks only read)")
            lines.append(f"- RBAC: {', '.join(_code(a) for a in c.rbac) or 'none'}")
            fixed = ", ".join(f"[`{r}`](repairs.md#{r})" for r in c.fixed_by)
            lines.append(f"- Fixed by: {fixed or 'no automatic repair; the finding says what to do'}")
            lines.append("")
    if catalog.probe_findings:
        lines.append("## Probe findings")
        lines.append("")
        lines.append(
            "What [`azrdp probe`](probe.md) can report. The probe reads only the network; it needs no RBAC."
        )
        lines.append("")
        for p in catalog.probe_findings:
            lines.append(f"### {p.id} {{#{_anchor_of(p.docs_anchor)}}}")
            lines.append("")
            lines.append(f"**{_cell(p.title)}** ({p.severity})")
            lines.append("")
            if p.causes:
                lines.append("Likely causes on an Azure Windows VM:")
                lines.append("")
                lines.extend(f"- {_cell(cause)}" for cause in p.causes)
                lines.append("")
            if p.confirm:
                lines.append("Confirm with: " + ", ".join(_code(c) for c in p.confirm))
                lines.append("")
            if p.recommendation:
                lines.append(_cell(p.recommendation))
                lines.append("")
    return "\n".join(lines)


def repairs_markdown() -> str:
    from azrdp.catalog import build_catalog

    catalog = build_catalog()
    if not catalog.registries["repairs"]:
        return '!!! note "Not written yet"\n    The repairs registry is not present in this build.\n'
    lines = [f"{len(catalog.repairs)} repairs, read from the registry when this page was built.", ""]
    lines.append("| Id | Risk | Fixes | RBAC |")
    lines.append("|---|---|---|---|")
    for r in catalog.repairs:
        fixes = ", ".join(f"[`{c}`](checks.md#{c})" if catalog.find(c) else _code(c) for c in r.fixes)
        anchor = _anchor_of(r.docs_anchor)
        lines.append(
            f"| [`{r.id}`](#{anchor}) | {r.risk} | {fixes} | {'<br>'.join(_code(a) for a in r.rbac)} |"
        )
    lines.append("")
    for r in catalog.repairs:
        lines.append(f"## {r.id} {{#{_anchor_of(r.docs_anchor)}}}")
        lines.append("")
        lines.append(f"**{_cell(r.title)}**")
        lines.append("")
        fixes = ", ".join(f"[`{c}`](checks.md#{c})" if catalog.find(c) else _code(c) for c in r.fixes)
        lines.append(f"- Fixes: {fixes or '—'}")
        lines.append(f"- Risk: {r.risk}")
        lines.append(f"- Changes: {_cell(r.changes)}")
        lines.append(f"- Backup: {_cell(r.backup)}")
        lines.append(f"- Undo: {_cell(r.undo)}")
        lines.append(f"- RBAC: {', '.join(_code(a) for a in r.rbac) or 'none'}")
        lines.append("")
    return "\n".join(lines)


def repairs_safety_markdown() -> str:
    from azrdp.catalog import build_catalog

    catalog = build_catalog()
    if not catalog.registries["repairs"]:
        return '!!! note "Not written yet"\n    The repairs registry is not present in this build.\n'
    lines = ["| Repair | Risk | Changes | Backup | Undo |", "|---|---|---|---|---|"]
    for r in catalog.repairs:
        lines.append(
            f"| [`{r.id}`](repairs.md#{_anchor_of(r.docs_anchor)}) | {r.risk} | {_cell(r.changes)} | "
            f"{_cell(r.backup)} | {_cell(r.undo)} |"
        )
    return "\n".join(lines)


# --- in-guest scripts ----------------------------------------------------------------------------


def script_sizes_markdown() -> str:
    """The guest scripts: lines, bytes as packaged and as sent (compacted), against azrdp's ceiling."""
    from azrdp.guest import scripts

    def kib(size: int) -> str:
        return f"{size:,} bytes"

    lines = ["| Script | Lines | Source | Sent |", "|---|---|---|---|"]
    for label, text in (
        ("collect (`collector.ps1`)", scripts.collector_text()),
        ("execute, records, history (`collector.ps1` + `executor.ps1`)", scripts.composed_text()),
    ):
        sent = len(scripts.compact(text).encode("ascii"))
        lines.append(f"| {label} | {len(text.splitlines()):,} | {kib(len(text.encode('ascii')))} | {kib(sent)} |")
    lines.append("")
    lines.append(
        f"Measured when this page was built. azrdp refuses to send more than "
        f"{kib(scripts.SCRIPT_LIMIT)} (64 KiB); a test keeps both under {kib(scripts.SCRIPT_BUDGET)}."
    )
    return "\n".join(lines)


def guest_schema_markdown() -> str:
    """The guest wire schema (azrdp/guest/facts.py, envelope.py): every class, key and type."""
    import dataclasses
    import typing

    from azrdp.guest import envelope, facts
    from azrdp.guest.wire import _hints

    def type_name(tp: Any) -> str:
        origin = typing.get_origin(tp)
        args = [a for a in typing.get_args(tp) if a is not type(None) and a is not Ellipsis]
        if origin is tuple:
            return f"list of {type_name(args[0])}"
        if args and origin is not None:
            return type_name(args[0]) + (" or null" if type(None) in typing.get_args(tp) else "")
        if dataclasses.is_dataclass(tp):
            return f"`{tp.__name__}`"
        return {str: "string", int: "integer", bool: "boolean"}.get(tp, "any")

    order: list[type[Any]] = []

    def visit(cls: type[Any]) -> None:
        if cls in order:
            return
        order.append(cls)
        for f in dataclasses.fields(cls):
            for arg in (_hints(cls)[f.name], *typing.get_args(_hints(cls)[f.name])):
                for inner in (arg, *typing.get_args(arg)):
                    if dataclasses.is_dataclass(inner) and isinstance(inner, type):
                        visit(inner)

    visit(envelope.GuestReport)
    lines: list[str] = []
    for cls in order:
        row = " (on the wire an array, in this order)" if getattr(cls, "ROW", False) else ""
        lines.append(f"**`{cls.__name__}`**{row}")
        lines.append("")
        lines.append("| Key | Field | Type |")
        lines.append("|---|---|---|")
        for f in dataclasses.fields(cls):
            lines.append(f"| `{f.metadata['wire']}` | {f.name} | {type_name(_hints(cls)[f.name])} |")
        lines.append("")
    limits = ", ".join(f"{k} {v:,}" for k, v in facts.LIMITS.items())
    lines.append(f"Caps (`facts.LIMITS`, `$Limits` in collector.ps1): {limits}.")
    lines.append("")
    lines.append(f"Trim ladder (`facts.TRIMS`, `$Trims`): {', '.join(f'`{t}`' for t in facts.TRIMS)}.")
    return "\n".join(lines)


# --- RBAC ----------------------------------------------------------------------------------------


def role_definitions() -> list[dict[str, Any]]:
    """Two custom roles holding exactly the actions the registered checks (and repairs) declare."""
    from azrdp.catalog import build_catalog

    catalog = build_catalog()
    check_actions = sorted({a for c in catalog.checks for a in c.rbac}, key=str.lower)
    all_actions = sorted({*check_actions, *(a for r in catalog.repairs for a in r.rbac)}, key=str.lower)
    scope = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/MyGroup"

    def role(name: str, description: str, actions: list[str]) -> dict[str, Any]:
        return {
            "Name": name,
            "IsCustom": True,
            "Description": description,
            "Actions": actions,
            "NotActions": [],
            "DataActions": [],
            "NotDataActions": [],
            "AssignableScopes": [scope],
        }

    return [
        role("azrdp diagnostician", "What azrdp check and diagnose need; no repairs.", check_actions),
        role("azrdp operator", "What azrdp check, diagnose and repair need, and nothing else.", all_actions),
    ]


def rbac_actions_markdown() -> str:
    from azrdp.catalog import build_catalog

    catalog = build_catalog()
    by_checks: dict[str, list[str]] = {}
    by_repairs: dict[str, list[str]] = {}
    for check in catalog.checks:
        for action in check.rbac:
            by_checks.setdefault(action, []).append(
                f"[`{check.id}`](checks.md#{_anchor_of(check.docs_anchor)})"
            )
    for repair in catalog.repairs:
        for action in repair.rbac:
            by_repairs.setdefault(action, []).append(
                f"[`{repair.id}`](repairs.md#{_anchor_of(repair.docs_anchor)})"
            )
    actions = sorted({*by_checks, *by_repairs}, key=str.lower)
    if not actions:
        return "No check or repair in this build declares an RBAC action yet."
    lines = ["| Action | Checks that need it | Repairs that need it |", "|---|---|---|"]
    for action in actions:
        lines.append(
            f"| `{action}` | {', '.join(by_checks.get(action, [])) or '—'} | "
            f"{', '.join(by_repairs.get(action, [])) or '—'} |"
        )
    return "\n".join(lines)


def rbac_role_markdown() -> str:
    parts = []
    for role in role_definitions():
        parts.append(f"**{role['Name']}**: {role['Description']}")
        parts.append("")
        parts.append("```json\n" + json.dumps(role, indent=2) + "\n```")
        parts.append("")
    return "\n".join(parts)


# --- error codes ---------------------------------------------------------------------------------


def error_codes_markdown() -> str:
    from azrdp.codes import load_data

    data = load_data()
    sources: Mapping[str, Mapping[str, str]] = data["sources"]

    def links(ids: Sequence[str]) -> str:
        return ", ".join(f"[{i}]({sources[i]['url']})" for i in ids)

    lines: list[str] = []
    for table in data["tables"]:
        lines.append(f"## {table['title']} {{#{table['id']}}}")
        lines.append("")
        lines.append(table["description"])
        lines.append("")
        lines.append(f"Sources: {links(table['sources'])}.")
        lines.append("")
        lines.append("| Hex | Decimal | Name | Layer | Meaning | Source |")
        lines.append("|---|---|---|---|---|---|")
        for raw in table["entries"]:
            meaning = raw["meaning"] + (f" *{raw['note']}*" if raw.get("note") else "")
            lines.append(
                f"| `0x{raw['value']:X}` | {raw['value']} | `{raw['name']}` | {raw['layer']} | "
                f"{_cell(meaning)} | {links(raw['sources'])} |"
            )
        for rng in table.get("ranges", ()):
            span = f"`0x{rng['start']:X}`–`0x{rng['end']:X}` | {rng['start']}–{rng['end']}"
            meaning = _cell(f"{rng['meaning']} *{rng['note']}*")
            lines.append(
                f"| {span} | `{rng['name']}` | {rng['layer']} | {meaning} | {links(rng['sources'])} |"
            )
        lines.append("")
    lines.append("## Quoted online, defined nowhere {#undocumented}")
    lines.append("")
    lines.append(
        "These appear as client error codes in forums and vendor pages, but no Microsoft table defines them "
        "as disconnect reasons. `azrdp explain` says so and adds only what the public sources below report."
    )
    lines.append("")
    lines.append("| Hex | What is known | Source |")
    lines.append("|---|---|---|")
    for item in data["undocumented"]:
        note = item["note"] or "Nothing beyond the code itself."
        lines.append(f"| `0x{item['value']:X}` | {_cell(note)} | {links(item['sources']) or '—'} |")
    lines.append("")
    lines.append("## Code pairs {#pairs}")
    lines.append("")
    for pair in data["pairs"]:
        kind = " (inference)" if pair["inference"] else ""
        lines.append(f"**`0x{pair['disconnectReason']:X}` with extended `0x{pair['extended']:X}`{kind}.** ")
        lines.append(f"{pair['summary']} {pair['note']} Sources: {links(pair['sources'])}.")
        lines.append("")
    lines.append("## All sources {#sources}")
    lines.append("")
    for key, source in sources.items():
        lines.append(f"- `{key}`: [{source['title']}]({source['url']})")
    lines.append("")
    return "\n".join(lines)


GENERATORS: dict[str, Callable[[], str]] = {
    "commands": commands_markdown,
    "checks": checks_markdown,
    "repairs": repairs_markdown,
    "repairs-safety": repairs_safety_markdown,
    "error-codes": error_codes_markdown,
    "rbac-actions": rbac_actions_markdown,
    "rbac-role": rbac_role_markdown,
    "script-sizes": script_sizes_markdown,
    "guest-schema": guest_schema_markdown,
}


def expand(markdown: str) -> str:
    """Replace every azrdp marker in a page; an unknown marker is a build error."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in GENERATORS:
            raise ValueError(f"unknown docs marker azrdp:{name}; known: {', '.join(GENERATORS)}")
        return GENERATORS[name]()

    return MARKER.sub(replace, markdown)


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    return expand(markdown)
