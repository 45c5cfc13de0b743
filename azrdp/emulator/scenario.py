"""Scenarios: which resources the emulator serves.

A scenario is a JSON document whose `resources` array holds ARM-shaped resources exactly as the
REST API returns them, so an official example response body or an `az resource show` dump loads as
is. Built-in scenarios ship as package data (`azrdp/emulator/scenarios/*.json`); `fleet:N[:groups]`
generates N VMs. `docs/emulator.md` documents the format.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from importlib import resources as package_resources
from pathlib import Path
from typing import Any

from azrdp.emulator import builders
from azrdp.emulator.ids import key, parse_id, type_key
from azrdp.emulator.store import CHILD_ARRAYS, ResourceStore
from azrdp.emulator.vmstate import (
    AGENT_MODES,
    POWER_STATES,
    PROVISIONING_STATES,
    agent_ready,
    emulator_state,
    expand_instance_view,
    power_state,
)
from azrdp.errors import UsageError

Resource = dict[str, Any]

DEFAULT_SUBSCRIPTION = "2b7c1d9e-3f4a-4b5c-8d6e-7f8091a2b3c4"
DEFAULT_LOCATION = "westeurope"
VM_TYPE = "microsoft.compute/virtualmachines"
NSG_TYPE = "microsoft.network/networksecuritygroups"
NIC_TYPE = "microsoft.network/networkinterfaces"
SHORTCUT_KEYS = frozenset(
    {
        "powerState",
        "agent",
        "provisioningState",
        "osName",
        "osVersion",
        "agentVersion",
        "agentMessage",
        "computerName",
        "hyperVGeneration",
    }
)
_TOP_KEYS = frozenset({"name", "description", "subscriptionId", "location", "resourceGroups", "resources"})


class ScenarioError(UsageError):
    code = "ScenarioError"


@dataclass
class Scenario:
    name: str
    subscription_id: str
    resources: list[Resource]
    description: str = ""
    location: str = DEFAULT_LOCATION
    resource_groups: list[dict[str, str]] = field(default_factory=list)
    # True when the resource dicts were built for this scenario alone and may be stored without a copy
    owned: bool = False


# ---------------------------------------------------------------------------------------------
# resolving a scenario spec


def builtin_dir() -> Path:
    return Path(str(package_resources.files("azrdp.emulator") / "scenarios"))


def builtin_scenarios() -> list[tuple[str, str]]:
    """(name, description) of every built-in scenario, the fleet generator last."""
    from azrdp.emulator.demo import DEMO_DESCRIPTION

    out = []
    for path in sorted(builtin_dir().glob("*.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        out.append((path.stem, str(doc.get("description", ""))))
    out.append(("demo", DEMO_DESCRIPTION))
    out.append(
        (
            "fleet-paths:N",
            "fleet:N, plus NAT rules of one load balancer in rg-fleet-00, a route to an appliance in "
            "rg-fleet-01 and a Virtual Network Manager admin Deny in rg-fleet-02",
        )
    )
    out.append(
        (
            "fleet:N[:groups]",
            "N generated Windows VMs over several resource groups, NSGs on NICs and subnets, "
            "some public IPs, some stopped or agent-less; deterministic for a given seed",
        )
    )
    return out


def resolve(spec: str | Path | dict[str, Any] | Scenario, *, seed: int = 0) -> Scenario:
    """A Scenario from a built-in name, `fleet:N[:groups]`, a JSON file path, a dict, or a Scenario."""
    if isinstance(spec, Scenario):
        return spec
    if not isinstance(spec, (str, Path)):
        return from_document(spec, source="<dict>")
    if isinstance(spec, str) and spec.lower() == "demo":
        from azrdp.emulator.demo import demo_scenario

        return demo_scenario()  # the `azrdp demo` fleet, built in code from the guest scenarios
    if isinstance(spec, str) and spec.lower().startswith("fleet:"):
        return _parse_fleet_spec(spec, seed)
    if isinstance(spec, str) and spec.lower().startswith("fleet-paths:"):
        from azrdp.emulator.path_builders import paths_fleet

        count, groups = _fleet_numbers(spec)
        return paths_fleet(count, groups=groups, seed=seed)
    if isinstance(spec, str):
        builtin = builtin_dir() / f"{spec}.json"
        if "/" not in spec and "\\" not in spec and not spec.endswith(".json"):
            if builtin.is_file():
                return _load_file(builtin, spec)
            names = ", ".join(name for name, _ in builtin_scenarios())
            raise ScenarioError(
                f"Unknown scenario '{spec}'.",
                f"It is neither a built-in scenario ({names}) nor a file.",
                "Run 'azrdp emulator scenarios' to list them, or pass the path of a scenario JSON file.",
            )
        spec = Path(spec)
    return _load_file(Path(spec), str(spec))


def _parse_fleet_spec(spec: str, seed: int) -> Scenario:
    count, groups = _fleet_numbers(spec)
    return generate_fleet(count, groups=groups, seed=seed)


def _fleet_numbers(spec: str) -> tuple[int, int | None]:
    parts = spec.split(":")
    try:
        count = int(parts[1])
        groups = int(parts[2]) if len(parts) > 2 else None
        if len(parts) > 3 or count < 1 or (groups is not None and groups < 1):
            raise ValueError(spec)
    except (ValueError, IndexError):
        raise ScenarioError(
            f"Bad fleet scenario '{spec}'.",
            "Expected fleet:N or fleet:N:GROUPS with positive integers.",
            "Use e.g. 'fleet:1000' or 'fleet:1000:8'.",
        ) from None
    return count, groups


def _load_file(path: Path, label: str) -> Scenario:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ScenarioError(
            f"Cannot read scenario file '{label}'.",
            exc.strerror or str(exc),
            "Check the path, or run 'azrdp emulator scenarios' for the built-in names.",
        ) from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ScenarioError(
            f"Scenario '{label}' is not valid JSON.",
            f"line {exc.lineno} column {exc.colno}: {exc.msg}.",
            "Fix the JSON syntax at that position.",
        ) from None
    scenario = from_document(doc, source=label, default_name=path.stem)
    scenario.owned = True  # freshly parsed: nobody else holds these dicts
    return scenario


# ---------------------------------------------------------------------------------------------
# validation


def _fail(source: str, where: str, problem: str) -> ScenarioError:
    return ScenarioError(
        f"Scenario '{source}' is malformed at {where}:",
        problem,
        "Fix that entry; docs/emulator.md describes the scenario format.",
    )


def from_document(doc: Any, *, source: str, default_name: str = "custom") -> Scenario:
    """Validate a scenario document; every error names the JSON path at fault."""
    if not isinstance(doc, dict):
        raise _fail(source, "$", f"expected an object with a 'resources' array, got {type(doc).__name__}.")
    unknown = sorted(set(doc) - _TOP_KEYS)
    if unknown:
        raise _fail(source, f"$.{unknown[0]}", f"unknown key (allowed: {', '.join(sorted(_TOP_KEYS))}).")
    for name in ("name", "description", "subscriptionId", "location"):
        if name in doc and not isinstance(doc[name], str):
            raise _fail(source, f"$.{name}", f"expected a string, got {type(doc[name]).__name__}.")
    resources = doc.get("resources")
    if not isinstance(resources, list):
        raise _fail(source, "$.resources", "expected an array of ARM resources.")
    seen: dict[str, int] = {}
    for index, resource in enumerate(resources):
        _validate_resource(source, f"$.resources[{index}]", resource)
        k = key(resource["id"])
        if k in seen:
            raise _fail(source, f"$.resources[{index}].id", f"duplicate of $.resources[{seen[k]}].id.")
        seen[k] = index
    groups = doc.get("resourceGroups", [])
    if not isinstance(groups, list):
        raise _fail(source, "$.resourceGroups", "expected an array of {name, location}.")
    for index, group in enumerate(groups):
        if not isinstance(group, dict) or not isinstance(group.get("name"), str):
            raise _fail(source, f"$.resourceGroups[{index}]", "expected an object with a string 'name'.")
    subscription = doc.get("subscriptionId")
    if subscription is None:
        first = next((parse_id(r["id"]) for r in resources), None)
        subscription = first.subscription if first else DEFAULT_SUBSCRIPTION
    return Scenario(
        name=str(doc.get("name", default_name)),
        description=str(doc.get("description", "")),
        subscription_id=subscription,
        location=str(doc.get("location", DEFAULT_LOCATION)),
        resources=resources,
        resource_groups=[
            {"name": g["name"], "location": str(g.get("location", doc.get("location", DEFAULT_LOCATION)))}
            for g in groups
        ],
    )


def _validate_resource(source: str, where: str, resource: Any) -> None:
    if not isinstance(resource, dict):
        raise _fail(source, where, f"expected an ARM resource object, got {type(resource).__name__}.")
    rid = resource.get("id")
    if not isinstance(rid, str):
        raise _fail(source, f"{where}.id", "missing or not a string (every resource needs its ARM id).")
    parsed = parse_id(rid)
    if parsed is None:
        raise _fail(
            source,
            f"{where}.id",
            f"'{rid}' is not a resource-group-scoped ARM id "
            "(/subscriptions/{sub}/resourceGroups/{rg}/providers/{namespace}/{type}/{name}).",
        )
    # `name` is not checked against the id: generated official examples carry placeholder names.
    if "name" in resource and not isinstance(resource["name"], str):
        raise _fail(source, f"{where}.name", "expected a string.")
    value = resource.get("type")
    if value is not None and (not isinstance(value, str) or value.lower() != parsed.type.lower()):
        raise _fail(source, f"{where}.type", f"{value!r} does not match the id (expected '{parsed.type}').")
    for name in ("properties", "tags", "guest", "platform"):
        if name in resource and not isinstance(resource[name], dict):
            raise _fail(
                source, f"{where}.{name}", f"expected an object, got {type(resource[name]).__name__}."
            )
    if "location" in resource and not isinstance(resource["location"], str):
        raise _fail(source, f"{where}.location", "expected a string.")
    if parsed.is_child and type_key(parsed.type) not in CHILD_ARRAYS:
        raise _fail(source, f"{where}.id", f"child resource type '{parsed.type}' is not supported.")
    tkey = type_key(parsed.type)
    props = resource.get("properties") or {}
    if tkey == VM_TYPE:
        _validate_vm(source, where, resource, props)
    elif tkey == NSG_TYPE:
        for array in ("securityRules", "defaultSecurityRules"):
            rules = props.get(array, [])
            if not isinstance(rules, list):
                raise _fail(source, f"{where}.properties.{array}", "expected an array of rules.")
            for j, rule in enumerate(rules):
                _validate_rule(source, f"{where}.properties.{array}[{j}]", rule)
    elif tkey.endswith("/securityrules"):
        _validate_rule(source, where, resource)


def _validate_vm(source: str, where: str, resource: Resource, props: dict[str, Any]) -> None:
    shortcut = resource.get("instanceView")
    if shortcut is not None:
        if not isinstance(shortcut, dict):
            raise _fail(source, f"{where}.instanceView", "expected an object.")
        if "statuses" not in shortcut:
            unknown = sorted(set(shortcut) - SHORTCUT_KEYS)
            if unknown:
                raise _fail(
                    source,
                    f"{where}.instanceView.{unknown[0]}",
                    f"unknown shortcut key (allowed: {', '.join(sorted(SHORTCUT_KEYS))}).",
                )
            checks = (
                ("powerState", tuple(POWER_STATES)),
                ("agent", AGENT_MODES),
            )
            for name, allowed in checks:
                if name in shortcut and shortcut[name] not in allowed:
                    raise _fail(
                        source,
                        f"{where}.instanceView.{name}",
                        f"{shortcut[name]!r} is not one of {', '.join(allowed)}.",
                    )
            provisioning = shortcut.get("provisioningState")
            if provisioning is not None and (
                not isinstance(provisioning, str) or provisioning.split("/")[0] not in PROVISIONING_STATES
            ):
                raise _fail(
                    source,
                    f"{where}.instanceView.provisioningState",
                    f"{provisioning!r} is not one of {', '.join(PROVISIONING_STATES)}.",
                )
    nics = (props.get("networkProfile") or {}).get("networkInterfaces", [])
    if not isinstance(nics, list):
        raise _fail(source, f"{where}.properties.networkProfile.networkInterfaces", "expected an array.")
    for j, ref in enumerate(nics):
        if not isinstance(ref, dict) or not isinstance(ref.get("id"), str):
            raise _fail(
                source,
                f"{where}.properties.networkProfile.networkInterfaces[{j}].id",
                "expected a string id.",
            )


def _validate_rule(source: str, where: str, rule: Any) -> None:
    if not isinstance(rule, dict) or not isinstance(rule.get("name"), str):
        raise _fail(source, where, "expected a rule object with a string 'name'.")
    props = rule.get("properties")
    if not isinstance(props, dict):
        raise _fail(source, f"{where}.properties", "expected an object.")
    priority = props.get("priority")
    if not isinstance(priority, int) or isinstance(priority, bool):
        raise _fail(source, f"{where}.properties.priority", f"expected an integer, got {priority!r}.")
    if props.get("direction") not in ("Inbound", "Outbound"):
        raise _fail(
            source, f"{where}.properties.direction", f"{props.get('direction')!r} is not Inbound or Outbound."
        )
    if props.get("access") not in ("Allow", "Deny"):
        raise _fail(source, f"{where}.properties.access", f"{props.get('access')!r} is not Allow or Deny.")


# ---------------------------------------------------------------------------------------------
# loading into a store


def populate(store: ResourceStore, scenario: Scenario) -> None:
    """Normalise the scenario's resources (instance views, default rules, back-references) into the store."""
    with store.lock:
        store.add_resource_group(scenario.subscription_id, "NetworkWatcherRG", scenario.location)
        for group in scenario.resource_groups:
            store.add_resource_group(scenario.subscription_id, group["name"], group["location"])
        children: list[Resource] = []
        for original in scenario.resources:
            resource = original if scenario.owned else json.loads(json.dumps(original))
            parsed = parse_id(resource["id"])
            assert parsed is not None
            resource.setdefault("name", parsed.name)
            resource.setdefault("type", parsed.type)
            if parsed.is_child:
                children.append(resource)
                continue
            tkey = type_key(parsed.type)
            if tkey == VM_TYPE:
                _normalise_vm(resource)
            elif tkey == NSG_TYPE:
                _normalise_nsg(resource)
            store.put(resource, parsed)
        for child in children:
            parsed = parse_id(child["id"])
            assert parsed is not None
            if store.get(str(parsed.parent)) is None:
                store.put(_synthesise_parent(str(parsed.parent), scenario.location))
            store.put(child)
        _link(store)


