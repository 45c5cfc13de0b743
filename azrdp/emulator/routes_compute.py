"""Microsoft.Compute routes: virtual machines, power actions, action Run Command, operation polls."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from azrdp.emulator.ids import key
from azrdp.emulator.lro import Operation, OperationFailed
from azrdp.emulator.vmstate import (
    INTERNAL_KEYS,
    agent_ready,
    os_type,
    power_state,
    set_power_state,
    set_provisioning_state,
)
from azrdp.emulator.wire import PROVIDERS, SUB, ArmError, Request, Response, Route, not_found, page, route

if TYPE_CHECKING:
    from azrdp.emulator.server import Emulator

Resource = dict[str, Any]

API_VERSIONS = frozenset({"2026-04-01", "2025-11-01", "2025-04-01", "2024-11-01", "2024-07-01", "2024-03-01"})
VM_TYPE = "Microsoft.Compute/virtualMachines"
VM = PROVIDERS + r"/microsoft\.compute/virtualmachines/(?P<vm>[^/]+)"
OUTPUT_LIMIT = 4096
RUN_IN_PROGRESS = (
    "Run command extension execution is in progress. "
    "Please wait for completion before invoking a run command."
)
NOT_RUNNING = "The operation requires the VM to be running (or set to run)."
AGENT_UNREACHABLE = (
    "VM '{name}' has not reported status for VM agent or extensions. Verify that the OS is up and healthy, "
    "the VM has a running VM agent, and that it can establish outbound connections to Azure storage. "
    "Please refer to https://aka.ms/vmextensionwindowstroubleshoot for additional VM agent troubleshooting "
    "information."
)
WINDOWS_COMMANDS = frozenset(
    {
        "RunPowerShellScript",
        "DisableNLA",
        "DisableWindowsUpdate",
        "EnableAdminAccount",
        "EnableEMS",
        "EnableRemotePS",
        "EnableWindowsUpdate",
        "IPConfig",
        "RDPSettings",
        "ResetRDPCert",
        "SetRDPPort",
    }
)
LINUX_COMMANDS = frozenset({"RunShellScript", "ifconfig"})

# action -> (transitional power state or None, final power state or None)
POWER_ACTIONS: dict[str, tuple[str | None, str | None]] = {
    "start": ("starting", "running"),
    "poweroff": ("stopping", "stopped"),
    "deallocate": ("deallocating", "deallocated"),
    "restart": ("starting", "running"),
    "redeploy": ("starting", "running"),
    "reapply": (None, None),
}


def render_vm(vm: Resource, *, instance_view: bool) -> Resource:
    out = {k: v for k, v in vm.items() if k not in INTERNAL_KEYS}
    if instance_view:
        props = dict(out.get("properties") or {})
        props["instanceView"] = vm.get("instanceView") or {}
        out["properties"] = props
    return out


def _vm(emu: Emulator, m: re.Match[str]) -> Resource:
    emu.require_group(m["sub"], m["rg"])
    vm = emu.store.get(f"/subscriptions/{m['sub']}/resourceGroups/{m['rg']}/providers/{VM_TYPE}/{m['vm']}")
    if vm is None:
        raise not_found(VM_TYPE, m["vm"], m["rg"])
    return vm


def vm_get(emu: Emulator, req: Request, m: re.Match[str]) -> Response:
    expand = req.query.get("$expand", "")
    if expand and expand.lower() not in ("instanceview", "userdata", "resiliencypolicy"):
        raise ArmError(
            400,
            "InvalidParameter",
            f"The value '{expand}' of parameter '$expand' is not allowed. "
            "Allowed values are 'instanceView', 'userData', 'resiliencyPolicy'.",
            target="$expand",
        )
    return Response(200, render_vm(_vm(emu, m), instance_view=expand.lower() == "instanceview"))


def vm_instance_view(emu: Emulator, req: Request, m: re.Match[str]) -> Response:
    return Response(200, _vm(emu, m).get("instanceView") or {})


def vm_list(emu: Emulator, req: Request, m: re.Match[str]) -> Response:
    emu.require_group(m["sub"], m["rg"])
    expand = req.query.get("$expand", "").lower() == "instanceview"
    items = emu.store.list(VM_TYPE, m["sub"], m["rg"])
    return page(emu, req, items, lambda vm: render_vm(vm, instance_view=expand))


def vm_list_all(emu: Emulator, req: Request, m: re.Match[str]) -> Response:
    status_only = req.query.get("statusOnly", "").lower() == "true"
    expand = req.query.get("$expand", "").lower() == "instanceview"
    items = emu.store.list(VM_TYPE, m["sub"])
    return page(emu, req, items, lambda vm: render_vm(vm, instance_view=status_only or expand))


def operation_urls(emu: Emulator, op: Operation) -> dict[str, str]:
    base = (
        f"{emu.endpoint}/subscriptions/{op.subscription}/providers/Microsoft.Compute/locations/{op.location}"
        f"/operations/{op.id}?p={op.token}"
    )
    return {
        "Location": f"{base}&monitor=true&api-version={op.api_version}",
        "Azure-AsyncOperation": f"{base}&api-version={op.api_version}",
    }


def vm_power(emu: Emulator, req: Request, m: re.Match[str]) -> Response:
    vm = _vm(emu, m)
    action = m["action"].lower()
    state = power_state(vm)
    if action == "restart" and state not in ("running", "starting"):
        raise ArmError(
            409,
            "OperationNotAllowed",
            f"Operation 'restart' is not allowed on VM '{vm['name']}' since the VM is {state}.",
        )
    transitional, final = POWER_ACTIONS[action]
    if action == "poweroff" and state in ("deallocated", "deallocating"):
        transitional, final = None, None
    if transitional:
        set_power_state(vm, transitional)
    set_provisioning_state(vm, "updating")
    previous = emu.ops.in_progress(key(vm["id"]), "power")
    if previous is not None:
        previous.on_complete = None  # the newer action decides the final state

    def complete() -> None:
        if final:
            set_power_state(vm, final)
        set_provisioning_state(vm, "succeeded")

    op = emu.ops.create(
        provider="Microsoft.Compute",
        subscription=m["sub"],
        location=str(vm.get("location", "")),
        api_version=req.query["api-version"],
        seconds=emu.lro_seconds,
        on_complete=complete,
        resource_key=key(vm["id"]),
        kind="power",
    )
    return Response(202, None, operation_urls(emu, op))


def _tail(text: str, limit: int = OUTPUT_LIMIT) -> str:
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    return data[-limit:].decode("utf-8", errors="ignore")


def run_command(emu: Emulator, req: Request, m: re.Match[str]) -> Response:
    vm = _vm(emu, m)
    body = req.json_body()
    if not isinstance(body, dict) or not isinstance(body.get("commandId"), str):
        raise ArmError(
            400,
            "InvalidParameter",
            "Required parameter 'commandId' is missing (null).",
            target="commandId",
        )
    command_id = body["commandId"]
    known = LINUX_COMMANDS if os_type(vm) == "Linux" else WINDOWS_COMMANDS
    if command_id.lower() not in {c.lower() for c in known}:
        raise ArmError(
            404,
            "NotFound",
            f"The entity was not found in this Azure location. Command '{command_id}' is not available "
            f"for {os_type(vm)} VMs.",
        )
    script = body.get("script")
    if script is not None and not (isinstance(script, list) and all(isinstance(s, str) for s in script)):
        raise ArmError(
            400, "InvalidParameter", "The value of parameter 'script' is invalid.", target="script"
        )
    if power_state(vm) != "running":
        raise ArmError(409, "OperationNotAllowed", NOT_RUNNING)
    vm_key = key(vm["id"])
    if emu.ops.in_progress(vm_key, "runCommand") is not None:
        raise ArmError(409, "Conflict", RUN_IN_PROGRESS)
    name = str(vm.get("name"))
    if not agent_ready(vm):

        def fail() -> None:
            raise OperationFailed("VMAgentStatusCommunicationError", AGENT_UNREACHABLE.format(name=name))

        seconds, on_complete = emu.runcommand_seconds, fail
    else:
        output = emu.call_guest_handler(vm, body)
        seconds = output.duration_s if output.duration_s is not None else emu.runcommand_seconds
        result = {
            "value": [
                {
                    "code": "ComponentStatus/StdOut/succeeded",
                    "level": "Info",
                    "displayStatus": "Provisioning succeeded",
                    "message": _tail(output.stdout),
                },
                {
                    "code": "ComponentStatus/StdErr/succeeded",
                    "level": "Info",
                    "displayStatus": "Provisioning succeeded",
                    "message": _tail(output.stderr),
                },
            ]
        }

        def succeed() -> dict[str, Any]:
            return result

        on_complete = succeed  # type: ignore[assignment]
    op = emu.ops.create(
        provider="Microsoft.Compute",
        subscription=m["sub"],
        location=str(vm.get("location", "")),
        api_version=req.query["api-version"],
        seconds=seconds,
        on_complete=on_complete,
        resource_key=vm_key,
        kind="runCommand",
    )
    return Response(202, None, operation_urls(emu, op))


def operation_status(emu: Emulator, req: Request, m: re.Match[str]) -> Response:
    op = emu.ops.get(m["op"])
    if op is None or op.provider != "Microsoft.Compute":
        raise ArmError(404, "OperationNotFound", f"The operation '{m['op']}' was not found.")
    if req.query.get("monitor", "").lower() == "true":
        if not op.done:
            return Response(202, None, {"Location": operation_urls(emu, op)["Location"]})
        if op.status == "Failed":
            return Response(400, {"error": op.error})
        return Response(200, op.result)
    body: dict[str, Any] = {"name": op.id, "status": op.status, "startTime": op.start_time}
    if op.end_time:
        body["endTime"] = op.end_time
    if op.error:
        body["error"] = op.error
    if op.status == "Succeeded" and op.result is not None:
        body["properties"] = {"output": op.result}
    return Response(200, body)


def routes() -> list[Route]:
    v = API_VERSIONS
    return [
        route("GET", VM, vm_get, v),
        route("GET", VM + r"/instanceview", vm_instance_view, v),
        route("POST", VM + r"/(?P<action>start|poweroff|deallocate|restart|redeploy|reapply)", vm_power, v),
        route("POST", VM + r"/runcommand", run_command, v),
        route("GET", PROVIDERS + r"/microsoft\.compute/virtualmachines", vm_list, v),
        route("GET", SUB + r"/providers/microsoft\.compute/virtualmachines", vm_list_all, v),
        route(
            "GET",
            SUB + r"/providers/microsoft\.compute/locations/(?P<loc>[^/]+)/operations/(?P<op>[^/]+)",
            operation_status,
            v,
        ),
    ]
