"""The last gate before ARM: an NSG rule azrdp writes admits exactly one client address, whatever
planned it, and undo deletes only a rule azrdp itself created."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from azrdp import journal
from azrdp.azure.auth import resolve_context
from azrdp.azure.clients import Clients
from azrdp.azure.network import RULE_DESCRIPTION, add_allow_rule, remove_rule
from azrdp.emulator import Emulator
from azrdp.errors import AzrdpError

SUB = "/subscriptions/2b7c1d9e-3f4a-4b5c-8d6e-7f8091a2b3c4/resourceGroups/rg-rdp"
NSG_ID = f"{SUB}/providers/Microsoft.Network/networkSecurityGroups/vm-rdp01-nsg"
VM_ID = f"{SUB}/providers/Microsoft.Compute/virtualMachines/vm-rdp01"
RUN = "a1b2c3d4e5f6"


def planned(source: str) -> dict[str, Any]:
    return {"nsgId": NSG_ID, "source": source, "port": 3389, "priority": 4000, "destination": "10.0.0.4"}


def rules(emu: Emulator) -> dict[str, dict[str, Any]]:
    with emu.store.lock:
        nsg = emu.store.get(NSG_ID)
        assert nsg is not None
        found = json.loads(json.dumps(nsg["properties"].get("securityRules") or []))
    return {r["name"]: r["properties"] for r in found}


def writes(emu: Emulator) -> list[Any]:
    return [r for r in emu.requests if r.method in ("PUT", "DELETE") and "/securityrules/" in r.path.lower()]


@pytest.mark.parametrize(
    "source",
    [
        "*",
        "Internet",
        "internet",
        "INTERNET",
        "Any",
        "0.0.0.0/0",
        "::/0",
        "0.0.0.0/1",
        "10.0.0.0/8",
        "198.51.100.0/24",
        "198.51.100.6/31",
        "2001:db8::/64",
        "AzureCloud",
        "VirtualNetwork",
        "Storage.WestEurope",
        "0.0.0.0/32",
        "::/128",
        "198.51.100.7,0.0.0.0/0",
        "",
    ],
)
def test_a_rule_wider_than_one_address_is_never_written(
    source: str, live_emulator: Callable[..., Emulator]
) -> None:
    emu = live_emulator("nsg-blocked")
    before = rules(emu)
    with pytest.raises(AzrdpError) as info:
        add_allow_rule(Clients(resolve_context()), VM_ID, RUN, planned(source))
    assert "one client address" in info.value.message
    assert writes(emu) == [] and rules(emu) == before
    assert list(journal.entries()) == []


@pytest.mark.parametrize("source", ["198.51.100.7/32", "198.51.100.7", "2001:db8::7/128"])
def test_one_address_is_written(source: str, live_emulator: Callable[..., Emulator]) -> None:
    emu = live_emulator("nsg-blocked")
    change = add_allow_rule(Clients(resolve_context()), VM_ID, RUN, planned(source))
    written = rules(emu)[change.rule]
    assert written["sourceAddressPrefix"] == source and written["access"] == "Allow"


def user_rule_entry(emu: Emulator, name: str, description: str) -> journal.JournalEntry:
    """A journal entry naming a rule that matches azrdp's body, but which a user wrote (or a
    journal line someone edited to name it)."""
    from azure.mgmt.network.models import SecurityRule

    from azrdp.azure.network import _body

    body = _body(RUN, planned("198.51.100.7/32"))
    clients = Clients(resolve_context())
    clients.network.security_rules.begin_create_or_update(
        "rg-rdp", "vm-rdp01-nsg", name, SecurityRule(**(body | {"description": description}))
    ).result()
    return journal.record(
        journal.JournalEntry(RUN, VM_ID, "nsg-rule-created", {"nsg": NSG_ID, "rule": name, "body": body})
    )


def test_undo_never_deletes_a_rule_whose_name_azrdp_does_not_use(
    live_emulator: Callable[..., Emulator],
) -> None:
    emu = live_emulator("nsg-blocked")
    entry = user_rule_entry(emu, "allow-office-rdp", RULE_DESCRIPTION.format(run_id=RUN))
    outcome = remove_rule(Clients(resolve_context()), entry)
    assert outcome.status == "modified" and "allow-office-rdp" in rules(emu)
    assert not [r for r in emu.requests if r.method == "DELETE"]


def test_undo_never_deletes_a_same_named_rule_azrdp_did_not_describe(
    live_emulator: Callable[..., Emulator],
) -> None:
    """A rule of azrdp's name whose description is not the one azrdp wrote for that run."""
    emu = live_emulator("nsg-blocked")
    name = f"azrdp-allow-rdp-{RUN}"
    entry = user_rule_entry(emu, name, "Office access, owned by the network team")
    outcome = remove_rule(Clients(resolve_context()), entry)
    assert outcome.status == "modified" and name in rules(emu)
    assert not [r for r in emu.requests if r.method == "DELETE"]