def _normalise_vm(vm: Resource) -> None:
    props = vm.setdefault("properties", {})
    os_profile = props.get("osProfile")
    if isinstance(os_profile, dict):
        os_profile.pop("adminPassword", None)  # ARM never returns it; neither does the emulator
    full = props.pop("instanceView", None)
    view = vm.get("instanceView")
    if isinstance(full, dict) and view is None:
        view = full
    if isinstance(view, dict) and "statuses" in view:
        vm["instanceView"] = view
        state = emulator_state(vm)
        if "vmAgent" not in view:
            state["agent"] = "none" if power_state(vm) == "running" else "ready"
        else:
            state["agent"] = "ready" if agent_ready(vm) else "notReady"
    else:
        expand_instance_view(vm, view if isinstance(view, dict) else {})
    vm.setdefault("guest", {})


def _normalise_nsg(nsg: Resource) -> None:
    props = nsg.setdefault("properties", {})
    props.setdefault("provisioningState", "Succeeded")
    props.setdefault("securityRules", [])
    if not props.get("defaultSecurityRules"):
        props["defaultSecurityRules"] = builders.default_security_rules(nsg["id"])


def _synthesise_parent(parent_id: str, location: str) -> Resource:
    parsed = parse_id(parent_id)
    assert parsed is not None
    resource: Resource = {
        "name": parsed.name,
        "id": parent_id,
        "type": parsed.type,
        "location": location,
        "tags": {},
        "properties": {"provisioningState": "Succeeded"},
    }
    if type_key(parsed.type) == NSG_TYPE:
        _normalise_nsg(resource)
    return resource


