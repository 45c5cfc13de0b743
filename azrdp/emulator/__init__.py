"""A local Azure Resource Manager emulator the real azure-mgmt-* SDK talks to over HTTPS.

    from azrdp.emulator import Emulator
    with Emulator("healthy") as emu:
        os.environ.update(emu.exports())

See docs/emulator.md for scenarios, routes, faults, throttling and the request log.
"""

from __future__ import annotations

from azrdp.emulator.faults import Fault, parse_faults
from azrdp.emulator.requestlog import RequestRecord, read_request_log
from azrdp.emulator.scenario import Scenario, ScenarioError, builtin_scenarios, generate_fleet
from azrdp.emulator.server import Emulator, GuestHandler, RunCommandOutput
from azrdp.emulator.throttle import ThrottleConfig

__all__ = [
    "Emulator",
    "Fault",
    "GuestHandler",
    "RequestRecord",
    "RunCommandOutput",
    "Scenario",
    "ScenarioError",
    "ThrottleConfig",
    "builtin_scenarios",
    "generate_fleet",
    "parse_faults",
    "read_request_log",
]
