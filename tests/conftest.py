"""Test isolation shared by every test, and the tests whose peers this machine lacks.

* Every AZRDP_*/AZURE_*/identity variable is cleared; HOME and AZURE_CONFIG_DIR point at a temp
  dir, so nothing reads the real ~/.azure.
* Managed identity is pointed at a closed loopback port, so no credential built in a test can ever
  probe the instance metadata address.
* A socket guard refuses any connection that is not loopback or a Unix socket.
* Peers: tests marked `xrdp` need Debian's xrdp on PATH, tests marked `azcli` the official Azure
  CLI provisioned by tests/azcli/provision.py. Where one is missing its tests are deselected and
  one summary line says so with the command that adds it; with AZRDP_REQUIRE_PEERS=1 (.ci/run
  sets it) a missing peer fails the run instead.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import peers
import pytest

pytest_plugins = ["fixtures_emulator"]

_CLEARED_PREFIXES = ("AZRDP_", "AZURE_", "IDENTITY_", "MSI_", "IMDS_")
_CLEARED_NAMES = (
    "NO_COLOR",
    "FORCE_COLOR",
    "CI",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "TERM",
    "COLUMNS",
)
# Discard port on loopback: nothing listens, the connection is refused at once.
CLOSED_LOOPBACK = "http://127.0.0.1:9"
# Every non-loopback address a test tried to reach (the guard refused it); a test asserts on it.
REFUSED_ADDRESSES: list[Any] = []


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    for name in list(os.environ):
        if name.startswith(_CLEARED_PREFIXES) or name in _CLEARED_NAMES:
            monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    (home / ".azure").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("AZURE_CONFIG_DIR", str(home / ".azure"))
    monkeypatch.setenv("AZRDP_CONFIG_DIR", str(home / ".config" / "azrdp"))
    monkeypatch.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", CLOSED_LOOPBACK)
    monkeypatch.setenv("TERM", "dumb")
    _fresh_process_state()
    yield home


def _fresh_process_state() -> None:
    """Each test's emulator is a new ARM: azrdp's request budget starts full again (ARM's buckets
    are new), and Run Command durations seen in other tests do not steer this one's polling."""
    import sys

    budget = sys.modules.get("azrdp.azure.budget")
    if budget is not None:
        budget.reset()
    runcommand = sys.modules.get("azrdp.azure.runcommand")
    if runcommand is not None:
        runcommand.DURATIONS.clear()


@pytest.fixture
def refused_addresses() -> list[Any]:
    """The live list of non-loopback addresses tests tried to reach (the guard refused them)."""
    return REFUSED_ADDRESSES


def _allowed(address: Any) -> bool:
    if not isinstance(address, tuple):
        return True  # AF_UNIX paths
    host = address[0]
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True, scope="session")
def loopback_only() -> Iterator[None]:
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def guarded_connect(self: socket.socket, address: Any) -> None:
        if not _allowed(address):
            REFUSED_ADDRESSES.append(address)
            raise OSError(f"test socket guard: refusing to connect to {address!r} (loopback only)")
        real_connect(self, address)

    def guarded_connect_ex(self: socket.socket, address: Any) -> int:
        if not _allowed(address):
            REFUSED_ADDRESSES.append(address)
            raise OSError(f"test socket guard: refusing to connect to {address!r} (loopback only)")
        return real_connect_ex(self, address)

    socket.socket.connect = guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = guarded_connect_ex  # type: ignore[method-assign]
    try:
        yield
    finally:
        socket.socket.connect = real_connect  # type: ignore[method-assign]
        socket.socket.connect_ex = real_connect_ex  # type: ignore[method-assign]


# --- peers: real third-party programs some tests run against (tests/peers.py) ------------------


def pytest_configure(config: pytest.Config) -> None:
    peers.detect(config)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    peers.deselect_missing(config, items)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """xdist: a worker's count of tests it could not run, for the controller's summary line."""
    counts = getattr(node, "workeroutput", {}).get("azrdpNotRun")
    if counts:
        peers.merge_worker_counts(node.config, counts)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    line = peers.summary(config)
    if line:
        terminalreporter.write_line(line, yellow=True)