def _link(store: ResourceStore) -> None:
    """Fill the back-references ARM computes (NSG -> NICs/subnets, subnet -> ipConfigurations, ...)."""
    added: dict[tuple[int, str], set[str]] = {}
    found: dict[str, Resource | None] = {}

    def lookup(resource_id: str) -> Resource | None:
        # Thousands of NICs share a few subnets and NSGs: resolve each id once.
        if resource_id not in found:
            found[resource_id] = store.get(resource_id)
        return found[resource_id]

    def add_ref(target: Resource | None, field_name: str, ref_id: str) -> None:
        if target is None:
            return
        props = target.setdefault("properties", {})
        refs = props.setdefault(field_name, [])
        seen = added.get((id(target), field_name))
        if seen is None:
            seen = added[(id(target), field_name)] = {
                key(r.get("id", "")) for r in refs if isinstance(r, dict)
            }
        k = key(ref_id)
        if k not in seen:
            seen.add(k)
            refs.append({"id": ref_id})

    for vnet in store.list("Microsoft.Network/virtualNetworks"):
        for subnet in (vnet.get("properties") or {}).get("subnets") or ():
            nsg_ref = (subnet.get("properties") or {}).get("networkSecurityGroup")
            if isinstance(nsg_ref, dict) and isinstance(nsg_ref.get("id"), str):
                add_ref(lookup(nsg_ref["id"]), "subnets", subnet["id"])
    for nic in store.list("Microsoft.Network/networkInterfaces"):
        props = nic.get("properties") or {}
        nsg_ref = props.get("networkSecurityGroup")
        if isinstance(nsg_ref, dict) and isinstance(nsg_ref.get("id"), str):
            add_ref(lookup(nsg_ref["id"]), "networkInterfaces", nic["id"])
        for ipconfig in props.get("ipConfigurations") or ():
            ip_props = ipconfig.get("properties") or {}
            subnet_ref = ip_props.get("subnet")
            if isinstance(subnet_ref, dict) and isinstance(subnet_ref.get("id"), str) and "id" in ipconfig:
                add_ref(lookup(subnet_ref["id"]), "ipConfigurations", ipconfig["id"])
            pip_ref = ip_props.get("publicIPAddress")
            if isinstance(pip_ref, dict) and isinstance(pip_ref.get("id"), str) and "id" in ipconfig:
                pip = lookup(pip_ref["id"])
                if pip is not None:
                    pip.setdefault("properties", {}).setdefault("ipConfiguration", {"id": ipconfig["id"]})
    for vm in store.list("Microsoft.Compute/virtualMachines"):
        for ref in ((vm.get("properties") or {}).get("networkProfile") or {}).get("networkInterfaces") or ():
            attached = lookup(ref["id"])
            if attached is not None:
                attached.setdefault("properties", {}).setdefault("virtualMachine", {"id": vm["id"]})
    from azrdp.emulator.netpaths import link_paths

    link_paths(store)


