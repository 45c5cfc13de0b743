"""Run Debian's xrdp in the foreground on 127.0.0.1 for tests and benchmarks.

A config derived from /etc/xrdp/xrdp.ini with only the listening port, security layer,
certificate, fork and logging changed; started with `--nodaemon`, stopped by its PID.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from rdp_fakes import CertFiles

XRDP_INI = Path("/etc/xrdp/xrdp.ini")


def xrdp_binary() -> str | None:
    found = shutil.which("xrdp") or ("/usr/sbin/xrdp" if Path("/usr/sbin/xrdp").exists() else None)
    return found if found and XRDP_INI.exists() else None


@dataclass(frozen=True)
class Xrdp:
    port: int
    pid: int
    config: Path
    log: Path
    security_layer: str
    cert: CertFiles


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
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


def write_xrdp_config(
    directory: Path, port: int, security_layer: str, cert: CertFiles, extra: Mapping[str, str] | None = None
) -> tuple[Path, Path]:
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
        **(extra or {}),
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


def wait_listening(proc: subprocess.Popen[bytes], port: int, deadline: float) -> bool:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.5)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.05)
    return False


def stop(proc: subprocess.Popen[bytes], port: int) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    deadline = time.monotonic() + 5
    while not port_is_free(port) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert port_is_free(port), f"xrdp (pid {proc.pid}) still holds port {port}"
