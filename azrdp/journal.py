"""Local journal of the control-plane changes azrdp makes (NSG rules, VM starts, redeploys).

One JSON object per line in `<config dir>/journal.jsonl`, each carrying the run id that made it, so
`azrdp undo --run-id` can take back exactly that run's changes and `azrdp history` can list runs.
The config dir is `AZRDP_CONFIG_DIR`, else the platform's per-user config location (what
`typer.get_app_dir("azrdp")` would pick, without importing typer).

Entries are appended and never rewritten: an undo is itself a new entry (`undone` with the id of
the entry it reverted), so the file is an audit trail as well as the undo source.
"""

from __future__ import annotations

import json
import logging
import os
import re
import stat
import sys
import threading
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from azrdp.errors import UsageError

JOURNAL_FILE = "journal.jsonl"
RUN_ID_PATTERN = re.compile(r"^[0-9a-f]{12}$")

_write_lock = threading.Lock()
_log = logging.getLogger(__name__)
_reported: set[tuple[str, int]] = set()  # damaged lines already warned about in this process


def config_dir() -> Path:
    explicit = os.environ.get("AZRDP_CONFIG_DIR", "").strip()
    if explicit:
        return Path(explicit)
    if sys.platform == "win32":
        base = os.environ.get("APPDATA") or str(Path.home() / "AppData" / "Roaming")
        return Path(base) / "azrdp"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "azrdp"
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "azrdp"


def journal_path() -> Path:
    return config_dir() / JOURNAL_FILE


