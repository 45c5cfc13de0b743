"""The request log: every ARM request, kept in memory and optionally written as JSON lines."""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any


@dataclass(frozen=True)
class RequestRecord:
    method: str
    path: str
    query: str  # raw query string (never holds tokens: those travel in headers)
    status: int  # 0 when the connection was reset by an injected fault
    started: float  # epoch seconds
    duration_ms: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class RequestLog:
    def __init__(self, path: str | Path | None = None) -> None:
        self._lock = threading.Lock()
        self._records: list[RequestRecord] = []
        self._file: IO[str] | None = None
        self.path = Path(path) if path is not None else None

    def open(self) -> None:
        if self.path is not None and self._file is None:
            self._file = self.path.open("a", encoding="utf-8")

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def add(self, record: RequestRecord) -> None:
        with self._lock:
            self._records.append(record)
            if self._file is not None:
                self._file.write(json.dumps(record.to_dict(), separators=(",", ":")) + "\n")
                self._file.flush()

    def records(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._records)

    def clear(self) -> None:
        with self._lock:
            self._records.clear()


def read_request_log(path: str | Path) -> list[RequestRecord]:
    """Records from a JSON-lines request log written by `azrdp emulator serve --request-log`."""
    out = []
    with Path(path).open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                out.append(RequestRecord(**json.loads(line)))
    return out
