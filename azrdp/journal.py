"""Local write-ahead journal of the changes azrdp makes: NSG rules, VM starts, in-guest runs.

One JSON object per line in `<config dir>/journal.jsonl`, each carrying the run id that made it, so
`azrdp undo --run-id` can take back exactly that run's changes and `azrdp history` can list runs.
The config dir is `AZRDP_CONFIG_DIR`, else the platform's per-user config location (what
`typer.get_app_dir("azrdp")` would pick, without importing typer).

Every change is an *intent* written (and fsynced) before the change is sent, with everything undo
needs to take it back or to ask what happened: `nsg-rule` (NSG id, rule name, body), `vm-start`
(the power state before), `vm-redeploy`, `vm-reapply`, `guest-run` (the guest's run id, its
backup folder and the plan). Once the outcome is known a *confirmation* follows: `done` (with the
result: for a guest run, every operation's status and the values it found and left) or `failed`
(nothing was changed). An intent without a confirmation is `unconfirmed`: the change may or may
not have happened, and undo asks Azure or the guest. `undone` records one change verified taken
back; `run` closes a repair run with its summary. Entries are appended and never rewritten, so the
file is an audit trail as well as the undo source.

Older journals are read too: `nsg-rule-created`, `vm-started`, `vm-redeployed`, `vm-reapplied`
(intents, written before the change) and a `run` entry that carries `guest` or `backupDir` (the
guest run, confirmed at the end) map onto the same changes (`Change.legacy`).
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
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from azrdp.errors import UsageError

JOURNAL_FILE = "journal.jsonl"
RUN_ID_PATTERN = re.compile(r"^[0-9a-f]{12}$")

# Intent kinds, and the kinds that settle them (each names its intent in `details.entry`).
INTENT_KINDS = ("nsg-rule", "vm-start", "vm-redeploy", "vm-reapply", "guest-run")
DONE, FAILED, UNDONE, RUN, UNDO = "done", "failed", "undone", "run", "undo"
LEGACY_KINDS = {
    "nsg-rule-created": "nsg-rule",
    "vm-started": "vm-start",
    "vm-redeployed": "vm-redeploy",
    "vm-reapplied": "vm-reapply",
}
UNCONFIRMED = "unconfirmed"

_write_lock = threading.Lock()
_listeners: list[Callable[[JournalEntry], None]] = []
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

    kind: an intent (INTENT_KINDS), `done` / `failed` (the outcome of intent `details.entry`),
    `undone` (intent `details.entry` taken back), `undo` (an undo began), `run` (a repair run's
    summary), or a legacy kind (LEGACY_KINDS). An `nsg-rule` intent shared by several VMs of one
    fleet run is written once, under the run that owns the rule, with `details.sharedBy` listing
    every (vmId, name, runId) it serves.
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
        listeners = list(_listeners)
    for listener in listeners:
        listener(entry)
    return entry


def intend(run_id: str, vm_id: str, kind: str, details: Mapping[str, Any]) -> JournalEntry:
    """Journal a change before it is made (on disk when this returns)."""
    if kind not in INTENT_KINDS:
        raise ValueError(f"not an intent kind: {kind}")
    return record(JournalEntry(run_id, vm_id, kind, dict(details)))


def confirm(intent: JournalEntry, outcome: str, details: Mapping[str, Any] | None = None) -> JournalEntry:
    """Journal the outcome of an intent: `done`, or `failed` (known not to have changed anything)."""
    if outcome not in (DONE, FAILED):
        raise ValueError(f"not an outcome: {outcome}")
    return record(
        JournalEntry(intent.run_id, intent.vm_id, outcome, {**(details or {}), "entry": intent.entry_id})
    )


class watch:
    """Call `listener` with every entry this process records while the block runs (any thread)."""

    def __init__(self, listener: Callable[[JournalEntry], None]) -> None:
        self.listener = listener

    def __enter__(self) -> watch:
        with _write_lock:
            _listeners.append(self.listener)
        return self

    def __exit__(self, *exc: object) -> None:
        with _write_lock:
            _listeners.remove(self.listener)


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


def _untrusted(path: Path, problem: str, label: str = "journal") -> UsageError:
    if problem == "is a symbolic link":
        return UsageError(
            f"The azrdp {label} {path} cannot be used.",
            "It is a symbolic link. " + _TRUST_WHY,
            fix=f"Remove the link {path}; azrdp creates the {label} itself.",
        )
    return UsageError(
        f"The azrdp {label} {path} {problem}.",
        _TRUST_WHY,
        fix=f"chmod 600 {path} if it is yours, or move it away; azrdp then starts a new one.",
    )


def private_directory(directory: Path) -> None:
    """A directory azrdp keeps beside the journal (locks), made and judged like the journal's own."""
    try:
        _make_private(directory)
    except OSError as exc:
        raise UsageError(
            f"Cannot create {directory}: {exc.strerror or exc}.",
            fix="Set AZRDP_CONFIG_DIR to a directory of yours.",
        ) from None
    _check_directory(directory)


