"""VM power and agent state, kept in the real instance-view shape.

A stored VM dict carries, besides its ARM fields, four emulator-side keys that are never rendered
as such: `instanceView` (the full instance view, moved into `properties` for `$expand=instanceView`),
`guest` (reserved for the in-guest simulator), `platform` (Resource Health and boot diagnostics,
see azrdp.emulator.platform) and `_emulator` (agent behaviour, timestamps).
"""

from __future__ import annotations

import datetime
from typing import Any

Resource = dict[str, Any]

POWER_STATES: dict[str, str] = {
    "running": "VM running",
    "stopped": "VM stopped",
    "deallocated": "VM deallocated",
    "starting": "VM starting",
    "stopping": "VM stopping",
    "deallocating": "VM deallocating",
    "unknown": "VM status unknown",
}
AGENT_MODES = ("ready", "notReady", "none")
PROVISIONING_STATES = ("succeeded", "creating", "updating", "deleting", "failed")
INTERNAL_KEYS = frozenset({"instanceView", "guest", "_emulator", "platform"})

AGENT_VERSION = "2.7.41491.1102"
AGENT_READY_MESSAGE = "GuestAgent is running and accepting new configurations."
AGENT_NOT_READY_MESSAGE = "VM status blob is found but not yet populated."


def now_iso() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat()


def os_type(vm: Resource) -> str:
    props = vm.get("properties") or {}
    disk = (props.get("storageProfile") or {}).get("osDisk") or {}
    value = disk.get("osType")
    if isinstance(value, str):
        return "Linux" if value.lower() == "linux" else "Windows"
    os_profile = props.get("osProfile") or {}
    return "Linux" if "linuxConfiguration" in os_profile else "Windows"


def emulator_state(vm: Resource) -> dict[str, Any]:
    state = vm.get("_emulator")
    if not isinstance(state, dict):
        state = vm["_emulator"] = {}
    return state


def power_state(vm: Resource) -> str:
    for status in (vm.get("instanceView") or {}).get("statuses") or ():
        code = str(status.get("code", ""))
        if code.startswith("PowerState/"):
            return code.split("/", 1)[1]
    return "unknown"


def agent_ready(vm: Resource) -> bool:
    agent = (vm.get("instanceView") or {}).get("vmAgent") or {}
    return any(
        str(s.get("code", "")).lower() == "provisioningstate/succeeded" for s in agent.get("statuses") or ()
    )


def expand_instance_view(vm: Resource, shortcut: dict[str, Any]) -> dict[str, Any]:
    """The full instance view for a scenario shortcut such as {"powerState": "running", "agent": "ready"}."""
    power = str(shortcut.get("powerState", "running"))
    # `agent` is how the agent behaves while the VM runs; a stopped VM shows none whatever it is.
    agent = str(shortcut.get("agent", "ready"))
    state = emulator_state(vm)
    state["agent"] = agent
    for name in ("osName", "osVersion", "agentVersion", "agentMessage"):
        if name in shortcut:
            state[name] = shortcut[name]
    props = vm.get("properties") or {}
    os_profile = props.get("osProfile") or {}
    view: dict[str, Any] = {
        "computerName": shortcut.get("computerName", os_profile.get("computerName", vm.get("name"))),
        "hyperVGeneration": shortcut.get("hyperVGeneration", "V2"),
        "disks": [],
        "statuses": [],
    }
    os_disk = (props.get("storageProfile") or {}).get("osDisk") or {}
    stamp = now_iso()
    if os_disk.get("name"):
        view["disks"].append(
            {
                "name": os_disk["name"],
                "statuses": [
                    {
                        "code": "ProvisioningState/succeeded",
                        "level": "Info",
                        "displayStatus": "Provisioning succeeded",
                        "time": stamp,
                    }
                ],
            }
        )
    provisioning = str(shortcut.get("provisioningState", "succeeded"))
    view["statuses"] = [_provisioning_status(provisioning, stamp)]
    vm["instanceView"] = view
    set_power_state(vm, power)
    return view


