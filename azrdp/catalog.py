"""The catalogue of every check, repair and probe finding, built from their registries.

`azrdp checks list|show` and the docs site both read this; nothing here is a hand-kept copy.
Registries that are not written yet count as empty (and the catalogue says so), so the catalogue
grows by itself as checks, repairs and probe findings land.

Pure: no typer, rich or azure imports.
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
from collections.abc import Iterable, Mapping
from typing import Any

from azrdp.model import SCHEMA_VERSION, to_doc


@dataclasses.dataclass(frozen=True)
class CheckInfo:
    id: str
    title: str
    severity: str
    source: str
    reads: str
    rbac: tuple[str, ...]
    writes: bool
    fixed_by: tuple[str, ...]
    docs_anchor: str
    kind: str = "check"


@dataclasses.dataclass(frozen=True)
class RepairInfo:
    id: str
    title: str
    fixes: tuple[str, ...]
    risk: str
    rbac: tuple[str, ...]
    changes: str
    backup: str
    undo: str
    writes: bool
    docs_anchor: str
    source: str = ""  # where it acts: controlPlane or guest
    kind: str = "repair"


@dataclasses.dataclass(frozen=True)
class ProbeFindingInfo:
    id: str
    title: str
    severity: str
    causes: tuple[str, ...]
    confirm: tuple[str, ...]
    recommendation: str
    docs_anchor: str
    source: str = "probe"
    kind: str = "probeFinding"


@dataclasses.dataclass(frozen=True)
class Catalog:
    checks: tuple[CheckInfo, ...]
    repairs: tuple[RepairInfo, ...]
    probe_findings: tuple[ProbeFindingInfo, ...]
    # Which registries exist yet: {"checks": True, "repairs": False, "probeFindings": True}.
    registries: Mapping[str, bool]

    @property
    def items(self) -> list[CheckInfo | RepairInfo | ProbeFindingInfo]:
        return [*self.checks, *self.repairs, *self.probe_findings]

    def find(self, item_id: str) -> CheckInfo | RepairInfo | ProbeFindingInfo | None:
        return next((item for item in self.items if item.id == item_id), None)

    @property
    def ids(self) -> list[str]:
        return [item.id for item in self.items]


def _text(value: Any) -> str:
    if isinstance(value, enum.Enum):
        return str(value.value)
    return "" if value is None else str(value)


def _strings(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, Iterable):
        return tuple(_text(v) for v in value)
    return (_text(value),)


def _field(obj: Any, *names: str) -> Any:
    """An attribute or mapping key, under the first of several names that is present."""
    for name in names:
        if isinstance(obj, Mapping) and name in obj:
            return obj[name]
        if hasattr(obj, name):
            return getattr(obj, name)
    return None


def _optional_module(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        # Only "not written yet" counts as empty; a broken import inside the module must surface.
        if exc.name is not None and name.startswith(exc.name):
            return None
        raise


def _repairs() -> tuple[list[RepairInfo], bool]:
    module = _optional_module("azrdp.repairs")
    all_repairs = getattr(module, "all_repairs", None)
    if all_repairs is None:
        return [], False
    try:
        specs = list(all_repairs())
    except ModuleNotFoundError as exc:
        # A repair module listed in the registry but not written yet: the registry is not ready.
        if exc.name is not None and exc.name.startswith("azrdp.repairs."):
            return [], False
        raise
    repairs = []
    for spec in specs:
        rbac = _strings(_field(spec, "rbac"))
        repairs.append(
            RepairInfo(
                id=_text(_field(spec, "id")),
                title=_text(_field(spec, "title")),
                fixes=_strings(_field(spec, "fixes")),
                risk=_text(_field(spec, "risk")),
                rbac=rbac,
                changes=_text(_field(spec, "changes")),
                backup=_text(_field(spec, "backup")),
                undo=_text(_field(spec, "undo")),
                writes=True,
                docs_anchor=_text(_field(spec, "docs_anchor")) or f"repairs.md#{_text(_field(spec, 'id'))}",
                source=_text(_field(spec, "where", "source")),
            )
        )
    return repairs, True


def _probe_findings() -> tuple[list[ProbeFindingInfo], bool]:
    module = _optional_module("azrdp.probe.classify")
    catalogue = getattr(module, "PROBE_FINDINGS", None)
    if catalogue is None:
        return [], False
    items: Iterable[tuple[str | None, Any]] = (
        catalogue.items() if isinstance(catalogue, Mapping) else ((None, spec) for spec in catalogue)
    )
    findings = []
    for key, spec in items:
        finding_id = _text(_field(spec, "id") or key)
        findings.append(
            ProbeFindingInfo(
                id=finding_id,
                title=_text(_field(spec, "title")),
                severity=_text(_field(spec, "severity")),
                causes=_strings(_field(spec, "causes", "likely_causes", "likelyCauses")),
                confirm=_strings(_field(spec, "confirm", "confirm_with", "confirmWith", "command")),
                recommendation=_text(_field(spec, "recommendation")),
                # Prefixed: probe finding ids share the checks page and may echo a check id.
                docs_anchor=f"checks.md#probe-{finding_id}",
            )
        )
    return findings, True


def build_catalog() -> Catalog:
    """Read the check, repair and probe-finding registries as they are right now."""
    from azrdp.checks import all_checks

    repairs, have_repairs = _repairs()
    probe_findings, have_probe = _probe_findings()
    fixed_by: dict[str, list[str]] = {}
    for repair in repairs:
        for check_id in repair.fixes:
            fixed_by.setdefault(check_id, []).append(repair.id)
    checks = tuple(
        CheckInfo(
            id=spec.id,
            title=spec.title,
            severity=_text(spec.severity),
            source=_text(spec.source),
            reads=spec.reads,
            rbac=tuple(spec.rbac),
            writes=False,
            fixed_by=tuple(fixed_by.get(spec.id, ())),
            docs_anchor=spec.docs_anchor,
        )
        for spec in all_checks()
    )
    return Catalog(
        checks=checks,
        repairs=tuple(repairs),
        probe_findings=tuple(probe_findings),
        registries={"checks": True, "repairs": have_repairs, "probeFindings": have_probe},
    )


def catalog_doc(catalog: Catalog) -> dict[str, Any]:
    """The result document of `azrdp checks list` (camelCase, schemaVersion)."""
    return {
        "schemaVersion": SCHEMA_VERSION,
        "checks": to_doc(catalog.checks),
        "repairs": to_doc(catalog.repairs),
        "probeFindings": to_doc(catalog.probe_findings),
        "registries": dict(catalog.registries),
        "summary": {
            "checks": len(catalog.checks),
            "repairs": len(catalog.repairs),
            "probeFindings": len(catalog.probe_findings),
        },
    }