def _open_journal(path: Path, flags: int) -> int:
    return open_private(path, flags, "journal")


def open_private(path: Path, flags: int, label: str) -> int:
    """A file of the config directory opened without following a symlink, checked to be the user's
    own regular file that no one else can write.

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
            raise _untrusted(path, problem, label) from None
        raise UsageError(
            f"Cannot open the azrdp {label} {path}: {exc.strerror or exc}.",
            fix="Fix its permissions, or set AZRDP_CONFIG_DIR to a directory of yours.",
        ) from None
    problem = _file_problem(os.fstat(fd))
    if problem:
        os.close(fd)
        raise _untrusted(path, problem, label)
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
    """What one run of one VM wrote, including an NSG rule another VM's run wrote for both of them
    (one rule per NSG for a fleet run): undo of any run that shares it takes it back."""
    return [e for e in entries() if _serves(e, vm_id, run_id)]


# What an `undone` entry may say: the change is verifiably not there any more. (Versions before the
# write-ahead journal also wrote `undone` for a guest that could not be restored; those don't count.)
RESTORED = frozenset(
    {
        "deleted",
        "absent",
        "restored",
        "alreadyUndone",
        "nothingToRestore",
        "notApplied",
        "stopped",
        "deallocated",
        "alreadyStopped",
        "skipped",
    }
)
FORMAT = 2  # `run` summaries written with intents carry details.format = 2


@dataclass(frozen=True)
class Change:
    """One change of a run, as the journal knows it."""

    intent: JournalEntry  # the entry written before the change (legacy: its old entry)
    kind: str  # one of INTENT_KINDS
    outcome: str  # done | failed | unconfirmed
    result: Mapping[str, Any] = field(default_factory=dict)  # the confirmation's details
    undone: Mapping[str, Any] | None = None  # the `undone` entry's details, once verified taken back
    legacy: bool = False

    @property
    def entry_id(self) -> str:
        return self.intent.entry_id

    @property
    def details(self) -> Mapping[str, Any]:
        return self.intent.details

    @property
    def undoable(self) -> bool:
        """Something undo takes back: an NSG rule, a guest run, a start (not one journalled before
        intents, under the promise never to stop a VM again), unless it is known to have failed."""
        if self.outcome == FAILED:
            return False
        return self.kind in ("nsg-rule", "guest-run") or (self.kind == "vm-start" and not self.legacy)

    def to_doc(self) -> dict[str, Any]:
        keep = ("nsg", "rule", "priority", "source", "sharedBy", "powerStateBefore", "backupDir", "guestRun")
        return {
            "entryId": self.entry_id,
            "kind": self.kind,
            "outcome": self.outcome,
            "undone": self.undone is not None,
        } | {k: v for k, v in self.details.items() if k in keep}


def _legacy_guest(entry: JournalEntry) -> bool:
    """A `run` entry of a journal before intents, which stood for the run's guest change."""
    details = entry.details
    return (
        entry.kind == RUN
        and details.get("format") != FORMAT
        and (isinstance(details.get("guest"), Mapping) or bool(details.get("backupDir")))
    )


