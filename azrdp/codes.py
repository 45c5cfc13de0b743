"""RDP error-code knowledge base behind `azrdp explain`.

The tables live in `azrdp/data/rdp_codes.json`: the client disconnect reasons, the extended
disconnect reasons and the server's Set Error Info codes, each entry with the public source that
defines it, plus the likely causes on an Azure Windows VM and the azrdp commands that confirm them.
A code no authoritative table defines is reported as unknown; nothing here guesses.

Pure and cheap: stdlib only (no azure.*, no typer or rich), so `azrdp explain` answers fast.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from azrdp.errors import UsageError
from azrdp.model import SCHEMA_VERSION, to_doc

TABLE_ORDER = ("disconnectReason", "extendedDisconnectReason", "errorInfo")
MAX_CODE = 0xFFFFFFFF

_HEX_PREFIXED = re.compile(r"^0x([0-9a-f]+)$")
_HEX_SUFFIXED = re.compile(r"^([0-9a-f]+)h$")
_DECIMAL = re.compile(r"^[0-9]+$")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$", re.IGNORECASE)


@dataclasses.dataclass(frozen=True)
class SourceRef:
    title: str
    url: str


@dataclasses.dataclass(frozen=True)
class Confirmation:
    command: str
    shows: str
    checks: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Cause:
    id: str
    cause: str
    confirm: tuple[Confirmation, ...]


@dataclasses.dataclass(frozen=True)
class Entry:
    """One table's answer for a value: an exact entry, a documented range, or an equivalent code."""

    table: str
    table_title: str
    match: str  # exact | range | equivalent
    name: str
    value: int
    hex: str
    layer: str
    meaning: str
    note: str | None
    sources: tuple[SourceRef, ...]
    cause_ids: tuple[str, ...] = dataclasses.field(default=(), metadata={"internal": True})


@dataclasses.dataclass(frozen=True)
class Note:
    kind: str  # inference | community | hint
    text: str
    sources: tuple[SourceRef, ...] = ()


@dataclasses.dataclass(frozen=True)
class CodeAnswer:
    input: str
    value: int
    hex: str
    status: str  # documented | range | undocumented | unknown
    answered_by: tuple[str, ...]
    name: str | None
    layer: str | None
    meaning: str | None
    entries: tuple[Entry, ...]
    notes: tuple[Note, ...]
    cause_ids: tuple[str, ...] = dataclasses.field(default=(), metadata={"internal": True})

    @property
    def documented(self) -> bool:
        return self.status in ("documented", "range")


@dataclasses.dataclass(frozen=True)
class Pair:
    disconnect_reason: str
    extended: str
    summary: str
    inference: bool
    note: str
    sources: tuple[SourceRef, ...]


@dataclasses.dataclass(frozen=True)
class Explanation:
    code: CodeAnswer
    extended: CodeAnswer | None
    pair: Pair | None
    causes: tuple[Cause, ...]


def hex_code(value: int) -> str:
    return f"0x{value:X}"


@functools.lru_cache(maxsize=1)
def load_data() -> Mapping[str, Any]:
    """The code tables as shipped (package data)."""
    beside = Path(__file__).with_name("data") / "rdp_codes.json"
    if beside.is_file():  # an installed package (importlib.resources would import zipfile first)
        text = beside.read_text(encoding="utf-8")
    else:
        from importlib import resources

        text = resources.files("azrdp").joinpath("data/rdp_codes.json").read_text(encoding="utf-8")
    data: Mapping[str, Any] = json.loads(text)
    return data


def _sources(ids: Sequence[str]) -> tuple[SourceRef, ...]:
    known = load_data()["sources"]
    return tuple(SourceRef(known[i]["title"], known[i]["url"]) for i in ids)


def _tables() -> dict[str, Mapping[str, Any]]:
    return {t["id"]: t for t in load_data()["tables"]}


def _normalise_name(name: str) -> str:
    return name.replace("_", "").lower()


_PREFIXES = {"disconnectReason": "disconnectreason", "extendedDisconnectReason": "exdiscreason"}


@functools.lru_cache(maxsize=1)
def _name_index() -> dict[str, list[tuple[str, int]]]:
    """Normalised name -> [(table, value)], with full names and names without their prefix."""
    index: dict[str, list[tuple[str, int]]] = {}
    for table in _tables().values():
        for entry in table["entries"]:
            full = _normalise_name(entry["name"])
            keys = {full}
            for prefix in ("disconnectreason", "exdiscreason", "errinfo"):
                if full.startswith(prefix) and len(full) > len(prefix):
                    keys.add(full[len(prefix) :])
            for key in keys:
                index.setdefault(key, []).append((table["id"], entry["value"]))
    return index


