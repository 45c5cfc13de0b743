"""Raw ARM JSON through the SDK's own pipeline: what azrdp reads, without the generated models.

Reading a fleet through the generated clients builds a model object per resource and turns it back
into a dict (`as_dict()`) for azrdp's parsers, which take REST JSON: about three quarters of the
CPU of a large fleet check went there. `ArmReader` sends the same requests through an
`ARMPipelineClient` with the policies the generated clients use, in their order (request id,
headers, user agent, proxy, resource provider registration, redirects, retries, azrdp's request
budget, bearer-token authentication with ARM's challenge handling, the custom hook, network trace
logging, distributed tracing, the sensitive-header cleanup and ARM's HTTP logging with its
redaction; all but content decoding, whose parse would be thrown away), and hands back the parsed
JSON of each response, decoded once. Pages are followed through
`nextLink`, verbatim, as ARM returns it. Errors are raised as the generated code raises them
(azure-core's `map_error`, then `HttpResponseError` in ARM's error format), so
`errormap.translate_errors` reads them the same way.

The generated clients stay where they earn their cost: writes and long-running operations (NSG
rules, VM start, redeploy, reapply, effective rules and routes, IP flow verify).

api-versions: the ones the installed SDK packages send for the same operations (a test compares
them with the SDK's request builders, so an SDK upgrade that moves them fails loudly).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:
    from azrdp.azure.auth import AzureContext

Json = Mapping[str, Any]

# What azure-mgmt-compute 39, azure-mgmt-network 33 and azure-mgmt-resourcehealth 1.0 send.
COMPUTE_API = "2026-04-01"
NETWORK_API = "2026-03-01"
RESOURCE_HEALTH_API = "2025-05-01"
# The generated operations' error map (azure-core exception type per status).
MAX_PAGES = 100_000  # a bound on any nextLink chain, whatever ARM answers


def resource_path(resource_id: str) -> str:
    """A resource id as a URL path, each segment quoted (names may hold spaces or parentheses)."""
    segments = [s for s in resource_id.strip().split("/") if s]
    return "/" + "/".join(quote(s, safe="") for s in segments)


def subscription_path(subscription_id: str, *parts: str) -> str:
    """`/subscriptions/{id}/...` with each part quoted."""
    return "/" + "/".join(quote(p, safe="") for p in ("subscriptions", subscription_id, *parts) if p)


def group_path(subscription_id: str, resource_group: str | None, provider: str, kind: str) -> str:
    """The list URL of a resource type in a group, or in the subscription when `resource_group` is None."""
    if resource_group:
        return subscription_path(
            subscription_id, "resourceGroups", resource_group, "providers", provider, kind
        )
    return subscription_path(subscription_id, "providers", provider, kind)


def raise_for_arm(response: Any) -> None:
    """Raise what a generated operation raises for this response (nothing for 2xx)."""
    if 200 <= response.status_code < 300:
        return
    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ResourceExistsError,
        ResourceNotFoundError,
        ResourceNotModifiedError,
        map_error,
    )
    from azure.mgmt.core.exceptions import ARMErrorFormat

    error_map: dict[int, type[HttpResponseError]] = {
        401: ClientAuthenticationError,
        404: ResourceNotFoundError,
        409: ResourceExistsError,
        304: ResourceNotModifiedError,
    }
    map_error(status_code=response.status_code, response=response, error_map=error_map)
    raise HttpResponseError(response=response, error_format=ARMErrorFormat)


class ArmReader:
    """GETs, pages and POSTs of raw JSON against ARM, through the SDK's pipeline. Thread-safe."""

    def __init__(self, ctx: AzureContext) -> None:
        self.ctx = ctx
        self._lock = threading.Lock()
        self._client: Any = None

    @property
    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = _build_client(self.ctx)
            return self._client

    def url(self, path: str) -> str:
        return path if path.lower().startswith("https://") else self.ctx.arm_endpoint + path

    def send(
        self,
        method: str,
        path: str,
        api_version: str | None,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
    ) -> Any:
        """The raw azure-core HttpResponse (read), whatever its status."""
        from azure.core.rest import HttpRequest

        query = dict(params or {})
        if api_version is not None:
            query["api-version"] = api_version
        request = HttpRequest(method, self.url(path), params=query or None, json=body)
        return self.client.send_request(request)

    def get(self, path: str, api_version: str | None, params: Mapping[str, str] | None = None) -> Any:
        """The JSON of a GET; raises the SDK's exceptions for anything but 2xx."""
        response = self.send("GET", path, api_version, params=params)
        raise_for_arm(response)
        return response.json()

    def post(
        self, path: str, api_version: str, body: Any = None, params: Mapping[str, str] | None = None
    ) -> Any:
        """The JSON of a POST action that answers at once (no body sent when `body` is None)."""
        response = self.send("POST", path, api_version, params=params, body=body)
        raise_for_arm(response)
        return response.json() if response.content else {}

    def items(self, path: str, api_version: str, params: Mapping[str, str] | None = None) -> Iterator[Json]:
        """Every item of a list, page by page, following `nextLink` verbatim."""
        response = self.send("GET", path, api_version, params=params)
        for _ in range(MAX_PAGES):
            raise_for_arm(response)
            body = response.json()
            values = body.get("value") if isinstance(body, Mapping) else None
            for item in values if isinstance(values, list) else ():
                if isinstance(item, Mapping):
                    yield item
            link = body.get("nextLink") if isinstance(body, Mapping) else None
            if not link:
                return
            response = self.send("GET", str(link), None)

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None


def _build_client(ctx: AzureContext) -> Any:
    """An ARMPipelineClient with the generated clients' policies, plus azrdp's request budget."""
    from azure.core.pipeline import policies
    from azure.mgmt.core import ARMPipelineClient
    from azure.mgmt.core.policies import (
        ARMAutoResourceProviderRegistrationPolicy,
        ARMChallengeAuthenticationPolicy,
        ARMHttpLoggingPolicy,
    )

    from azrdp.azure.auth import client_kwargs
    from azrdp.azure.budget import BudgetPolicy

    kw = client_kwargs(ctx)
    kw.pop("per_retry_policies", None)
    kw.pop("polling_interval", None)
    base_url = kw.pop("base_url")
    scopes = kw.pop("credential_scopes")
    pipeline = [
        policies.RequestIdPolicy(**kw),
        policies.HeadersPolicy(**kw),
        policies.UserAgentPolicy(**kw),
        policies.ProxyPolicy(**kw),
        # No ContentDecodePolicy: it parses every body into a context this reader never reads, and
        # a large fleet's pages would be decoded twice (streamed reads instead cost more still).
        ARMAutoResourceProviderRegistrationPolicy(),
        policies.RedirectPolicy(**kw),
        policies.RetryPolicy(**kw),
        BudgetPolicy(),
        ARMChallengeAuthenticationPolicy(ctx.credential, *scopes, **kw),
        policies.CustomHookPolicy(**kw),
        policies.NetworkTraceLoggingPolicy(**kw),
        policies.DistributedTracingPolicy(**kw),
        policies.SensitiveHeaderCleanupPolicy(**kw),
        ARMHttpLoggingPolicy(**kw),
    ]
    return ARMPipelineClient(base_url=base_url, policies=pipeline, **kw)
