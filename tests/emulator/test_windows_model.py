"""The Windows model (azrdp/emulator/windows/): Windows' own reactions as measured, the primitive
operations it executes, and its independence from azrdp's decisions.

Each reaction cites its source: the reference's "What Windows itself does (measured on marketplace
images 9600-26100)", from the header of Azure/repair-script-library
src/windows/win-fix-rdp-certificate.ps1."""

from __future__ import annotations

import ast
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from guest_driver import Guest

from azrdp.emulator.guest_scenarios import GUEST_SCENARIOS
from azrdp.emulator.windows import image, runcommand
from azrdp.emulator.windows import state as w
from azrdp.emulator.windows.access import allows
from azrdp.guest import envelope as ge
from azrdp.guest import plan as gp
from azrdp.guest.sddl import parse

NOW = datetime(2026, 1, 15, 10, 0, tzinfo=timezone.utc)
MODEL = Path(runcommand.__file__).parent


def machine(build: int = 20348) -> w.Machine:
    m = image.healthy(NOW, NOW - timedelta(hours=1))
    m.build = build
    return m


def restart_remote_desktop(m: w.Machine) -> None:
    for name in ("TermService", "SessionEnv"):
        m.stop_service(name)
    for name in ("SessionEnv", "TermService"):
        m.start_service(name)


def key_of(m: w.Machine, thumbprint: str) -> w.File:
    item = m.key_file(m.rd_store[thumbprint].key)
    assert item is not None
    return item


# --- the model does not know azrdp's decisions -----------------------------------------------------


def test_the_model_imports_no_checks_and_no_repairs() -> None:
    for path in MODEL.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for name in names:
                assert not name.startswith(("azrdp.checks", "azrdp.repairs", "azrdp.engine")), (
                    path.name,
                    name,
                )
    # And at run time: answering a Run Command loads neither.
    code = (
        "import sys, azrdp.emulator.windows.runcommand as r;"
        "r.handle_run_command({'guest': {}}, {'commandId': 'RunPowerShellScript',"
        " 'script': __import__('azrdp.guest.scripts', fromlist=['x']).script_lines('collect'),"
        " 'parameters': [{'name': 'Mode', 'value': 'collect'}]});"
        "bad = [m for m in sys.modules if m.startswith(('azrdp.checks', 'azrdp.repairs', 'azrdp.engine'))];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_capi_file_name_is_windows_formula() -> None:
    m = machine()
    # The reference: TSSecKeySet1 = MachineKeys\f686aace6942fb7f7ceb231212eef4a4_<MachineGuid>.
    assert m.capi_file_name(w.SELF_SIGNED_CONTAINER) == "f686aace6942fb7f7ceb231212eef4a4_" + m.machine_guid


@pytest.mark.parametrize("scenario", GUEST_SCENARIOS, ids=lambda s: s.name)
def test_every_scenario_loads_dumps_and_loads_the_same(scenario: object) -> None:
    guest = scenario.guest  # type: ignore[attr-defined]
    first = image.load(guest, NOW, NOW - timedelta(hours=1))
    again = image.load(image.dump(first), NOW, NOW - timedelta(hours=1))
    assert image.dump(again) == image.dump(first)


# --- Windows' reactions, as measured ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "third"), [(14393, "(A;;FR;;;BA)"), (17763, f"(A;;FA;;;{w.SESSIONENV_SID})")]
)
def test_with_no_certificate_windows_mints_one_with_the_builds_container(build: int, third: str) -> None:
    """ "With no certificate, Windows mints a new one and a key container with correct permissions
    within seconds of the Remote Desktop services starting"; "the third ACE swaps" at 17763."""
    m = machine(build)
    m.rd_store.clear()
    m.files = {p: f for p, f in m.files.items() if not p.startswith(w.MACHINEKEYS.lower() + "\\")}
    restart_remote_desktop(m)
    (cert,) = m.rd_store.values()
    assert cert.not_after - cert.not_before == timedelta(days=w.SELF_SIGNED_DAYS)
    assert cert.key is not None and cert.key.container == w.SELF_SIGNED_CONTAINER
    assert key_of(m, cert.thumbprint).sd.text() == "O:SYD:P(A;;FA;;;SY)(A;;FR;;;NS)" + third
    assert m.ts_cert == cert.thumbprint and m.listener_key_readable()


def test_a_valid_certificate_with_an_unreadable_key_never_recovers() -> None:
    """ "A valid certificate whose key NETWORK SERVICE cannot read never recovers by itself"."""
    m = machine()
    (tp,) = m.rd_store
    key_of(m, tp).sd = parse("O:SYD:P(A;;FA;;;SY)(A;;FA;;;BA)")
    for _ in range(3):
        restart_remote_desktop(m)
        m.advance(3600)
    assert list(m.rd_store) == [tp] and m.ts_cert == tp
    assert not m.listener_key_readable()


