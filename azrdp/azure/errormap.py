"""SDK exceptions -> azrdp errors that name what was being read or changed.

The lowest layer of `azrdp.azure`: it imports nothing else from the package, so `auth` (the
subscription list) and `clients` (everything else) can both use it without importing each other.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from azrdp.errors import (
    AuthenticationError,
    AzrdpError,
    AzureError,
    ConflictError,
    ForbiddenError,
    NotFoundError,
)


def _one_line(text: str) -> str:
    first = text.strip().splitlines()[0] if text.strip() else ""
    return " ".join(first.split())


def _credential_failure(exc: Any) -> str:
    """One line from azure-identity's multi-line report: what each credential it tried said."""
    text = str(getattr(exc, "message", "") or exc)
    tried = [" ".join(line.split()) for line in text.splitlines() if line.startswith("\t") and ":" in line]
    if tried:
        return "no credential worked (" + "; ".join(tried) + ")."
    return _one_line(text)


def _error_parts(exc: Any) -> tuple[str, str]:
    err = getattr(exc, "error", None)
    code = str(getattr(err, "code", "") or "")
    message = str(getattr(err, "message", "") or "") or _one_line(str(getattr(exc, "message", "") or exc))
    return code, _one_line(message)


def forbidden(what: str, exc: Any) -> ForbiddenError:
    """A 403: the missing RBAC action, where, and the role that grants it."""
    from azrdp.rbac import grant_hint, parse_denial

    code, message = _error_parts(exc)
    denied = parse_denial(message)
    if not denied.action:
        return ForbiddenError(
            f"Access to {what} was denied ({code or 'HTTP 403'}): {message}",
            fix="Ask for a role with the RBAC actions listed by `azrdp checks list` (docs/rbac.md).",
        )
    return ForbiddenError(
        f"Access to {what} was denied: this identity lacks the RBAC action '{denied.action}'"
        + (f" on {denied.scope}" if denied.scope else "")
        + f" ({code or 'AuthorizationFailed'}).",
        fix=grant_hint(denied.action, denied.scope)
        + " If it was granted in the last minutes, sign in again: role assignments reach tokens late.",
    )


_TOKEN_FIXES = {
    "InvalidAuthenticationTokenAudience": (
        "the token was issued for another audience",
        "Use a token for Azure Resource Manager of the cloud you target (--cloud, AZURE_CLOUD); with "
        "AZRDP_ARM_ENDPOINT, check it points at the endpoint your credential signs in for.",
    ),
    "ExpiredAuthenticationToken": (
        "the token has expired",
        "Sign in again (`az login`), and check this machine's clock: ARM compares the token's expiry "
        "with its own time.",
    ),
}


def token_refused(what: str, exc: Any) -> AuthenticationError:
    """A 401 from ARM itself: the credential gave a token, ARM refused it."""
    code, message = _error_parts(exc)
    why, fix = _TOKEN_FIXES.get(
        code,
        (
            "the token was refused",
            "Sign in again (`az login`), or set AZURE_TOKEN_CREDENTIALS to the credential you mean to use.",
        ),
    )
    return AuthenticationError(
        f"Azure Resource Manager refused the access token while reading {what}: {why} "
        f"({code or 'HTTP 401'}: {message})",
        fix=fix,
    )


@contextlib.contextmanager
def translate_errors(what: str) -> Iterator[None]:
    """Map SDK exceptions to azrdp errors naming `what` was being read or changed."""
    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ResourceExistsError,
        ResourceNotFoundError,
        ServiceRequestError,
        ServiceResponseError,
    )

    try:
        yield
    except AzrdpError:
        raise
    except ResourceNotFoundError as exc:
        code, message = _error_parts(exc)
        if code == "ResourceGroupNotFound":
            raise NotFoundError(
                message or f"The resource group of {what} was not found.",
                fix="Check the name with `az group list -o table`, or pass --subscription.",
            ) from None
        if code in ("SubscriptionNotFound", "InvalidSubscriptionId"):
            raise NotFoundError(
                message or "The subscription was not found.",
                fix="Check `az account list -o table`, or pass --subscription.",
            ) from None
        # Our own words: ARM's message names the provider type and ends in a help link.
        raise NotFoundError(
            f"{what[:1].upper()}{what[1:]} was not found.",
            fix="Check the name and resource group (`az vm list -g GROUP -o table`), or pass --subscription.",
        ) from None
    except ClientAuthenticationError as exc:
        status = getattr(exc, "status_code", None)
        if status == 403:
            raise forbidden(what, exc) from None
        if status == 401:
            raise token_refused(what, exc) from None
        raise AuthenticationError(
            f"Could not authenticate to Azure while reading {what}: {_credential_failure(exc)}",
            fix="Run `az login`, or set AZURE_TOKEN_CREDENTIALS (e.g. managedidentitycredential).",
        ) from None
    except ResourceExistsError as exc:
        code, message = _error_parts(exc)
        raise ConflictError(
            f"Azure refused to change {what}: another operation on it is in progress ({code}: {message})"
            if code
            else f"Azure refused to change {what}: {message}",
            fix="Wait for the operation in progress to finish (the resource's Activity log shows it), "
            "then retry.",
        ) from None
    except HttpResponseError as exc:
        code, message = _error_parts(exc)
        status = exc.status_code
        if status == 403 or code == "AuthorizationFailed":
            raise forbidden(what, exc) from None
        if status == 429:
            raise AzureError(
                f"Azure throttled the requests for {what}: {message}",
                fix="Wait a minute and retry, or check fewer VMs at once.",
            ) from None
        raise AzureError(
            f"Azure answered {status} {code} for {what}: {message}".replace("  ", " "),
            fix="Retry; rerun with --debug to see the HTTP exchange.",
        ) from None
    except (ServiceRequestError, ServiceResponseError) as exc:
        raise AzureError(
            f"Could not reach Azure Resource Manager for {what}: {_one_line(str(exc))}",
            fix="Check the network, proxy and AZRDP_ARM_ENDPOINT / AZRDP_CA_BUNDLE.",
        ) from None