def intent_kind(entry: JournalEntry) -> str | None:
    if entry.kind in INTENT_KINDS:
        return entry.kind
    if entry.kind in LEGACY_KINDS:
        return LEGACY_KINDS[entry.kind]
    return "guest-run" if _legacy_guest(entry) else None


def _undone_verified(details: Mapping[str, Any]) -> bool:
    return str(details.get("status") or details.get("guest") or "") in RESTORED


def changes(vm_id: str, run_id: str, all_entries: Iterable[JournalEntry] | None = None) -> list[Change]:
    """The changes one run made on one VM (a shared NSG rule included), in the order intended,
    each with its outcome and whether it was taken back (through any run that shares it)."""
    pool = list(entries() if all_entries is None else all_entries)
    outcomes: dict[str, JournalEntry] = {}
    undone: dict[str, JournalEntry] = {}
    for entry in pool:
        target = str(entry.details.get("entry", ""))
        if entry.kind in (DONE, FAILED):
            outcomes[target] = entry
        elif entry.kind == UNDONE and _undone_verified(entry.details):
            undone.setdefault(target, entry)
    out = []
    for entry in pool:
        kind = intent_kind(entry)
        if kind is None or not _serves(entry, vm_id, run_id):
            continue
        taken_back = undone.get(entry.entry_id)
        back = dict(taken_back.details) if taken_back is not None else None
        if entry.kind == RUN:  # a legacy guest run: confirmed, with its records, when complete
            guest = entry.details.get("guest")
            if isinstance(guest, Mapping) and guest.get("complete"):
                out.append(Change(entry, kind, DONE, dict(guest), back, legacy=True))
            else:
                result = dict(guest) if isinstance(guest, Mapping) else {}
                out.append(Change(entry, kind, UNCONFIRMED, result, back, legacy=True))
            continue
        settled = outcomes.get(entry.entry_id)
        outcome = settled.kind if settled is not None else UNCONFIRMED
        result = dict(settled.details) if settled is not None else {}
        out.append(Change(entry, kind, outcome, result, back, legacy=entry.kind in LEGACY_KINDS))
    return out


def undone_entry_ids(vm_id: str | None = None) -> set[str]:
    """Ids of the entries verifiably taken back. Without a VM: across VMs (a shared rule undone by
    another VM's run)."""
    return {
        str(e.details.get("entry"))
        for e in entries(vm_id)
        if e.kind == UNDONE and _undone_verified(e.details)
    }


def runs(vm_id: str) -> list[dict[str, Any]]:
    """One summary per run of this VM, newest first: time, its changes with their outcome, whether
    everything it changed was taken back, what is unconfirmed, and the run's result.

    A shared NSG rule is listed under every run it serves, with `sharedBy` naming those VMs."""
    all_entries = list(entries())
    by_run: dict[str, dict[str, Any]] = {}
    for entry in all_entries:
        mine = [run for vm, run in shared_by(entry) if vm.lower() == vm_id.lower()]
        if not mine:
            continue
        run = by_run.setdefault(
            mine[0], {"runId": mine[0], "time": entry.time, "changes": [], "result": None}
        )
        if entry.kind == RUN and entry.vm_id.lower() == vm_id.lower():
            run["result"] = {k: v for k, v in entry.details.items() if k not in ("guest", "format")}
    for run_id, run in by_run.items():
        found = changes(vm_id, run_id, all_entries)
        run["changes"] = [c.to_doc() for c in found]
        undoable = [c for c in found if c.undoable]
        run["undone"] = bool(undoable) and all(c.undone is not None for c in undoable)
        run["unconfirmed"] = [c.kind for c in found if c.outcome == UNCONFIRMED and c.undone is None]
    return sorted(by_run.values(), key=lambda r: str(r["time"]), reverse=True)
