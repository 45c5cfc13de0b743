"""Raw pages (issue 15): reads are JSON through the SDK's pipeline, not generated models."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest

from azrdp.azure import arm
from azrdp.emulator import Emulator
from azrdp.errors import NotFoundError


def sdk_api_version(builder: Callable[..., Any], *args: str) -> str:
    request = builder(*args)
    found = re.search(r"api-version=([0-9a-z-]+)", request.url)
    assert found, request.url
    return found.group(1)


def test_the_pinned_api_versions_are_what_the_installed_sdk_sends() -> None:
    """arm.py pins the versions to keep them stable; an SDK upgrade that moves them fails here."""
    from azure.mgmt.compute.operations import _operations as compute
    from azure.mgmt.network.operations import _operations as network
    from azure.mgmt.resourcehealth.operations import _operations as health

    sub = "00000000-0000-0000-0000-000000000000"
    assert sdk_api_version(compute.build_virtual_machines_list_all_request, sub) == arm.COMPUTE_API
    assert (
        sdk_api_version(compute.build_virtual_machines_run_command_request, "rg", "vm", sub)
        == arm.COMPUTE_API
    )
    assert sdk_api_version(network.build_network_interfaces_list_all_request, sub) == arm.NETWORK_API
    assert sdk_api_version(network.build_load_balancers_list_request, "rg", sub) == arm.NETWORK_API
    assert (
        sdk_api_version(health.build_availability_statuses_list_by_subscription_id_request, sub)
        == arm.RESOURCE_HEALTH_API
    )


def test_paths_quote_each_segment() -> None:
    assert arm.resource_path("/subscriptions/s/resourceGroups/rg (1)/providers/P/t/a b") == (
        "/subscriptions/s/resourceGroups/rg%20%281%29/providers/P/t/a%20b"
    )
    assert arm.group_path("s", None, "Microsoft.Compute", "virtualMachines") == (
        "/subscriptions/s/providers/Microsoft.Compute/virtualMachines"
    )


@pytest.fixture
def reader(
    make_emulator: Callable[..., Emulator], arm_env: Callable[[Emulator], dict[str, str]]
) -> Callable[..., tuple[Emulator, arm.ArmReader]]:
    def start(scenario: str = "fleet:7:1", **kw: Any) -> tuple[Emulator, arm.ArmReader]:
        from azrdp.azure.auth import resolve_context

        emu = make_emulator(scenario, **kw)
        arm_env(emu)
        return emu, arm.ArmReader(resolve_context())

    return start


def test_pages_follow_next_link_verbatim(reader: Callable[..., tuple[Emulator, arm.ArmReader]]) -> None:
    emu, raw = reader(page_size=2)
    path = arm.group_path(emu.subscription_id, None, "Microsoft.Compute", "virtualMachines")
    names = [item["name"] for item in raw.items(path, arm.COMPUTE_API, {"statusOnly": "true"})]
    assert sorted(names) == sorted(vm["name"] for vm in emu.store.list("Microsoft.Compute/virtualMachines"))
    pages = [r for r in emu.requests if r.path.endswith("/virtualMachines")]
    assert len(pages) == 4  # 7 VMs, 2 a page
    # Every next page is asked exactly as ARM linked it: statusOnly and api-version kept, the token added.
    for number, page in enumerate(pages[1:], 1):
        assert page.query == f"statusOnly=true&api-version={arm.COMPUTE_API}&%24skiptoken={2 * number}"


def test_errors_are_raised_as_the_generated_code_raises_them(
    reader: Callable[..., tuple[Emulator, arm.ArmReader]],
) -> None:
    from azure.core.exceptions import ResourceNotFoundError

    from azrdp.azure.clients import translate_errors

    emu, raw = reader()
    path = arm.subscription_path(
        emu.subscription_id,
        "resourceGroups",
        "rg-none",
        "providers",
        "Microsoft.Compute",
        "virtualMachines",
        "x",
    )
    with pytest.raises(ResourceNotFoundError) as info:
        raw.get(path, arm.COMPUTE_API)
    assert info.value.error is not None and info.value.error.code == "ResourceGroupNotFound"
    with pytest.raises(NotFoundError) as mapped, translate_errors("VM 'x'"):
        raw.get(path, arm.COMPUTE_API)
    assert "rg-none" in mapped.value.message


def test_a_one_vm_check_loads_no_generated_compute_or_network_client(
    make_emulator: Callable[..., Emulator],
) -> None:
    emu = make_emulator("healthy")
    script = (
        "import sys\n"
        "sys.argv = ['azrdp', 'check', 'vm-rdp01', '-g', 'rg-rdp', '-o', 'none']\n"
        "from azrdp.cli.app import main\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    code = exc.code\n"
        "heavy = sorted(m for m in sys.modules if m.startswith(('azure.mgmt.compute', 'azure.mgmt.network', "
        "'azure.mgmt.resourcehealth')))\n"
        "print(code, heavy)\n"
    )
    env = {**os.environ, **emu.exports(), "AZURE_POD_IDENTITY_AUTHORITY_HOST": "http://127.0.0.1:9"}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env
    )
    assert done.stdout.strip() == "0 []", done.stderr[-2000:]
    assert len(emu.requests) == 7  # and the single-VM check's 7 requests
