"""NSG rule writes for the `nsg-allow-rdp` repair: journalled before and after, undoable.

The rule body comes from the pure planner (azrdp.repairs.control_plane), which already proved it
admits exactly one client address on the RDP port. Here its intent is journalled with the run id
(NSG, rule name, body) before the write is sent, the write's outcome after it (`done`, or
`failed` when ARM refused it); `undo` reads the rule back by name and deletes it only if it is
still the rule azrdp wrote (a rule someone edited since is left alone and reported), whether or
not the write was ever confirmed. A rule shared by several VMs of one fleet
run is written once (`SharedRules`, writes serialised per NSG) and journalled once, under the run
that owns it, listing every run it serves; undo through any of them deletes it.
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from azrdp import journal
from azrdp.azure.clients import Clients, translate_errors
from azrdp.azure.waits import Waiter
from azrdp.errors import AzrdpError, UsageError, refused
from azrdp.facts import group_of, name_of
from azrdp.repairs.control_plane import RULE_PREFIX

# An NSG rule write finishes in seconds; a poller still running after this is reported, not awaited.
WRITE_TIMEOUT = 300.0
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

    def shared_line(self, users: int, wrote: bool) -> str:
        """What one VM's result says about a rule it shares with other VMs of the run."""
        if users <= 1:
            return f"Added {self.line()}"
        verb = "Added" if wrote else "Uses"
        return f"{verb} {self.line()}, one rule shared by {users} VMs of this run"


def _destinations(planned: Mapping[str, Any]) -> list[str]:
    listed = [str(d) for d in planned.get("destinations") or ()]
    return listed or [str(planned.get("destination") or "*")]


def _body(run_id: str, planned: Mapping[str, Any]) -> dict[str, Any]:
    destinations = _destinations(planned)
    body: dict[str, Any] = {
        "protocol": "Tcp",
        "source_address_prefix": str(planned["source"]),
        "source_port_range": "*",
        "destination_port_range": str(int(planned["port"])),
        "access": "Allow",
        "priority": int(planned["priority"]),
        "direction": "Inbound",
        "description": RULE_DESCRIPTION.format(run_id=run_id),
    }
    # ARM takes either one prefix or a list, never both.
    if len(destinations) == 1:
        body["destination_address_prefix"] = destinations[0]
    else:
        body["destination_address_prefixes"] = destinations
    return body


def add_allow_rule(
    clients: Clients, vm_id: str, run_id: str, planned: Mapping[str, Any], waiter: Waiter | None = None
) -> RuleChange:
    """Write one planned Allow rule, journalled: the intent first (a crash mid-write stays visible
    and undoable), then its outcome."""
    from azure.mgmt.network.models import SecurityRule

    nsg_id = str(planned["nsgId"])
    name = str(planned.get("rule") or rule_name(run_id))
    body = _body(run_id, planned)
    source = body["source_address_prefix"]
    if not is_one_address(source):
        # The planner never plans this; the last gate before ARM holds whatever planned the rule.
        raise UsageError(
            f"Refusing to write NSG rule {name}: its source {source!r} is not one client address.",
            "azrdp never opens RDP to the Internet, a service tag or an address range.",
            fix="Pass --source-ip with your own public address.",
        )
    entry = journal.intend(
        run_id,
        vm_id,
        "nsg-rule",
        {
            "nsg": nsg_id,
            "rule": name,
            "body": body,
            "priority": body["priority"],
            "source": body["source_address_prefix"],
        }
        | ({"sharedBy": list(planned["sharedBy"])} if len(planned.get("sharedBy") or ()) > 1 else {}),
    )
    ops = clients.for_subscription(_subscription(nsg_id)).network.security_rules
    what = f"NSG {name_of(nsg_id)}"
    wait = waiter or Waiter()
    try:
        with translate_errors(what):
            wait.retry_conflicts(
                what,
                lambda: wait.wait_poller(
                    ops.begin_create_or_update(group_of(nsg_id), name_of(nsg_id), name, SecurityRule(**body)),
                    f"the write of rule {name} on NSG {name_of(nsg_id)}",
                    WRITE_TIMEOUT,
                    _check_rule(nsg_id, name),
                ),
            )
    except AzrdpError as err:
        if refused(err):  # ARM said no: nothing was written
            journal.confirm(entry, journal.FAILED, {"error": err.message})
        raise  # otherwise the outcome is unknown: the intent stays unconfirmed
    journal.confirm(entry, journal.DONE)
    return RuleChange(
        nsg_id,
        name,
        int(body["priority"]),
        str(body["source_address_prefix"]),
        int(planned["port"]),
        entry.entry_id,
    )


def _check_rule(nsg_id: str, rule: str) -> str:
    return (
        f"Check it with `az network nsg rule show -g {group_of(nsg_id)} --nsg-name {name_of(nsg_id)} "
        f"-n {rule}` before rerunning."
    )


def is_one_address(prefix: str) -> bool:
    """True for exactly one usable address (`a.b.c.d`, `/32`, `/128`): never a tag, a range or `*`."""
    try:
        network = ipaddress.ip_network(prefix.strip(), strict=True)
    except ValueError:
        return False
    return network.num_addresses == 1 and not network.network_address.is_unspecified


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


