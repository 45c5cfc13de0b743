"""Orchestration: gather facts, run checks, build the result document.

Engines emit progress events to an observer callback and return data; they import neither
typer/rich nor azure.* at module level (the Azure gateway is imported inside functions), so the
CLI, the runbook and the Python API share them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Progress:
    """A progress event: `kind` is start | listed | vm | done."""

    kind: str
    message: str
    done: int = 0
    total: int = 0


Observer = Callable[[Progress], None]


def ignore(_: Progress) -> None:
    """The default observer."""


__all__ = ["Observer", "Progress", "ignore"]
