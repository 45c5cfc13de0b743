"""The wire format shared by every guest document: short-keyed JSON, compressed into one token.

Frozen dataclasses declare their JSON key per field (`wire("k")`); `to_wire` prints them with
every key present, `from_wire` decodes strictly and names the field of the first error
("f.certs.l[2].k.sd: expected a string, got int"). A dataclass marked `ROW = True` travels as a
JSON array of its field values (registry entries), which keeps repetitive lists small.

`pack`/`unpack` turn JSON into gzip + base64 (standard alphabet, the collector's and executor's
marker line) and `pack_token`/`unpack_token` into gzip + base64url without padding (the executor's
plan parameter: only `[A-Za-z0-9_-]`, what Run Command's command line passes unharmed). Pure.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import gzip
import json
import types
import typing
import zlib
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")


def wire(key: str, default: Any = None) -> Any:
    """A field carried under the short JSON key `key` (null by default)."""
    return dataclasses.field(default=default, metadata={"wire": key})


def wire_list(key: str) -> Any:
    """A list field (a tuple in Python, empty by default; null on the wire reads as empty)."""
    return dataclasses.field(default=(), metadata={"wire": key})


def to_wire(obj: Any) -> Any:
    """A wire object as JSON-ready data: every key present, nulls kept, rows as arrays."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        values = [(f.metadata["wire"], to_wire(getattr(obj, f.name))) for f in dataclasses.fields(obj)]
        if getattr(obj, "ROW", False):
            return [value for _, value in values]
        return dict(values)
    if isinstance(obj, (list, tuple)):
        return [to_wire(v) for v in obj]
    if isinstance(obj, Mapping):
        return {str(k): to_wire(v) for k, v in obj.items()}
    return obj


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def describe(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _decode(tp: Any, value: Any, path: str) -> Any:
    if tp is Any:
        return value  # validated by the owning class (RegEntry checks its data against its type)
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(inner) != 1:
            raise TypeError(f"unsupported wire union {tp!r}")  # a programming error in a schema
        return _decode(inner[0], value, path)
    if origin is tuple:
        if not isinstance(value, list):
            raise ValueError(f"{path}: expected a list, got {describe(value)}")
        item = typing.get_args(tp)[0]
        return tuple(_decode(item, v, f"{path}[{i}]") for i, v in enumerate(value))
    if dataclasses.is_dataclass(tp):
        return from_wire(tp, value, path)  # type: ignore[arg-type]
    if tp is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{path}: expected true/false, got {describe(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{path}: expected an integer, got {describe(value)}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ValueError(f"{path}: expected a string, got {describe(value)}")
        return value
    raise TypeError(f"unsupported wire type {tp!r}")  # a programming error in a schema


def from_wire(cls: type[T], data: Any, path: str = "") -> T:
    """Build a wire object from decoded JSON, checking every type. Unknown keys are ignored."""
    hints = _hints(cls)
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    where = path or cls.__name__
    if getattr(cls, "ROW", False):
        if not isinstance(data, list) or len(data) != len(fields):
            raise ValueError(f"{where}: expected a list of {len(fields)} values, got {describe(data)}")
        data = {f.metadata["wire"]: v for f, v in zip(fields, data, strict=True)}
    elif not isinstance(data, dict):
        raise ValueError(f"{where}: expected an object, got {describe(data)}")
    kwargs: dict[str, Any] = {}
    for f in fields:
        key = f.metadata["wire"]
        if key not in data:
            continue
        value = data[key]
        if value is None and typing.get_origin(hints[f.name]) is tuple:
            continue  # a null list is an empty one
        kwargs[f.name] = _decode(hints[f.name], value, f"{path}.{key}" if path else key)
    obj = cls(**kwargs)
    check = getattr(obj, "check", None)
    if callable(check):
        check(where)
    return obj


def wire_keys(cls: type[Any]) -> set[str]:
    """Every wire key of a class and the classes it contains (for drift tests)."""
    keys: set[str] = set()
    for f in dataclasses.fields(cls):
        keys.add(f.metadata["wire"])
        for arg in _nested(_hints(cls)[f.name]):
            keys |= wire_keys(arg)
    return keys


def _nested(tp: Any) -> list[type[Any]]:
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return [tp]
    return [t for arg in typing.get_args(tp) for t in _nested(arg)]


# --- compression ---------------------------------------------------------------------------------


def dumps(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def _gzip(text: str) -> bytes:
    # mtime 0: the same document always gives the same bytes (stable tests, stable command lines).
    return gzip.compress(text.encode("utf-8"), compresslevel=9, mtime=0)


def pack(data: Any) -> str:
    """gzip + base64 (standard alphabet, padded): what the scripts print after the marker."""
    return base64.b64encode(_gzip(dumps(data))).decode("ascii")


def pack_token(data: Any) -> str:
    """gzip + base64url without padding: one command-line token of `[A-Za-z0-9_-]` only."""
    return base64.urlsafe_b64encode(_gzip(dumps(data))).decode("ascii").rstrip("=")


class UnpackError(ValueError):
    """The text is not gzip + base64 of UTF-8 JSON; `truncated` when it was cut short."""

    def __init__(self, message: str, truncated: bool = False) -> None:
        super().__init__(message)
        self.truncated = truncated


def _inflate(raw: bytes) -> Any:
    try:
        text = gzip.decompress(raw).decode("utf-8")
    except EOFError:
        raise UnpackError("the compressed data ends early", truncated=True) from None
    except (OSError, zlib.error, UnicodeDecodeError) as exc:
        raise UnpackError(f"the compressed data is damaged ({exc})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UnpackError(f"the JSON inside is invalid: {exc.msg} at character {exc.pos}") from None


def unpack(text: str) -> Any:
    """The JSON a `pack` token carries."""
    text = text.strip()
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise UnpackError("it is not base64", truncated=len(text) % 4 == 1) from None
    return _inflate(raw)


def unpack_token(text: str) -> Any:
    """The JSON a `pack_token` token carries."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise UnpackError("it is not base64url") from None
    return _inflate(raw)
