"""Throttling (token buckets, 429 + Retry-After), injected faults and latency, and the request log."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.core.exceptions import HttpResponseError
from fixtures_emulator import sdk_clients

from azrdp.emulator import Emulator, Fault, ThrottleConfig, parse_faults, read_request_log
from azrdp.errors import UsageError

RG, VM = "rg-rdp", "vm-rdp01"


def vm_url(emu: Emulator) -> str:
    return (
        f"{emu.endpoint}/subscriptions/{emu.subscription_id}/resourceGroups/{RG}"
        f"/providers/Microsoft.Compute/virtualMachines/{VM}"
    )


def get(emu: Emulator) -> requests.Response:
    return requests.get(
        vm_url(emu),
        params={"api-version": "2026-04-01"},
        headers={"Authorization": "Bearer t"},
        verify=emu.ca_path,
        timeout=10,
    )


def test_read_bucket_runs_dry_with_429_and_retry_after(make_emulator: Callable[..., Emulator]) -> None:
    emu = make_emulator("healthy", throttle=ThrottleConfig(reads=3, reads_per_second=0.5))
    remaining = [int(get(emu).headers["x-ms-ratelimit-remaining-subscription-reads"]) for _ in range(3)]
    assert remaining == [2, 1, 0]
    throttled = get(emu)
    assert throttled.status_code == 429
    assert throttled.headers["Retry-After"] == "2"
    assert throttled.json()["error"]["code"] == "SubscriptionRequestsThrottled"
    assert "Please try again after '2' seconds" in throttled.json()["error"]["message"]


def test_writes_have_their_own_bucket(make_emulator: Callable[..., Emulator]) -> None:
    emu = make_emulator("healthy", throttle=ThrottleConfig(reads=1, reads_per_second=0.01))
    compute, _ = sdk_clients(emu, retry_total=0)
    compute.virtual_machines.get(RG, VM)
    with pytest.raises(HttpResponseError) as caught:
        compute.virtual_machines.get(RG, VM)
    assert caught.value.status_code == 429
    response = requests.post(
        f"{vm_url(emu)}/restart",
        params={"api-version": "2026-04-01"},
        headers={"Authorization": "Bearer t"},
        verify=emu.ca_path,
        timeout=10,
    )
    assert response.status_code == 202
    assert int(response.headers["x-ms-ratelimit-remaining-subscription-writes"]) == 199


def test_sdk_honours_retry_after_and_succeeds(make_emulator: Callable[..., Emulator]) -> None:
    emu = make_emulator("healthy", throttle=ThrottleConfig(reads=1, reads_per_second=2))
    compute, _ = sdk_clients(emu)
    compute.virtual_machines.get(RG, VM)
    assert compute.virtual_machines.get(RG, VM).name == VM
    assert [r.status for r in emu.requests] == [200, 429, 200]


def test_throttle_off(make_emulator: Callable[..., Emulator]) -> None:
    emu = make_emulator("healthy", throttle=False)
    assert all(get(emu).status_code == 200 for _ in range(5))


def test_default_limits_are_arms() -> None:
    config = ThrottleConfig()
    assert (config.reads, config.reads_per_second) == (250, 25.0)
    assert (config.writes, config.writes_per_second) == (200, 10.0)
    assert (config.deletes, config.deletes_per_second) == (200, 10.0)


@pytest.mark.parametrize(("spec", "statuses"), [("500@1", [500, 200]), ("503@1,503@2", [503, 503, 200])])
def test_scheduled_server_errors_are_retried_by_the_sdk(
    make_emulator: Callable[..., Emulator], spec: str, statuses: list[int]
) -> None:
    emu = make_emulator("healthy", faults=spec)
    compute, _ = sdk_clients(emu, retry_backoff_factor=0.01)
    assert compute.virtual_machines.get(RG, VM).name == VM
    assert [r.status for r in emu.requests] == statuses


def test_scheduled_connection_reset_is_retried(make_emulator: Callable[..., Emulator]) -> None:
    emu = make_emulator("healthy", faults="reset@1")
    compute, _ = sdk_clients(emu, retry_backoff_factor=0.01)
    assert compute.virtual_machines.get(RG, VM).name == VM
    assert [r.status for r in emu.requests] == [0, 200]


def test_reset_is_seen_by_a_plain_client(make_emulator: Callable[..., Emulator]) -> None:
    emu = make_emulator("healthy", faults="reset@1")
    with pytest.raises(requests.exceptions.ConnectionError):
        get(emu)


def test_injected_429_carries_retry_after(make_emulator: Callable[..., Emulator]) -> None:
    emu = make_emulator("healthy", faults="429@2")
    assert get(emu).status_code == 200
    throttled = get(emu)
    assert (throttled.status_code, throttled.headers["Retry-After"]) == (429, "1")


def test_probabilistic_faults_are_reproducible_with_a_seed(make_emulator: Callable[..., Emulator]) -> None:
    def statuses(seed: int) -> list[int]:
        emu = make_emulator("healthy", faults="503:0.5", seed=seed, throttle=False)
        return [get(emu).status_code for _ in range(12)]

    first = statuses(7)
    assert first == statuses(7)
    assert set(first) == {200, 503}


def test_fault_objects_can_target_a_path(make_emulator: Callable[..., Emulator]) -> None:
    emu = make_emulator("healthy", faults=[Fault("500", probability=1.0, path_contains="/networkInterfaces")])
    compute, network = sdk_clients(emu, retry_total=0)
    assert compute.virtual_machines.get(RG, VM).name == VM
    with pytest.raises(HttpResponseError) as caught:
        network.network_interfaces.get(RG, "vm-rdp01-nic")
    assert caught.value.status_code == 500


def test_403_and_404_faults_answer_as_arm_does(make_emulator: Callable[..., Emulator]) -> None:
    """403 AuthorizationFailed naming the action and scope, 404 ResourceNotFound (arm-wire.md 1.5)."""
    from azure.core.exceptions import ResourceNotFoundError

    emu = make_emulator(
        "healthy",
        faults=[
            Fault("forbidden", probability=1.0, method="GET", path_contains="/networkSecurityGroups/"),
            Fault("not-found", probability=1.0, method="GET", path_contains="/networkInterfaces/"),
        ],
    )
    _, network = sdk_clients(emu, retry_total=0)
    nsg = next(iter(network.network_security_groups.list(RG))).name  # the listing is not faulted
    with pytest.raises(HttpResponseError) as denied:
        network.network_security_groups.get(RG, nsg)
    assert denied.value.status_code == 403 and denied.value.error is not None
    assert denied.value.error.code == "AuthorizationFailed"
    message = str(denied.value.error.message)
    assert "'Microsoft.Network/networkSecurityGroups/read'" in message
    assert f"/resourceGroups/{RG}/providers/Microsoft.Network/networkSecurityGroups/{nsg}'" in message
    with pytest.raises(ResourceNotFoundError) as missing:
        network.network_interfaces.get(RG, "vm-rdp01-nic")
    assert missing.value.error is not None and missing.value.error.code == "ResourceNotFound"
    assert "Microsoft.Network/networkInterfaces/vm-rdp01-nic" in str(missing.value.error.message)


def test_fault_spec_parsing() -> None:
    assert parse_faults("503:0.05, reset:0.01,429@3") == [
        Fault("503", probability=0.05),
        Fault("reset", probability=0.01),
        Fault("429", at=3),
    ]
    for bad in ("418:0.1", "503:2", "500@0", "nonsense"):
        with pytest.raises(UsageError):
            parse_faults(bad)


def test_fault_json_form_parses_every_field_and_refuses_bad_objects(tmp_path: Any) -> None:
    spec = (
        '[{"kind": "forbidden", "action": "Microsoft.Compute/virtualMachines/runCommand/action"},'
        ' {"kind": "another-operation", "times": 2, "method": "PUT"},'
        ' {"kind": "slow-start", "seconds": 30, "vm": "vm1", "probability": 0.5},'
        ' {"kind": "403", "at": 4, "pathContains": "/networkInterfaces"}]'
    )
    assert parse_faults(spec) == [
        Fault("forbidden", action="Microsoft.Compute/virtualMachines/runCommand/action"),
        Fault("another-operation", times=2, method="PUT"),
        Fault("slow-start", seconds=30, vm="vm1", probability=0.5),
        Fault("forbidden", at=4, path_contains="/networkInterfaces"),
    ]
    path = tmp_path / "faults.json"
    path.write_text(spec, encoding="utf-8")
    assert parse_faults(f"@{path}") == parse_faults(spec)
    for bad, words in (
        ('[{"kind": "teapot"}]', "unknown kind 'teapot'"),
        ('[{"kind": "429", "at": 2, "times": 1}]', "at most one of"),
        ('[{"kind": "429", "colour": "red"}]', "unknown key 'colour'"),
        ('[{"kind": "429", "seconds": 3}]', "'seconds'"),
        ('[{"kind": "429", "action": "x"}]', "'action' belongs to kind forbidden"),
        ('[{"kind": "429"', "not valid JSON"),
        ('["429"]', "expected an object"),
    ):
        with pytest.raises(UsageError) as refused:
            parse_faults(bad)
        assert words in refused.value.message, bad


def test_forbidden_is_per_action_and_names_it(make_emulator: Callable[..., Emulator]) -> None:
    emu = make_emulator(
        "healthy", faults='[{"kind": "forbidden", "action": "Microsoft.Network/networkInterfaces/*"}]'
    )
    compute, network = sdk_clients(emu)
    assert compute.virtual_machines.get(RG, VM).name == VM  # other actions pass
    with pytest.raises(HttpResponseError) as denied:
        network.network_interfaces.get(RG, "vm-rdp01-nic")
    assert (denied.value.status_code, denied.value.error.code) == (403, "AuthorizationFailed")
    assert "perform action 'Microsoft.Network/networkInterfaces/read' over scope '/subscriptions/" in str(
        denied.value.error.message
    )
    with pytest.raises(HttpResponseError) as listing:
        list(network.network_interfaces.list(RG))
    assert f"over scope '/subscriptions/{emu.subscription_id}/resourceGroups/{RG}'" in str(
        listing.value.error.message
    )


def test_latency_is_added_to_each_request(make_emulator: Callable[..., Emulator]) -> None:
    emu = make_emulator("healthy", latency_ms=60, jitter_ms=20)
    get(emu)
    assert emu.requests[0].duration_ms >= 60


def test_request_log_file_matches_memory_and_holds_no_secrets(
    make_emulator: Callable[..., Emulator], tmp_path: Path
) -> None:
    log = tmp_path / "requests.jsonl"
    emu = make_emulator("healthy", request_log=log)
    compute, network = sdk_clients(emu)
    compute.virtual_machines.get(RG, VM, expand="instanceView")
    network.network_interfaces.get(RG, "vm-rdp01-nic")
    emu.clear_requests()
    network.public_ip_addresses.get(RG, "vm-rdp01-ip")
    from_file = read_request_log(log)
    assert [r.path.rsplit("/", 1)[1] for r in from_file] == [VM, "vm-rdp01-nic", "vm-rdp01-ip"]
    assert from_file[-1] == emu.requests[0]
    assert from_file[0].query == "api-version=2026-04-01&$expand=instanceView"
    text = log.read_text(encoding="utf-8")
    assert "Bearer" not in text and emu.identity_header not in text
    assert all(
        set(json.loads(line)) == {"method", "path", "query", "status", "started", "duration_ms"}
        for line in text.splitlines()
    )


def _collector_output(compute: Any) -> tuple[str, str]:
    from azure.mgmt.compute.models import RunCommandInput, RunCommandInputParameter

    from azrdp.guest import scripts

    body = RunCommandInput(
        command_id="RunPowerShellScript",
        script=scripts.script_lines("collect"),
        parameters=[
            RunCommandInputParameter(name=p["name"], value=p["value"])
            for p in scripts.collect_parameters(3389)
        ],
    )
    result = compute.virtual_machines.begin_run_command(RG, VM, body).result()
    streams = {s.code.split("/")[1]: s.message for s in result.value}
    return streams["StdOut"], streams["StdErr"]


def test_guest_output_replaces_what_the_client_reads_after_the_first_n(
    make_emulator: Callable[..., Emulator],
) -> None:
    from azrdp.guest import envelope

    emu = make_emulator(
        "guest-healthy",
        runcommand_seconds=0.01,
        faults='[{"kind": "guest-output", "vm": "vm-rdp01", "after": 1, "times": 1,'
        ' "stdout": "AZRDP2:H4sIAAAA", "stderr": "\\u001b]0;owned\\u0007"}]',
    )
    compute, _ = sdk_clients(emu)
    first = _collector_output(compute)
    assert first[0].startswith(envelope.MARKER) and first[1] == ""  # let through (`after`)
    assert _collector_output(compute) == ("AZRDP2:H4sIAAAA", "\x1b]0;owned\x07")  # replaced once
    assert _collector_output(compute)[0].startswith(envelope.MARKER)  # `times` used up


def test_guest_output_lets_the_script_run(make_emulator: Callable[..., Emulator]) -> None:
    """Only the output is replaced: the model still ran the script (it anchored its clock)."""
    emu = make_emulator("guest-healthy", faults='[{"kind": "guest-output", "stdout": ""}]')
    with emu.store.lock:
        vm = emu.vm(RG, VM)
        assert vm is not None
        before = vm.get("_emulator", {}).get("guestEpoch")
    compute, _ = sdk_clients(emu)
    assert _collector_output(compute) == ("", "")
    with emu.store.lock:
        after = emu.vm(RG, VM)["_emulator"]["guestEpoch"]  # type: ignore[index]
    assert before is None and after


def test_guest_output_is_refused_without_its_text_or_in_the_short_form() -> None:
    assert parse_faults('[{"kind": "guest-output", "stdout": "", "at": 3}]') == [
        Fault("guest-output", at=3, stdout="")
    ]
    for bad, words in (
        ('[{"kind": "guest-output"}]', "needs at least one"),
        ('[{"kind": "503", "stdout": "x"}]', "belong to kind guest-output"),
        ('[{"kind": "guest-output", "stdout": 5}]', "'stdout' must be a string"),
        ('[{"kind": "503", "after": -1}]', "'after'"),
        ('[{"kind": "503", "after": 1, "at": 2}]', "'after'"),
        ("guest-output:0.5", "JSON form"),
    ):
        with pytest.raises(UsageError) as refused:
            parse_faults(bad)
        assert words in refused.value.message, bad


def test_the_demo_fleet_is_a_built_in_scenario(make_emulator: Callable[..., Emulator]) -> None:
    from azrdp.emulator.demo import DEMO_VMS, GROUP
    from azrdp.emulator.scenario import builtin_scenarios

    assert "demo" in dict(builtin_scenarios())
    emu = make_emulator("demo")
    compute, _ = sdk_clients(emu)
    assert sorted(vm.name for vm in compute.virtual_machines.list(GROUP)) == sorted(v.name for v in DEMO_VMS)


def test_permissions_list_what_the_forbidden_faults_take_away(make_emulator: Callable[..., Emulator]) -> None:
    start = "Microsoft.Compute/virtualMachines/start/action"
    emu = make_emulator(
        "healthy",
        faults=[
            Fault("forbidden", action="Microsoft.Network/networkSecurityGroups/securityRules/write"),
            Fault("forbidden", action=start, vm=VM),
            Fault("forbidden", action="Microsoft.Compute/*", probability=0.5),  # transient: no role
        ],
    )
    group = f"{emu.endpoint}/subscriptions/{emu.subscription_id}/resourceGroups/{RG}"

    def permissions(scope: str, version: str | None = "2022-04-01") -> requests.Response:
        return requests.get(
            f"{scope}/providers/Microsoft.Authorization/permissions",
            params={"api-version": version} if version else {},
            headers={"Authorization": "Bearer t"},
            verify=emu.ca_path,
            timeout=10,
        )

    at_group = permissions(group).json()["value"]
    assert at_group == [
        {
            "actions": ["*"],
            "notActions": sorted(["Microsoft.Network/networkSecurityGroups/securityRules/write", start]),
            "dataActions": [],
            "notDataActions": [],
        }
    ]
    at_vm = permissions(vm_url(emu)).json()["value"][0]
    assert start in at_vm["notActions"]
    nsg = f"{group}/providers/Microsoft.Network/networkSecurityGroups/vm-rdp01-nsg"
    assert start not in permissions(nsg).json()["value"][0]["notActions"]  # another resource
    assert permissions(group, None).status_code == 400
    assert permissions(group, "2099-01-01").json()["error"]["code"] == "NoRegisteredProviderFound"
    gone = permissions(vm_url(emu).replace(VM, "vm-nope"))
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "ResourceNotFound"
