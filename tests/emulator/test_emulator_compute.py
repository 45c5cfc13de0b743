"""Compute routes through the real SDK: VM reads, paging, power LROs, action Run Command, error paths."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
)
from fixtures_emulator import sdk_clients

from azrdp.emulator import Emulator, RunCommandOutput

RG, VM = "rg-rdp", "vm-rdp01"
SCRIPT = {"commandId": "RunPowerShellScript", "script": ["Get-Service TermService"]}


def power(compute: Any, rg: str = RG, name: str = VM) -> str:
    statuses = compute.virtual_machines.instance_view(rg, name).statuses
    return next(s.code for s in statuses if s.code.startswith("PowerState/"))


def test_vm_get_without_and_with_instance_view(emulator: Emulator) -> None:
    compute, _ = sdk_clients(emulator)
    plain = compute.virtual_machines.get(RG, VM)
    assert plain.instance_view is None
    assert plain.storage_profile.os_disk.os_type == "Windows"
    assert "adminPassword" not in plain.as_dict()["properties"]["osProfile"]
    assert "guest" not in plain.as_dict()
    expanded = compute.virtual_machines.get(RG, VM, expand="instanceView")
    assert [s.code for s in expanded.instance_view.statuses] == [
        "ProvisioningState/succeeded",
        "PowerState/running",
    ]
    agent = expanded.instance_view.vm_agent
    assert agent.statuses[0].display_status == "Ready"
    assert expanded.instance_view.os_name


def test_vm_names_match_case_insensitively(emulator: Emulator) -> None:
    compute, _ = sdk_clients(emulator)
    assert compute.virtual_machines.get("RG-RDP", "VM-RDP01").name == VM


def test_instance_view_of_agent_not_ready_and_deallocated(make_emulator: Callable[..., Emulator]) -> None:
    compute, _ = sdk_clients(make_emulator("agent-not-ready"))
    agent = compute.virtual_machines.instance_view(RG, VM).vm_agent
    assert agent.vm_agent_version == "Unknown"
    assert (agent.statuses[0].code, agent.statuses[0].level, agent.statuses[0].display_status) == (
        "ProvisioningState/Unavailable",
        "Warning",
        "Not Ready",
    )
    compute, _ = sdk_clients(make_emulator("deallocated"))
    view = compute.virtual_machines.instance_view(RG, VM)
    assert view.vm_agent is None and view.os_name is None
    assert power(compute) == "PowerState/deallocated"


def test_linux_scenario(make_emulator: Callable[..., Emulator]) -> None:
    compute, _ = sdk_clients(make_emulator("linux"))
    vm = compute.virtual_machines.get(RG, "vm-linux01")
    assert vm.storage_profile.os_disk.os_type == "Linux"
    assert vm.os_profile.linux_configuration is not None


def test_list_and_list_all_status_only_page_through_fleet(make_emulator: Callable[..., Emulator]) -> None:
    emu = make_emulator("fleet:250:5", page_size=40)
    compute, _ = sdk_clients(emu)
    everything = list(compute.virtual_machines.list_all(status_only="true"))
    assert len(everything) == 250
    assert len({vm.id for vm in everything}) == 250
    assert all(vm.instance_view.statuses for vm in everything)
    pages = [r for r in emu.requests if r.path.endswith("/virtualMachines")]
    assert len(pages) == 7  # ceil(250 / 40)
    assert all("statusOnly=true" in r.query for r in pages)
    in_group = list(compute.virtual_machines.list("rg-fleet-02"))
    assert len(in_group) == 50
    assert all(vm.instance_view is None for vm in in_group)


def test_fleet_is_deterministic_per_seed() -> None:
    def summary(seed: int) -> list[tuple[str, str]]:
        emu = Emulator("fleet:60", seed=seed)
        from azrdp.emulator.vmstate import power_state

        return [(vm["name"], power_state(vm)) for vm in emu.store.list("Microsoft.Compute/virtualMachines")]

    assert summary(1) == summary(1)
    assert summary(1) != summary(2)


@pytest.mark.parametrize(
    ("action", "transitional", "final"),
    [
        ("begin_power_off", "PowerState/stopping", "PowerState/stopped"),
        ("begin_deallocate", "PowerState/deallocating", "PowerState/deallocated"),
        ("begin_restart", "PowerState/starting", "PowerState/running"),
        ("begin_redeploy", "PowerState/starting", "PowerState/running"),
        ("begin_reapply", "PowerState/running", "PowerState/running"),
    ],
)
def test_power_actions_are_lros_with_transitional_states(
    make_emulator: Callable[..., Emulator], action: str, transitional: str, final: str
) -> None:
    emu = make_emulator("healthy", lro_seconds=0.3)
    compute, _ = sdk_clients(emu)
    poller = getattr(compute.virtual_machines, action)(RG, VM)
    assert power(compute) == transitional
    assert compute.virtual_machines.get(RG, VM).provisioning_state == "Updating"
    assert poller.result() is None
    assert power(compute) == final
    assert compute.virtual_machines.get(RG, VM).provisioning_state == "Succeeded"
    polls = [r for r in emu.requests if "/operations/" in r.path]
    assert polls and polls[-1].status == 200


def test_start_brings_a_deallocated_vm_back_with_its_agent(make_emulator: Callable[..., Emulator]) -> None:
    compute, _ = sdk_clients(make_emulator("deallocated"))
    compute.virtual_machines.begin_start(RG, VM).result()
    view = compute.virtual_machines.instance_view(RG, VM)
    assert power(compute) == "PowerState/running"
    assert view.vm_agent.statuses[0].display_status == "Ready"


def test_restart_of_a_deallocated_vm_is_refused(make_emulator: Callable[..., Emulator]) -> None:
    compute, _ = sdk_clients(make_emulator("deallocated"))
    with pytest.raises(ResourceExistsError) as caught:
        compute.virtual_machines.begin_restart(RG, VM).result()
    assert caught.value.error.code == "OperationNotAllowed"


def test_default_guest_handler_is_the_windows_model(emulator: Emulator) -> None:
    from azrdp.emulator.windows import runcommand

    assert emulator.guest_handler is runcommand.handle_run_command


def test_run_command_fallback_handler_reports_unknown_script(emulator: Emulator) -> None:
    from azrdp.emulator.server import unknown_script_handler

    emulator.guest_handler = unknown_script_handler
    compute, _ = sdk_clients(emulator)
    result = compute.virtual_machines.begin_run_command(RG, VM, SCRIPT).result()
    stdout, stderr = result.value
    assert stdout.code == "ComponentStatus/StdOut/succeeded" and stdout.message == ""
    assert stderr.code == "ComponentStatus/StdErr/succeeded"
    assert stderr.message == "azrdp emulator: no guest handler knows this script"


def test_run_command_polls_location_then_returns_output(make_emulator: Callable[..., Emulator]) -> None:
    emu = make_emulator("healthy", runcommand_seconds=0.2)
    seen: list[tuple[str, dict[str, Any]]] = []

    def handler(vm: dict[str, Any], body: dict[str, Any]) -> RunCommandOutput:
        seen.append((vm["name"], body))
        vm["guest"]["repaired"] = True
        return RunCommandOutput(stdout="TermService Running", stderr="")

    emu.guest_handler = handler
    compute, _ = sdk_clients(emu)
    result = compute.virtual_machines.begin_run_command(RG, VM, SCRIPT).result()
    assert result.value[0].message == "TermService Running"
    assert seen == [(VM, SCRIPT)]
    with emu.store.lock:
        assert emu.vm(RG, VM)["guest"] == {"repaired": True}  # type: ignore[index]
    monitor = [r for r in emu.requests if "monitor=true" in r.query]
    assert [r.status for r in monitor][-1] == 200
    status_polls = [r for r in emu.requests if "/operations/" in r.path and "monitor=true" not in r.query]
    assert len(status_polls) >= 2  # Azure-AsyncOperation polled while InProgress, then the Location GET


def test_run_command_output_keeps_the_last_4096_bytes(emulator: Emulator) -> None:
    emulator.guest_handler = lambda vm, body: RunCommandOutput(stdout="x" * 5000 + "END", duration_s=0.01)
    compute, _ = sdk_clients(emulator)
    message = compute.virtual_machines.begin_run_command(RG, VM, SCRIPT).result().value[0].message
    assert len(message) == 4096 and message.endswith("END")


def test_concurrent_run_command_gets_409_conflict(make_emulator: Callable[..., Emulator]) -> None:
    emu = make_emulator("healthy", runcommand_seconds=1.0)
    compute, _ = sdk_clients(emu)
    first = compute.virtual_machines.begin_run_command(RG, VM, SCRIPT)
    with pytest.raises(ResourceExistsError) as caught:
        compute.virtual_machines.begin_run_command(RG, VM, SCRIPT)
    assert caught.value.error.code == "Conflict"
    assert "Run command extension execution is in progress" in caught.value.error.message
    first.result()
    compute.virtual_machines.begin_run_command(RG, VM, SCRIPT).result()  # free again


def test_run_command_on_stopped_vm_and_unready_agent(make_emulator: Callable[..., Emulator]) -> None:
    compute, _ = sdk_clients(make_emulator("stopped"))
    with pytest.raises(ResourceExistsError) as caught:
        compute.virtual_machines.begin_run_command(RG, VM, SCRIPT)
    assert caught.value.error.code == "OperationNotAllowed"
    compute, _ = sdk_clients(make_emulator("agent-not-ready", runcommand_seconds=0.05))
    with pytest.raises(HttpResponseError) as failed:
        compute.virtual_machines.begin_run_command(RG, VM, SCRIPT).result()
    assert failed.value.error.code == "VMAgentStatusCommunicationError"


def test_run_command_rejects_unknown_command_and_missing_command_id(emulator: Emulator) -> None:
    compute, _ = sdk_clients(emulator)
    with pytest.raises(ResourceNotFoundError):
        compute.virtual_machines.begin_run_command(RG, VM, {"commandId": "RunShellScript", "script": ["ls"]})
    with pytest.raises(HttpResponseError) as caught:
        compute.virtual_machines.begin_run_command(RG, VM, {"script": ["ls"]})
    assert caught.value.status_code == 400


def test_not_found_bodies_are_arm_shaped(emulator: Emulator) -> None:
    compute, _ = sdk_clients(emulator)
    with pytest.raises(ResourceNotFoundError) as missing_vm:
        compute.virtual_machines.get(RG, "nope")
    assert missing_vm.value.error.code == "ResourceNotFound"
    assert missing_vm.value.error.message.startswith(
        "The Resource 'Microsoft.Compute/virtualMachines/nope' under resource group 'rg-rdp' was not found."
    )
    with pytest.raises(ResourceNotFoundError) as missing_group:
        compute.virtual_machines.get("rg-missing", VM)
    assert missing_group.value.error.code == "ResourceGroupNotFound"
    assert missing_group.value.error.message == "Resource group 'rg-missing' could not be found."
    with pytest.raises(ResourceNotFoundError):
        list(compute.virtual_machines.list("rg-missing"))


def test_missing_token_is_401(emulator: Emulator) -> None:
    import requests

    sub = emulator.subscription_id
    url = f"{emulator.endpoint}/subscriptions/{sub}/providers/Microsoft.Compute/virtualMachines"
    response = requests.get(url, params={"api-version": "2026-04-01"}, verify=emulator.ca_path, timeout=10)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "AuthenticationFailed"
    assert "WWW-Authenticate" in response.headers


class RejectedCredential:
    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.exceptions import ClientAuthenticationError

        raise ClientAuthenticationError("no token for you")


def test_sdk_without_a_token_never_reaches_the_routes(emulator: Emulator) -> None:
    compute, _ = sdk_clients(emulator, credential=RejectedCredential())
    with pytest.raises(ClientAuthenticationError):
        compute.virtual_machines.get(RG, VM)


def test_api_version_is_required_and_checked(emulator: Emulator) -> None:
    import requests

    sub = emulator.subscription_id
    url = f"{emulator.endpoint}/subscriptions/{sub}/resourceGroups/{RG}/providers/Microsoft.Compute"
    url += f"/virtualMachines/{VM}"
    headers = {"Authorization": "Bearer t"}
    missing = requests.get(url, headers=headers, verify=emulator.ca_path, timeout=10)
    assert (missing.status_code, missing.json()["error"]["code"]) == (400, "MissingApiVersionParameter")
    unknown = requests.get(
        url, params={"api-version": "2099-01-01"}, headers=headers, verify=emulator.ca_path, timeout=10
    )
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (400, "NoRegisteredProviderFound")
    ok = requests.get(
        url, params={"api-version": "2026-04-01"}, headers=headers, verify=emulator.ca_path, timeout=10
    )
    assert ok.status_code == 200
    assert ok.headers["Content-Type"] == "application/json; charset=utf-8"
    assert ok.headers["x-ms-request-id"]
    assert int(ok.headers["x-ms-ratelimit-remaining-subscription-reads"]) > 0
    wrong_sub = url.replace(emulator.subscription_id, "00000000-0000-0000-0000-000000000000")
    other = requests.get(
        wrong_sub, params={"api-version": "2026-04-01"}, headers=headers, verify=emulator.ca_path, timeout=10
    )
    assert (other.status_code, other.json()["error"]["code"]) == (404, "SubscriptionNotFound")


def test_parallel_clients_share_consistent_state(make_emulator: Callable[..., Emulator]) -> None:
    emu = make_emulator("fleet:40:2", throttle=False)
    compute, _ = sdk_clients(emu)
    names = [vm.name for vm in compute.virtual_machines.list("rg-fleet-00")]
    errors: list[BaseException] = []

    def worker(chunk: list[str]) -> None:
        try:
            for name in chunk:
                assert compute.virtual_machines.get("rg-fleet-00", name).name == name
        except BaseException as exc:  # collected and re-raised in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(names[i::4],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
