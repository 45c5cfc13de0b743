"""Fixtures for the probe tests: test certificates and a real xrdp server on 127.0.0.1.

xrdp runs in the foreground (`--nodaemon`, `fork=false`) from a config, log and certificates in a
temp dir, on an ephemeral port, and is stopped by its PID. CI installs it (`.ci/run`); when it is
missing (not on PATH) they are deselected by tests/peers.py with one summary line, and CI
(AZRDP_REQUIRE_PEERS=1) fails instead; a test that still reaches `xrdp` fails with the install command.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from rdp_fakes import CertFiles, CertSet, make_cert
from xrdp_runner import Xrdp, free_port, stop, wait_listening, write_xrdp_config, xrdp_binary

UTC = dt.timezone.utc


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> CertSet:
    directory = tmp_path_factory.mktemp("certs")
    now = dt.datetime.now(UTC).replace(microsecond=0)
    return CertSet(
        valid=make_cert(
            directory, "valid", not_before=now - dt.timedelta(days=1), not_after=now + dt.timedelta(days=365)
        ),
        expired=make_cert(
            directory,
            "expired",
            not_before=dt.datetime(2020, 1, 1, tzinfo=UTC),
            not_after=dt.datetime(2021, 1, 1, tzinfo=UTC),
        ),
        not_yet_valid=make_cert(
            directory,
            "future",
            not_before=now + dt.timedelta(days=30),
            not_after=now + dt.timedelta(days=400),
        ),
        named_vm=make_cert(
            directory,
            "vm",
            not_before=now - dt.timedelta(days=1),
            not_after=now + dt.timedelta(days=365),
            common_name="vm",
        ),
    )


def _xrdp_binary() -> str:
    binary = xrdp_binary()
    if binary is None:
        pytest.fail(
            "xrdp is not installed; these tests need the real server. Install it with: "
            "apt-get install -y --no-install-recommends xrdp openssl (.ci/run does this).",
            pytrace=False,
        )
    return binary


@pytest.fixture
def xrdp(tmp_path: Path) -> Iterator[Callable[..., Xrdp]]:
    """Start xrdp with a security_layer (negotiate|tls|rdp), a certificate and optional extra
    [Globals] settings; stopped by PID."""
    binary = _xrdp_binary()
    started: list[tuple[subprocess.Popen[bytes], int]] = []

    def start(security_layer: str, cert: CertFiles, **extra: str) -> Xrdp:
        last_output = ""
        for attempt in range(3):  # the ephemeral port may be taken between probe and bind
            directory = tmp_path / f"xrdp-{security_layer}-{len(started)}-{attempt}"
            directory.mkdir()
            port = free_port()
            config, log = write_xrdp_config(directory, port, security_layer, cert, extra)
            console = directory / "console.txt"
            with console.open("wb") as out:
                proc = subprocess.Popen(
                    [binary, "--nodaemon", "--config", str(config)],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    cwd=directory,
                )
            started.append((proc, port))
            if wait_listening(proc, port, time.monotonic() + 10):
                return Xrdp(port, proc.pid, config, log, security_layer, cert)
            stop(proc, port)
            last_output = console.read_text(errors="replace")[-2000:]
        pytest.fail(f"xrdp did not start listening:\n{last_output}", pytrace=False)

    yield start
    for proc, port in started:
        with contextlib.suppress(AssertionError):
            stop(proc, port)
        assert proc.poll() is not None, f"xrdp pid {proc.pid} is still running"
