"""Fixtures for the probe tests: test certificates and a real xrdp server on 127.0.0.1.

xrdp runs in the foreground (`--nodaemon`, `fork=false`) from a config, log and certificates in a
temp dir, on an ephemeral port, and is stopped by its PID. CI installs it (`.ci/run`); when it is
missing the xrdp tests fail with the install command, they do not skip.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from rdp_fakes import CertFiles, make_cert

XRDP_INI = Path("/etc/xrdp/xrdp.ini")
UTC = dt.timezone.utc


@dataclass(frozen=True)
class CertSet:
    valid: CertFiles
    expired: CertFiles
    not_yet_valid: CertFiles
    named_vm: CertFiles  # CN=vm, the name in the recorded NTLM CHALLENGE


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


@dataclass(frozen=True)
class Xrdp:
    port: int
    pid: int
    config: Path
    log: Path
    security_layer: str
    cert: CertFiles


def _xrdp_binary() -> str:
    binary = shutil.which("xrdp") or ("/usr/sbin/xrdp" if Path("/usr/sbin/xrdp").exists() else None)
    if binary is None or not XRDP_INI.exists():
        pytest.fail(
            "xrdp is not installed; these tests need the real server. Install it with: "
            "apt-get install -y --no-install-recommends xrdp openssl (.ci/run does this).",
            pytrace=False,
        )
    return binary


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _set(section: str, key: str, value: str) -> str:
    """Replace `key=` inside one ini section (session sections have their own port= keys)."""
    pattern = re.compile(rf"(?m)^{re.escape(key)}\s*=.*$")
    if pattern.search(section):
        return pattern.sub(lambda _: f"{key}={value}", section, count=1)
    return section.rstrip("\n") + f"\n{key}={value}\n"


def write_xrdp_config(directory: Path, port: int, security_layer: str, cert: CertFiles) -> tuple[Path, Path]:
    text = XRDP_INI.read_text()
    head, globals_and_rest = text.split("[Globals]", 1)
    globals_section, rest = globals_and_rest.split("\n[", 1)
    settings = {
        "port": f"tcp://127.0.0.1:{port}",
        "security_layer": security_layer,
        "crypt_level": "high",
        "certificate": str(cert.cert),
        "key_file": str(cert.key),
        "ssl_protocols": "TLSv1.2, TLSv1.3",
        "fork": "false",
    }
    for key, value in settings.items():
        globals_section = _set(globals_section, key, value)
    log = directory / "xrdp.log"
    logging_start = rest.index("Logging]")
    logging_end = rest.find("\n[", logging_start)
    logging_section = rest[logging_start:logging_end] if logging_end >= 0 else rest[logging_start:]
    patched_logging = logging_section
    for key, value in {"LogFile": str(log), "LogLevel": "DEBUG", "EnableSyslog": "false"}.items():
        patched_logging = _set(patched_logging, key, value)
    rest = rest.replace(logging_section, patched_logging, 1)
    config = directory / "xrdp.ini"
    config.write_text(f"{head}[Globals]{globals_section}\n[{rest}")
    # Never let a test xrdp listen anywhere but the loopback port it was given.
    listen_keys = re.findall(r"(?m)^port=.*$", globals_section)
    assert listen_keys == [f"port=tcp://127.0.0.1:{port}"], listen_keys
    return config, log


def _wait_listening(proc: subprocess.Popen[bytes], port: int, deadline: float) -> bool:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.5)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.05)
    return False


def _stop(proc: subprocess.Popen[bytes], port: int) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    deadline = time.monotonic() + 5
    while not _port_is_free(port) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _port_is_free(port), f"xrdp (pid {proc.pid}) still holds port {port}"


@pytest.fixture
def xrdp(tmp_path: Path) -> Iterator[Callable[[str, CertFiles], Xrdp]]:
    """Start xrdp with a security_layer (negotiate|tls|rdp) and a certificate; stopped by PID."""
    binary = _xrdp_binary()
    started: list[tuple[subprocess.Popen[bytes], int]] = []

    def start(security_layer: str, cert: CertFiles) -> Xrdp:
        last_output = ""
        for attempt in range(3):  # the ephemeral port may be taken between probe and bind
            directory = tmp_path / f"xrdp-{security_layer}-{len(started)}-{attempt}"
            directory.mkdir()
            port = _free_port()
            config, log = write_xrdp_config(directory, port, security_layer, cert)
            console = directory / "console.txt"
            with console.open("wb") as out:
                proc = subprocess.Popen(
                    [binary, "--nodaemon", "--config", str(config)],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    cwd=directory,
                )
            started.append((proc, port))
            if _wait_listening(proc, port, time.monotonic() + 10):
                return Xrdp(port, proc.pid, config, log, security_layer, cert)
            _stop(proc, port)
            last_output = console.read_text(errors="replace")[-2000:]
        pytest.fail(f"xrdp did not start listening:\n{last_output}", pytrace=False)

    yield start
    for proc, port in started:
        with contextlib.suppress(AssertionError):
            _stop(proc, port)
        assert proc.poll() is not None, f"xrdp pid {proc.pid} is still running"