def parse_code(text: str) -> tuple[int, str | None]:
    """A code as typed (0x904, 904h, 2308, or a name) -> (value, the table a name belongs to)."""
    raw = text.strip()
    lowered = raw.lower()
    shown = raw if len(raw) <= 40 else f"{raw[:24]}... ({len(raw)} characters)"
    too_large = UsageError(
        f"'{shown}' is larger than any RDP error code.",
        "RDP codes are 32-bit values.",
        fix="Copy the code exactly as the client shows it, e.g. 0x904.",
    )
    value: int | None = None
    for pattern in (_HEX_PREFIXED, _HEX_SUFFIXED):
        match = pattern.match(lowered)
        if match:
            # Counted before converting: Python refuses to convert more than 4300 decimal digits.
            if len(match.group(1).lstrip("0")) > 8:
                raise too_large
            value = int(match.group(1), 16)
            break
    if value is None and _DECIMAL.match(lowered):
        if len(lowered.lstrip("0")) > 10:
            raise too_large
        value = int(lowered, 10)
    if value is not None:
        if value > MAX_CODE:
            raise too_large
        return value, None
    if _NAME.match(raw):
        hits = _name_index().get(_normalise_name(raw), [])
        if len(hits) == 1:
            return hits[0][1], hits[0][0]
        if len(hits) > 1:
            names = ", ".join(_entry_by_value(t, v)["name"] for t, v in hits)
            raise UsageError(
                f"'{raw}' names more than one code ({names}).",
                fix="Use the full name with its prefix, or the number.",
            )
    raise UsageError(
        f"'{shown}' is not an RDP error code.",
        "It is neither a number (0x904, 904h, 2308) nor the name of a known code.",
        fix="Pass the code as the client shows it, e.g. azrdp explain 0x904 --extended 0x7.",
    )


def _entry_by_value(table_id: str, value: int) -> Mapping[str, Any]:
    entry: Mapping[str, Any]
    for entry in _tables()[table_id]["entries"]:
        if entry["value"] == value:
            return entry
    raise KeyError((table_id, value))


def _entry(table: Mapping[str, Any], raw: Mapping[str, Any], match: str, value: int) -> Entry:
    return Entry(
        table=table["id"],
        table_title=table["title"],
        match=match,
        name=raw["name"],
        value=value,
        hex=hex_code(value),
        layer=raw["layer"],
        meaning=raw["meaning"],
        note=raw.get("note") or None,
        sources=_sources(raw["sources"]),
        cause_ids=tuple(raw.get("causes", ())),
    )


def lookup(table_id: str, value: int) -> Entry | None:
    """The table's exact entry for the value, else the documented range holding it, else None."""
    table = _tables()[table_id]
    for raw in table["entries"]:
        if raw["value"] == value:
            return _entry(table, raw, "exact", value)
    for rng in table.get("ranges", ()):
        if rng["start"] <= value <= rng["end"]:
            return _entry(table, rng, "range", value)
    return None


def _undocumented(value: int) -> Mapping[str, Any] | None:
    item: Mapping[str, Any]
    for item in load_data()["undocumented"]:
        if item["value"] == value:
            return item
    return None


def _status(entries: Sequence[Entry], undocumented: bool) -> str:
    if any(e.match == "exact" for e in entries):
        return "documented"
    if undocumented:
        return "undocumented"
    return "range" if entries else "unknown"


def _answer(text: str, value: int, entries: list[Entry], notes: list[Note], causes: list[str]) -> CodeAnswer:
    undocumented = _undocumented(value)
    # The list is of codes shown by clients as disconnect reasons, which that table lacks.
    if undocumented is not None and not any(
        e.match == "exact" and e.table == "disconnectReason" for e in entries
    ):
        note = undocumented["note"] or "Quoted online, but no Microsoft page defines it."
        notes.insert(0, Note("community", note, _sources(undocumented["sources"])))
        causes.extend(undocumented.get("causes", ()))
    status = _status(entries, undocumented is not None)
    exact = [e for e in entries if e.match == "exact"]
    # A range or an equivalence is the headline only when nothing better answers.
    primary = exact[0] if exact else (entries[0] if entries and status == "range" else None)
    if status == "unknown":
        notes.insert(
            0,
            Note(
                "unknown",
                f"No authoritative table defines {hex_code(value)} ({value}); "
                "azrdp does not guess what it means.",
            ),
        )
    for entry in entries:
        causes.extend(entry.cause_ids)
    return CodeAnswer(
        input=text,
        value=value,
        hex=hex_code(value),
        status=status,
        answered_by=tuple(dict.fromkeys(e.table for e in entries)),
        name=primary.name if primary else None,
        layer=primary.layer if primary else None,
        meaning=primary.meaning if primary else None,
        entries=tuple(entries),
        notes=tuple(notes),
        cause_ids=tuple(dict.fromkeys(causes)),
    )


def _hex_reading_hint(text: str, value: int) -> Note | None:
    """Typed digits only: say what the same digits mean read as hex (mstsc shows hex)."""
    digits = text.strip()
    if not _DECIMAL.match(digits):
        return None
    as_hex = int(digits, 16)
    if as_hex == value or as_hex > MAX_CODE:
        return None
    entry = lookup("disconnectReason", as_hex)
    if entry is None or entry.match != "exact":
        return None
    return Note(
        "hint",
        f"Read as hexadecimal, {hex_code(as_hex)} is {entry.name}; the Windows client shows codes in hex. "
        f"Run: azrdp explain {hex_code(as_hex)}",
    )


