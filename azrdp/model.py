"""Shared result model: findings and the camelCase document conversion.

Every command returns one JSON-shaped document with `schemaVersion`; dataclasses here turn into it
through `to_doc`. Pure: no I/O, no azure imports.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from datetime import date, datetime, timezone
from typing import Any

SCHEMA_VERSION = "2"


class Severity(str, enum.Enum):
    BLOCKER = "blocker"
    WARNING = "warning"
    INFO = "info"


class Source(str, enum.Enum):
    """Where the evidence for a finding came from."""

    CONTROL_PLANE = "controlPlane"
    NETWORK_WATCHER = "networkWatcher"
    GUEST = "guest"
    PROBE = "probe"


@dataclasses.dataclass(frozen=True)
class Finding:
    id: str
    severity: Severity
    title: str
    evidence: str
    recommendation: str
    source: Source = Source.CONTROL_PLANE
    # Structured evidence (rule names, registry values, event counts ...), kept small.
    details: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def is_blocker(self) -> bool:
        return self.severity is Severity.BLOCKER


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def to_doc(value: Any) -> Any:
    """Turn dataclasses, enums, datetimes and containers into JSON-ready camelCase data."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            camel(f.name): to_doc(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if not f.metadata.get("internal")
        }
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): to_doc(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_doc(v) for v in value]
    return value
