"""Properties over generated guest states (Hypothesis), on the Windows model through the real wire:

* executing azrdp's plan never introduces a finding that was absent before (reboot-pending aside:
  a SCHANNEL change announces its restart);
* repair is idempotent: once a run applied every step, a second plan is empty;
* undo (built from the guest's own records) restores the state exactly: the digest of the model
  is the one before (a certificate container Windows minted during the run stays, moved aside).

A state is a random combination of the faults azrdp knows, including ones it refuses to touch
(policy-owned values, a port another process holds) and ones that hide others (a stopped
TermService hides its certificate)."""

from __future__ import annotations

import json
import re
from typing import Any

from guest_driver import Guest, ids
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from azrdp.emulator.guest_scenarios import RDPTCP, TLS_SERVER, TS, TSPOL, WINLOGON
from azrdp.emulator.windows import image
from azrdp.guest import envelope as ge

THUMB = "0F0F0F0F0F0F0F0F0F0F0F0F0F0F0F0F0F0F0F0F"
PIN = "9F1C2B3A4D5E6F708192A3B4C5D6E7F8091A2B3C"
HARDENED = "O:SYG:SYD:PAI(A;;FA;;;SY)(A;;FA;;;BA)"
STORE_DENIED = "O:SYD:AI(D;;KA;;;SY)(A;CIID;KA;;;BA)(A;CIID;KA;;;SY)"

REGISTRY = {
    "rdp-off": (TS, "fDenyTSConnections", 1),
    "listener-off": (RDPTCP, "fEnableWinStation", 0),
    "logons-off": (RDPTCP, "fLogonDisabled", 1),
    "drain": (TS, "TSServerDrainMode", 1),
    "winstations": (WINLOGON, "WinStationsDisabled", "1"),
    "security-layer": (RDPTCP, "SecurityLayer", 0),
    "nla-off": (RDPTCP, "UserAuthentication", 0),
    "encryption-low": (RDPTCP, "MinEncryptionLevel", 1),
    "tls12-off": (TLS_SERVER["1.2"], "Enabled", 0),
    "tls12-default-off": (TLS_SERVER["1.2"], "DisabledByDefault", 1),
    "policy-rdp-off": (TSPOL, "fDenyTSConnections", 1),
    "pin-stale": (RDPTCP, "SSLCertificateSHA1Hash", "hex:" + PIN.lower()),
}
SERVICES = {
    "ts-stopped": ("TermService", {"state": "Stopped", "pid": 0}),
    "ts-disabled": ("TermService", {"state": "Stopped", "startMode": "Disabled", "pid": 0}),
    "ts-account": ("TermService", {"account": "LocalSystem"}),
    "um-stopped": ("UmRdpService", {"state": "Stopped", "pid": 0}),
    "sessionenv-disabled": ("SessionEnv", {"state": "Stopped", "startMode": "Disabled", "pid": 0}),
    "mpssvc-stopped": ("MpsSvc", {"state": "Stopped", "startMode": "Disabled", "pid": 0}),
    "ts-hangs": ("TermService", {"state": "Stopped", "pid": 0, "hang": "start"}),
    "sessionenv-hangs": ("SessionEnv", {"hang": "stop"}),
}
CERTS = {
    "healthy": None,
    "expired": {"thumbprint": THUMB, "notAfter": "-3d"},
    "no-key": {"thumbprint": THUMB, "hasPrivateKey": False},
    "key-unreadable": {"thumbprint": THUMB, "keyReadable": False},
    "key-denied": {"thumbprint": THUMB, "keyDenied": True},
    "key-damaged": {"thumbprint": THUMB, "keyOpens": False},
    "expired-unreadable": {"thumbprint": THUMB, "notAfter": "-3d", "keyReadable": False},
    "cng": {"thumbprint": THUMB, "key": {"provider": "cng", "container": "rdp-cng", "file": "c0ffee_cng"}},
    "pinned-in-my": {"thumbprint": PIN, "store": "My", "notAfter": "+200d"},
    "none": "none",
}
FIREWALL = {
    "tcp-off": ("rules", "RemoteDesktop-UserMode-In-TCP", {"enabled": False}),
    "udp-off": ("rules", "RemoteDesktop-UserMode-In-UDP", {"enabled": False}),
    "tcp-deleted": ("rules", "RemoteDesktop-UserMode-In-TCP", None),
    "public-blocks": ("profiles", "Public", {"allowInboundRules": False}),
    "block-rule": (
        "rules",
        "Corp-Block",
        {"action": "Block", "localPorts": "3389", "program": "Any", "service": "Any"},
    ),
}


