"""NSG rule writes for the `nsg-allow-rdp` repair: journalled before and after, undoable.

The rule body comes from the pure planner (azrdp.repairs.control_plane), which already proved it
admits exactly one client address on the RDP port. Here it is written, recorded in the local
journal with the run id, and deleted again by `undo` only if it is still the rule azrdp wrote (a
rule someone edited since is left alone and reported).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from azrdp import journal
from azrdp.azure.clients import Clients, translate_errors
from azrdp.facts import group_of, name_of
from azrdp.repairs.control_plane import RULE_PREFIX

RULE_DESCRIPTION = "Added by azrdp repair run {run_id}: RDP from one client address. Undo: azrdp undo."


def rule_name(run_id: str) -> str:
    return f"{RULE_PREFIX}{run_id}"


@dataclass(frozen=True)
class RuleChange:
    nsg_id: str
    rule: str
    priority: int
    source: str
    port: int
    entry_id: str

    def line(self) -> str:
        return (
            f"NSG {name_of(self.nsg_id)}: rule {self.rule} "
            f"(priority {self.priority}, {self.source} -> TCP {self.port})"
        )


def _body(run_id: str, planned: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "protocol": "Tcp",
        "source_address_prefix": str(planned["source"]),
        "source_port_range": "*",
        "destination_address_prefix": str(planned.get("destination") or "*"),
        "destination_port_range": str(int(planned["port"])),
        "access": "Allow",
        "priority": int(planned["priority"]),
        "direction": "Inbound",
        "description": RULE_DESCRIPTION.format(run_id=run_id),
    }


def add_allow_rule(clients: Clients, vm_id: str, run_id: str, planned: Mapping[str, Any]) -> RuleChange:
    """Write one planned Allow rule and journal it (the intent first, so a crash mid-write is visible)."""
    from azure.mgmt.network.models import SecurityRule

    nsg_id = str(planned["nsgId"])
    name = rule_name(run_id)
    body = _body(run_id, planned)
    if body["source_address_prefix"] in ("*", "Internet", "0.0.0.0/0", "::/0"):
        raise ValueError("refusing to open RDP to the Internet")  # the planner never plans this
    entry = journal.record(
        journal.JournalEntry(
            run_id=run_id,
            vm_id=vm_id,
            kind="nsg-rule-created",
            details={
                "nsg": nsg_id,
                "rule": name,
                "body": body,
                "priority": body["priority"],
                "source": body["source_address_prefix"],
            },
        )
    )
    with translate_errors(f"NSG {name_of(nsg_id)}"):
        clients.for_subscription(_subscription(nsg_id)).network.security_rules.begin_create_or_update(
            group_of(nsg_id), name_of(nsg_id), name, SecurityRule(**body)
        ).result()
    return RuleChange(
        nsg_id,
        name,
        int(body["priority"]),
        str(body["source_address_prefix"]),
        int(planned["port"]),
        entry.entry_id,
    )


def _subscription(resource_id: str) -> str:
    parts = resource_id.split("/")
    return parts[2] if len(parts) > 2 and parts[1].lower() == "subscriptions" else ""


@dataclass(frozen=True)
class UndoOutcome:
    entry_id: str
    nsg_id: str
    rule: str
    status: str  # deleted | absent | modified (left alone)
    detail: str = ""


def remove_rule(clients: Clients, entry: journal.JournalEntry) -> UndoOutcome:
    """Delete the rule a journal entry created, if it is still exactly what azrdp wrote."""
    from azure.core.exceptions import ResourceNotFoundError

    nsg_id = str(entry.details["nsg"])
    name = str(entry.details["rule"])
    body = dict(entry.details.get("body") or {})
    ops = clients.for_subscription(_subscription(nsg_id)).network.security_rules
    rg, nsg = group_of(nsg_id), name_of(nsg_id)
    outcome: UndoOutcome
    with translate_errors(f"NSG {nsg}"):
        try:
            current = ops.get(rg, nsg, name)
        except ResourceNotFoundError:
            current = None
        if current is None:
            outcome = UndoOutcome(entry.entry_id, nsg_id, name, "absent", "The rule is already gone.")
        elif (
            current.priority != body.get("priority")
            or (current.source_address_prefix or "") != body.get("source_address_prefix")
            or (current.access or "") != "Allow"
        ):
            outcome = UndoOutcome(
                entry.entry_id,
                nsg_id,
                name,
                "modified",
                "The rule was changed after azrdp created it; left in place. "
                "Delete it yourself if it is not needed.",
            )
        else:
            ops.begin_delete(rg, nsg, name).result()
            outcome = UndoOutcome(entry.entry_id, nsg_id, name, "deleted")
    if outcome.status != "modified":
        journal.record(
            journal.JournalEntry(
                run_id=entry.run_id,
                vm_id=entry.vm_id,
                kind="undone",
                details={"entry": entry.entry_id, "status": outcome.status, "nsg": nsg_id, "rule": name},
            )
        )
    return outcome
