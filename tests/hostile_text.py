"""Hostile text and the checks that it stayed inert, shared by the hostile-text tests.

`payloads` draws strings a compromised guest, ARM resource or RDP server could hand azrdp: Rich
markup (`[link=...]`, `[/x]`, styles, `:emoji:`), ANSI/OSC escape sequences, C0/C1 controls,
bidi overrides and isolates, zero-width and tag characters, lone surrogates, format braces, plus
ordinary text. `rendered(view)` runs a view on azrdp's own terminal (a fake TTY, colour on or off,
wide enough not to wrap) and `assert_inert` checks what reached it.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from azrdp.cli.terminal import Terminal
from azrdp.text import printable, unsafe

FRAGMENTS = (
    "[link=https://evil.example/x]Verified by Microsoft[/link]",
    "[/x]",
    "[/]",
    "[bold red]",
    "[red on red]hidden[/]",
    "[blink]",
    ":warning:",
    ":cross_mark:",
    "\x1b]8;;https://evil.example\x1b\\spoof\x1b]8;;\x1b\\",
    "\x1b]52;c;cm0gLXJmIH4=\x07",
    "\x1b]0;owned\x07",
    "\x1b[2J\x1b[H",
    "\x1b[31m",
    "\x9b31m",
    "\x9d0;title\x9c",
    "\x85",
    "\x00",
    "\x08",
    "\r",
    "\x7f",
    "\u202e",
    "\u202d",
    "\u202a",
    "\u2066",
    "\u2067",
    "\u2068",
    "\u2069",
    "\u200e",
    "\u200f",
    "\u061c",
    "\u200b",
    "\u200c",
    "\u200d",
    "\u2060",
    "\ufeff",
    "\u180e",
    "\u00ad",
    "\U000e0041\U000e0042",
    "\U000e007f",
    "\u2028",
    "\u2029",
    "\ud800",
    "\udfff",
    "{task.description}",
    "%s%n",
    "\\",
    "[",
    "]",
)
MARKUP = tuple(f for f in FRAGMENTS if f.startswith(("[", ":")) and len(f) > 1)

_plain = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\t\r\x0b\x0c"), max_size=12
)
payloads = st.lists(st.one_of(st.sampled_from(FRAGMENTS), _plain), min_size=1, max_size=8).map("".join)
long_payloads = st.sampled_from(FRAGMENTS).map(lambda f: (f + "x") * (6000 // (len(f) + 1)))

# Keys whose values azrdp itself decides (enums a view looks up): kept, every other string replaced.
OWN_KEYS = frozenset({"status", "verdict", "match"})
SGR = re.compile(r"\x1b\[[0-9;]*m")  # the colour codes rich itself writes
# ... and, for a live spinner or bar, cursor hide/show, line up, erase line, carriage return.
RICH_OWN = re.compile(r"\x1b\[[0-9;]*m|\x1b\[\?25[lh]|\x1b\[[0-9]*[AK]|\r")


def hostile_doc(doc: Any, payload: str, key: str | None = None) -> Any:
    """The document with every string that is not an azrdp enum replaced by `payload`."""
    if isinstance(doc, str):
        return doc if key in OWN_KEYS else payload
    if isinstance(doc, Mapping):
        return {k: hostile_doc(v, payload, k) for k, v in doc.items()}
    if isinstance(doc, list):
        return [hostile_doc(v, payload, key) for v in doc]
    return doc


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


@contextlib.contextmanager
def _environ(values: Mapping[str, str | None]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    for name, value in values.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    try:
        yield
    finally:
        for name, old in saved.items():
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old


def rendered(view: Callable[[Terminal], None], *, color: bool, width: int = 4000) -> str:
    """What `view(term)` writes to stdout and stderr of a terminal (colour on or off)."""
    out, err = FakeTTY(), FakeTTY()
    env = {"COLUMNS": str(width), "TERM": "xterm-256color", "NO_COLOR": None, "FORCE_COLOR": None}
    with _environ(env), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        assert sys.stdout is out
        view(Terminal(no_color=not color))
    return out.getvalue() + err.getvalue()


def assert_inert(output: str, payload: str | None = None) -> None:
    """No escape sequence but rich's own colour codes, no control or invisible character, and the
    payload shown literally (in its printable form) somewhere."""
    text = RICH_OWN.sub("", output)
    assert "\x1b" not in text, repr(text[max(0, text.find("\x1b") - 40) : text.find("\x1b") + 40])
    bad = sorted({ch for ch in text if (ord(ch) < 32 and ch not in "\n\t") or 0x7F <= ord(ch) <= 0x9F})
    assert bad == [], bad
    hidden = sorted({ch for ch in text if unsafe(ch)})
    assert hidden == [], [hex(ord(ch)) for ch in hidden]
    if payload is not None:
        shown = printable(payload).strip()
        assert shown in text, (shown, text[:2000])


def fuzz_view(doc: Mapping[str, Any], human: Callable[..., None], **emit_kwargs: Any) -> None:
    """Render `human` through emit (as the CLI does) over hostile variants of `doc`."""
    from azrdp.cli.render import emit

    def show(payload: str, color: bool) -> str:
        bad = hostile_doc(doc, payload)
        return rendered(lambda term: emit(bad, term, None, human=human, **emit_kwargs), color=color)

    @settings(max_examples=10, deadline=None)
    @given(payload=payloads, color=st.booleans())
    def short(payload: str, color: bool) -> None:
        assert_inert(show(payload, color), payload)

    @settings(max_examples=2, deadline=None)
    @given(payload=long_payloads)
    def long(payload: str) -> None:
        assert_inert(show(payload, True))

    short()
    long()
    for fragment in MARKUP:  # each markup fragment, alone, is shown as typed
        assert_inert(show(fragment, True), fragment)


def squeeze(text: str) -> str:
    """Text without whitespace and box-drawing characters: a folded table cell reads as one run."""
    return re.sub(r"[\s\u2500-\u257f]", "", SGR.sub("", text))