def _still_as_written(current: Any, body: Mapping[str, Any]) -> bool:
    """Every field azrdp set is unchanged: an edited rule (wider source, other port ...) is not ours."""
    wanted_destinations = sorted(
        [str(d) for d in body.get("destination_address_prefixes") or ()]
        or [str(body.get("destination_address_prefix") or "*")]
    )
    found_destinations = sorted(
        [str(d) for d in getattr(current, "destination_address_prefixes", None) or ()]
        or [str(getattr(current, "destination_address_prefix", None) or "*")]
    )
    found_ports = [str(p) for p in getattr(current, "destination_port_ranges", None) or ()] or [
        str(getattr(current, "destination_port_range", None) or "")
    ]
    return (
        (getattr(current, "description", None) or "") == body.get("description", "")
        and current.priority == body.get("priority")
        and (current.source_address_prefix or "") == body.get("source_address_prefix")
        and not (getattr(current, "source_address_prefixes", None) or ())
        and (current.access or "") == "Allow"
        and (getattr(current, "direction", None) or "Inbound") == body.get("direction", "Inbound")
        and (getattr(current, "protocol", None) or "Tcp") == body.get("protocol", "Tcp")
        and found_ports == [str(body.get("destination_port_range") or "")]
        and found_destinations == wanted_destinations
    )


def remove_rule(
    clients: Clients,
    entry: journal.JournalEntry,
    *,
    for_run: tuple[str, str] | None = None,
    waiter: Waiter | None = None,
) -> UndoOutcome:
    """Delete the rule a journal entry created, if it is still exactly what azrdp wrote.

    `for_run` is the (VM id, run id) whose undo asks for it, when that is not the run that wrote the
    rule (a rule shared by several VMs of one fleet run): the `undone` record goes to that run, so
    the writer's own run still shows as not undone until its own undo.
    """
    from azure.core.exceptions import ResourceNotFoundError

    nsg_id = str(entry.details["nsg"])
    name = str(entry.details["rule"])
    body = dict(entry.details.get("body") or {})
    ops = clients.for_subscription(_subscription(nsg_id)).network.security_rules
    rg, nsg = group_of(nsg_id), name_of(nsg_id)
    outcome: UndoOutcome
    with translate_errors(f"NSG {nsg}"):
        try:
            # Only a name azrdp gives its rules: a journal line naming another rule is never obeyed.
            current = ops.get(rg, nsg, name) if name.startswith(RULE_PREFIX) else False
        except ResourceNotFoundError:
            current = None
        if current is False:
            outcome = UndoOutcome(
                entry.entry_id,
                nsg_id,
                name,
                "modified",
                "azrdp never creates a rule of this name; left in place.",
            )
        elif current is None:
            outcome = UndoOutcome(entry.entry_id, nsg_id, name, "absent", "The rule is already gone.")
        elif not _still_as_written(current, body):
            outcome = UndoOutcome(
                entry.entry_id,
                nsg_id,
                name,
                "modified",
                "The rule was changed after azrdp created it; left in place. "
                "Delete it yourself if it is not needed.",
            )
        else:
            # NRP ignores If-Match on rules (Azure/azure-rest-api-specs#6789): the read above and
            # this delete are last-writer-wins, so the read comes just before the write.
            wait = waiter or Waiter()
            wait.retry_conflicts(
                f"NSG {nsg}",
                lambda: wait.wait_poller(
                    ops.begin_delete(rg, nsg, name),
                    f"the deletion of rule {name} from NSG {nsg}",
                    WRITE_TIMEOUT,
                    _check_rule(nsg_id, name),
                ),
            )
            outcome = UndoOutcome(entry.entry_id, nsg_id, name, "deleted")
    if outcome.status != "modified":
        vm_id, run_id = for_run or (entry.vm_id, entry.run_id)
        journal.record(
            journal.JournalEntry(
                run_id=run_id,
                vm_id=vm_id,
                kind="undone",
                details={"entry": entry.entry_id, "status": outcome.status, "nsg": nsg_id, "rule": name},
            )
        )
    return outcome


class SharedRules:
    """Writes each planned rule once per run, whichever VM's worker gets to it first.

    Writes to one NSG are serialised: ARM answers a concurrent PUT on the same NSG with a conflict
    or a retryable error, and two workers must never race to create the same rule. A VM whose rule
    is already written (or failed) gets that outcome without another PUT.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._nsg_locks: dict[str, threading.Lock] = {}
        self._done: dict[tuple[str, str, int], RuleChange | AzrdpError] = {}

    def _nsg_lock(self, nsg_id: str) -> threading.Lock:
        with self._lock:
            return self._nsg_locks.setdefault(nsg_id.lower(), threading.Lock())

    def ensure(
        self,
        clients: Clients,
        vm_id: str,
        run_id: str,
        planned: Mapping[str, Any],
        waiter: Waiter | None = None,
    ) -> tuple[RuleChange, bool]:
        """The rule, written now (True) or earlier in this run (False); journalled once, for its owner."""
        from azrdp.repairs.control_plane import rule_key

        key = rule_key(planned)
        with self._nsg_lock(str(planned["nsgId"])):
            found = self._done.get(key)
            if found is None:
                owner = (str(planned.get("ownerVmId") or vm_id), str(planned.get("ownerRunId") or run_id))
                try:
                    found = add_allow_rule(clients, owner[0], owner[1], planned, waiter)
                except AzrdpError as err:
                    self._done[key] = err
                    raise
                self._done[key] = found
                return found, True
        if isinstance(found, AzrdpError):
            raise found
        return found, False
