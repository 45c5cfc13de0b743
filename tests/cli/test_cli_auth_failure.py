"""No credential: one error line and one fix line on stderr, exit 1; azure-identity's own
multi-line warning is not printed on top of it."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from typer.testing import CliRunner

from azrdp.cli.app import app
from azrdp.emulator import Emulator


def test_no_credential_is_one_error_line(
    make_emulator: Callable[..., Emulator],
    arm_env: Callable[[Emulator], dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    emu = make_emulator("healthy")
    arm_env(emu)
    # Managed identity only, and its endpoint gone: the conftest points IMDS at a closed loopback port.
    monkeypatch.delenv("IDENTITY_ENDPOINT")
    monkeypatch.delenv("IDENTITY_HEADER")
    result = CliRunner().invoke(app, ["check", "vm-rdp01", "-g", "rg-rdp", "-o", "json"])
    captured = capfd.readouterr()
    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2, result.stderr
    assert lines[0].startswith("error: Could not authenticate to Azure")
    assert "ManagedIdentityCredential" in lines[0]
    assert lines[1].startswith("fix: Run `az login`")
    assert "Attempted credentials" not in captured.err + result.stderr
