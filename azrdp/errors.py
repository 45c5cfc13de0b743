"""Typed errors. Each carries its exit code and a what / why / fix message.

The CLI prints `error: <what> <why>` and `fix: <fix>` on stderr, one line each, and exits with
`exit_code`; the runbook and the Python API see the same objects.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    ERROR = 1
    USAGE = 2
    NOT_FOUND = 3
    BLOCKERS = 4
    NOT_VERIFIED = 5
    INTERRUPTED = 130


# When several targets end differently, the most serious code wins.
_SEVERITY_ORDER = (
    ExitCode.INTERRUPTED,
    ExitCode.USAGE,
    ExitCode.ERROR,
    ExitCode.NOT_FOUND,
    ExitCode.NOT_VERIFIED,
    ExitCode.BLOCKERS,
    ExitCode.OK,
)


def most_serious(codes: Iterable[int]) -> ExitCode:
    """The exit code a run with several targets ends with: 130 > 2 > 1 > 3 > 5 > 4 > 0."""
    seen = {ExitCode(c) for c in codes}
    for code in _SEVERITY_ORDER:
        if code in seen:
            return code
    return ExitCode.OK


class AzrdpError(Exception):
    """Base error: `what` happened, `why`, and the `fix` to try."""

    exit_code: ExitCode = ExitCode.ERROR
    code: str = "Error"

    def __init__(self, what: str, why: str = "", fix: str = "") -> None:
        self.what = what.strip()
        self.why = why.strip()
        self.fix = fix.strip()
        super().__init__(self.message)

    @property
    def message(self) -> str:
        return " ".join(part for part in (self.what, self.why) if part)

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message, "fix": self.fix}


class UsageError(AzrdpError):
    exit_code = ExitCode.USAGE
    code = "UsageError"


class NotFoundError(AzrdpError):
    exit_code = ExitCode.NOT_FOUND
    code = "NotFound"


class AuthenticationError(AzrdpError):
    code = "AuthenticationFailed"


class ForbiddenError(AzrdpError):
    code = "AuthorizationFailed"


class AzureError(AzrdpError):
    """Azure answered with something azrdp cannot use (5xx, throttled beyond retries, bad shape)."""

    code = "AzureError"


class GuestError(AzrdpError):
    """The in-guest script could not run, or its output broke the contract."""

    code = "GuestError"


class ConflictError(AzrdpError):
    """Another Run Command is still in progress on the VM."""

    code = "Conflict"


class Interrupted(AzrdpError):
    exit_code = ExitCode.INTERRUPTED
    code = "Interrupted"


def refused(err: AzrdpError) -> bool:
    """Azure (or azrdp) refused the request outright, so it changed nothing: no permission, a
    conflict it gave up on, a resource that is gone, bad input. A timeout, a reset or a 5xx leaves
    the outcome unknown."""
    return isinstance(err, (ForbiddenError, ConflictError, NotFoundError, UsageError, AuthenticationError))
