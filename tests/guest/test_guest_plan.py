"""The plan's own rules: inverses from recorded values, projection of later steps, the deadline
below azrdp's Run Command wait, and CredSSP by Microsoft's matrix."""

from __future__ import annotations

import itertools

import pytest
from ps_tables import scalar

from azrdp.checks.guest import credssp_admits
from azrdp.guest import facts as gf
from azrdp.guest import plan as gp


def test_the_run_fits_inside_azrdps_run_command_wait() -> None:
    assert int(scalar("executor", "RollbackGrace")) == gp.ROLLBACK_GRACE
    for timeout in range(gp.MIN_TIMEOUT, 3600, 30):
        deadline = gp.deadline_for(timeout)
        assert gp.MIN_DEADLINE <= deadline <= gp.MAX_DEADLINE
        assert deadline + gp.ROLLBACK_GRACE + gp.COLLECTOR_SECONDS < timeout, timeout
    assert gp.deadline_for(900) == 600  # the default wait


@pytest.mark.parametrize(
    ("op", "after", "inverse"),
    [
        (
            gp.RegSet("ts", "fDenyTSConnections", ("DWord", 1), ("DWord", 0)),
            None,
            [gp.RegSet("ts", "fDenyTSConnections", ("DWord", 0), ("DWord", 1))],
        ),
        (
            gp.RegSet("tls12", "Enabled", None, ("DWord", 1), key_exists=False),
            None,
            [gp.RegDel("tls12", "Enabled", ("DWord", 1), drop_key=True)],
        ),
        (
            gp.RegDel("cipher", "Functions", ("String", "")),
            None,
            [gp.RegSet("cipher", "Functions", None, ("String", ""))],
        ),
        (
            gp.Acl("mk", "O:SYD:PAI(A;;FA;;;BA)", "O:SYD:PAI(A;;0x12019f;;;WD)(A;;FA;;;BA)"),
            "O:SYD:PAI(A;;0x12019f;;;WD)(A;;FA;;;BA)",
            [gp.Acl("mk", "O:SYD:PAI(A;;0x12019f;;;WD)(A;;FA;;;BA)", "O:SYD:PAI(A;;FA;;;BA)")],
        ),
        (
            gp.ServiceControl("TermService", "start", "Stopped"),
            None,
            [gp.ServiceControl("TermService", "stop", "Running")],
        ),
        (gp.ServiceControl("TermService", "restart"), None, [gp.ServiceControl("TermService", "restart")]),
        (gp.RuleNew("azrdp-RDP-3390", 3390), None, [gp.RuleDel("azrdp-RDP-3390", 3390)]),
        (gp.WaitListener(3389), None, []),
    ],
)
def test_each_inverse_expects_what_the_op_left(op: gp.Op, after: object, inverse: list[gp.Op]) -> None:
    got = op.inverse(after)
    assert [(type(o), o.fields()) for o in got] == [(type(o), o.fields()) for o in inverse]


def test_every_op_validates_against_the_allow_list() -> None:
    with pytest.raises(gp.PlanError):
        gp.RegSet("ts", "Shell", None, ("String", "cmd.exe")).validate()
    with pytest.raises(gp.PlanError):
        gp.ServiceControl("WindowsAzureGuestAgent", "stop").validate()
    with pytest.raises(gp.PlanError):
        gp.RuleNew("Allow-Everything", 3389).validate()
    with pytest.raises(gp.PlanError):
        gp.KeyRename("..\\..\\Windows\\win.ini", "x").validate()
    with pytest.raises(gp.PlanError):
        gp.Acl("key:C:\\Windows\\System32\\config\\SAM", "O:SY", "O:SY").validate()


def test_a_later_step_sees_what_an_earlier_one_leaves() -> None:
    facts = gf.Facts(
        reg=(gf.RegEntry("rdptcp", "PortNumber", "DWord", 3389),),
        services=(gf.ServiceFacts("TermService", state="Running", pid=1068),),
        listeners=(gf.PortOwner(3389, 4242, "nginx"),),
    )
    moved = gp.project_all(
        facts,
        [
            gp.RegSet("rdptcp", "PortNumber", ("DWord", 3389), ("DWord", 3390)),
            gp.ServiceControl("TermService", "restart"),
        ],
    )
    assert moved.number("rdptcp", "PortNumber") == 3390
    assert gf.PortOwner(3390, 1068, "svchost") in (moved.listeners or ())
    stopped = gp.project(facts, gp.ServiceControl("TermService", "stop"))
    assert stopped.service("TermService").state == "Stopped"  # type: ignore[union-attr]


# --- CredSSP, Microsoft's interoperability matrix (KB4093492) -------------------------------------
# Rows: client updated?, client policy; columns: server updated?, server policy (None: absent, which
# is Mitigated on an updated system). True: the connection works.
MATRIX = {
    # An updated client (Force updated clients, Mitigated, Vulnerable) against an unpatched server:
    # blocked unless the client is set to Vulnerable.
    (True, 0, False): False,
    (True, 1, False): False,
    (True, 2, False): True,
    # An unpatched client against an updated server: blocked only when the server forces updated clients.
    (False, 1, True, 0): False,
    (False, 1, True, 1): True,
    (False, 1, True, 2): True,
    (False, 1, True, None): True,
}


def test_credssp_admits_follows_the_matrix() -> None:
    for key, works in MATRIX.items():
        if len(key) == 3:
            client_patched, client_value, server_patched = key
            for server_value in (None, 0, 1, 2):
                assert credssp_admits(server_patched, server_value, client_patched, client_value) is works, (
                    key
                )
        else:
            client_patched, client_value, server_patched, server_value = key
            assert credssp_admits(server_patched, server_value, client_patched, client_value) is works, key
    # Both updated, or neither: it works whatever the settings.
    for s_value, c_value in itertools.product((None, 0, 1, 2), (0, 1, 2)):
        assert credssp_admits(True, s_value, True, c_value)
        assert credssp_admits(False, s_value, False, c_value)
