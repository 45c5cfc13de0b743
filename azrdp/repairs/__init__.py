"""The repairs registry.

A repair fixes the findings of named checks. Its `plan(facts)` is a pure function of what was
gathered (control-plane facts, the guest report, the findings) and returns a `RepairStep` only when
one of those findings is present: on a healthy VM every plan is empty. Where a repair must not act
(Group Policy owns the value, no `--source-ip` for an NSG rule ...) the step is still returned,
with `refused` saying why, so the user sees what would be needed instead of silence.

Metadata (id, title, fixes, risk, rbac, changes, backup, undo) feeds `azrdp checks list` and the
docs catalogue. Modules holding repairs are listed in REPAIR_MODULES and imported on first use.

In-guest repairs are planned here, in Python, as primitive operations with preconditions
(azrdp.guest.plan); the guest's executor only runs them, refusing any whose target moved since it
was read, so a repair never acts on a value that turned healthy in between.
"""

from __future__ import annotations

import enum
import importlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from azrdp.model import Finding

REPAIR_MODULES: tuple[str, ...] = ("azrdp.repairs.control_plane", "azrdp.repairs.guest")


class Where(str, enum.Enum):
    GUEST = "guest"
    CONTROL_PLANE = "controlPlane"


class Risk(str, enum.Enum):
    LOW = "low"  # a configuration value back to its default; no session impact
    MEDIUM = "medium"  # restarts Remote Desktop services: logged-on sessions are disconnected
    HIGH = "high"  # changes reachability or moves the VM (redeploy)


@dataclass(frozen=True)
class RepairFacts:
    """What a plan may look at. `guest` is the parsed guest report (None before diagnose)."""

    findings: tuple[Finding, ...] = ()
    vm: Any = None  # azrdp.facts.VmFacts
    guest: Any = None  # azrdp.guest.envelope.GuestReport: the collector's facts
    source_ip: str | None = None
    port: int | None = None
    # Repairs named with --only: suggestion-only repairs (redeploy, reapply) plan only when named.
    requested: frozenset[str] = frozenset()
    # The repairs --only/--skip leave (None: all): the guest planners project only those.
    selected: frozenset[str] | None = None
    run_id: str = ""  # names what a repair moves aside in the guest

    def present(self, *check_ids: str) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.id in check_ids)

    def finding(self, check_id: str) -> Finding | None:
        return next((f for f in self.findings if f.id == check_id), None)


@dataclass(frozen=True)
class RepairStep:
    """One planned repair for one VM."""

    id: str
    title: str
    where: Where
    fixes: tuple[str, ...]  # the finding ids present now that this step targets
    changes: tuple[str, ...]  # what will change, one line each
    risk: Risk
    backup: str
    refused: str | None = None  # why it will not be applied; None when it will
    notes: tuple[str, ...] = ()  # consequences the user must know (sessions dropped, NSG follows port)
    # Values the apply step needs (NSG id, priority, port ...), validated here, never user text.
    params: Mapping[str, Any] = field(default_factory=dict)
    ops: tuple[Any, ...] = ()  # in-guest: the primitive operations (azrdp.guest.plan.Op), in order
    boot: bool = False  # in-guest: takes effect only at the next boot

    @property
    def actionable(self) -> bool:
        return self.refused is None


Planner = Callable[[RepairFacts], "RepairStep | None"]


@dataclass(frozen=True)
class RepairSpec:
    id: str
    title: str
    fixes: tuple[str, ...]
    risk: Risk
    rbac: tuple[str, ...]
    changes: str
    backup: str
    undo: str
    verify: str
    where: Where
    order: int
    suggestion_only: bool
    plan: Planner

    @property
    def docs_anchor(self) -> str:
        return f"repairs.md#{self.id}"

    def step(
        self,
        fixes: Iterable[str],
        changes: Sequence[str],
        *,
        refused: str | None = None,
        notes: Sequence[str] = (),
        risk: Risk | None = None,
        params: Mapping[str, Any] | None = None,
        ops: Sequence[Any] = (),
        boot: bool = False,
    ) -> RepairStep:
        return RepairStep(
            id=self.id,
            title=self.title,
            where=self.where,
            fixes=tuple(dict.fromkeys(fixes)),
            changes=tuple(changes),
            risk=risk or self.risk,
            backup=self.backup,
            refused=refused,
            notes=tuple(notes),
            params=dict(params or {}),
            ops=tuple(ops),
            boot=boot,
        )


_REGISTRY: dict[str, RepairSpec] = {}
_loaded = False


def register_repair(
    *,
    id: str,
    title: str,
    fixes: Sequence[str],
    risk: Risk,
    rbac: Sequence[str],
    changes: str,
    backup: str,
    undo: str,
    verify: str,
    where: Where,
    order: int,
    suggestion_only: bool = False,
) -> Callable[[Planner], Planner]:
    def decorate(func: Planner) -> Planner:
        if id in _REGISTRY and _REGISTRY[id].plan is not func:
            raise ValueError(f"repair id {id!r} is registered twice")
        _REGISTRY[id] = RepairSpec(
            id=id,
            title=title,
            fixes=tuple(fixes),
            risk=risk,
            rbac=tuple(rbac),
            changes=changes,
            backup=backup,
            undo=undo,
            verify=verify,
            where=where,
            order=order,
            suggestion_only=suggestion_only,
            plan=func,
        )
        return func

    return decorate


def _load() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        for name in REPAIR_MODULES:
            importlib.import_module(name)


def all_repairs(where: Where | None = None) -> list[RepairSpec]:
    """Every registered repair in the order they are applied."""
    _load()
    specs = sorted(_REGISTRY.values(), key=lambda s: s.order)
    return [s for s in specs if where is None or s.where is where]


def get_repair(repair_id: str) -> RepairSpec | None:
    _load()
    return _REGISTRY.get(repair_id)


def spec(repair_id: str) -> RepairSpec:
    """The registered repair (a KeyError for an unknown id is a programming error)."""
    found = get_repair(repair_id)
    if found is None:
        raise KeyError(repair_id)
    return found


def repair_ids(where: Where | None = None) -> tuple[str, ...]:
    return tuple(s.id for s in all_repairs(where))


def repairs_fixing(check_id: str) -> list[RepairSpec]:
    return [s for s in all_repairs() if check_id in s.fixes]


def selected(only: Iterable[str] = (), skip: Iterable[str] = ()) -> list[RepairSpec]:
    """The repairs `--only`/`--skip` leave; suggestion-only repairs need to be named in --only."""
    only_set, skip_set = set(only), set(skip)
    return [
        s
        for s in all_repairs()
        if s.id not in skip_set and (s.id in only_set if only_set else not s.suggestion_only)
    ]


def plan_repairs(
    facts: RepairFacts, only: Iterable[str] = (), skip: Iterable[str] = (), where: Where | None = None
) -> list[RepairStep]:
    """The steps for these facts, in apply order; [] on a healthy VM."""
    steps: list[RepairStep] = []
    for spec in selected(only, skip):
        if where is not None and spec.where is not where:
            continue
        step = spec.plan(facts)
        if step is not None:
            steps.append(step)
    return steps