def explain_code(text: str) -> CodeAnswer:
    """Every table's answer for one code (the table a name belongs to comes first)."""
    value, named_table = parse_code(text)
    order = list(TABLE_ORDER)
    if named_table:
        order.remove(named_table)
        order.insert(0, named_table)
    entries = [e for e in (lookup(t, value) for t in order) if e is not None]
    if named_table:
        entries = [e for e in entries if e.table == named_table or e.match == "exact"]
    notes: list[Note] = []
    if not any(e.match == "exact" for e in entries):
        hint = _hex_reading_hint(text, value)
        if hint:
            notes.append(hint)
    for index, entry in enumerate(entries):
        if entry.match == "range":
            # A range covers the code only if it was the extended reason: no causes from it.
            entries[index] = dataclasses.replace(entry, cause_ids=())
            notes.append(
                Note(
                    "inference",
                    f"Only if it was the extended reason is {hex_code(value)} ({value}) covered: by the "
                    f"range {entry.name} of the {entry.table_title} table. "
                    "No table defines this exact value.",
                )
            )
    return _answer(text, value, entries, notes, [])


def explain_extended(text: str) -> CodeAnswer:
    """The extended disconnect reason, with the Set Error Info code of the same value if defined."""
    value, named_table = parse_code(text)
    if named_table not in (None, "extendedDisconnectReason", "errorInfo"):
        raise UsageError(
            f"'{text.strip()}' is a client disconnect reason, not an extended reason.",
            fix="Pass it as the main code: azrdp explain " + text.strip(),
        )
    entries: list[Entry] = []
    ext = lookup("extendedDisconnectReason", value)
    if ext is not None:
        entries.append(ext)
    info = lookup("errorInfo", value)
    notes: list[Note] = []
    if info is not None:
        entries.append(dataclasses.replace(info, match="equivalent"))
        if ext is None or ext.match == "range":
            notes.append(
                Note(
                    "inference",
                    f"The extended reason carries the server's Set Error Info code: "
                    f"{hex_code(value)} is {info.name}.",
                )
            )
    answer = _answer(text, value, entries, notes, [])
    if answer.status == "documented" and ext is None:
        # Only the Set Error Info table knows it: still an answer, reached through the equivalence.
        answer = dataclasses.replace(answer, status="range")
    return answer


def _pair(code: CodeAnswer, extended: CodeAnswer | None) -> tuple[Pair, tuple[str, ...]] | None:
    if extended is None:
        return None
    for raw in load_data()["pairs"]:
        if raw["disconnectReason"] == code.value and raw["extended"] == extended.value:
            pair = Pair(
                disconnect_reason=hex_code(code.value),
                extended=hex_code(extended.value),
                summary=raw["summary"],
                inference=bool(raw["inference"]),
                note=raw["note"],
                sources=_sources(raw["sources"]),
            )
            return pair, tuple(raw["causes"])
    return None


def causes_by_id(ids: Sequence[str]) -> tuple[Cause, ...]:
    known = load_data()["causes"]
    return tuple(
        Cause(
            id=i,
            cause=known[i]["cause"],
            confirm=tuple(
                Confirmation(c["command"], c["shows"], tuple(c["checks"])) for c in known[i]["confirm"]
            ),
        )
        for i in ids
    )


def explain(code: str, extended: str | None = None) -> Explanation:
    """What an RDP error code (and its extended reason) means and what to run to confirm the cause."""
    answer = explain_code(code)
    ext_answer = explain_extended(extended) if extended is not None else None
    pair = _pair(answer, ext_answer)
    if pair is not None:
        cause_ids: tuple[str, ...] = pair[1]
    else:
        ordered = (*(ext_answer.cause_ids if ext_answer else ()), *answer.cause_ids)
        cause_ids = tuple(dict.fromkeys(ordered))
    return Explanation(answer, ext_answer, pair[0] if pair else None, causes_by_id(cause_ids))


def explanation_doc(explanation: Explanation) -> dict[str, Any]:
    """The result document of `azrdp explain` (camelCase, schemaVersion)."""
    doc: dict[str, Any] = {"schemaVersion": SCHEMA_VERSION}
    doc.update(to_doc(explanation))
    doc["code"]["documented"] = explanation.code.documented
    if explanation.extended is not None:
        doc["extended"]["documented"] = explanation.extended.documented
    return doc


def all_entries() -> list[tuple[Mapping[str, Any], Mapping[str, Any]]]:
    """(table, raw entry) for every defined code, tables in their usual order (for the docs)."""
    tables = _tables()
    return [(tables[t], raw) for t in TABLE_ORDER for raw in tables[t]["entries"]]
