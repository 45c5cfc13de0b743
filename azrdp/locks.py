"""One repair or undo at a time per VM from this machine: a lock file per VM beside the journal.

`<config dir>/locks/<sha256 of the lower-cased VM id, 32 hex>.lock` names the holder: run id,
command, process id, host, since when, and until when it expects to be done. What excludes is the
kernel's lock on the open file (`flock`; `msvcrt.locking` on Windows), which ends with the process:
a crashed or killed azrdp never leaves a VM locked, and no stale-lock guessing from process ids is
needed. A holder that is still alive past its expected end keeps the lock (it may still be
changing the VM); the refusal then says so and names the process to look at.

The guest keeps its own lock during each executor run (`C:\\ProgramData\\azrdp\\lock.json`), which
also holds against azrdp on other machines.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from azrdp import journal
from azrdp.errors import AzrdpError

LOCK_DIR = "locks"
_WINDOWS_LOCK_OFFSET = 1 << 20  # Windows locks are mandatory: lock a byte past the holder's text


class LockedError(AzrdpError):
    """Another azrdp run holds the VM."""

    code = "Locked"


@dataclass(frozen=True)
class Holder:
    run: str
    command: str
    pid: int
    host: str
    since: str
    until: str

    @classmethod
    def read(cls, text: str) -> Holder | None:
        try:
            data = json.loads(text)
            return cls(
                str(data["run"]),
                str(data["command"]),
                int(data["pid"]),
                str(data["host"]),
                str(data["since"]),
                str(data["until"]),
            )
        except (ValueError, KeyError, TypeError):
            return None


def _stamp(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def lock_path(vm_id: str) -> Path:
    digest = hashlib.sha256(vm_id.lower().encode("utf-8")).hexdigest()[:32]
    return journal.config_dir() / LOCK_DIR / f"{digest}.lock"


def _refusal(vm_name: str, holder: Holder | None, history: str) -> LockedError:
    if holder is None:
        return LockedError(
            f"VM '{vm_name}' is being changed by another azrdp run on this machine.",
            "One repair or undo at a time per VM: a second could take back half a change, or change what "
            "the first is about to back up.",
            f"Wait for it to end; `{history}` then shows what it did.",
        )
    late = ""
    until = _parse(holder.until)
    if until is not None and until < datetime.now(timezone.utc):
        late = f" It expected to be done by {holder.until} and is still running."
    return LockedError(
        f"VM '{vm_name}' is being changed by azrdp run {holder.run} ({holder.command}, process "
        f"{holder.pid} on {holder.host}, since {holder.since}).{late}",
        "One repair or undo at a time per VM: a second could take back half a change, or change what "
        "the first is about to back up.",
        f"Wait for run {holder.run} to end; `{history}` then shows what it did. If process {holder.pid} "
        "is stuck, end it (its lock goes with it) and rerun.",
    )


def _parse(stamp: str) -> datetime | None:
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None


class VmLock:
    """`with VmLock(vm_id, vm_name, run_id, "azrdp repair", seconds, history_hint):` or LockedError."""

    def __init__(
        self, vm_id: str, vm_name: str, run_id: str, command: str, seconds: float, history: str = ""
    ) -> None:
        self.vm_id = vm_id
        self.vm_name = vm_name
        self.run_id = run_id
        self.command = command
        self.seconds = seconds
        self.history = history or f"azrdp history {vm_name} -g GROUP"
        self.path = lock_path(vm_id)
        self._fd: int | None = None

    def __enter__(self) -> VmLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def acquire(self) -> None:
        directory = self.path.parent
        journal.ensure_writable()
        journal.private_directory(directory)
        for _ in range(8):  # a holder may unlink the file between our open and our lock
            fd = journal.open_private(
                self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), "lock file"
            )
            try:
                if not _try_lock(fd):
                    raise _refusal(self.vm_name, Holder.read(_read(fd)), self.history)
                if not _same_file(fd, self.path):
                    os.close(fd)
                    continue
                now = datetime.now(timezone.utc)
                holder = {
                    "run": self.run_id,
                    "command": self.command,
                    "pid": os.getpid(),
                    "host": socket.gethostname(),
                    "since": _stamp(now),
                    "until": _stamp(now + timedelta(seconds=max(self.seconds, 0.0))),
                    "vm": self.vm_id,
                }
                os.lseek(fd, 0, os.SEEK_SET)
                os.ftruncate(fd, 0)
                os.write(fd, json.dumps(holder).encode("utf-8"))
                os.fsync(fd)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.close(fd)
                raise
            self._fd = fd
            return
        raise _refusal(self.vm_name, None, self.history)

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            if sys.platform != "win32" and _same_file(fd, self.path):
                # Unlinked while still locked: whoever opened it meanwhile sees it gone and reopens.
                os.unlink(self.path)
            else:
                os.ftruncate(fd, 0)
        except OSError:
            pass
        finally:
            os.close(fd)  # drops the kernel lock


def _same_file(fd: int, path: Path) -> bool:
    try:
        held, named = os.fstat(fd), os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return (held.st_dev, held.st_ino) == (named.st_dev, named.st_ino)


def _read(fd: int) -> str:
    os.lseek(fd, 0, os.SEEK_SET)
    return os.read(fd, 4096).decode("utf-8", errors="replace")


def _try_lock(fd: int) -> bool:
    if sys.platform == "win32":
        import msvcrt

        os.lseek(fd, _WINDOWS_LOCK_OFFSET, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True
