"""--debug shows the HTTP exchange but never a bearer token."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import pytest
from typer.testing import CliRunner

from azrdp.cli.app import app
from azrdp.emulator import Emulator


@pytest.fixture(autouse=True)
def reset_logging() -> Iterator[None]:
    yield
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    logging.getLogger("azure.core.pipeline.policies.http_logging_policy").setLevel(logging.NOTSET)


@pytest.mark.parametrize(("command", "exit_code"), [("check", 0), ("diagnose", 4), ("repair", 4)])
def test_debug_never_prints_a_token(
    command: str,
    exit_code: int,
    make_emulator: Callable[..., Emulator],
    arm_env: Callable[[Emulator], dict[str, str]],
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    emu = make_emulator("guest-rdp-disabled")
    arm_env(emu)
    extra = ["--dry-run"] if command == "repair" else []
    result = CliRunner().invoke(app, [command, "vm-rdp01", "-g", "rg-rdp", "--debug", "-o", "json", *extra])
    captured = capfd.readouterr()
    # pytest's log capture holds the records that a terminal would show on stderr.
    everything = result.stdout + result.stderr + captured.out + captured.err + caplog.text
    assert result.exit_code == exit_code, result.stderr
    assert emu.tokens_issued >= 1
    assert "eyJ" not in everything  # a JWT's first bytes
    assert "Bearer e" not in everything
    # The exchange itself is logged, with the header redacted.
    assert "'Authorization': 'REDACTED'" in everything