def validate_run_id(run_id: str) -> str:
    value = run_id.strip().lower()
    if not RUN_ID_PATTERN.match(value):
        raise UsageError(
            f"Run id {run_id!r} is not an azrdp run id.",
            "Run ids are 12 lower-case hex characters.",
            fix="Pick one from `azrdp history VM -g RG`.",
        )
    return value


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class JournalEntry:
    """One change (or one run record) for one VM.

    kind: `run` (a repair run: plan, guest backup dir, result), `nsg-rule-created`, `vm-started`,
    `vm-redeployed`, `vm-reapplied`, `undone` (reverted entry `details.entry`). An
    `nsg-rule-created` entry shared by several VMs of one fleet run is written once, under the run
    that owns the rule, with `details.sharedBy` listing every (vmId, name, runId) it serves.
    """

    run_id: str
    vm_id: str
    kind: str
    details: Mapping[str, Any] = field(default_factory=dict)
    entry_id: str = field(default_factory=lambda: uuid.uuid4().hex[:16])
    time: str = field(default_factory=_now)

    def to_json(self) -> str:
        return json.dumps(
            {
                "entryId": self.entry_id,
                "time": self.time,
                "runId": self.run_id,
                "vmId": self.vm_id,
                "kind": self.kind,
                "details": dict(self.details),
            },
            separators=(",", ":"),
            sort_keys=True,
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JournalEntry:
        if not isinstance(data, Mapping):
            raise TypeError("not a JSON object")
        details = data.get("details") or {}
        if not isinstance(details, Mapping):
            raise TypeError("details is not an object")
        return cls(
            run_id=str(data["runId"]),
            vm_id=str(data["vmId"]),
            kind=str(data["kind"]),
            details=dict(details),
            entry_id=str(data["entryId"]),
            time=str(data.get("time", "")),
        )


def record(entry: JournalEntry) -> JournalEntry:
    """Append one entry, on disk before this returns; the directory is created private to the user."""
    path = journal_path()
    data = (entry.to_json() + "\n").encode("utf-8")
    with _write_lock:
        ensure_writable()
        # One write of one line in append mode: concurrent azrdp processes never interleave lines.
        fd = _open_journal(path, os.O_RDWR | os.O_APPEND | os.O_CREAT)
        try:
            if _ends_torn(fd):
                # A process killed mid-write left half a line: end it, or this entry would be glued
                # to it and skipped with it (undo would then miss, say, the NSG rule it records).
                data = b"\n" + data
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
    return entry


def _ends_torn(fd: int) -> bool:
    size = os.fstat(fd).st_size
    if size == 0:
        return False
    os.lseek(fd, size - 1, os.SEEK_SET)
    return os.read(fd, 1) != b"\n"


# The journal decides what `azrdp undo` deletes in Azure, with the user's credentials: it is trusted
# only in a directory and a file of the user's own that nobody else can write (POSIX; on Windows the
# per-user profile folder is already private).
_TRUST_WHY = "The journal decides what `azrdp undo` deletes in Azure, so azrdp trusts only a private one."


def ensure_writable() -> None:
    """Create the config directory private to the user, or check the existing one, and check the
    journal file if there is one: `repair` and `undo` call this before their first change."""
    directory = config_dir()
    try:
        _make_private(directory)
    except OSError as exc:
        raise UsageError(
            f"Cannot create the azrdp config directory {directory}: {exc.strerror or exc}.",
            fix="Set AZRDP_CONFIG_DIR to a directory of yours.",
        ) from None
    _check_directory(directory)
    path = journal_path()
    try:
        info = os.lstat(path)  # never opened here: a FIFO would block the open
    except FileNotFoundError:
        return
    except OSError as exc:
        raise UsageError(
            f"Cannot read the azrdp journal {path}: {exc.strerror or exc}.",
            fix="Fix its permissions, or set AZRDP_CONFIG_DIR to a directory of yours.",
        ) from None
    problem = _file_problem(info)
    if problem:
        raise _untrusted(path, problem)


def _make_private(directory: Path) -> None:
    """mkdir -p with every directory azrdp creates 0700, whatever the umask (mkdir's parents would
    get 0777 & ~umask: world-writable under umask 000). The XDG base directory spec asks 0700 too."""
    missing: list[Path] = []
    current = directory
    while not current.exists() and current != current.parent:
        missing.append(current)
        current = current.parent
    for path in reversed(missing):
        try:
            os.mkdir(path, 0o700)  # the umask can only take bits away from 0700
        except FileExistsError:
            continue  # another azrdp process made it first; _check_directory judges the final one


def _trusted_owners() -> tuple[int, ...]:
    """The user, and root (who can write anything anyway)."""
    return (os.geteuid(), 0)


def _check_directory(directory: Path) -> None:
    if not hasattr(os, "geteuid"):
        return
    info = directory.stat()  # a symlink to a private directory of the user's is fine
    if info.st_uid not in _trusted_owners():
        raise UsageError(
            f"The azrdp config directory {directory} belongs to another user (uid {info.st_uid}).",
            _TRUST_WHY,
            fix="Set AZRDP_CONFIG_DIR to a directory of yours.",
        )
    if info.st_mode & 0o022:
        raise UsageError(
            f"The azrdp config directory {directory} is writable by other users.",
            _TRUST_WHY,
            fix=f"chmod 700 {directory} (or set AZRDP_CONFIG_DIR to a private directory of yours).",
        )


def _file_problem(info: os.stat_result) -> str:
    """Why a journal file with this stat is not trusted ('' when it is)."""
    if stat.S_ISLNK(info.st_mode):
        return "is a symbolic link"
    if not stat.S_ISREG(info.st_mode):
        return "is not a regular file" + (" (it is a FIFO)" if stat.S_ISFIFO(info.st_mode) else "")
    if not hasattr(os, "geteuid"):
        return ""
    if info.st_uid not in _trusted_owners():
        return f"belongs to another user (uid {info.st_uid})"
    if info.st_mode & 0o022:
        return "is writable by other users"
    return ""


def _untrusted(path: Path, problem: str) -> UsageError:
    if problem == "is a symbolic link":
        return UsageError(
            f"The azrdp journal {path} cannot be used.",
            "It is a symbolic link. " + _TRUST_WHY,
            fix=f"Remove the link {path}; azrdp creates the journal itself.",
        )
    return UsageError(
        f"The azrdp journal {path} {problem}.",
        _TRUST_WHY,
        fix=f"chmod 600 {path} if it is yours, or move it away; azrdp then starts a new one.",
    )


def _open_journal(path: Path, flags: int) -> int:
    """The journal file opened without following a symlink, checked to be the user's own file.

    O_NONBLOCK: opening a FIFO planted in its place would otherwise wait for a writer or reader
    forever; it opens (or fails) at once and fstat then refuses it.
    """
    extra = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags | extra, 0o600)
    except FileNotFoundError:
        raise
    except OSError as exc:
        try:
            problem = _file_problem(os.lstat(path))
        except OSError:
            problem = ""
        if problem:
            raise _untrusted(path, problem) from None
        raise UsageError(
            f"Cannot open the azrdp journal {path}: {exc.strerror or exc}.",
            fix="Fix its permissions, or set AZRDP_CONFIG_DIR to a directory of yours.",
        ) from None
    problem = _file_problem(os.fstat(fd))
    if problem:
        os.close(fd)
        raise _untrusted(path, problem)
    return fd


