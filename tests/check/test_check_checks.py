"""Control-plane checks over hand-built facts (pure: no emulator)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from azrdp.checks import all_checks, get_check
from azrdp.engine.check import CheckOptions, assess
from azrdp.facts import NicFacts, Nsg, NsgRule, PublicIp, Subnet, VmFacts, Vnet
from azrdp.model import Severity, Source

SUB = "00000000-0000-0000-0000-000000000001"
RG = f"/subscriptions/{SUB}/resourceGroups/rg/providers"
SUBNET_ID = f"{RG}/Microsoft.Network/virtualNetworks/vnet/subnets/default"


def nsg(name: str, *rules: NsgRule) -> Nsg:
    return Nsg(f"{RG}/Microsoft.Network/networkSecurityGroups/{name}", name, rules)


def allow_rdp(name: str, priority: int, source: str) -> NsgRule:
    return NsgRule(
        name, priority, "Allow", protocol="Tcp", source_prefixes=(source,), destination_ports=("3389",)
    )


def vm(
    *,
    nic_nsg: Nsg | None = None,
    subnet_nsg: Nsg | None = None,
    pip: PublicIp | None = PublicIp(
        f"{RG}/Microsoft.Network/publicIPAddresses/pip", "pip", "20.1.2.3", "Static", None, "Standard"
    ),
    bastion: bool = False,
    **kw: object,
) -> VmFacts:
    subnets = [Subnet(SUBNET_ID, "default", ("10.0.0.0/24",), subnet_nsg.id if subnet_nsg else None)]
    if bastion:
        subnets.append(
            Subnet(
                f"{RG}/Microsoft.Network/virtualNetworks/vnet/subnets/AzureBastionSubnet",
                "AzureBastionSubnet",
            )
        )
    vnet = Vnet(f"{RG}/Microsoft.Network/virtualNetworks/vnet", "vnet", ("10.0.0.0/16",), tuple(subnets))
    nic = NicFacts(
        id=f"{RG}/Microsoft.Network/networkInterfaces/nic",
        name="nic",
        private_ip="10.0.0.4",
        subnet_id=SUBNET_ID,
        public_ip_id=pip.id if pip else None,
        nsg_id=nic_nsg.id if nic_nsg else None,
        public_ip=pip,
        nsg=nic_nsg,
        subnet=subnets[0],
        vnet=vnet,
        subnet_nsg=subnet_nsg,
    )
    base = dict(
        id=f"{RG}/Microsoft.Compute/virtualMachines/web01",
        name="web01",
        resource_group="rg",
        os_type="Windows",
        provisioning_state="Succeeded",
        power_state="running",
        agent_status="Ready",
        agent_version="2.7.41491.949",
        boot_diagnostics=True,
        nics=(nic,),
    )
    base.update(kw)
    return VmFacts(**base)  # type: ignore[arg-type]


def ids(facts: VmFacts, **opts: object) -> dict[str, Severity]:
    result = assess(facts, CheckOptions(**opts))  # type: ignore[arg-type]
    return {f.id: f.severity for f in result.findings}


OFFICE = nsg("nic-nsg", allow_rdp("allow-office", 100, "203.0.113.0/24"))


def test_healthy_vm_has_no_findings_but_a_restricted_note() -> None:
    result = assess(vm(nic_nsg=OFFICE), CheckOptions(source_ip="203.0.113.7"))
    assert result.findings == []
    assert result.status == "healthy"
    assert result.network is not None and result.network.verdict == "allowed"
    assert ids(vm(nic_nsg=OFFICE)) == {"rdp-source-restricted": Severity.INFO}


def test_nsg_denies_rdp_is_a_blocker_naming_the_rule() -> None:
    result = assess(vm(nic_nsg=OFFICE), CheckOptions(source_ip="198.51.100.9"))
    (finding,) = result.findings
    assert finding.id == "nsg-denies-rdp" and finding.severity is Severity.BLOCKER
    assert "DenyAllInBound" in finding.evidence and "198.51.100.9" in finding.recommendation
    assert result.status == "blocked" and result.exit_code == 4


@pytest.mark.parametrize(
    ("kw", "expected"),
    [
        ({"power_state": "deallocated"}, {"vm-not-running": Severity.BLOCKER}),
        ({"power_state": "stopped", "agent_status": None}, {"vm-not-running": Severity.BLOCKER}),
        ({"os_type": "Linux"}, {"vm-not-windows": Severity.WARNING}),
        ({"provisioning_state": "Failed"}, {"vm-provisioning-failed": Severity.BLOCKER}),
        ({"agent_status": "Not Ready", "agent_version": "Unknown"}, {"agent-not-ready": Severity.WARNING}),
        ({"agent_status": None}, {"agent-not-ready": Severity.WARNING}),
        ({"boot_diagnostics": False}, {"boot-diagnostics-disabled": Severity.INFO}),
    ],
)
def test_vm_state_checks(kw: dict[str, object], expected: dict[str, Severity]) -> None:
    assert ids(vm(nic_nsg=OFFICE, **kw), source_ip="203.0.113.7") == expected


def test_no_public_ip_mentions_bastion_when_the_vnet_has_one() -> None:
    result = assess(vm(nic_nsg=OFFICE, pip=None, bastion=True), CheckOptions(source_ip="203.0.113.7"))
    (finding,) = result.findings
    assert finding.id == "no-public-ip" and finding.severity is Severity.INFO
    assert "Bastion" in finding.recommendation and finding.details["bastionSubnet"] is True
    plain = assess(vm(nic_nsg=OFFICE, pip=None), CheckOptions(source_ip="203.0.113.7")).findings[0]
    assert "VPN" in plain.recommendation and plain.details["bastionSubnet"] is False


def test_rdp_open_to_internet_even_when_checking_one_source() -> None:
    open_nsg = nsg("nic-nsg", allow_rdp("rdp-any", 300, "*"))
    assert ids(vm(nic_nsg=open_nsg), source_ip="203.0.113.7") == {"rdp-open-to-internet": Severity.WARNING}
    tag = nsg("nic-nsg", allow_rdp("rdp-inet", 300, "Internet"))
    assert ids(vm(nic_nsg=tag)) == {"rdp-open-to-internet": Severity.WARNING}


def test_open_rule_shadowed_by_a_deny_is_not_flagged() -> None:
    shadowed = nsg(
        "nic-nsg",
        NsgRule("deny-rdp", 100, "Deny", protocol="Tcp", destination_ports=("3389",)),
        allow_rdp("rdp-any", 300, "*"),
    )
    assert ids(vm(nic_nsg=shadowed)) == {"nsg-denies-rdp": Severity.BLOCKER}


def test_jit_rules_are_recognised() -> None:
    jit = nsg(
        "nic-nsg",
        NsgRule("SecurityCenter-JITRule_1_ab12", 4096, "Deny", protocol="*", destination_ports=("3389",)),
    )
    found = ids(vm(nic_nsg=jit), source_ip="203.0.113.7")
    assert found == {"jit-rule-present": Severity.INFO, "nsg-denies-rdp": Severity.BLOCKER}
    result = assess(vm(nic_nsg=jit), CheckOptions(source_ip="203.0.113.7"))
    jit_finding = next(f for f in result.findings if f.id == "jit-rule-present")
    assert "JIT Deny rule blocks RDP" in jit_finding.evidence


def test_subnet_nsg_deny_is_reported_at_the_subnet_layer() -> None:
    sub = nsg("subnet-nsg", NsgRule("deny-all-rdp", 200, "Deny", protocol="*", destination_ports=("3389",)))
    result = assess(vm(nic_nsg=OFFICE, subnet_nsg=sub), CheckOptions(source_ip="203.0.113.7"))
    (finding,) = result.findings
    assert finding.id == "nsg-denies-rdp"
    assert finding.details["decidedBy"] == [
        {"layer": "subnet", "nsg": "subnet-nsg", "rule": "deny-all-rdp", "priority": 200, "access": "Deny"}
    ]


def test_no_nsg_with_standard_ip_blocks_and_with_basic_ip_is_open() -> None:
    standard = ids(vm())
    assert standard["no-nsg"] is Severity.BLOCKER and standard["nsg-denies-rdp"] is Severity.BLOCKER
    basic = PublicIp(
        f"{RG}/Microsoft.Network/publicIPAddresses/pip", "pip", "20.1.2.3", "Static", None, "Basic"
    )
    assert ids(vm(pip=basic)) == {"no-nsg": Severity.WARNING, "rdp-open-to-internet": Severity.WARNING}


def test_rule_on_public_ip_is_flagged() -> None:
    wrong = nsg(
        "nic-nsg",
        NsgRule(
            "rdp-pip",
            100,
            "Allow",
            protocol="Tcp",
            source_prefixes=("203.0.113.7",),
            destination_prefixes=("20.1.2.3",),
            destination_ports=("3389",),
        ),
    )
    assert ids(vm(nic_nsg=wrong), source_ip="203.0.113.7") == {
        "nsg-rule-targets-public-ip": Severity.WARNING,
        "nsg-denies-rdp": Severity.BLOCKER,
    }


def test_unresolvable_tag_gives_unknown_verdict() -> None:
    tagged = nsg("nic-nsg", allow_rdp("from-cloud", 100, "AzureCloud"))
    assert ids(vm(nic_nsg=tagged), source_ip="203.0.113.7") == {"nsg-verdict-unknown": Severity.WARNING}


def test_unreadable_nsg_gives_unknown_and_facts_incomplete() -> None:
    facts = vm(nic_nsg=OFFICE)
    nic = replace(facts.nics[0], nsg=None, unreadable=((OFFICE.id, "AuthorizationFailed: denied"),))
    result = assess(replace(facts, nics=(nic,)), CheckOptions(source_ip="203.0.113.7"))
    assert result.network is not None and result.network.verdict == "unknown"
    assert [f.id for f in result.findings] == ["facts-incomplete"]
    assert result.error is None


def test_unreadable_primary_nic_is_an_error_entry() -> None:
    facts = vm(nic_nsg=OFFICE)
    broken = NicFacts(
        id=facts.nics[0].id, name="nic", unreadable=((facts.nics[0].id, "AuthorizationFailed: no"),)
    )
    result = assess(replace(facts, nics=(broken,)), CheckOptions())
    assert result.status == "error" and result.error is not None
    assert result.error.code == "AuthorizationFailed" and result.exit_code == 1


def test_public_ip_without_address() -> None:
    dyn = PublicIp(f"{RG}/Microsoft.Network/publicIPAddresses/pip", "pip", None, "Dynamic", None, "Basic")
    assert ids(vm(nic_nsg=OFFICE, pip=dyn), source_ip="203.0.113.7") == {
        "public-ip-unassigned": Severity.WARNING
    }


def test_registry_metadata_is_complete() -> None:
    specs = [c for c in all_checks() if c.source in (Source.CONTROL_PLANE, Source.NETWORK_WATCHER)]
    required = {
        "vm-not-running",
        "vm-not-windows",
        "vm-provisioning-failed",
        "agent-not-ready",
        "nsg-denies-rdp",
        "no-public-ip",
        "jit-rule-present",
        "rdp-open-to-internet",
    }
    assert required <= {c.id for c in specs}
    for spec in specs:
        assert spec.title and spec.reads and spec.rbac, spec.id
        assert all(a.startswith("Microsoft.") for a in spec.rbac), spec.id
        assert spec.docs_anchor == f"checks.md#{spec.id}"
    eff = get_check("effective-rules-disagree")
    assert eff is not None and eff.source is Source.NETWORK_WATCHER


def test_private_vm_is_not_blocked_by_internet_denial_but_is_for_an_explicit_source() -> None:
    corp = nsg("nic-nsg", allow_rdp("allow-corp", 300, "10.0.0.0/8"))
    private = vm(nic_nsg=corp, pip=None)
    result = assess(private, CheckOptions())
    assert result.network is not None and result.network.verdict == "denied"
    assert ids(private) == {"no-public-ip": Severity.INFO}
    assert ids(private, source_ip="10.9.0.5") == {"no-public-ip": Severity.INFO}
    assert ids(private, source_ip="192.168.7.7") == {
        "no-public-ip": Severity.INFO,
        "nsg-denies-rdp": Severity.BLOCKER,
    }