def _provisioning_status(state: str, stamp: str) -> dict[str, Any]:
    failed = state.lower().startswith("failed")
    return {
        "code": f"ProvisioningState/{state}",
        "level": "Error" if failed else "Info",
        "displayStatus": "Provisioning failed" if failed else f"Provisioning {state}",
        "time": stamp,
    }


def set_provisioning_state(vm: Resource, state: str) -> None:
    """Set both the instance-view status (`updating`) and `properties.provisioningState` (`Updating`)."""
    view = vm.setdefault("instanceView", {"statuses": []})
    statuses = [
        s for s in view.get("statuses") or () if not str(s.get("code", "")).startswith("Provisioning")
    ]
    view["statuses"] = [_provisioning_status(state, now_iso()), *statuses]
    vm.setdefault("properties", {})["provisioningState"] = state[:1].upper() + state[1:]


def set_power_state(vm: Resource, power: str) -> None:
    """Change the PowerState status and make the agent and OS fields follow, as Azure shows them."""
    view = vm.setdefault("instanceView", {"statuses": []})
    statuses = [s for s in view.get("statuses") or () if not str(s.get("code", "")).startswith("PowerState/")]
    statuses.append({"code": f"PowerState/{power}", "level": "Info", "displayStatus": POWER_STATES[power]})
    view["statuses"] = statuses
    state = emulator_state(vm)
    if power == "starting":  # start, restart, redeploy: a new boot (the simulated guest's boot time)
        state["boots"] = int(state.get("boots", 0)) + 1
    if power == "running":
        set_agent(vm, str(state.get("agent", "ready")))
    elif power in ("deallocated", "deallocating"):
        # A deallocated VM has no guest: Azure drops the agent and OS fields altogether.
        for name in ("vmAgent", "osName", "osVersion", "computerName"):
            view.pop(name, None)
    elif power in ("stopped", "stopping") and "vmAgent" in view:
        _write_agent(view, ready=False, state=state)
    view.setdefault("hyperVGeneration", "V2")
    if power == "running" and "computerName" not in view:
        props = vm.get("properties") or {}
        view["computerName"] = (props.get("osProfile") or {}).get("computerName", vm.get("name"))


def set_agent(vm: Resource, mode: str) -> None:
    """Agent behaviour while running: `ready`, `notReady` (reports Not Ready) or `none` (never reported)."""
    state = emulator_state(vm)
    state["agent"] = mode
    view = vm.setdefault("instanceView", {"statuses": []})
    if power_state(vm) != "running" and "statuses" in view and view["statuses"]:
        return
    if mode == "none":
        for name in ("vmAgent", "osName", "osVersion"):
            view.pop(name, None)
        return
    _write_agent(view, ready=mode == "ready", state=state)
    if mode == "ready":
        linux = os_type(vm) == "Linux"
        view["osName"] = state.get("osName", "ubuntu" if linux else "Windows Server 2022 Datacenter")
        view["osVersion"] = state.get("osVersion", "22.04" if linux else "Microsoft Windows NT 10.0.20348.0")
    else:
        view.pop("osName", None)
        view.pop("osVersion", None)


def _write_agent(view: dict[str, Any], *, ready: bool, state: dict[str, Any]) -> None:
    if ready:
        view["vmAgent"] = {
            "vmAgentVersion": state.get("agentVersion", AGENT_VERSION),
            "statuses": [
                {
                    "code": "ProvisioningState/succeeded",
                    "level": "Info",
                    "displayStatus": "Ready",
                    "message": state.get("agentMessage", AGENT_READY_MESSAGE),
                    "time": now_iso(),
                }
            ],
            "extensionHandlers": [],
        }
    else:
        view["vmAgent"] = {
            "vmAgentVersion": "Unknown",
            "statuses": [
                {
                    "code": "ProvisioningState/Unavailable",
                    "level": "Warning",
                    "displayStatus": "Not Ready",
                    "message": state.get("agentMessage", AGENT_NOT_READY_MESSAGE)
                    if state.get("agent") == "notReady"
                    else AGENT_NOT_READY_MESSAGE,
                    "time": now_iso(),
                }
            ],
            "extensionHandlers": [],
        }
