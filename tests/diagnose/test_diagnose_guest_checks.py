"""Guest checks as pure functions of the collector's facts, fed by the Windows model's rendering of
the collector's output (the same line the real script prints, decoded by the real parser)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest

from azrdp.checks import all_checks, run_checks
from azrdp.checks.guest import GuestFacts
from azrdp.emulator.guest_scenarios import RDPTCP, TS, TSPOL, WINLOGON
from azrdp.emulator.windows import runcommand as g
from azrdp.guest import envelope as c
from azrdp.guest import scripts
from azrdp.model import Severity, Source

NOW = datetime(2026, 1, 15, 10, 0, tzinfo=timezone.utc)
GUEST_IDS = {
    "rdp-disabled", "rdp-disabled-by-policy", "listener-disabled", "port-mismatch",
    "port-owned-by-other-process", "termservice-not-running", "service-misconfigured", "rdp-cert-expired",
    "rdp-cert-missing-private-key", "rdp-cert-binding-stale", "rdp-cert-store-denied",
    "machinekeys-acl-corrupt",
    "tls12-server-disabled", "fips-policy-enabled", "credssp-server-unpatched", "credssp-oracle-mismatch",
    "credssp-oracle-vulnerable", "firewall-rule-disabled", "firewall-blocks-all-inbound",
    "nla-or-security-downgraded", "low-disk-space", "rdp-logons-disabled", "rdp-drain-mode",
    "firewall-udp-rule-disabled", "reboot-pending", "registry-value-unreadable",
}  # fmt: skip


def body(port: int = 3389, params: list[dict[str, str]] | None = None) -> dict[str, Any]:
    return {
        "commandId": "RunPowerShellScript",
        "script": scripts.script_lines("collect"),
        "parameters": params if params is not None else scripts.collect_parameters(port),
    }


def collect(
    guest: dict[str, Any], port: int = 3389, params: list[dict[str, str]] | None = None
) -> c.GuestReport:
    out = g.handle_run_command({"guest": guest}, body(port, params), now=NOW)
    return c.parse_output(out.stdout, out.stderr)


def findings(guest: dict[str, Any], expected_port: int = 3389) -> dict[str, Any]:
    report = collect(guest, expected_port)
    assert report.facts is not None
    facts = GuestFacts(report.facts, expected_port, report.guest_time)
    return {f.id: f for f in run_checks(facts, Source.GUEST)}


def test_registry_has_every_guest_check_with_stable_ids() -> None:
    specs = all_checks(Source.GUEST)
    assert {s.id for s in specs} == GUEST_IDS
    for spec in specs:
        assert spec.rbac == ("Microsoft.Compute/virtualMachines/runCommand/action",)
        assert spec.reads and spec.title


def test_policy_value_wins_over_the_local_one() -> None:
    assert findings({"registry": {TSPOL: {"fDenyTSConnections": 0}, TS: {"fDenyTSConnections": 1}}}) == {}
    assert set(findings({"registry": {TSPOL: {"fDenyTSConnections": 1}}})) == {"rdp-disabled-by-policy"}


def test_port_mismatch_needs_the_nsg_port() -> None:
    guest = {
        "registry": {RDPTCP: {"PortNumber": 3390}},
        "firewall": {"rules": {"RemoteDesktop-UserMode-In-TCP": {"localPorts": "3390"}}},
    }
    report = collect(guest)
    assert report.facts is not None
    assert run_checks(GuestFacts(report.facts, None, report.guest_time), Source.GUEST) == []
    assert set(findings({"registry": {RDPTCP: {"PortNumber": 3390}}})) == {
        "port-mismatch",
        "firewall-rule-disabled",
    }


def test_listener_reports_both_ports_when_they_differ() -> None:
    report = collect(
        {"registry": {RDPTCP: {"PortNumber": 3390}}, "listeners": {"3389": {"pid": 77, "process": "java"}}}
    )
    assert report.facts is not None and report.facts.listeners is not None
    owners = {p.port: (p.pid, p.process) for p in report.facts.listeners}
    assert owners == {3390: (1068, "svchost"), 3389: (77, "java")}


def test_hardened_machinekeys_folder_alone_is_a_warning() -> None:
    found = findings({"machineKeysSddl": "O:SYG:SYD:PAI(A;;FA;;;SY)(A;;FA;;;BA)"})
    assert found["machinekeys-acl-corrupt"].severity is Severity.WARNING
    found = findings({"machineKeysSddl": "O:SYG:SYD:PAI(A;;FA;;;SY)", "events": {"1058": 2}})
    assert found["machinekeys-acl-corrupt"].severity is Severity.BLOCKER
    assert found["machinekeys-acl-corrupt"].details["events"] == {"1058": 2}


def test_the_folder_is_judged_by_meaning_not_by_string() -> None:
    # Another spelling of the default, an extra harmless ACE, the ACEs in another order: no finding.
    for sddl in (
        "O:SYG:SYD:PAI(A;;FA;;;BA)(A;;0x12019f;;;WD)",
        "O:SYG:SYD:PAI(A;;0x12019f;;;S-1-1-0)(A;;FA;;;S-1-5-32-544)",
        "O:SYG:SYD:PAI(A;;0x12019f;;;WD)(A;;FA;;;BA)(A;;FA;;;SY)",
        "O:SYD:PAI(A;;FA;;;WD)(A;;FA;;;BA)",
    ):
        assert findings({"machineKeysSddl": sddl}) == {}, sddl
    # Everyone granted the default but partly denied: a deviation.
    assert "machinekeys-acl-corrupt" in findings(
        {"machineKeysSddl": "O:SYD:PAI(D;;0x2;;;WD)(A;;0x12019f;;;WD)"}
    )


def test_key_deny_ace_is_a_blocker() -> None:
    found = findings({"certificates": [{"thumbprint": "A" * 40, "keyDenied": True}]})
    assert found["machinekeys-acl-corrupt"].severity is Severity.BLOCKER
    assert "Deny" in found["machinekeys-acl-corrupt"].evidence


def test_pinned_certificate_in_my_store_is_fine_until_it_expires() -> None:
    pin = "B" * 40
    guest: dict[str, Any] = {"registry": {RDPTCP: {"SSLCertificateSHA1Hash": "hex:" + pin}}, "pinType": 3}
    guest["certificates"] = [
        {"thumbprint": pin, "store": "My", "notAfter": "+30d"},
        {"thumbprint": "C" * 40, "notAfter": "-5d"},
    ]
    # The expired self-signed certificate is not the one in use: no finding (azrdp 1.x raised one).
    assert findings(guest) == {}
    guest["certificates"][0]["notAfter"] = "-1d"
    found = findings(guest)
    assert set(found) == {"rdp-cert-expired"}
    assert found["rdp-cert-expired"].details["pinned"] is True


def test_gpo_pin_is_flagged_not_deleted() -> None:
    found = findings({"registry": {RDPTCP: {"SSLCertificateSHA1Hash": "hex:" + "D" * 40}}, "pinType": 2})
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
    assert found["firewall-rule-disabled"].severity is Severity.BLOCKER
    assert "Block RDP" in found["firewall-rule-disabled"].evidence


def test_block_rules_for_other_programs_services_or_addresses_do_not_block_rdp() -> None:
    # azrdp 1.x ignored the scope and raised a blocker for each of these on healthy VMs.
    for scope in (
        {"program": r"C:\app\server.exe"},
        {"service": "W3SVC"},
        {"profile": "Domain"},
        {"protocol": "UDP"},
    ):
        rule = {"action": "Block", "localPorts": "Any", **scope}
        assert findings({"firewall": {"rules": {"Hardening": rule}}}) == {}, scope
    scoped = findings(
        {
            "firewall": {
                "rules": {
                    "Hardening": {"action": "Block", "localPorts": "Any", "remoteAddress": "198.51.100.0/24"}
                }
            }
        }
    )
    assert scoped["firewall-rule-disabled"].severity is Severity.WARNING
    assert "refuse some addresses" in scoped["firewall-rule-disabled"].evidence


def test_service_severity_and_accounts() -> None:
    found = findings({"services": {"RdAgent": {"state": "Stopped"}}})
    assert found["service-misconfigured"].severity is Severity.WARNING
    found = findings({"services": {"TermService": {"account": "LocalSystem"}}})
    assert found["service-misconfigured"].severity is Severity.BLOCKER
    assert "TermService logs on as LocalSystem" in found["service-misconfigured"].evidence
    # Manual and stopped is not a fault (Windows starts these on demand).
    assert findings({"services": {"SessionEnv": {"state": "Stopped"}}}) == {}


def test_scm_events_count_only_when_they_name_an_rdp_service() -> None:
    stopped = {"TermService": {"state": "Stopped", "exitCode": 1067}}
    own = findings(
        {"services": stopped, "events": {"7022": {"count": 3, "sources": ["Remote Desktop Services"]}}}
    )
    assert own["termservice-not-running"].details["events"] == {"7022": 3}
    other = findings({"services": stopped, "events": {"7022": {"count": 3, "sources": ["Print Spooler"]}}})
    assert "events" not in other["termservice-not-running"].details


def test_unknown_script_and_parameters_answer_on_stderr() -> None:
    out = g.handle_run_command({"guest": {}}, {"commandId": "RunPowerShellScript", "script": ["hostname"]})
    assert out.stdout == "" and "does not execute PowerShell" in out.stderr
    out = g.handle_run_command({"guest": {}}, body(params=[{"name": "Evil", "value": "1"}]))
    assert out.stdout == "" and "parameter name 'Evil'" in out.stderr
    # Run Command writes `-Name value` unquoted: an empty value fails binding, as in PowerShell.
    out = g.handle_run_command(
        {"guest": {}}, body(params=[{"name": "Mode", "value": "collect"}, {"name": "RunId", "value": ""}])
    )
    assert out.stdout == "" and "Missing an argument for parameter 'RunId'" in out.stderr


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ([{"name": "Mode", "value": "execute"}], "parameter"),  # the executor was not sent
        ([{"name": "Mode", "value": "format-c"}], "parameter"),
        ([{"name": "RdpPort", "value": "99999"}], "parameter"),
    ],
)
def test_script_refusals_match_the_script(params: list[dict[str, str]], code: str) -> None:
    report = collect({}, params=params)
    assert report.facts is None
    assert report.error_code == code


def test_malformed_guest_is_a_stderr_answer() -> None:
    out = g.handle_run_command({"guest": {"colour": "blue"}}, body())
    assert "guest.colour: unknown key" in out.stderr


def test_relative_times_are_anchored_once_per_vm() -> None:
    vm: dict[str, Any] = {"guest": {"certificates": [{"thumbprint": "AB" * 20, "notAfter": "-3d"}]}}
    first = c.parse_output(g.handle_run_command(vm, body(), now=NOW).stdout)
    later = datetime(2026, 1, 15, 10, 0, 7, tzinfo=timezone.utc)
    second = c.parse_output(g.handle_run_command(vm, body(), now=later).stdout)
    assert first.time != second.time
    assert first.facts == second.facts
    assert first.facts is not None and first.facts.certs is not None
    assert first.facts.certs.certs[0].not_after == "2026-01-12T10:00:00Z"
    assert vm["_emulator"]["guestEpoch"] == "2026-01-15T10:00:00Z"


@pytest.mark.parametrize(
    ("registry", "expected"),
    [
        ({RDPTCP: {"fLogonDisabled": 1}}, {"rdp-logons-disabled"}),
        ({WINLOGON: {"WinStationsDisabled": "1"}}, {"rdp-logons-disabled"}),
        ({TS: {"TSUserEnabled": 1}}, {"rdp-logons-disabled"}),
        ({TS: {"TSServerDrainMode": 2}}, {"rdp-drain-mode"}),
        ({TS: {"TSUserEnabled": None}, WINLOGON: {"WinStationsDisabled": None}}, set()),
    ],
)
def test_logon_switches(registry: dict[str, Any], expected: set[str]) -> None:
    found = findings({"registry": registry})
    assert set(found) == expected
    assert all(f.severity is Severity.BLOCKER for f in found.values())


def test_drain_on_a_session_host_is_called_deliberate() -> None:
    found = findings({"registry": {TS: {"TSServerDrainMode": 1}}, "terminalServerMode": 1})
    drain = found["rdp-drain-mode"]
    assert drain.details["sessionHost"] is True
    assert "deliberate" in drain.evidence and "azrdp repair" not in drain.recommendation


def test_udp_rule_is_information_only() -> None:
    found = findings({"firewall": {"rules": {"RemoteDesktop-UserMode-In-UDP": {"enabled": False}}}})
    assert set(found) == {"firewall-udp-rule-disabled"}
    assert found["firewall-udp-rule-disabled"].severity is Severity.INFO


def test_azrdp_port_rule_admits_a_moved_port() -> None:
    moved = {RDPTCP: {"PortNumber": 3390}}
    assert "firewall-rule-disabled" in findings({"registry": moved}, 3390)
    rule = {"azrdp-RDP-3390": {"localPorts": "3390", "service": "TermService"}}
    assert findings({"registry": moved, "firewall": {"rules": rule}}, 3390) == {}
    off = {"azrdp-RDP-3390": {"localPorts": "3390", "enabled": False}}
    assert "firewall-rule-disabled" in findings({"registry": moved, "firewall": {"rules": off}}, 3390)


def test_a_rule_for_another_profile_does_not_let_rdp_in() -> None:
    found = findings(
        {"firewall": {"rules": {"RemoteDesktop-UserMode-In-TCP": {"profile": "Domain, Private"}}}}
    )
    assert set(found) == {"firewall-rule-disabled"}
    assert "profile" in found["firewall-rule-disabled"].evidence
    both = {"RemoteDesktop-UserMode-In-TCP": {"profile": "Private, Public"}}
    assert findings({"firewall": {"rules": both}}) == {}
