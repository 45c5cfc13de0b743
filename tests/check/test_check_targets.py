"""Target parsing and input validation (azrdp.targets)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from azrdp.errors import UsageError
from azrdp.targets import (
    TagFilter,
    VmRef,
    parse_targets,
    parse_vm_id,
    split_ids,
    validate_port,
    validate_protocol,
    validate_source,
)

SUB = "00000000-0000-0000-0000-0000000000aa"


def vm_id(rg: str, name: str, sub: str = SUB) -> str:
    return f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines/{name}"


def test_single_vm_by_name_and_group() -> None:
    t = parse_targets("web01", resource_group="rg")
    assert t.vms == (VmRef("rg", "web01"),) and not t.is_fleet
    assert parse_targets(name="web01", resource_group="rg").vms == t.vms
    assert parse_targets("web01", name="WEB01", resource_group="rg").vms == t.vms


def test_positional_id_and_ids() -> None:
    t = parse_targets(vm_id("rg", "web01"))
    assert t.vms == (VmRef("rg", "web01", SUB),) and t.ids == (vm_id("rg", "web01"),)
    many = parse_targets(ids=[f"{vm_id('a', 'x')} {vm_id('b', 'y')}\n{vm_id('A', 'X')}", vm_id("c", "z")])
    assert [v.name for v in many.vms] == ["x", "y", "z"]  # duplicates (case-insensitive) dropped
    assert many.is_fleet


def test_group_and_all() -> None:
    assert parse_targets(resource_group="rg").resource_group == "rg"
    assert parse_targets(resource_group="rg").is_fleet
    t = parse_targets(all_vms=True, tag="env=prod")
    assert t.all and t.tag == TagFilter("env", "prod")
    assert parse_targets(all_vms=True, tag="owner").tag == TagFilter("owner", None)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({}, "No VM given"),
        ({"vm": "web01"}, "needs its resource group"),
        ({"vm": "web01", "name": "web02", "resource_group": "rg"}, "Two VM names"),
        ({"name": "web01", "ids": [vm_id("rg", "web01")]}, "--ids cannot be combined"),
        ({"vm": vm_id("rg", "a"), "name": "b"}, "cannot be combined with -n"),
        ({"ids": [vm_id("rg", "a")], "all_vms": True}, "--ids cannot be combined with --all"),
        ({"all_vms": True, "resource_group": "rg"}, "--all cannot be combined"),
        ({"vm": "web 01", "resource_group": "rg"}, "not a valid VM name"),
        ({"vm": "web01;rm", "resource_group": "rg"}, "not a valid VM name"),
        ({"vm": "-web", "resource_group": "rg"}, "not a valid VM name"),
        ({"vm": "web01", "resource_group": "bad/group"}, "not a valid resource group"),
        ({"vm": "web01", "resource_group": "grp."}, "not a valid resource group"),
        ({"ids": ["/subscriptions/nope"]}, "not a virtual machine resource ID"),
        ({"ids": ["not-an-id"]}, "not a virtual machine resource ID"),
        (
            {"ids": [vm_id("rg", "a").replace("virtualMachines", "disks")]},
            "not a virtual machine resource ID",
        ),
        ({"ids": [vm_id("rg", "a") + "/extensions/x"]}, "not a virtual machine resource ID"),
        ({"ids": [vm_id("rg", "a", sub="not-a-guid")]}, "not a virtual machine resource ID"),
        ({"vm": "web01", "resource_group": "rg", "tag": "a=b"}, "--tag filters a fleet"),
        ({"all_vms": True, "tag": "=x"}, "not a valid tag filter"),
    ],
)
def test_bad_targets_are_usage_errors(kwargs: dict[str, object], needle: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_targets(**kwargs)  # type: ignore[arg-type]
    assert needle in info.value.message
    assert info.value.fix and info.value.exit_code == 2


@given(st.lists(st.text(alphabet="abc/-01 \t\n", max_size=12), max_size=5))
def test_split_ids_never_yields_whitespace(values: list[str]) -> None:
    parts = split_ids(values)
    assert all(p and not any(c.isspace() for c in p) for p in parts)
    assert "".join(parts) == "".join("".join(v.split()) for v in values)


@given(
    st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.()-]{0,20}[A-Za-z0-9_]", fullmatch=True),
    st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,20}[A-Za-z0-9_]", fullmatch=True),
)
def test_vm_id_round_trip(rg: str, name: str) -> None:
    ref = parse_vm_id(vm_id(rg, name))
    assert (ref.resource_group, ref.name, ref.subscription_id) == (rg, name, SUB)
    assert parse_vm_id(ref.id()).key() == ref.key()


def test_flow_values() -> None:
    assert validate_port(3389) == 3389
    for bad in (0, 70000, -1):
        with pytest.raises(UsageError):
            validate_port(bad)
    assert validate_source(" 203.0.113.7 ") == "203.0.113.7"
    assert validate_source("203.0.113.9/24") == "203.0.113.0/24"
    assert validate_source("2001:db8::1/128") == "2001:db8::1"
    assert validate_source(None) is None
    for bad in ("example.com", "300.1.1.1", "1.2.3.4/33", ""):
        with pytest.raises(UsageError):
            validate_source(bad)
    assert validate_protocol("TCP") == "Tcp" and validate_protocol("udp") == "Udp"
    with pytest.raises(UsageError):
        validate_protocol("icmp")


def test_tag_filter_matching() -> None:
    f = TagFilter("Env", "prod")
    assert f.matches([("env", "prod")]) and not f.matches([("env", "Prod")])
    assert TagFilter("env", None).matches([("ENV", "")])
    assert not TagFilter("env", None).matches([])
