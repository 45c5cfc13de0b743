"""Guest checks as pure functions of the contract, and the simulated guest's state model."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest

from azrdp.checks import all_checks, run_checks
from azrdp.checks.guest import GuestFacts
from azrdp.emulator import guest_sim as g
from azrdp.guest import contract as c
from azrdp.model import Severity, Source

NOW = datetime(2026, 1, 15, 10, 0, tzinfo=timezone.utc)
GUEST_IDS = {
    "rdp-disabled", "rdp-disabled-by-policy", "listener-disabled", "port-mismatch",
    "port-owned-by-other-process", "termservice-not-running", "service-misconfigured", "rdp-cert-expired",
    "rdp-cert-missing-private-key", "rdp-cert-binding-stale", "machinekeys-acl-corrupt",
    "tls12-server-disabled", "fips-policy-enabled", "credssp-oracle-mismatch", "firewall-rule-disabled",
    "firewall-blocks-all-inbound", "nla-or-security-downgraded", "low-disk-space",
    "rdp-logons-disabled", "rdp-drain-mode", "firewall-udp-rule-disabled", "reboot-pending",
}  # fmt: skip


def diagnose(
    guest: dict[str, Any], port: int = 3389, params: list[dict[str, str]] | None = None
) -> c.GuestReport:
    body = {
        "commandId": "RunPowerShellScript",
        "script": c.script_lines(),
        "parameters": params or c.build_parameters("diagnose", port),
    }
    out = g.handle_run_command({"guest": guest}, body, now=NOW)
    return c.parse_output(out.stdout, out.stderr)


def findings(guest: dict[str, Any], expected_port: int = 3389) -> dict[str, Any]:
    report = diagnose(guest, expected_port)
    assert report.diagnosis is not None
    return {
        f.id: f
        for f in run_checks(GuestFacts(report.diagnosis, expected_port, report.guest_time), Source.GUEST)
    }


def test_registry_has_every_guest_check_with_stable_ids() -> None:
    specs = all_checks(Source.GUEST)
    assert {s.id for s in specs} == GUEST_IDS
    for spec in specs:
        assert spec.rbac == ("Microsoft.Compute/virtualMachines/runCommand/action",)
        assert spec.reads and spec.title


def test_policy_value_wins_over_the_local_one() -> None:
    assert findings({"registry": {g.TSPOL: {"fDenyTSConnections": 0}, g.TS: {"fDenyTSConnections": 1}}}) == {}
    found = findings({"registry": {g.TSPOL: {"fDenyTSConnections": 1}}})
    assert set(found) == {"rdp-disabled-by-policy"}


def test_port_mismatch_needs_the_nsg_port() -> None:
    report = diagnose(
        {
            "registry": {g.RDPTCP: {"PortNumber": 3390}},
            "firewall": {"rules": {"RemoteDesktop-UserMode-In-TCP": {"localPorts": "3390"}}},
        }
    )
    assert report.diagnosis is not None
    assert run_checks(GuestFacts(report.diagnosis, None, report.guest_time), Source.GUEST) == []
    assert set(findings({"registry": {g.RDPTCP: {"PortNumber": 3390}}})) == {
        "port-mismatch",
        "firewall-rule-disabled",
    }


def test_listener_reports_both_ports_when_they_differ() -> None:
    report = diagnose(
        {"registry": {g.RDPTCP: {"PortNumber": 3390}}, "listeners": {"3389": {"pid": 77, "process": "java"}}}
    )
    assert report.diagnosis and report.diagnosis.listener
    owners = {p.port: (p.pid, p.process) for p in report.diagnosis.listener.ports}
    assert owners == {3390: (1068, "svchost"), 3389: (77, "java")}


def test_hardened_machinekeys_folder_alone_is_a_warning() -> None:
    found = findings({"machineKeysSddl": "O:SYG:SYD:PAI(A;;FA;;;SY)(A;;FA;;;BA)"})
    assert found["machinekeys-acl-corrupt"].severity is Severity.WARNING
    found = findings({"machineKeysSddl": "O:SYG:SYD:PAI(A;;FA;;;SY)", "events": {"1058": 2}})
    assert found["machinekeys-acl-corrupt"].severity is Severity.BLOCKER
    assert found["machinekeys-acl-corrupt"].details["events"] == {"1058": 2}


def test_key_deny_ace_is_a_blocker() -> None:
    found = findings({"certificates": [{"thumbprint": "A" * 40, "keyDenied": True}]})
    assert found["machinekeys-acl-corrupt"].severity is Severity.BLOCKER
    assert "Deny" in found["machinekeys-acl-corrupt"].evidence


def test_pinned_certificate_in_my_store_is_fine_until_it_expires() -> None:
    pin = "B" * 40
    guest: dict[str, Any] = {"registry": {g.RDPTCP: {"SSLCertificateSHA1Hash": "hex:" + pin}}, "pinType": 3}
    guest["certificates"] = [
        {"thumbprint": pin, "store": "My", "notAfter": "+30d"},
        {"thumbprint": "C" * 40, "notAfter": "-5d"},
    ]
    assert findings(guest) == {}
    guest["certificates"][0]["notAfter"] = "-1d"
    found = findings(guest)
    assert set(found) == {"rdp-cert-expired"}
    assert found["rdp-cert-expired"].details["pinned"] is True


def test_gpo_pin_is_flagged_not_deleted() -> None:
    found = findings({"registry": {g.RDPTCP: {"SSLCertificateSHA1Hash": "hex:" + "D" * 40}}, "pinType": 2})
    assert "GPO" in found["rdp-cert-binding-stale"].recommendation


def test_empty_remote_desktop_store_is_healthy() -> None:
    assert findings({"certificates": []}) == {}


def test_firewall_off_on_the_active_profile_means_rules_do_not_matter() -> None:
    guest = {
        "firewall": {
            "rules": {"RemoteDesktop-UserMode-In-TCP": {"enabled": False}},
            "profiles": {"Public": {"enabled": False}},
        }
    }
    assert findings(guest) == {}


def test_block_rule_on_the_port_wins() -> None:
    found = findings({"firewall": {"rules": {"Block RDP": {"action": "Block", "localPorts": "3000-4000"}}}})
    assert "Block RDP" in found["firewall-rule-disabled"].evidence


def test_service_severity_and_accounts() -> None:
    assert (
        findings({"services": {"RdAgent": {"state": "Stopped"}}})["service-misconfigured"].severity
        is Severity.WARNING
    )
    found = findings({"services": {"TermService": {"account": "LocalSystem"}}})
    assert found["service-misconfigured"].severity is Severity.BLOCKER
    assert "TermService logs on as LocalSystem" in found["service-misconfigured"].evidence
    # Manual and stopped is not a fault (Windows starts these on demand).
    assert findings({"services": {"SessionEnv": {"state": "Stopped"}}}) == {}


def test_unknown_script_and_parameters_answer_on_stderr() -> None:
    out = g.handle_run_command({"guest": {}}, {"commandId": "RunPowerShellScript", "script": ["hostname"]})
    assert out.stdout == "" and "does not execute PowerShell" in out.stderr
    body = {
        "commandId": "RunPowerShellScript",
        "script": c.script_lines(),
        "parameters": [{"name": "Evil", "value": "1"}],
    }
    out = g.handle_run_command({"guest": {}}, body)
    assert out.stdout == "" and "parameter name 'evil'" in out.stderr
    # Run Command writes `-Name value` unquoted: an empty value fails binding, as in PowerShell.
    body["parameters"] = [{"name": "Mode", "value": "diagnose"}, {"name": "Skip", "value": ""}]
    out = g.handle_run_command({"guest": {}}, body)
    assert out.stdout == "" and "Missing an argument for parameter 'Skip'" in out.stderr


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ([{"name": "Mode", "value": "repair"}], "mode"),
        ([{"name": "Mode", "value": "format-c"}], "parameter"),
        ([{"name": "RdpPort", "value": "99999"}], "parameter"),
    ],
)
def test_script_refusals_match_the_script(params: list[dict[str, str]], code: str) -> None:
    report = diagnose({}, params=params)
    assert report.diagnosis is None
    assert report.error_code == code


def test_state_round_trips_through_dump() -> None:
    guest = {
        "registry": {g.RDPTCP: {"SSLCertificateSHA1Hash": "hex:" + "E" * 40, "SecurityLayer": None}},
        "certificates": [{"thumbprint": "F" * 40, "notAfter": "-3d", "keyReadable": False}],
        "listeners": {"3389": {"pid": 9, "process": "x"}},
        "events": {"36870": 5},
    }
    state = g.load_state(guest, NOW)
    again = g.load_state(g.dump_state(state), NOW)
    assert again == state
    assert state.reg_get(g.RDPTCP, "securitylayer") is None
    assert state.pin == "E" * 40


def test_repairs_can_mutate_the_state() -> None:
    state = g.load_state({"registry": {g.TS: {"fDenyTSConnections": 1}}}, NOW)
    assert not state.rdp_listening
    state.reg_set(g.TS, "fDenyTSConnections", 0)
    assert state.rdp_listening
    assert state.port_owner(3389) == (1068, "svchost")


def test_malformed_guest_is_a_stderr_answer() -> None:
    out = g.handle_run_command(
        {"guest": {"colour": "blue"}}, {"commandId": "RunPowerShellScript", "script": c.script_lines()}
    )
    assert "guest.colour: unknown key" in out.stderr


def test_relative_times_are_anchored_once_per_vm() -> None:
    # The flake behind test_check_guest_is_diagnose: "+150d" re-resolved against each run's clock
    # gave two runs a second apart different certificate NotAfter values.
    vm: dict[str, Any] = {"guest": {"certificates": [{"thumbprint": "AB" * 20, "notAfter": "-3d"}]}}
    body = {
        "commandId": "RunPowerShellScript",
        "script": c.script_lines(),
        "parameters": c.build_parameters(),
    }
    first = c.parse_output(g.handle_run_command(vm, body, now=NOW).stdout)
    later = datetime(2026, 1, 15, 10, 0, 7, tzinfo=timezone.utc)
    second = c.parse_output(g.handle_run_command(vm, body, now=later).stdout)
    assert first.time != second.time
    assert first.diagnosis == second.diagnosis
    assert first.diagnosis is not None and first.diagnosis.cert is not None
    assert first.diagnosis.cert.certs[0].not_after == "2026-01-12T10:00:00Z"
    assert vm["_emulator"]["guestEpoch"] == "2026-01-15T10:00:00Z"
    # The healthy image's own certificate is anchored the same way.
    healthy: dict[str, Any] = {"guest": {}}
    one = c.parse_output(g.handle_run_command(healthy, body, now=NOW).stdout)
    two = c.parse_output(g.handle_run_command(healthy, body, now=later).stdout)
    assert one.diagnosis == two.diagnosis


@pytest.mark.parametrize(
    ("registry", "expected"),
    [
        ({g.RDPTCP: {"fLogonDisabled": 1}}, {"rdp-logons-disabled"}),
        ({g.WINLOGON: {"WinStationsDisabled": "1"}}, {"rdp-logons-disabled"}),
        ({g.TS: {"TSUserEnabled": 1}}, {"rdp-logons-disabled"}),
        ({g.TS: {"TSServerDrainMode": 2}}, {"rdp-drain-mode"}),
        ({g.TS: {"TSUserEnabled": None}, g.WINLOGON: {"WinStationsDisabled": None}}, set()),
    ],
)
def test_logon_switches(registry: dict[str, Any], expected: set[str]) -> None:
    found = findings({"registry": registry})
    assert set(found) == expected
    assert all(f.severity is Severity.BLOCKER for f in found.values())


def test_drain_on_a_session_host_is_called_deliberate() -> None:
    found = findings({"registry": {g.TS: {"TSServerDrainMode": 1}}, "terminalServerMode": 1})
    drain = found["rdp-drain-mode"]
    assert drain.details["sessionHost"] is True
    assert "deliberate" in drain.evidence and "azrdp repair" not in drain.recommendation


def test_udp_rule_is_information_only() -> None:
    found = findings({"firewall": {"rules": {"RemoteDesktop-UserMode-In-UDP": {"enabled": False}}}})
    assert set(found) == {"firewall-udp-rule-disabled"}
    assert found["firewall-udp-rule-disabled"].severity is Severity.INFO


def test_azrdp_port_rule_admits_a_moved_port() -> None:
    moved = {g.RDPTCP: {"PortNumber": 3390}}
    # The built-in rule still covers 3389 only: without azrdp's rule the port is not let in ...
    assert "firewall-rule-disabled" in findings({"registry": moved}, 3390)
    # ... with azrdp-RDP-3390 it is, and no false finding remains.
    rule = {"azrdp-RDP-3390": {"localPorts": "3390"}}
    assert findings({"registry": moved, "firewall": {"rules": rule}}, 3390) == {}
    # A disabled azrdp rule does not count.
    off = {"azrdp-RDP-3390": {"localPorts": "3390", "enabled": False}}
    assert "firewall-rule-disabled" in findings({"registry": moved, "firewall": {"rules": off}}, 3390)


def test_a_rule_for_another_profile_does_not_let_rdp_in() -> None:
    rules = {"RemoteDesktop-UserMode-In-TCP": {"profile": "Domain, Private"}}
    found = findings({"firewall": {"rules": rules}})
    assert set(found) == {"firewall-rule-disabled"}
    assert "profile" in found["firewall-rule-disabled"].evidence
    both = {"RemoteDesktop-UserMode-In-TCP": {"profile": "Private, Public"}}
    assert findings({"firewall": {"rules": both}}) == {}
