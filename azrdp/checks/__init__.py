"""The checks registry.

A check is one decorated pure function over gathered facts that returns its findings (an empty
list when healthy). Its metadata (id, title, severity, what it reads, the RBAC it needs, the docs
anchor) feeds `azrdp checks list`, the docs catalogue and the output contract. Ids are stable.

    @register_check(
        id="vm-not-running", title="The VM is not running", severity=Severity.BLOCKER,
        source=Source.CONTROL_PLANE, reads="VM instance view (power state)",
        rbac=("Microsoft.Compute/virtualMachines/instanceView/read",),
    )
    def vm_not_running(facts: VmFacts) -> list[Finding]: ...

Modules holding checks are listed in CHECK_MODULES and imported on first use of the registry, so
importing this package stays cheap.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from azrdp.model import Finding, Severity, Source

CHECK_MODULES: tuple[str, ...] = ("azrdp.checks.control_plane", "azrdp.checks.paths", "azrdp.checks.guest")

CheckFunc = Callable[[Any], Sequence[Finding]]


@dataclass(frozen=True)
class CheckSpec:
    id: str
    title: str
    severity: Severity
    source: Source
    reads: str
    rbac: tuple[str, ...]
    func: CheckFunc

    @property
    def docs_anchor(self) -> str:
        return f"checks.md#{self.id}"


_REGISTRY: dict[str, CheckSpec] = {}
_loaded = False


def register_check(
    *,
    id: str,
    title: str,
    severity: Severity,
    source: Source,
    reads: str,
    rbac: Sequence[str],
) -> Callable[[CheckFunc], CheckFunc]:
    def decorate(func: CheckFunc) -> CheckFunc:
        if id in _REGISTRY and _REGISTRY[id].func is not func:
            raise ValueError(f"check id {id!r} is registered twice")
        _REGISTRY[id] = CheckSpec(id, title, severity, source, reads, tuple(rbac), func)
        return func

    return decorate


def _load() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        for name in CHECK_MODULES:
            importlib.import_module(name)


def all_checks(source: Source | None = None) -> list[CheckSpec]:
    _load()
    return [c for c in _REGISTRY.values() if source is None or c.source is source]


def get_check(check_id: str) -> CheckSpec | None:
    _load()
    return _REGISTRY.get(check_id)


def run_checks(facts: Any, source: Source) -> list[Finding]:
    """Run every registered check of one source over the facts, in registration order."""
    findings: list[Finding] = []
    for spec in all_checks(source):
        findings.extend(spec.func(facts))
    return findings
