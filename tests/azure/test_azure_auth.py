from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from azrdp.azure.auth import CLOUDS, resolve_cloud, resolve_context, subscription_from_id
from azrdp.azure.clients import client_kwargs
from azrdp.emulator import Emulator
from azrdp.errors import NotFoundError, UsageError

SUB_A = "11111111-1111-1111-1111-111111111111"
SUB_B = "22222222-2222-2222-2222-222222222222"
SUB_C = "33333333-3333-3333-3333-333333333333"
VM_ID = f"/subscriptions/{SUB_C}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/web01"


def write_profile(home: Path, *entries: dict[str, object]) -> None:
    data = {"installationId": "x", "subscriptions": list(entries)}
    # az writes the profile with a UTF-8 BOM.
    (home / ".azure" / "azureProfile.json").write_text(json.dumps(data), encoding="utf-8-sig")


def profile_entry(sub: str, name: str, default: bool, env: str = "AzureCloud") -> dict[str, object]:
    return {"id": sub, "name": name, "isDefault": default, "environmentName": env, "state": "Enabled"}


def test_ids_win_over_everything(isolated_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_profile(isolated_env, profile_entry(SUB_A, "one", True))
    monkeypatch.setenv("AZURE_SUBSCRIPTION_ID", SUB_B)
    ctx = resolve_context(subscription=SUB_B, ids=[VM_ID])
    assert (ctx.subscription_id, ctx.subscription_source) == (SUB_C, "ids")


def test_argument_then_environment_then_profile(isolated_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_profile(isolated_env, profile_entry(SUB_A, "one", True), profile_entry(SUB_C, "three", False))
    monkeypatch.setenv("AZURE_SUBSCRIPTION_ID", SUB_B)
    assert resolve_context(subscription=SUB_C.upper()).subscription_id == SUB_C
    assert resolve_context(subscription="three").subscription_source == "argument"
    env_ctx = resolve_context()
    assert (env_ctx.subscription_id, env_ctx.subscription_source) == (SUB_B, "environment")
    monkeypatch.delenv("AZURE_SUBSCRIPTION_ID")
    prof = resolve_context()
    assert (prof.subscription_id, prof.subscription_source) == (SUB_A, "azureCliProfile")


def test_profile_environment_selects_cloud(isolated_env: Path) -> None:
    write_profile(isolated_env, profile_entry(SUB_A, "gov", True, env="AzureUSGovernment"))
    ctx = resolve_context()
    assert ctx.cloud.name == "AzureUSGovernment"
    assert ctx.arm_endpoint == "https://management.usgovcloudapi.net"
    kw = client_kwargs(ctx)
    assert kw["credential_scopes"] == ["https://management.core.usgovcloudapi.net/.default"]


def test_cloud_flag_and_unknown_cloud() -> None:
    assert resolve_cloud("azurechinacloud") is CLOUDS["AzureChinaCloud"]
    with pytest.raises(UsageError, match="Unknown cloud"):
        resolve_cloud("Mars")


def test_bad_environment_values_are_usage_errors(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AZURE_SUBSCRIPTION_ID", "not-a-guid")
    with pytest.raises(UsageError, match="not a subscription ID"):
        resolve_context()
    monkeypatch.setenv("AZURE_SUBSCRIPTION_ID", SUB_A)
    monkeypatch.setenv("AZRDP_ARM_ENDPOINT", "http://127.0.0.1:1")
    with pytest.raises(UsageError, match="not an https URL"):
        resolve_context()
    monkeypatch.setenv("AZRDP_ARM_ENDPOINT", "https://127.0.0.1:1/")
    monkeypatch.setenv("AZRDP_CA_BUNDLE", str(tmp_path / "missing.pem"))
    with pytest.raises(UsageError, match="AZRDP_CA_BUNDLE"):
        resolve_context()
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    monkeypatch.setenv("AZRDP_CA_BUNDLE", str(ca))
    ctx = resolve_context()
    assert ctx.arm_endpoint == "https://127.0.0.1:1"
    assert client_kwargs(ctx)["connection_verify"] == str(ca)


def test_corrupt_profile_is_a_usage_error(isolated_env: Path) -> None:
    (isolated_env / ".azure" / "azureProfile.json").write_text("{nope", encoding="utf-8")
    with pytest.raises(UsageError, match="not valid JSON"):
        resolve_context(subscription=SUB_A)


def test_subscription_from_id() -> None:
    assert subscription_from_id(VM_ID) == SUB_C
    assert subscription_from_id("/subscriptions/nope/resourceGroups/rg") is None
    assert subscription_from_id("web01") is None


def test_only_visible_subscription_and_name_lookup_through_arm(
    make_emulator: Callable[..., Emulator], arm_env: Callable[[Emulator], dict[str, str]]
) -> None:
    emu = make_emulator("healthy")
    arm_env(emu)
    os.environ.pop("AZURE_SUBSCRIPTION_ID")
    ctx = resolve_context()
    assert (ctx.subscription_id, ctx.subscription_source) == (emu.subscription_id, "onlyVisible")
    named = resolve_context(subscription="azrdp emulator")
    assert (named.subscription_id, named.subscription_source) == (emu.subscription_id, "argument")
    with pytest.raises(NotFoundError, match="was not found among the 1"):
        resolve_context(subscription="someone else's")
    assert [r.path for r in emu.requests].count("/subscriptions") == 3
