"""The emulator refuses what ARM refuses: api-versions, VM list parameters, rule bodies, concurrent
NSG writes and tokens; and it serves what the official Azure CLI needs besides (metadata, groups)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests
from azure.core.exceptions import HttpResponseError
from fixtures_emulator import sdk_clients

from azrdp.emulator import Emulator
from azrdp.emulator.apiversions import PUBLISHED

RG, VM, NIC_NSG = "rg-rdp", "vm-rdp01", "vm-rdp01-nsg"
GONE_ASG = "/subscriptions/s/resourceGroups/r/providers/Microsoft.Network/applicationSecurityGroups/gone"


def arm(emu: Emulator, method: str, path: str, version: str | None = None, **kw: Any) -> requests.Response:
    headers = {"Authorization": kw.pop("token", "Bearer t")}
    params = {"api-version": version} if version else {}
    params.update(kw.pop("params", {}))
    return requests.request(
        method, emu.endpoint + path, params=params, headers=headers, verify=emu.ca_path, timeout=10, **kw
    )


def vm_path(emu: Emulator) -> str:
    group = f"/subscriptions/{emu.subscription_id}/resourceGroups/{RG}"
    return f"{group}/providers/Microsoft.Compute/virtualMachines"


def nsg_path(emu: Emulator) -> str:
    return (
        f"/subscriptions/{emu.subscription_id}/resourceGroups/{RG}/providers/Microsoft.Network"
        f"/networkSecurityGroups/{NIC_NSG}"
    )


# --- api-versions -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "version"),
    [
        ("Microsoft.Compute", "2022-11-01"),  # az 2.91: vm start / restart
        ("Microsoft.Compute", "2026-04-01"),  # azure-mgmt-compute 39
        ("Microsoft.Network", "2022-01-01"),  # az 2.91: nsg show, rule list/create/delete
        ("Microsoft.Network", "2023-11-01"),  # az 2.91: nic show
        ("Microsoft.Network", "2025-09-01"),  # az 2.91: public-ip show
        ("Microsoft.Network", "2026-03-01"),  # azure-mgmt-network 33
    ],
)
def test_every_published_version_is_routed(emulator: Emulator, line: str, version: str) -> None:
    assert version in PUBLISHED[line].versions
    path = f"{vm_path(emulator)}/{VM}" if line == "Microsoft.Compute" else nsg_path(emulator)
    answer = arm(emulator, "GET", path, version)
    assert answer.status_code == 200, answer.text


def test_missing_malformed_and_unpublished_versions_are_refused(emulator: Emulator) -> None:
    path = f"{vm_path(emulator)}/{VM}"
    missing = arm(emulator, "GET", path)
    assert (missing.status_code, missing.json()["error"]["code"]) == (400, "MissingApiVersionParameter")
    malformed = arm(emulator, "GET", path, "2024-13")
    assert (malformed.status_code, malformed.json()["error"]["code"]) == (400, "InvalidApiVersionParameter")
    unpublished = arm(emulator, "GET", path, "2026-02-30")
    error = unpublished.json()["error"]
    assert (unpublished.status_code, error["code"]) == (400, "NoRegisteredProviderFound")
    assert "API version '2026-02-30' for type 'virtualMachines'" in error["message"]
    assert "2022-11-01" in error["message"]  # the supported list is the provider's published line
    # A network version is not a compute version.
    other_line = arm(emulator, "GET", path, "2022-01-01")
    assert other_line.json()["error"]["code"] == "NoRegisteredProviderFound"


# --- VM lists ---------------------------------------------------------------------------------


def test_list_expand_instance_view_needs_a_valid_filter(emulator: Emulator) -> None:
    group = arm(emulator, "GET", vm_path(emulator), "2026-04-01", params={"$expand": "instanceView"})
    error = group.json()["error"]
    assert (group.status_code, error["code"], error["target"]) == (400, "InvalidParameter", "$expand")
    assert "can only be specified if a valid $filter option is specified" in error["message"]
    everywhere = f"/subscriptions/{emulator.subscription_id}/providers/Microsoft.Compute/virtualMachines"
    refused = arm(emulator, "GET", everywhere, "2026-04-01", params={"$expand": "instanceView"})
    assert refused.status_code == 400 and refused.json()["error"]["target"] == "$expand"
    bad_filter = arm(emulator, "GET", vm_path(emulator), "2026-04-01", params={"$filter": "name eq 'x'"})
    assert (bad_filter.status_code, bad_filter.json()["error"]["target"]) == (400, "$filter")
    scale_set = vm_path(emulator).replace("virtualMachines", "virtualMachineScaleSets") + "/ss"
    filtered = arm(
        emulator,
        "GET",
        vm_path(emulator),
        "2026-04-01",
        params={"$filter": f"'virtualMachineScaleSet/id' eq '{scale_set}'", "$expand": "instanceView"},
    )
    assert filtered.status_code == 200 and filtered.json()["value"] == []  # no VM in that scale set


def test_status_only_returns_status_without_model_or_tags(make_emulator: Callable[..., Emulator]) -> None:
    emu = make_emulator("fleet:12")
    compute, _ = sdk_clients(emu)
    entries = [vm.as_dict() for vm in compute.virtual_machines.list_all(status_only="true")]
    assert len(entries) == 12
    for entry in entries:
        assert set(entry["properties"]) == {"instanceView"}
        assert not entry.get("tags")
        codes = [s["code"] for s in entry["properties"]["instanceView"]["statuses"]]
        assert any(c.startswith("PowerState/") for c in codes)
    models = [vm.as_dict() for vm in compute.virtual_machines.list_all()]
    assert all("instanceView" not in m["properties"] and m["tags"]["fleet"] == "generated" for m in models)


# --- security rules ---------------------------------------------------------------------------


def rule(**props: Any) -> dict[str, Any]:
    body = {
        "protocol": "Tcp",
        "sourcePortRange": "*",
        "destinationPortRange": "3389",
        "sourceAddressPrefix": "198.51.100.7/32",
        "destinationAddressPrefix": "*",
        "access": "Allow",
        "priority": 1500,
        "direction": "Inbound",
    }
    body.update(props)
    return {"properties": {k: v for k, v in body.items() if v is not None}}


@pytest.mark.parametrize(
    ("props", "code", "words"),
    [
        (
            {"sourceApplicationSecurityGroups": [{"id": "/x/asg"}]},
            "SecurityRuleInvalidParameter",
            "must specify a non empty value for exactly one of: SourceAddressPrefixes, SourceAddressPrefix, "
            "SourceApplicationSecurityGroups",
        ),
        (
            {"sourceAddressPrefix": "999.1.2.3/40"},
            "SecurityRuleInvalidAddressPrefix",
            "Value provided: 999.1.2.3/40",
        ),
        (
            {"sourceAddressPrefix": None, "sourceAddressPrefixes": ["10.0.0.0/8", "Internet"]},
            "SecurityRuleParameterContainsUnsupportedValue",
            "Unsupported value used: Internet",
        ),
        ({"destinationPortRange": "70000"}, "SecurityRuleInvalidPortRange", "Value provided: 70000"),
        ({"destinationPortRange": "3390-3389"}, "SecurityRuleInvalidPortRange", "Valid range 0-65535"),
        (
            {
                "sourceAddressPrefix": None,
                "sourceApplicationSecurityGroups": [{"id": GONE_ASG}],
            },
            "InvalidResourceReference",
            "applicationSecurityGroups/gone referenced by resource",
        ),
    ],
)
def test_rule_bodies_azure_refuses_are_refused(
    emulator: Emulator, props: dict[str, Any], code: str, words: str
) -> None:
    _, network = sdk_clients(emulator)
    with pytest.raises(HttpResponseError) as refused:
        network.security_rules.begin_create_or_update(RG, NIC_NSG, "bad", rule(**props)).result()
    assert (refused.value.status_code, refused.value.error.code) == (400, code)
    assert words in refused.value.error.message
    names = [r.name for r in network.network_security_groups.get(RG, NIC_NSG).security_rules]
    assert "bad" not in names


def test_an_existing_asg_is_accepted(emulator: Emulator) -> None:
    asg_id = (
        f"/subscriptions/{emulator.subscription_id}/resourceGroups/{RG}/providers/Microsoft.Network"
        "/applicationSecurityGroups/asg-jump"
    )
    emulator.add_resources([{"id": asg_id, "location": "westeurope", "properties": {}}])
    _, network = sdk_clients(emulator)
    body = rule(sourceAddressPrefix=None, sourceApplicationSecurityGroups=[{"id": asg_id}])
    created = network.security_rules.begin_create_or_update(RG, NIC_NSG, "from-asg", body).result()
    assert created.source_application_security_groups[0].id == asg_id
    assert network.application_security_groups.get(RG, "asg-jump").id == asg_id


def test_one_etag_for_the_nsg_and_its_rules_new_on_every_write(emulator: Emulator) -> None:
    _, network = sdk_clients(emulator)
    before = network.network_security_groups.get(RG, NIC_NSG)
    network.security_rules.begin_create_or_update(RG, NIC_NSG, "r1", rule()).result()
    after = network.network_security_groups.get(RG, NIC_NSG)
    assert after.etag != before.etag
    assert {r.etag for r in after.security_rules} | {r.etag for r in after.default_security_rules} == {
        after.etag
    }
    network.security_rules.begin_delete(RG, NIC_NSG, "r1").result()
    assert network.network_security_groups.get(RG, NIC_NSG).etag not in (before.etag, after.etag)


def test_a_second_write_while_one_runs_is_another_operation_in_progress(
    make_emulator: Callable[..., Emulator],
) -> None:
    emu = make_emulator("healthy", lro_seconds=5)
    path = nsg_path(emu) + "/securityRules"
    first = arm(emu, "PUT", path + "/one", "2022-01-01", json=rule(priority=1501))
    assert first.status_code == 201
    nsg = arm(emu, "GET", nsg_path(emu), "2026-03-01").json()
    assert nsg["properties"]["provisioningState"] == "Updating"
    second = arm(emu, "PUT", path + "/two", "2022-01-01", json=rule(priority=1502))
    error = second.json()["error"]
    assert (second.status_code, error["code"]) == (409, "AnotherOperationInProgress")
    assert error["message"].startswith("Another operation on this or dependent resource is in progress.")
    assert "two" not in [r["name"] for r in nsg["properties"]["securityRules"]]
    deleting = arm(emu, "DELETE", path + "/one", "2022-01-01")
    assert deleting.status_code == 409


# --- tokens -----------------------------------------------------------------------------------


def jwt(**claims: Any) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"Bearer {part({'alg': 'none'})}.{part(claims)}.sig"


def test_tokens_for_another_audience_or_expired_are_refused(emulator: Emulator) -> None:
    path = f"{vm_path(emulator)}/{VM}"
    now = int(time.time())
    for audience in ("https://management.azure.com", "https://management.core.windows.net/"):
        ok = arm(emulator, "GET", path, "2026-04-01", token=jwt(aud=audience, exp=now + 600))
        assert ok.status_code == 200
    wrong = arm(emulator, "GET", path, "2026-04-01", token=jwt(aud="https://vault.azure.net", exp=now + 600))
    assert (wrong.status_code, wrong.json()["error"]["code"]) == (401, "InvalidAuthenticationTokenAudience")
    assert "wrong audience or resource 'https://vault.azure.net'" in wrong.json()["error"]["message"]
    old = arm(
        emulator, "GET", path, "2026-04-01", token=jwt(aud="https://management.azure.com/", exp=now - 60)
    )
    assert (old.status_code, old.json()["error"]["code"]) == (401, "ExpiredAuthenticationToken")
    assert "WWW-Authenticate" in old.headers


# --- what the Azure CLI needs besides ---------------------------------------------------------


def test_metadata_endpoints_need_no_token_and_point_at_the_emulator(emulator: Emulator) -> None:
    answer = requests.get(
        emulator.endpoint + "/metadata/endpoints",
        params={"api-version": "2022-09-01"},
        verify=emulator.ca_path,
        timeout=10,
    )
    doc = answer.json()
    assert answer.status_code == 200
    assert doc["resourceManager"] == emulator.endpoint + "/"
    assert doc["authentication"]["loginEndpoint"].startswith("https://127.0.0.1:")
    assert doc["authentication"]["audiences"][0] == "https://management.core.windows.net/"


def test_resource_group_get_head_and_resources_list(emulator: Emulator) -> None:
    group = f"/subscriptions/{emulator.subscription_id}/resourceGroups/{RG}"
    shown = arm(emulator, "GET", group, "2024-11-01").json()
    assert (shown["name"], shown["type"]) == (RG, "Microsoft.Resources/resourceGroups")
    assert arm(emulator, "HEAD", group, "2024-11-01").status_code == 204
    missing = arm(emulator, "HEAD", group.replace(RG, "rg-none"), "2024-11-01")
    assert missing.status_code == 404 and missing.content == b""
    absent = arm(emulator, "GET", group.replace(RG, "rg-none"), "2024-11-01")
    assert absent.json()["error"]["code"] == "ResourceGroupNotFound"
    listed = arm(
        emulator,
        "GET",
        f"/subscriptions/{emulator.subscription_id}/resources",
        "2024-11-01",
        params={
            "$filter": f"resourceGroup eq '{RG}'",
            "$expand": "createdTime,changedTime,provisioningState",
        },
    ).json()["value"]
    types = {r["type"] for r in listed}
    assert "Microsoft.Compute/virtualMachines" in types and "Microsoft.Network/networkSecurityGroups" in types
    assert all(r["provisioningState"] == "Succeeded" for r in listed)
    bad = arm(
        emulator,
        "GET",
        f"/subscriptions/{emulator.subscription_id}/resources",
        "2024-11-01",
        params={"$filter": "substringof('x', name)"},
    )
    assert (bad.status_code, bad.json()["error"]["code"]) == (400, "InvalidFilterInQueryString")
