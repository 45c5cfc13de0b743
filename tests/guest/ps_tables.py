"""Read the data tables at the top of collector.ps1 and executor.ps1 (arrays, hashtables of
arrays, hashtables of numbers), so tests can keep them equal to their Python twins."""

from __future__ import annotations

import re
from typing import Any

from azrdp.guest import scripts

_ITEM = re.compile(r"'((?:[^']|'')*)'|(-?\d+)")


def source(name: str) -> str:
    return scripts.collector_text() if name == "collector" else scripts.executor_text()


def _items(text: str) -> list[Any]:
    out: list[Any] = []
    for quoted, number in _ITEM.findall(text):
        out.append(int(number) if number else quoted.replace("''", "'"))
    return out


def array(script: str, name: str) -> list[Any]:
    """`$Name = @('a', 'b')` on one line."""
    match = re.search(rf"^\${name} = @\((.*)\)\s*$", source(script), re.M)
    assert match, f"${name} not found in {script}.ps1"
    return _items(match.group(1))


def scalar(script: str, name: str) -> str:
    match = re.search(rf"^\${name} = (.+?)\s*$", source(script), re.M)
    assert match, f"${name} not found in {script}.ps1"
    return match.group(1).strip("'")


def table(script: str, name: str) -> dict[str, Any]:
    """`$Name = @{` or `[ordered]@{` ... `}` with one `key = value` per line; a value is a quoted
    string, a number, or an array `@(...)` (returned as a list)."""
    text = source(script)
    match = re.search(rf"^\${name} = (?:\[ordered\])?@\{{\n(.*?)^\}}", text, re.M | re.S)
    assert match, f"${name} not found in {script}.ps1"
    out: dict[str, Any] = {}
    for line in match.group(1).splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition(" = ")
        value = value.strip()
        if value.startswith("@("):
            out[key] = _items(value[2:-1])
        elif re.fullmatch(r"-?\d+", value):
            out[key] = int(value)
        else:
            out[key] = value.strip("'")
    return out