def entries(vm_id: str | None = None, run_id: str | None = None) -> Iterator[JournalEntry]:
    """Entries in the order written; VM ids compare case-insensitively. A damaged line (a half-written
    line from a killed process, bytes that are not UTF-8, an edited entry) is skipped with a warning:
    it must not stop undo of every other run."""
    path = journal_path()
    if not path.parent.exists():
        return
    _check_directory(path.parent)
    try:
        fd = _open_journal(path, os.O_RDONLY)
    except FileNotFoundError:
        return
    with os.fdopen(fd, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                entry = JournalEntry.from_dict(json.loads(raw.decode("utf-8")))
            except (ValueError, KeyError, TypeError) as exc:
                _skipped(path, number, exc)
                continue
            if vm_id is not None and entry.vm_id.lower() != vm_id.lower():
                continue
            if run_id is not None and entry.run_id != run_id:
                continue
            yield entry


def _skipped(path: Path, number: int, exc: Exception) -> None:
    if (str(path), number) in _reported:
        return
    _reported.add((str(path), number))
    why = "not UTF-8" if isinstance(exc, UnicodeDecodeError) else "not a journal entry"
    _log.warning("warning: %s line %d is %s; skipped.", path, number, why)


def shared_by(entry: JournalEntry) -> list[tuple[str, str]]:
    """(VM id, run id) of every run an entry serves: its own, plus those sharing its NSG rule."""
    pairs = [(entry.vm_id, entry.run_id)]
    members = entry.details.get("sharedBy")
    for member in members if isinstance(members, list) else ():
        if isinstance(member, Mapping) and member.get("vmId") and member.get("runId"):
            pair = (str(member["vmId"]), str(member["runId"]))
            if pair[1] != entry.run_id or pair[0].lower() != entry.vm_id.lower():
                pairs.append(pair)
    return pairs


def _serves(entry: JournalEntry, vm_id: str | None, run_id: str | None) -> bool:
    return any(
        (vm_id is None or vm.lower() == vm_id.lower()) and (run_id is None or run == run_id)
        for vm, run in shared_by(entry)
    )


def run_entries(vm_id: str, run_id: str) -> list[JournalEntry]:
    """What one run of one VM did, including an NSG rule another VM's run wrote for both of them
    (one rule per NSG for a fleet run): undo of any run that shares it takes it back."""
    return [e for e in entries() if _serves(e, vm_id, run_id)]


def undone_entry_ids(vm_id: str | None = None) -> set[str]:
    """Ids of the entries taken back. Without a VM: across VMs (a shared rule undone by another VM's run)."""
    return {str(e.details.get("entry")) for e in entries(vm_id) if e.kind == "undone"}


def runs(vm_id: str) -> list[dict[str, Any]]:
    """One summary per run of this VM, newest first: time, kinds of changes, undone or not.

    A shared NSG rule is listed under every run it serves, with `sharedBy` naming those VMs."""
    by_run: dict[str, dict[str, Any]] = {}
    all_entries = list(entries())
    undone = {str(e.details.get("entry")) for e in all_entries if e.kind == "undone"}
    for entry in all_entries:
        mine = [run for vm, run in shared_by(entry) if vm.lower() == vm_id.lower()]
        if not mine:
            continue
        if mine[0] != entry.run_id or entry.vm_id.lower() != vm_id.lower():
            entry = JournalEntry(mine[0], vm_id, entry.kind, entry.details, entry.entry_id, entry.time)
        run = by_run.setdefault(
            entry.run_id,
            {"runId": entry.run_id, "time": entry.time, "changes": [], "undone": [], "result": None},
        )
        if entry.kind == "run":
            run["result"] = dict(entry.details)
        elif entry.kind == "undone":
            run["undone"].append(entry.details.get("entry"))
        else:
            run["changes"].append(
                {"entryId": entry.entry_id, "kind": entry.kind, "undone": entry.entry_id in undone}
                | {
                    k: v
                    for k, v in entry.details.items()
                    if k in ("nsg", "rule", "priority", "source", "sharedBy")
                }
            )
    return sorted(by_run.values(), key=lambda r: str(r["time"]), reverse=True)
