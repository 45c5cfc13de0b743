"""Client factory and SDK error translation.

One factory for production and tests: the ARM endpoint, CA bundle, polling interval, retry policy
and user agent all come from the AzureContext and the environment, so the real SDK clients talk to
the emulator without a line of test-only code.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from azrdp import __version__
from azrdp.azure.auth import AzureContext
from azrdp.errors import (
    AuthenticationError,
    AzrdpError,
    AzureError,
    ConflictError,
    ForbiddenError,
    NotFoundError,
    UsageError,
)

if TYPE_CHECKING:
    from azure.mgmt.compute import ComputeManagementClient
    from azure.mgmt.network import NetworkManagementClient
    from azure.mgmt.resourcehealth import ResourceHealthMgmtClient

# Run Command and power operations take tens of seconds: the SDK default of 30 s between polls
# would add up to half a minute to each. Override with AZRDP_POLLING_INTERVAL (the emulator does).
DEFAULT_POLLING_INTERVAL = 2.0
SUBSCRIPTIONS_API_VERSION = "2022-12-01"


def _float_env(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise UsageError(f"{name} {raw!r} is not a number.", fix=f"Set {name} to seconds, e.g. 2.") from None
    if not math.isfinite(value) or value < 0:  # nan passes `< 0`; inf would wait forever
        raise UsageError(
            f"{name} {raw!r} is not a finite number of 0 or more.", fix=f"Set {name} to seconds, e.g. 2."
        )
    return value


def client_kwargs(ctx: AzureContext) -> dict[str, Any]:
    kw: dict[str, Any] = {
        "base_url": ctx.arm_endpoint + "/",
        "credential_scopes": [
            ctx.cloud.arm_scope if not ctx.emulated else "https://management.azure.com/.default"
        ],
        "user_agent": f"azrdp/{__version__}",
        "polling_interval": _float_env("AZRDP_POLLING_INTERVAL", DEFAULT_POLLING_INTERVAL),
        # azure-core's RetryPolicy honours Retry-After on 429/5xx; cap the exponential backoff.
        "retry_total": int(_float_env("AZRDP_RETRY_TOTAL", 6)),
        "retry_backoff_max": 30,
    }
    if ctx.ca_bundle:
        kw["connection_verify"] = ctx.ca_bundle
    return kw


class Clients:
    """Lazily built SDK clients for one subscription. Thread-safe to share across workers."""

    def __init__(self, ctx: AzureContext) -> None:
        self.ctx = ctx
        self._lock = threading.Lock()
        self._compute: ComputeManagementClient | None = None
        self._network: NetworkManagementClient | None = None
        self._health: ResourceHealthMgmtClient | None = None

    @property
    def subscription_id(self) -> str:
        return self.ctx.subscription_id

    @property
    def compute(self) -> ComputeManagementClient:
        with self._lock:
            if self._compute is None:
                from azure.mgmt.compute import ComputeManagementClient

                self._compute = ComputeManagementClient(
                    self.ctx.credential, self.ctx.subscription_id, **client_kwargs(self.ctx)
                )
            return self._compute

    @property
    def network(self) -> NetworkManagementClient:
        with self._lock:
            if self._network is None:
                from azure.mgmt.network import NetworkManagementClient

                self._network = NetworkManagementClient(
                    self.ctx.credential, self.ctx.subscription_id, **client_kwargs(self.ctx)
                )
            return self._network

    @property
    def resource_health(self) -> ResourceHealthMgmtClient:
        with self._lock:
            if self._health is None:
                from azure.mgmt.resourcehealth import ResourceHealthMgmtClient

                self._health = ResourceHealthMgmtClient(
                    self.ctx.credential, self.ctx.subscription_id, **client_kwargs(self.ctx)
                )
            return self._health

    def for_subscription(self, subscription_id: str) -> Clients:
        if subscription_id.lower() == self.subscription_id.lower():
            return self
        return Clients(self.ctx.for_subscription(subscription_id))

    def close(self) -> None:
        for client in (self._compute, self._network, self._health):
            if client is not None:
                client.close()


def list_subscriptions(ctx: AzureContext) -> list[dict[str, str]]:
    """GET /subscriptions through the ARM pipeline (no extra SDK package needed)."""
    from azure.core.pipeline.policies import RetryPolicy, UserAgentPolicy
    from azure.core.rest import HttpRequest
    from azure.mgmt.core import ARMPipelineClient
    from azure.mgmt.core.policies import ARMChallengeAuthenticationPolicy

    kw = client_kwargs(ctx)
    policies = [
        UserAgentPolicy(kw["user_agent"]),
        RetryPolicy(retry_total=kw["retry_total"], retry_backoff_max=kw["retry_backoff_max"]),
        ARMChallengeAuthenticationPolicy(ctx.credential, *kw["credential_scopes"]),
    ]
    subs: list[dict[str, str]] = []
    url: str | None = f"{ctx.arm_endpoint}/subscriptions?api-version={SUBSCRIPTIONS_API_VERSION}"
    client: ARMPipelineClient[HttpRequest, Any] = ARMPipelineClient(
        base_url=ctx.arm_endpoint,
        policies=policies,
        connection_verify=kw.get("connection_verify", True),
    )
    with translate_errors("the subscription list"), client:
        while url:
            response = client.send_request(HttpRequest("GET", url))
            response.raise_for_status()
            body = response.json()
            for item in body.get("value", []):
                if item.get("state", "Enabled") in ("Enabled", "Warned", "PastDue"):
                    subs.append({"id": str(item["subscriptionId"]), "name": str(item.get("displayName", ""))})
            url = body.get("nextLink")
    return subs


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
            _, message = _error_parts(exc)
            raise ForbiddenError(
                f"Access to {what} was denied: {message}",
                fix="Ask for a role with the RBAC actions listed by `azrdp checks list`.",
            ) from None
        raise AuthenticationError(
            f"Could not authenticate to Azure while reading {what}: {_credential_failure(exc)}",
            fix="Run `az login`, or set AZURE_TOKEN_CREDENTIALS (e.g. managedidentitycredential).",
        ) from None
    except ResourceExistsError as exc:
        code, message = _error_parts(exc)
        raise ConflictError(
            f"Azure refused to change {what}: {message}",
            fix="Wait for the operation in progress to finish, then retry.",
        ) from None
    except HttpResponseError as exc:
        code, message = _error_parts(exc)
        status = exc.status_code
        if status == 403 or code == "AuthorizationFailed":
            raise ForbiddenError(
                f"Access to {what} was denied: {message}",
                fix="Ask for a role with the RBAC actions listed by `azrdp checks list`.",
            ) from None
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
