"""A commit of this repository as files, for benchmarks that run the code before a change beside it."""

from __future__ import annotations

import os
import subprocess

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def checkout(ref: str, into: str) -> str | None:
    """`ref`'s azrdp package extracted under `into` (None when git cannot provide it)."""
    try:
        command = ["git", "-C", ROOT, "archive", ref, "azrdp"]
        archive = subprocess.run(command, capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", into], input=archive.stdout, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return into