def test_a_hardened_folder_shapes_the_next_container() -> None:
    """ "A MachineKeys folder hardened to SYSTEM and Administrators ... keeps RDP working, but the
    next container Windows creates lacks the SessionEnv ACE"."""
    m = machine(20348)
    m.put_file(w.MACHINEKEYS, parse("O:SYG:SYD:PAI(A;;FA;;;SY)(A;;FA;;;BA)"))
    restart_remote_desktop(m)
    assert m.listener_key_readable()  # the existing container stays correct: RDP works
    m.rd_store.clear()
    m.files = {p: f for p, f in m.files.items() if not p.startswith(w.MACHINEKEYS.lower() + "\\")}
    restart_remote_desktop(m)
    (cert,) = m.rd_store.values()
    assert key_of(m, cert.thumbprint).sd.text() == "O:SYD:P(A;;FA;;;SY)(A;;FR;;;NS)"


def test_a_system_deny_on_the_store_key_stops_the_creation() -> None:
    """ "A Deny for SYSTEM on it stops the self-signed certificate being created"."""
    m = machine()
    m.rd_store.clear()
    m.registry.ensure(w.RD_CERTIFICATES).sd = parse("O:SYD:AI(D;;KA;;;SY)(A;CIID;KA;;;SY)(A;CIID;KA;;;BA)")
    restart_remote_desktop(m)
    assert m.rd_store == {} and m.ts_cert == ""
    assert m.count_events(1058)


@pytest.mark.parametrize("kind", ["expired", "key-less"])
def test_an_expired_or_key_less_entry_blocks_the_next_creation(kind: str) -> None:
    """ "An expired certificate that is still there, or one with no key container behind it (RCM
    events 1057/1058), blocks the next creation: removing the store entry lets Windows mint"."""
    m = machine()
    (tp,) = m.rd_store
    cert = m.rd_store[tp]
    if kind == "expired":
        cert.not_after = NOW - timedelta(days=1)
    else:
        cert.key = None
    restart_remote_desktop(m)
    assert list(m.rd_store) == [tp] and m.ts_cert == tp
    assert m.count_events(1058) or m.count_events(1057)
    # Removing the entry lets Windows mint a fresh one.
    del m.rd_store[tp]
    restart_remote_desktop(m)
    assert len(m.rd_store) == 1 and tp not in m.rd_store


def test_the_service_controller_stops_running_dependents_first() -> None:
    m = machine()
    m.stop_service("TermService")
    um = m.service("UmRdpService")
    assert um is not None and um.state == "Stopped"


def test_a_hung_service_times_out_within_the_run_deadline_and_is_refused_next_time() -> None:
    """The executor's waits are bounded (WaitForStatus with a timeout) and a pending service is
    refused: a hang never holds the VM's Run Command."""
    guest = Guest({"services": {"TermService": {"state": "Stopped", "pid": 0, "hang": "start"}}})
    before = guest.collect()
    plan, _ = guest.plan(before)
    assert [s.id for s in plan.steps] == ["rdp-services"]
    started = guest.now
    report = guest.execute(plan)
    assert report.run is not None
    (step,) = report.run.steps
    # ServiceController's own TimeoutException; what the step applied before it is rolled back.
    assert step.status == ge.ROLLED_BACK and "Time out has expired" in (step.error or ""), step
    # The clock the model advanced stays inside the plan's deadline.
    assert guest.machine().clock - started <= timedelta(seconds=plan.deadline + 120)
    # Now the service is Start Pending: the next run refuses it before touching anything.
    _, steps = guest.plan()
    refused = [s for s in steps if s.id == "rdp-services"]
    assert refused and refused[0].refused and "pending" in refused[0].refused.lower()
    # A plan made before the hang (stale facts) is refused by the executor too.
    stale, _ = guest.plan(before, run_id="b1b2c3d4e5f6")
    forced = guest.execute(stale)
    assert forced.run is not None and forced.run.steps[0].status == ge.REFUSED


def test_the_model_refuses_what_is_off_the_allow_list() -> None:
    """The executor's allow-list, in the model as in executor.ps1: an op on anything else is refused
    before anything runs (a plan azrdp would never build, hand-made)."""
    guest = Guest()
    bad = gp.Plan(
        "a1b2c3d4e5f6",
        (gp.Step("rdp-services", (gp.ServiceControl("WindowsAzureGuestAgent", "stop"),)),),
    )
    with pytest.raises(gp.PlanError):
        bad.steps[0].ops[0].validate()
    token = gp.pack_token(
        {
            "v": gp.PLAN_VERSION,
            "run": "a1b2c3d4e5f6",
            "dl": 600,
            "u": "",
            "steps": [
                {
                    "id": "x",
                    "b": 0,
                    "ops": [
                        {
                            "i": 0,
                            "k": "svc.ctl",
                            "chk": 1,
                            "of": -1,
                            "w": 60,
                            "n": "WindowsAzureGuestAgent",
                            "a": "stop",
                            "x": "",
                        }
                    ],
                    "rb": [],
                }
            ],
        }
    )
    from azrdp.guest import scripts

    out = guest.run("execute", scripts.execute_parameters("a1b2c3d4e5f6", token))
    assert out.error_code == "plan" and out.run is None
    svc = guest.machine().service("WindowsAzureGuestAgent")
    assert svc is not None and svc.state == "Running"


def test_the_access_check_the_model_uses_is_its_own() -> None:
    sd = parse("O:SYD:P(D;;FR;;;WD)(A;;FA;;;NS)")
    assert not allows(sd, w.TERMSERVICE_TOKEN, w.FILE_READ)
    assert allows(parse("O:SYD:P(A;;FR;;;S-1-5-6)"), w.TERMSERVICE_TOKEN, w.FILE_READ)
