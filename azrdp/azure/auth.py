"""Credential, cloud and subscription resolution, and the ARM pipeline options every client shares.

Subscription, first match wins (the source is recorded in `AzureContext.subscription_source`):
the ID inside --ids or a positional ID, --subscription (an ID, or a name looked up in the az CLI
profile and then in the subscription list), AZURE_SUBSCRIPTION_ID, the az CLI profile default
($AZURE_CONFIG_DIR/azureProfile.json, written with a UTF-8 BOM), the only visible subscription.
Otherwise a usage error.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from azrdp import __version__
from azrdp.azure.errormap import translate_errors
from azrdp.errors import UsageError

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

# azure-identity logs its failures as multi-line warnings; azrdp reports them once, as one error
# line. With --debug the root handler shows them again. (Here, not in the CLI: only code that
# reaches Azure imports this module, so `azrdp --help` does not pay for `logging`.)
logging.getLogger("azure").addHandler(logging.NullHandler())


@dataclass(frozen=True)
class CloudSpec:
    name: str
    arm_endpoint: str
    arm_scope: str
    authority_host: str


CLOUDS: dict[str, CloudSpec] = {
    "AzureCloud": CloudSpec(
        "AzureCloud",
        "https://management.azure.com",
        "https://management.azure.com/.default",
        "login.microsoftonline.com",
    ),
    "AzureUSGovernment": CloudSpec(
        "AzureUSGovernment",
        "https://management.usgovcloudapi.net",
        "https://management.core.usgovcloudapi.net/.default",
        "login.microsoftonline.us",
    ),
    "AzureChinaCloud": CloudSpec(
        "AzureChinaCloud",
        "https://management.chinacloudapi.cn",
        "https://management.chinacloudapi.cn/.default",
        "login.chinacloudapi.cn",
    ),
}

_GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")


def is_guid(value: str) -> bool:
    return bool(_GUID.match(value))


def azure_config_dir() -> Path:
    return Path(os.environ.get("AZURE_CONFIG_DIR") or Path.home() / ".azure")


def read_az_profile() -> list[dict[str, Any]]:
    """The subscriptions of the az CLI profile; [] when there is none."""
    path = azure_config_dir() / "azureProfile.json"
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise UsageError(
            f"Cannot read the az CLI profile {path}: {exc.strerror}.",
            fix="Fix its permissions, or pass --subscription.",
        ) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"The az CLI profile {path} is not valid JSON ({exc.msg} at line {exc.lineno}).",
            fix="Run `az account list` to rewrite it, or pass --subscription.",
        ) from None
    subs = data.get("subscriptions") if isinstance(data, dict) else None
    return [s for s in subs if isinstance(s, dict)] if isinstance(subs, list) else []


def subscription_from_id(resource_id: str) -> str | None:
    parts = resource_id.strip().split("/")
    if len(parts) > 2 and parts[1].lower() == "subscriptions" and is_guid(parts[2]):
        return parts[2].lower()
    return None


@dataclass(frozen=True)
class AzureContext:
    """Everything needed to build clients; the credential is built on first use."""

    subscription_id: str
    subscription_source: str
    cloud: CloudSpec
    arm_endpoint: str
    ca_bundle: str | None = None
    _credential: list[TokenCredential] = field(default_factory=list, repr=False, compare=False)

    @property
    def credential_name(self) -> str:
        return os.environ.get("AZURE_TOKEN_CREDENTIALS") or "DefaultAzureCredential"

    @property
    def emulated(self) -> bool:
        return bool(os.environ.get("AZRDP_ARM_ENDPOINT"))

    @property
    def credential(self) -> TokenCredential:
        if not self._credential:
            self._credential.append(build_credential(self.cloud))
        return self._credential[0]

    def for_subscription(self, subscription_id: str) -> AzureContext:
        """Same credential and cloud, another subscription (targets may span several)."""
        return replace(self, subscription_id=subscription_id, subscription_source="ids")

    def to_dict(self) -> dict[str, Any]:
        return {
            "subscriptionId": self.subscription_id,
            "subscriptionSource": self.subscription_source,
            "cloud": self.cloud.name,
            "credential": self.credential_name,
        }


def build_credential(cloud: CloudSpec) -> TokenCredential:
    """DefaultAzureCredential, which honours AZURE_TOKEN_CREDENTIALS (dev | prod | one credential)."""
    from azure.identity import DefaultAzureCredential

    try:
        return DefaultAzureCredential(authority=cloud.authority_host)
    except ValueError as exc:
        # azure-identity rejects an unknown AZURE_TOKEN_CREDENTIALS value at construction.
        raise UsageError(
            f"Cannot build the Azure credential: {str(exc).splitlines()[0]}",
            fix="Set AZURE_TOKEN_CREDENTIALS to dev, prod or one credential name, or unset it.",
        ) from None


def resolve_cloud(cloud: str | None, profile_entry: dict[str, Any] | None = None) -> CloudSpec:
    name = cloud or os.environ.get("AZRDP_CLOUD") or os.environ.get("AZURE_CLOUD")
    if not name and profile_entry:
        name = profile_entry.get("environmentName")
    name = name or "AzureCloud"
    for key, spec in CLOUDS.items():
        if key.lower() == str(name).lower():
            return spec
    raise UsageError(
        f"Unknown cloud {name!r}.",
        fix="Use --cloud AzureCloud, AzureUSGovernment or AzureChinaCloud.",
    )


def _arm_endpoint(cloud: CloudSpec) -> str:
    endpoint = os.environ.get("AZRDP_ARM_ENDPOINT", "").strip().rstrip("/")
    if not endpoint:
        return cloud.arm_endpoint
    if not endpoint.lower().startswith("https://"):
        raise UsageError(
            f"AZRDP_ARM_ENDPOINT {endpoint!r} is not an https URL.",
            "Bearer tokens are only sent over TLS.",
            fix="Use the https URL that `azrdp emulator serve` prints.",
        )
    return endpoint


def _ca_bundle() -> str | None:
    path = os.environ.get("AZRDP_CA_BUNDLE", "").strip()
    if not path:
        return None
    if not Path(path).is_file():
        raise UsageError(
            f"AZRDP_CA_BUNDLE {path!r} is not a readable file.",
            fix="Point it at the CA PEM that `azrdp emulator serve` printed, or unset it.",
        )
    return path


def resolve_context(
    subscription: str | None = None,
    cloud: str | None = None,
    ids: Sequence[str] = (),
) -> AzureContext:
    """Resolve subscription, cloud, endpoint and CA bundle; never contacts Azure unless a
    subscription name has to be looked up or the only visible subscription found."""
    profile = read_az_profile()
    default_entry = next((s for s in profile if s.get("isDefault")), None)

    sub_id: str | None = None
    source = ""
    for rid in ids:
        sub_id = subscription_from_id(rid)
        if sub_id:
            source = "ids"
            break

    if not sub_id and subscription:
        subscription = subscription.strip()
        if is_guid(subscription):
            sub_id, source = subscription.lower(), "argument"
        else:
            named = [s for s in profile if str(s.get("name", "")).lower() == subscription.lower()]
            if len(named) == 1 and is_guid(str(named[0].get("id", ""))):
                sub_id, source = str(named[0]["id"]).lower(), "argument"
                default_entry = named[0]
    env_sub = os.environ.get("AZURE_SUBSCRIPTION_ID", "").strip()
    if not sub_id and not subscription and env_sub:
        if not is_guid(env_sub):
            raise UsageError(
                f"AZURE_SUBSCRIPTION_ID {env_sub!r} is not a subscription ID (a GUID).",
                fix="Set it to the subscription's ID, or pass --subscription.",
            )
        sub_id, source = env_sub.lower(), "environment"
    if not sub_id and not subscription and default_entry and is_guid(str(default_entry.get("id", ""))):
        sub_id, source = str(default_entry["id"]).lower(), "azureCliProfile"

    spec = resolve_cloud(cloud, default_entry)
    ctx = AzureContext(
        subscription_id=sub_id or "",
        subscription_source=source,
        cloud=spec,
        arm_endpoint=_arm_endpoint(spec),
        ca_bundle=_ca_bundle(),
    )
    if sub_id:
        return ctx
    return _resolve_from_subscription_list(ctx, subscription)


def _resolve_from_subscription_list(ctx: AzureContext, name: str | None) -> AzureContext:
    subs = list_subscriptions(ctx)
    if name:
        matches = [s for s in subs if name.lower() in (s["name"].lower(), s["id"].lower())]
        if len(matches) == 1:
            return replace(ctx, subscription_id=matches[0]["id"].lower(), subscription_source="argument")
        if not matches:
            from azrdp.errors import NotFoundError

            raise NotFoundError(
                f"Subscription {name!r} was not found among the {len(subs)} this identity can see.",
                fix="Check `az account list -o table`, or pass the subscription ID.",
            )
        raise UsageError(
            f"Subscription name {name!r} matches {len(matches)} subscriptions.",
            fix="Pass the subscription ID instead of its name.",
        )
    if len(subs) == 1:
        return replace(ctx, subscription_id=subs[0]["id"].lower(), subscription_source="onlyVisible")
    raise UsageError(
        "No subscription given and no default could be found"
        + (f" ({len(subs)} are visible)." if subs else "."),
        fix="Pass --subscription, set AZURE_SUBSCRIPTION_ID, or run `az account set -s <id>`.",
    )


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
    from azrdp.azure.budget import BudgetPolicy

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
        # ARM's request budget, spent by every attempt (azure-core inserts per-retry policies right
        # after its RetryPolicy); one instance per pipeline, the buckets are per subscription.
        "per_retry_policies": [BudgetPolicy()],
    }
    if ctx.ca_bundle:
        kw["connection_verify"] = ctx.ca_bundle
    return kw


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
        *kw["per_retry_policies"],
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


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]
