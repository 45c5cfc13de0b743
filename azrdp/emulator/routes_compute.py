"""Microsoft.Compute routes: virtual machines, power actions, action Run Command, operation polls."""

from __future__ import annotations

import dataclasses
import re
from typing import TYPE_CHECKING, Any

from azrdp.emulator.authz import RUN_IN_PROGRESS
from azrdp.emulator.ids import key
from azrdp.emulator.lro import Operation, OperationFailed
from azrdp.emulator.vmstate import (
    INTERNAL_KEYS,
    agent_ready,
    emulator_state,
    os_type,
    power_state,
    set_agent,
    set_power_state,
    set_provisioning_state,
)
from azrdp.emulator.wire import PROVIDERS, SUB, ArmError, Request, Response, Route, not_found, page, route

if TYPE_CHECKING:
    from azrdp.emulator.server import Emulator

Resource = dict[str, Any]

VM_TYPE = "Microsoft.Compute/virtualMachines"
VM = PROVIDERS + r"/microsoft\.compute/virtualmachines/(?P<vm>[^/]+)"
OUTPUT_LIMIT = 4096
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


_VMSS_FILTER = re.compile(r"""^\s*'?virtualMachineScaleSet/id'?\s+eq\s+'(?P<id>[^']+)'\s*$""", re.IGNORECASE)


def _list_filter(req: Request) -> str | None:
    """The scale set id of a valid `$filter`, None without one; 400 for any other filter.

    The contract documents one filter for VM lists, `'virtualMachineScaleSet/id' eq '<id>'`, and
    `$expand=instanceView` "can only be specified if a valid $filter option is specified"
    (VirtualMachines_List / _ListAll, Azure/azure-rest-api-specs#42411).
    """
    raw = req.query.get("$filter")
    expand = req.query.get("$expand")
    scale_set: str | None = None
    if raw is not None:
        found = _VMSS_FILTER.match(raw)
        if found is None:
            raise ArmError(
                400,
                "InvalidParameter",
                f"The value '{raw}' of parameter '$filter' is not valid. The supported filter is "
                "'virtualMachineScaleSet/id' eq '<virtual machine scale set id>'.",
                target="$filter",
            )
        scale_set = found["id"]
    if expand is not None:
        if expand.lower() != "instanceview":
            raise ArmError(
                400,
                "InvalidParameter",
                f"The value '{expand}' of parameter '$expand' is not allowed. "
                "Allowed values are 'instanceView'.",
                target="$expand",
            )
        if scale_set is None:
            raise ArmError(
                400,
                "InvalidParameter",
                "The value 'instanceView' of parameter '$expand' can only be specified if a valid "
                "$filter option is specified ('virtualMachineScaleSet/id' eq '<scale set id>').",
                target="$expand",
            )
    return scale_set


def _in_scale_set(vm: Resource, scale_set: str | None) -> bool:
    if scale_set is None:
        return True
    ref = (vm.get("properties") or {}).get("virtualMachineScaleSet") or {}
    return str(ref.get("id", "")).lower() == scale_set.lower()


def render_status_only(vm: Resource) -> Resource:
    """A `statusOnly=true` entry: the run-time status and nothing of the model, not even tags
    (Azure/azure-sdk-for-go#18565)."""
    return {
        "name": vm.get("name"),
        "id": vm.get("id"),
        "type": vm.get("type", VM_TYPE),
        "location": vm.get("location"),
        "properties": {"instanceView": vm.get("instanceView") or {}},
    }


def vm_list(emu: Emulator, req: Request, m: re.Match[str]) -> Response:
    emu.require_group(m["sub"], m["rg"])
    scale_set = _list_filter(req)
    expand = req.query.get("$expand") is not None
    items = [vm for vm in emu.store.list(VM_TYPE, m["sub"], m["rg"]) if _in_scale_set(vm, scale_set)]
    return page(emu, req, items, lambda vm: render_vm(vm, instance_view=expand))


