"""The README's test command on a machine without the peers: their tests are deselected with one
line saying what was not run and how to add it; with AZRDP_REQUIRE_PEERS=1 (CI) the run fails."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SELECTION = [
    "tests/probe/test_probe_xrdp.py",
    "tests/azcli/test_azcli.py",
    "tests/core/test_core_errors_render.py",
]


def run_pytest(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {
        **os.environ,
        # Neither xrdp nor the provisioned Azure CLI can be found: only the interpreter's directory
        # is on PATH, and the CLI cache is an empty directory.
        "PATH": str(Path(sys.executable).parent),
        "AZRDP_CI_CACHE": str(tmp_path / "empty-cache"),
        **env,
    }
    environment.pop("AZRDP_TEST_AZ", None)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *SELECTION],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_missing_peers_are_deselected_with_one_line(tmp_path: Path) -> None:
    done = run_pytest(tmp_path)
    assert done.returncode == 0, done.stdout[-2000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith("not run here:")]
    assert len(lines) == 1
    line = lines[0]
    assert re.search(r"\d+ tests marked xrdp \(xrdp is not on PATH; add it: apt-get install", line)
    azcli = r"\d+ tests marked azcli \(the official Azure CLI is not provisioned; add it: python tests/azcli"
    assert re.search(azcli, line)
    assert "deselected" in done.stdout.splitlines()[-1] and "failed" not in done.stdout.splitlines()[-1]


def test_ci_turns_a_missing_peer_into_a_failure(tmp_path: Path) -> None:
    done = run_pytest(tmp_path, AZRDP_REQUIRE_PEERS="1")
    assert done.returncode == 4  # pytest's usage error: nothing ran
    assert "AZRDP_REQUIRE_PEERS=1, but xrdp is not on PATH" in done.stderr
    assert "the official Azure CLI is not provisioned" in done.stderr
    assert "not run here" not in done.stdout
