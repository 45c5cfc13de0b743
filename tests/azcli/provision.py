"""Install the official Azure CLI into its own virtual environment, cached, for tests/azcli.

    python tests/azcli/provision.py          # prints the az path; installs it on first use

The CLI goes to ~/.cache/azrdp-ci/azure-cli-<version>/ (AZRDP_CI_CACHE moves the cache),
built from a wheel directory beside it: `pip download` once (the only step that needs PyPI), then
`pip install --no-index --find-links <wheels> --no-compile` (byte-compiling azure-cli's ~30,000
modules costs most of a plain install; Python compiles what a command imports on first use).
Measured on the 2-core CI machine: cold (nothing cached) about 30 s, warm (the environment is
already there) well under a second; a plain `pip install azure-cli` takes about 70 s.
The test itself never installs anything: it finds this environment or is deselected.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

AZURE_CLI_VERSION = "2.91.0"
READY = ".azrdp-ready"


def cache_root() -> Path:
    return Path(os.environ.get("AZRDP_CI_CACHE") or Path.home() / ".cache" / "azrdp-ci")


def venv_dir(root: Path | None = None) -> Path:
    root = root or cache_root()
    # One environment whatever Python runs the tests: az is a program here, not a library.
    return root / f"azure-cli-{AZURE_CLI_VERSION}"


def installed_az(root: Path | None = None) -> Path | None:
    """The provisioned az executable, or None when it is not (completely) installed."""
    venv = venv_dir(root)
    az = venv / "bin" / "az"
    python = venv / "bin" / "python"  # a symlink to the interpreter that built it, which may be gone
    return az if (venv / READY).is_file() and az.is_file() and python.exists() else None


def provision(log: object = print) -> Path:
    found = installed_az()
    if found is not None:
        return found
    say = log if callable(log) else print
    root = cache_root()
    wheels = root / "wheels" / f"azure-cli-{AZURE_CLI_VERSION}"
    started = time.monotonic()
    if not (wheels / READY).is_file():
        wheels.mkdir(parents=True, exist_ok=True)
        say(f"downloading azure-cli {AZURE_CLI_VERSION} and its dependencies into {wheels}")
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "-q",
                "-d",
                str(wheels),
                f"azure-cli=={AZURE_CLI_VERSION}",
            ],
            check=True,
        )
        (wheels / READY).write_text(AZURE_CLI_VERSION, encoding="utf-8")
    target = venv_dir(root)
    # Built where it lives (a venv's scripts name its path); the marker is written last, so a
    # half-built environment is never used and is rebuilt next time.
    shutil.rmtree(target, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(target)], check=True)
    say(f"installing azure-cli {AZURE_CLI_VERSION} from {wheels}")
    _pip(
        [
            str(target / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "-q",
            "--no-compile",
            "--no-index",
            "--find-links",
            str(wheels),
            f"azure-cli=={AZURE_CLI_VERSION}",
        ]
    )
    (target / READY).write_text(AZURE_CLI_VERSION, encoding="utf-8")
    say(f"azure-cli {AZURE_CLI_VERSION} ready in {time.monotonic() - started:.0f} s: {target / 'bin' / 'az'}")
    return target / "bin" / "az"


def _pip(command: list[str]) -> None:
    """Run pip; its output is shown only when it fails (a pip.conf with absent local indexes
    otherwise prints one warning per package)."""
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(f"pip failed ({done.returncode}): {' '.join(command[1:4])} ...")


if __name__ == "__main__":
    print(provision(lambda message: print(message, file=sys.stderr)))