@st.composite
def guest_states(draw: st.DrawFn) -> tuple[dict[str, Any], int]:
    guest: dict[str, Any] = {}
    registry: dict[str, dict[str, Any]] = {}
    for name in draw(st.sets(st.sampled_from(sorted(REGISTRY)), max_size=4)):
        key, value_name, value = REGISTRY[name]
        registry.setdefault(key, {})[value_name] = value
        if name == "pin-stale":
            guest["pinType"] = 3
    if registry:
        guest["registry"] = registry
    services: dict[str, dict[str, Any]] = {}
    for name in draw(st.sets(st.sampled_from(sorted(SERVICES)), max_size=2)):
        service, values = SERVICES[name]
        services.setdefault(service, {}).update(values)
    if services:
        guest["services"] = services
    cert = CERTS[draw(st.sampled_from(sorted(CERTS)))]
    if cert == "none":
        guest["certificates"] = []
    elif cert is not None:
        guest["certificates"] = [cert]
    if draw(st.booleans()):
        guest["machineKeysSddl"] = HARDENED
    if draw(st.integers(0, 9)) == 0:
        guest["rdStoreSddl"] = STORE_DENIED
    firewall: dict[str, dict[str, Any]] = {}
    for name in draw(st.sets(st.sampled_from(sorted(FIREWALL)), max_size=2)):
        section, item, values = FIREWALL[name]
        firewall.setdefault(section, {})[item] = values
    if firewall:
        guest["firewall"] = firewall
    events = draw(st.sampled_from([{}, {"1057": 3}, {"1058": 5}, {"36870": 20}]))
    if events:
        guest["events"] = events
    port = 3389
    if draw(st.integers(0, 5)) == 0:
        guest["listeners"] = {"3389": {"pid": 4242, "process": "nginx"}}
        port = draw(st.sampled_from([3389, 3390]))
    return guest, port


SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)


@SETTINGS
@given(guest_states())
def test_a_plan_never_introduces_a_finding_and_a_second_plan_is_empty(
    state: tuple[dict[str, Any], int],
) -> None:
    guest_doc, port = state
    guest = Guest(guest_doc, port)
    before = guest.collect()
    assert before.facts is not None, before.error
    found_before = ids(guest.findings(before))
    plan, _ = guest.plan(before)
    if not plan.steps:
        return
    out = guest.execute(plan)
    assert out.run is not None, out.error
    assert len(guest.last_line) <= ge.OUTPUT_BUDGET
    after = ids(guest.findings())
    introduced = after - found_before - {"reboot-pending"}
    assert not introduced, (introduced, [(s.id, s.status, s.error) for s in out.run.steps])
    if out.run.state == "applied":
        again, steps = guest.plan(run_id="b1b2c3d4e5f6")
        assert again.steps == (), [(s.id, s.fixes) for s in steps if s.actionable]


def restorable(guest: Guest, before: dict[str, Any] | None = None) -> str:
    """The digest of what undo restores: the model's state without Windows' own creation of a
    self-signed certificate (and its TSSecKeySet1 container) when the store had none usable; a
    service restart makes Windows mint one (measured), and undo never removes a certificate that
    azrdp did not put there."""
    doc = image.dump(guest.machine())
    for key in ("events", "runtime", "azrdp"):
        doc.pop(key, None)
    for service in doc["services"].values():
        service.pop("pid", None)
        service.pop("exitCode", None)
    doc["files"] = {p: f for p, f in doc["files"].items() if not re.search(r"\.azrdp-[0-9a-f]{12}-new$", p)}
    if before is not None:
        known = {c["thumbprint"] for c in before["certificates"]}
        minted = [
            c for c in doc["certificates"] if c["thumbprint"] not in known and c["issuer"] == c["subject"]
        ]
        doc["certificates"] = [c for c in doc["certificates"] if c not in minted]
        if minted:
            doc["files"] = {p: f for p, f in doc["files"].items() if p in before["files"]}
    return json.dumps(doc, sort_keys=True)


@SETTINGS
@given(guest_states())
def test_undo_restores_the_state_exactly(state: tuple[dict[str, Any], int]) -> None:
    guest_doc, port = state
    # A service that hangs is Windows failing, not azrdp: what it leaves is not azrdp's to restore.
    assume(not any(s.get("hang") for s in guest_doc.get("services", {}).values()))
    guest = Guest(guest_doc, port)
    before = image.dump(guest.machine())
    original = restorable(guest)
    plan, _ = guest.plan()
    if not plan.steps:
        assert restorable(guest) == original  # planning changes nothing
        return
    out = guest.execute(plan)
    assert out.run is not None, out.error
    undo = guest.execute(guest.undo_plan(plan.run_id))
    assert undo.run is not None, undo.error
    assert undo.run.state == "applied" or not undo.run.steps, [
        (s.id, s.status, s.error) for s in undo.run.steps
    ]
    assert restorable(guest, before) == original
