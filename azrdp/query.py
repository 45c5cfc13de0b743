"""JMESPath --query, shared by the CLI and the runbook (no typer or rich here)."""

from __future__ import annotations

from typing import Any

from azrdp.errors import UsageError


def apply_query(doc: Any, query: str | None) -> Any:
    if not query:
        return doc
    import jmespath
    from jmespath.exceptions import JMESPathError

    try:
        return jmespath.search(query, doc)
    except JMESPathError as exc:
        message = " ".join(str(exc).split())
        raise UsageError(
            f"The --query expression {query!r} is not valid JMESPath: {message}.",
            fix="See https://jmespath.org for the syntax, e.g. --query 'vms[].name'.",
        ) from None