def vm_list_all(emu: Emulator, req: Request, m: re.Match[str]) -> Response:
    status_only = req.query.get("statusOnly", "").lower() == "true"
    scale_set = _list_filter(req)
    expand = req.query.get("$expand") is not None
    items = [vm for vm in emu.store.list(VM_TYPE, m["sub"]) if _in_scale_set(vm, scale_set)]
    if status_only:
        return page(emu, req, items, render_status_only)
    return page(emu, req, items, lambda vm: render_vm(vm, instance_view=expand))


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

    boots = final == "running"
    slow = emu.faults.behaviour("slow-start", req.path, req.number) if boots else None
    late = emu.faults.behaviour("late-agent", req.path, req.number) if boots else None

    def complete() -> None:
        if final:
            set_power_state(vm, final)
        set_provisioning_state(vm, "succeeded")
        if late is not None and late.duration > 0:
            # The guest is still booting: the agent reports Not Ready until it catches up.
            mode = str(emulator_state(vm).get("agent", "ready"))
            set_agent(vm, "notReady")
            emulator_state(vm)["agent"] = mode

            def agent_catches_up() -> None:
                if power_state(vm) == "running":
                    set_agent(vm, mode)

            emu.ops.create(
                provider="Microsoft.Compute",
                subscription=m["sub"],
                location=str(vm.get("location", "")),
                api_version=req.query["api-version"],
                seconds=late.duration,
                on_complete=agent_catches_up,
                resource_key=key(vm["id"]),
                kind="agent",
            )

    op = emu.ops.create(
        provider="Microsoft.Compute",
        subscription=m["sub"],
        location=str(vm.get("location", "")),
        api_version=req.query["api-version"],
        seconds=slow.duration if slow is not None else emu.lro_seconds,
        on_complete=complete,
        resource_key=key(vm["id"]),
        kind="power",
    )
    return Response(202, None, operation_urls(emu, op))


def _tail(text: str, limit: int = OUTPUT_LIMIT) -> str:
    """The last `limit` bytes of a stream (Run Command keeps the end), whole characters only.
    Lone surrogates (a guest's text may hold any UTF-16 unit) pass through unharmed."""
    data = text.encode("utf-8", errors="surrogatepass")
    if len(data) <= limit:
        return text
    tail = data[-limit:]
    while tail and (tail[0] & 0xC0) == 0x80:  # a cut character's continuation bytes
        tail = tail[1:]
    return tail.decode("utf-8", errors="surrogatepass")


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
        replaced = emu.faults.behaviour("guest-output", req.path, req.number)
        if replaced is not None:
            # The script ran and the guest changed; only what azrdp reads back is replaced.
            output = dataclasses.replace(
                output,
                stdout=output.stdout if replaced.stdout is None else replaced.stdout,
                stderr=output.stderr if replaced.stderr is None else replaced.stderr,
            )
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
    c = "Microsoft.Compute"
    vms = f"{c}/virtualMachines"
    return [
        route("GET", VM, vm_get, c, action=f"{vms}/read"),
        route("GET", VM + r"/instanceview", vm_instance_view, c, action=f"{vms}/instanceView/read"),
        route(
            "POST",
            VM + r"/(?P<action>start|poweroff|deallocate|restart|redeploy|reapply)",
            vm_power,
            c,
            action=vms + "/{action}/action",
        ),
        route("POST", VM + r"/runcommand", run_command, c, action=f"{vms}/runCommand/action"),
        route(
            "GET",
            PROVIDERS + r"/microsoft\.compute/virtualmachines",
            vm_list,
            c,
            action=f"{vms}/read",
            collection=True,
        ),
        route(
            "GET",
            SUB + r"/providers/microsoft\.compute/virtualmachines",
            vm_list_all,
            c,
            action=f"{vms}/read",
            collection=True,
        ),
        route(
            "GET",
            SUB + r"/providers/microsoft\.compute/locations/(?P<loc>[^/]+)/operations/(?P<op>[^/]+)",
            operation_status,
            c,
            action=f"{c}/locations/operations/read",
            resource_type="locations/operations",
        ),
    ]
