"""Foreign text made inert: what another machine wrote, as a terminal or a JSON reader may show it.

Run Command output, ARM names, tags and messages, an RDP server's certificate and NTLM names and
an old journal are other machines' words. Shown raw they could drive the terminal (escape
sequences: retitle the window, write the clipboard with OSC 52, repaint a verdict) or lie to the
eye (bidi overrides that reverse text, zero-width and tag characters that hide it). So:

* control characters (C0 but tab and newline, DEL, C1) become '?';
* bidi controls, zero-width and other invisible format characters, line/paragraph separators and
  lone surrogates are shown escaped, as `\\u202e` (`\\U000e0041` above the BMP), so they are
  visible and cannot reorder or hide what surrounds them;
* JSON keeps every character (a reader gets the same string back) but writes these as \\u
  escapes, never raw.

Markup is the CLI's business (azrdp/cli/terminal.py renders foreign text as plain rich Text); this
module is stdlib only, so the runbook can use it without typer or rich.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

# C0 controls but tab and newline, DEL and C1: what a terminal would act on instead of showing.
_CONTROLS = "\x00-\x08\x0b-\x1f\x7f-\x9f"
# Unicode's format (Cf), line and paragraph separator (Zl, Zp) and surrogate (Cs) characters, as of
# Unicode 15 (tests/security compares this with the running Python's unicodedata), plus invisible
# characters of other categories: the combining grapheme joiner, Hangul and Khmer fillers,
# Mongolian and generic variation selectors.
_INVISIBLE = (
    "\u00ad\u034f\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u115f\u1160\u17b4\u17b5"
    "\u180b-\u180f\u200b-\u200f\u2028-\u202e\u2060-\u206f\u3164\ud800-\udfff\ufe00-\ufe0f\ufeff"
    "\uffa0\ufff9-\ufffb\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3"
    "\U0001d173-\U0001d17a\U000e0000-\U000e007f\U000e0100-\U000e01ef"
)
_UNSAFE = re.compile(f"[{_CONTROLS}{_INVISIBLE}]")
_INVISIBLE_RE = re.compile(f"[{_INVISIBLE}]")
# In JSON text: DEL and C1 (json.dumps leaves them raw with ensure_ascii=False) and the invisibles.
_JSON_UNSAFE = re.compile(f"[\x7f-\x9f{_INVISIBLE}]")


def escaped(char: str) -> str:
    """One character as a visible escape: \\u202e, or \\U000e0041 above the BMP."""
    code = ord(char)
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def _show(match: re.Match[str]) -> str:
    char = match.group()
    return escaped(char) if _INVISIBLE_RE.match(char) else "?"


def unsafe(text: str) -> bool:
    """Whether the text holds a character `printable` would replace or escape."""
    return _UNSAFE.search(text) is not None


def printable(text: str) -> str:
    """Text as the terminal shows it: controls as '?', invisible and bidi characters escaped."""
    return _UNSAFE.sub(_show, text.replace("\r\n", "\n"))


def printable_doc(value: Any) -> Any:
    """A result document with every string made printable (for views and text formats)."""
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, Mapping):
        return {printable_doc(k): printable_doc(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [printable_doc(v) for v in value]
    return value


def _json_escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    code -= 0x10000  # JSON spells characters above the BMP as a UTF-16 surrogate pair
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def json_safe(text: str) -> str:
    """JSON text (from json.dumps, ensure_ascii=False) with DEL, C1 and invisibles as \\u escapes.

    These characters can only occur inside JSON strings, where an escape means the same character.
    """
    return _JSON_UNSAFE.sub(_json_escape, text)


def json_text(data: Any, indent: int | None = 2) -> str:
    """The whole document as JSON text, readable (UTF-8 kept) and inert."""
    return json_safe(json.dumps(data, indent=indent, ensure_ascii=False))


def json_chunks(data: Any, indent: int | None = 2) -> Iterator[str]:
    """The same text as `json_text`, chunk by chunk, for documents too large to hold twice."""
    encoder = json.JSONEncoder(indent=indent, ensure_ascii=False)
    chunks: Iterable[str] = encoder.iterencode(data)
    batch: list[str] = []
    size = 0
    for chunk in chunks:  # the encoder yields tiny pieces: escape them some 64 KB at a time
        batch.append(chunk)
        size += len(chunk)
        if size >= 65536:
            yield json_safe("".join(batch))
            batch, size = [], 0
    if batch:
        yield json_safe("".join(batch))
