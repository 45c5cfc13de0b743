"""The per-user cache directory (boot diagnostics screenshots live there).

`AZRDP_CACHE_DIR`, else the platform's per-user cache location: `%LOCALAPPDATA%\\azrdp\\Cache` on
Windows, `~/Library/Caches/azrdp` on macOS, `$XDG_CACHE_HOME/azrdp` (default `~/.cache/azrdp`)
elsewhere, as the XDG Base Directory specification says.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def cache_dir() -> Path:
    explicit = os.environ.get("AZRDP_CACHE_DIR", "").strip()
    if explicit:
        return Path(explicit).expanduser()
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / "azrdp" / "Cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "azrdp"
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    # The spec: a relative XDG_CACHE_HOME is invalid and must be ignored.
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return base / "azrdp"
