"""Bearer tokens as ARM checks them, and the error each injected fault answers with.

Tokens: a missing header is 401 AuthenticationFailed, a header that is not `Bearer <token>` 401
InvalidAuthenticationToken. A JWT (what the emulator's identity endpoint issues) must carry an
ARM audience (`https://management.core.windows.net/` or `https://management.azure.com/`, with or
without the slash: ARM accepts both resources) and an `exp` in the future, else 401
InvalidAuthenticationTokenAudience / ExpiredAuthenticationToken, as ARM answers. An opaque token
(not a JWT) is accepted, so tests may use a static credential.
"""

from __future__ import annotations

import base64
import datetime
import json
import time
import uuid
from typing import TYPE_CHECKING, Any

from azrdp.emulator.builders import stable_guid
from azrdp.emulator.ids import parse_id
from azrdp.emulator.wire import ArmError, Request, Route, not_found

if TYPE_CHECKING:
    from azrdp.emulator.faults import Fault
    from azrdp.emulator.server import Emulator

EMULATOR_TENANT = "72f988bf-0000-4000-8000-0000000a2d9e"
EMULATOR_CLIENT_ID = "5d3c6e1a-0000-4000-8000-0000000a2d9e"
EMULATOR_OBJECT_ID = stable_guid("oid", EMULATOR_CLIENT_ID)
ARM_AUDIENCES = (
    "https://management.core.windows.net/",
    "https://management.core.windows.net",
    "https://management.azure.com/",
    "https://management.azure.com",
)
RUN_IN_PROGRESS = (
    "Run command extension execution is in progress. "
    "Please wait for completion before invoking a run command."
)
CONCURRENT_REQUEST = (
    "The request failed due to conflict with a concurrent request. To resolve it, please refer to "
    "https://aka.ms/activitylog to get more details on the conflicting requests."
)


class ResetConnection(Exception):
    """An injected `reset`: the server closes the connection with a TCP RST instead of answering."""


def _www_authenticate(error: str, description: str) -> dict[str, str]:
    return {
        "WWW-Authenticate": 'Bearer authorization_uri="https://login.microsoftonline.com/'
        f'{EMULATOR_TENANT}", error="{error}", error_description="{description}"'
    }


def _claims(token: str) -> dict[str, Any] | None:
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        raw = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        claims = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    return claims if isinstance(claims, dict) else None


def _utc(epoch: float) -> str:
    moment = datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc)
    return f"{moment.month}/{moment.day}/{moment.year} {moment.strftime('%I:%M:%S %p').lstrip('0')}"


def expired(expiry: float) -> ArmError:
    return ArmError(
        401,
        "ExpiredAuthenticationToken",
        f"The access token expiry UTC time '{_utc(expiry)}' is earlier than current UTC time "
        f"'{_utc(time.time())}'.",
        headers=_www_authenticate("invalid_token", "The access token has expired."),
    )


def wrong_audience(audience: str) -> ArmError:
    allowed = ",".join(f"'{a}'" for a in ARM_AUDIENCES)
    return ArmError(
        401,
        "InvalidAuthenticationTokenAudience",
        f"The access token has been obtained for wrong audience or resource '{audience}'. It should "
        f"exactly match with one of the allowed audiences {allowed}.",
        headers=_www_authenticate("invalid_token", "The access token has the wrong audience."),
    )


def check_token(header: str) -> None:
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        reason = "missing 'Authorization' header" if not header else "malformed 'Authorization' header"
        raise ArmError(
            401,
            "AuthenticationFailed" if not header else "InvalidAuthenticationToken",
            f"Authentication failed. The {reason}."
            if not header
            else "The access token is invalid: expected 'Bearer <token>'.",
            headers=_www_authenticate("invalid_token", f"The authentication failed because of {reason}."),
        )
    claims = _claims(token.strip())
    if claims is None:
        return
    audience = str(claims.get("aud", ""))
    if audience not in ARM_AUDIENCES:
        raise wrong_audience(audience)
    expiry = claims.get("exp")
    if isinstance(expiry, (int, float)) and expiry < time.time():
        raise expired(float(expiry))


def fault_error(fault: Fault, emu: Emulator, req: Request, route: Route, action: str) -> ArmError:
    """The ARM answer an injected fault gives to this request."""
    kind = fault.kind
    if kind == "429":
        return ArmError(
            429,
            "SubscriptionRequestsThrottled",
            f"Number of requests for subscription '{emu.subscription_id}' exceeded. "
            "Please try again after '1' seconds.",
            headers={"Retry-After": "1"},
        )
    if kind == "503":
        return ArmError(
            503,
            "ServiceUnavailable",
            "The service is temporarily unavailable. Please try again later (injected).",
        )
    if kind in ("500", "502", "504"):
        return ArmError(
            int(kind),
            "InternalServerError" if kind == "500" else "GatewayError",
            f"Encountered internal server error (injected fault, HTTP {kind}). Tracking id '{uuid.uuid4()}'.",
        )
    if kind == "unauthorized":
        return ArmError(
            401,
            "InvalidAuthenticationToken",
            "The access token is invalid.",
            headers=_www_authenticate("invalid_token", "The access token is invalid."),
        )
    if kind == "expired-token":
        return expired(time.time() - 300)
    if kind == "wrong-audience":
        return wrong_audience("https://vault.azure.net")
    if kind == "forbidden":
        return ArmError(
            403,
            "AuthorizationFailed",
            f"The client '{EMULATOR_CLIENT_ID}' with object id '{EMULATOR_OBJECT_ID}' does not have "
            f"authorization to perform action '{action}' over scope '{route.scope_for(req.path)}' or the "
            "scope is invalid. If access was recently granted, please refresh your credentials.",
        )
    if kind == "not-found":
        parsed = parse_id(req.path)
        if parsed is None:
            return ArmError(404, "NotFound", f"Resource {req.path} not found.")
        kind_path = f"{parsed.namespace}/{'/'.join(parsed.types)}"
        return not_found(kind_path, parsed.names[-1], parsed.resource_group)
    if kind == "another-operation":
        location = emu.scenario.location.replace(" ", "").lower()
        version = req.query.get("api-version", "")
        return ArmError(
            409,
            "AnotherOperationInProgress",
            "Another operation on this or dependent resource is in progress. To retrieve status of the "
            f"operation use uri: {emu.endpoint}/subscriptions/{emu.subscription_id}/providers/"
            f"Microsoft.Network/locations/{location}/operations/{uuid.uuid4()}?api-version={version}.",
        )
    if kind == "concurrent-request":
        return ArmError(409, "Conflict", CONCURRENT_REQUEST)
    if kind == "runcommand-in-progress":
        return ArmError(409, "Conflict", RUN_IN_PROGRESS)
    raise ValueError(f"fault kind {kind!r} has no answer")  # behaviour kinds never get here
