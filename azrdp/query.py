"""JMESPath --query, shared by the CLI and the runbook (no typer or rich here).

The expression is compiled before the command does anything (`compile_query`), so a typo never
costs a repair that already ran; a query is then applied to the finished document.
"""

from __future__ import annotations

from typing import Any

from azrdp.errors import UsageError

_SHOWN = 60  # characters of a rejected expression echoed back


def _invalid(query: str, why: str) -> UsageError:
    shown = query if len(query) <= _SHOWN else query[:_SHOWN] + "..."
    return UsageError(
        f"The --query expression {shown!r} is not valid JMESPath: {why}.",
        fix="See https://jmespath.org for the syntax, e.g. --query 'vms[].name'.",
    )


def _reason(exc: Exception) -> str:
    if isinstance(exc, RecursionError):  # jmespath's parser recurses once per nesting level
        return "it nests too deeply"
    return " ".join(str(exc).split()).removeprefix("Invalid jmespath expression: ")


def query_problem(query: str | None) -> str | None:
    """Why the expression is not valid JMESPath, or None when it is (or there is none)."""
    if not query:
        return None
    import jmespath
    from jmespath.exceptions import JMESPathError

    try:
        jmespath.compile(query)
    except (JMESPathError, RecursionError) as exc:
        return _reason(exc)
    return None


def compile_query(query: str | None) -> None:
    """Refuse an expression that is not valid JMESPath (UsageError), before any work is done."""
    problem = query_problem(query)
    if query and problem:
        raise _invalid(query, problem)


def apply_query(doc: Any, query: str | None) -> Any:
    if not query:
        return doc
    import jmespath
    from jmespath.exceptions import JMESPathError

    compile_query(query)
    try:
        return jmespath.search(query, doc)
    except (JMESPathError, RecursionError) as exc:  # e.g. a function given the wrong type
        raise _invalid(query, _reason(exc)) from None
