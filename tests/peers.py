"""Real third-party programs some tests run against, and what happens where one is missing.

Tests marked `xrdp` need Debian's xrdp on PATH; tests marked `azcli` need the official Azure CLI
provisioned by tests/azcli/provision.py (or AZRDP_TEST_AZ naming an az executable). Where a peer is
missing, its tests are deselected and one summary line names them with the command that adds the
peer. With AZRDP_REQUIRE_PEERS=1 (set by .ci/run) a missing peer fails the run instead, so CI
always runs them against the real programs.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REQUIRE = "AZRDP_REQUIRE_PEERS"


@dataclass(frozen=True)
class Peer:
    marker: str
    found: str | None  # the executable, or None when missing
    missing: str  # why it is missing
    add: str  # the command that adds it


def _xrdp() -> Peer:
    binary = shutil.which("xrdp")
    ready = binary if binary and Path("/etc/xrdp/xrdp.ini").is_file() else None
    return Peer(
        "xrdp",
        ready,
        "xrdp is not on PATH" if not binary else "/etc/xrdp/xrdp.ini is missing",
        "apt-get install -y --no-install-recommends xrdp openssl (as root; /usr/sbin on PATH)",
    )


def _azcli() -> Peer:
    sys.path.insert(0, str(Path(__file__).parent / "azcli"))
    try:
        from provision import installed_az
    finally:
        sys.path.pop(0)
    explicit = os.environ.get("AZRDP_TEST_AZ", "").strip()
    found = explicit if explicit and Path(explicit).is_file() else installed_az()
    return Peer(
        "azcli",
        str(found) if found else None,
        "the official Azure CLI is not provisioned",
        "python tests/azcli/provision.py (azure-cli from PyPI into ~/.cache/azrdp-ci, about 30 s)",
    )


# Read once at configure time, before any test replaces HOME or clears AZRDP_* variables.
PEERS: dict[str, Peer] = {}
_NOT_RUN = pytest.StashKey[dict[str, int]]()


def detect(config: pytest.Config) -> None:
    PEERS.clear()
    PEERS.update({p.marker: p for p in (_xrdp(), _azcli())})
    config.stash[_NOT_RUN] = {}
    missing = _missing()
    if missing and os.environ.get(REQUIRE) == "1":
        # Before any collection (and before xdist starts its workers): CI never runs without them.
        raise pytest.UsageError(
            f"{REQUIRE}=1, but " + "; ".join(f"{p.missing} (add it with: {p.add})" for p in missing.values())
        )


def executable(marker: str) -> str:
    """The peer's executable; a test that runs without it fails with the command that adds it."""
    peer = PEERS[marker]
    if peer.found is None:
        pytest.fail(f"{peer.missing}; add it with: {peer.add}", pytrace=False)
    return peer.found


def _missing() -> dict[str, Peer]:
    return {m: p for m, p in PEERS.items() if p.found is None}


def deselect_missing(config: pytest.Config, items: list[pytest.Item]) -> None:
    missing = _missing()
    if not missing:
        return
    keep: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    counts: dict[str, int] = {}
    for item in items:
        lacking = [m for m in missing if item.get_closest_marker(m) is not None]
        for m in lacking:
            counts[m] = counts.get(m, 0) + 1
        (dropped if lacking else keep).append(item)
    if not dropped:
        return
    config.hook.pytest_deselected(items=dropped)
    items[:] = keep
    config.stash[_NOT_RUN] = counts
    worker_output = getattr(config, "workeroutput", None)  # an xdist worker reports to the controller
    if worker_output is not None:
        worker_output["azrdpNotRun"] = counts


def merge_worker_counts(config: pytest.Config, counts: dict[str, int]) -> None:
    """Every xdist worker collects (and deselects) the same tests: keep the largest count."""
    known = config.stash.setdefault(_NOT_RUN, {})
    for marker, count in counts.items():
        known[marker] = max(known.get(marker, 0), count)


def summary(config: pytest.Config) -> str:
    """The one line that says what was not run here and how to add it ('' when everything ran)."""
    missing = _missing()
    if not missing or os.environ.get(REQUIRE) == "1":
        return ""
    counts = config.stash.get(_NOT_RUN, {})
    parts = []
    for marker, peer in missing.items():
        count = f"{counts[marker]} " if marker in counts else ""
        parts.append(f"{count}tests marked {marker} ({peer.missing}; add it: {peer.add})")
    return (
        f"not run here: {'; '.join(parts)}. CI runs them ({REQUIRE}=1 turns a missing peer into a failure)."
    )