# ---------------------------------------------------------------------------------------------
# the generated fleet


def generate_fleet(
    count: int,
    *,
    groups: int | None = None,
    seed: int = 0,
    subscription: str = DEFAULT_SUBSCRIPTION,
    location: str = DEFAULT_LOCATION,
) -> Scenario:
    """N Windows VMs over several resource groups; mostly healthy, some blocked, stopped or agent-less.

    Per group: one VNet with two subnets (one with a subnet NSG that allows RDP from the corporate
    range, one whose NSG denies RDP), and three shared NIC NSGs (allow from the admin range, deny
    RDP, no RDP rule). NICs use them round-robin-ish by the seeded RNG; a third of the VMs get a
    public IP.
    """
    rng = random.Random(seed)  # noqa: S311 (reproducible fleet, not crypto)
    if groups is None:
        groups = max(1, min(10, (count + 49) // 50))
    groups = min(groups, count)
    resources: list[Resource] = []
    per_group = [count // groups + (1 if g < count % groups else 0) for g in range(groups)]
    serial = 0
    for g in range(groups):
        rg = f"rg-fleet-{g:02d}"
        allow_rdp = builders.security_rule(
            builders.nsg_id(subscription, rg, f"nsg-subnet-{g:02d}"),
            "allow-rdp-corp",
            priority=300,
            source="10.0.0.0/8",
        )
        subnet_nsg = builders.nsg(subscription, rg, f"nsg-subnet-{g:02d}", location, [allow_rdp])
        deny_id = builders.nsg_id(subscription, rg, f"nsg-locked-{g:02d}")
        locked_nsg = builders.nsg(
            subscription,
            rg,
            f"nsg-locked-{g:02d}",
            location,
            [builders.security_rule(deny_id, "deny-rdp", priority=100, access="Deny")],
        )
        nic_nsgs = []
        for variant, rules in (
            ("allow", [("allow-rdp-admin", 1000, "Allow", "203.0.113.0/24")]),
            ("deny", [("deny-rdp", 200, "Deny", "*")]),
            ("plain", []),
        ):
            name = f"nsg-nic-{variant}-{g:02d}"
            nid = builders.nsg_id(subscription, rg, name)
            nic_nsgs.append(
                builders.nsg(
                    subscription,
                    rg,
                    name,
                    location,
                    [
                        builders.security_rule(nid, rule, priority=prio, access=access, source=src)
                        for rule, prio, access, src in rules
                    ],
                )
            )
        vnet = builders.vnet(
            subscription,
            rg,
            f"vnet-fleet-{g:02d}",
            location,
            f"10.{g % 250}.0.0/16",
            [
                ("workloads", f"10.{g % 250}.0.0/17", subnet_nsg["id"]),
                ("locked", f"10.{g % 250}.128.0/17", locked_nsg["id"]),
            ],
        )
        resources.extend([subnet_nsg, locked_nsg, *nic_nsgs, vnet])
        subnets = vnet["properties"]["subnets"]
        for i in range(per_group[g]):
            serial += 1
            name = f"vm-{serial:05d}"
            roll = rng.random()
            if roll < 0.85:
                power, agent = "running", "ready"
            elif roll < 0.92:
                power, agent = "deallocated", None
            elif roll < 0.96:
                power, agent = "stopped", None
            else:
                power, agent = "running", "notReady"
            locked = rng.random() < 0.05
            subnet = subnets[1] if locked else subnets[0]
            nic_nsg_roll = rng.random()
            nic_nsg = (
                None
                if nic_nsg_roll < 0.4
                else nic_nsgs[0 if nic_nsg_roll < 0.85 else 1 if nic_nsg_roll < 0.93 else 2]
            )
            pip = None
            if rng.random() < 0.33:
                pip = builders.public_ip(
                    subscription,
                    rg,
                    f"{name}-ip",
                    location,
                    f"198.51.{(serial // 250) % 256}.{serial % 250 + 1}" if power == "running" else None,
                )
                resources.append(pip)
            octet = 128 if locked else 0
            nic = builders.nic(
                subscription,
                rg,
                f"{name}-nic",
                location,
                subnet_id=subnet["id"],
                private_ip=f"10.{g % 250}.{octet + (i // 250) % 128}.{i % 250 + 4}",
                public_ip_id=pip["id"] if pip else None,
                nsg_id=nic_nsg["id"] if nic_nsg else None,
                mac=f"00-0D-3A-{(serial >> 16) & 255:02X}-{(serial >> 8) & 255:02X}-{serial & 255:02X}",
            )
            vm = builders.vm(
                subscription,
                rg,
                name,
                location,
                nic_ids=[nic["id"]],
                power_state=power,
                agent=agent,
                tags={"fleet": "generated", "tier": rng.choice(("web", "app", "jump"))},
            )
            resources.extend([nic, vm])
    return Scenario(
        name="fleet",
        description=f"{count} generated Windows VMs in {groups} resource groups (seed {seed})",
        subscription_id=subscription,
        location=location,
        resources=resources,
        owned=True,
    )
