"""`azrdp checks list|show`: the catalogue comes from the registries, with filters and clear errors."""

from __future__ import annotations

import importlib
import json
from typing import Any

import pytest
from typer.testing import CliRunner

import azrdp.catalog
import azrdp.repairs
from azrdp.catalog import build_catalog
from azrdp.checks import all_checks
from azrdp.probe.classify import PROBE_FINDINGS


def run(*args: str) -> tuple[int, str, str]:
    from azrdp.cli.app import app

    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def list_doc(*args: str) -> dict[str, Any]:
    code, out, err = run("checks", "list", "-o", "json", *args)
    assert code == 0, err
    doc: dict[str, Any] = json.loads(out)
    return doc


def test_list_holds_every_registered_check_and_probe_finding() -> None:
    doc = list_doc()
    assert doc["schemaVersion"] == "2"
    assert [c["id"] for c in doc["checks"]] == [c.id for c in all_checks()]
    assert [p["id"] for p in doc["probeFindings"]] == list(PROBE_FINDINGS)
    assert doc["summary"] == {key: len(doc[key]) for key in ("checks", "repairs", "probeFindings")}
    for check in doc["checks"]:
        assert check["kind"] == "check" and check["writes"] is False
        assert check["rbac"], f"{check['id']} declares no RBAC"
        assert check["docsAnchor"] == f"checks.md#{check['id']}"


def test_repairs_and_the_checks_they_fix_point_at_each_other() -> None:
    doc = list_doc()
    assert doc["registries"]["repairs"] is True
    checks = {c["id"]: c for c in doc["checks"]}
    assert doc["repairs"], "the repairs registry is present but empty"
    for repair in doc["repairs"]:
        assert repair["writes"] is True
        for check_id in repair["fixes"]:
            if check_id in checks:
                assert repair["id"] in checks[check_id]["fixedBy"]
    for check in checks.values():
        for repair_id in check["fixedBy"]:
            assert any(r["id"] == repair_id and check["id"] in r["fixes"] for r in doc["repairs"])


def test_kind_and_source_filters() -> None:
    only_probe = list_doc("--kind", "probeFinding")
    assert only_probe["checks"] == [] and only_probe["repairs"] == []
    assert only_probe["summary"]["probeFindings"] == len(PROBE_FINDINGS)
    guest = list_doc("--source", "guest")
    assert guest["checks"] and all(c["source"] == "guest" for c in guest["checks"])
    assert guest["probeFindings"] == [] and guest["repairs"] == []


@pytest.mark.parametrize("args", [["--kind", "bogus"], ["--source", "internet"]])
def test_bad_filter_is_usage_error(args: list[str]) -> None:
    code, out, err = run("checks", "list", *args)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and "\nfix: " in err


def test_table_shows_rbac_per_row() -> None:
    code, out, _ = run("checks", "list", "--kind", "check", "-o", "table")
    assert code == 0
    header = out.splitlines()[0].split()
    assert header == ["Id", "Kind", "Severity", "Source", "Writes", "Rbac", "FixedBy"]
    for check in all_checks():
        assert check.rbac[0] in out


def test_show_a_check_and_a_probe_finding() -> None:
    check = all_checks()[0]
    code, out, _ = run("checks", "show", check.id, "-o", "json")
    assert code == 0
    item = json.loads(out)["item"]
    assert item["id"] == check.id and item["rbac"] == list(check.rbac) and item["reads"] == check.reads
    code, out, _ = run("checks", "show", "tcp-timeout", "-o", "json")
    assert code == 0
    assert json.loads(out)["item"]["kind"] == "probeFinding"


def test_show_unknown_id_is_usage_error() -> None:
    code, out, err = run("checks", "show", "no-such-check")
    assert code == 2 and out == ""
    assert "no-such-check" in err and "azrdp checks list" in err


def test_a_registry_without_all_repairs_counts_as_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(azrdp.repairs, "all_repairs")
    catalog = build_catalog()
    assert catalog.repairs == () and catalog.registries["repairs"] is False
    assert all(c.fixed_by == () for c in catalog.checks)


def test_probe_findings_given_as_a_sequence_are_read_too(monkeypatch: pytest.MonkeyPatch) -> None:
    # importlib: the azrdp.probe package exports a classify() function under the same name.
    classify = importlib.import_module("azrdp.probe.classify")
    monkeypatch.setattr(classify, "PROBE_FINDINGS", list(classify.PROBE_FINDINGS.values()))
    assert [p.id for p in azrdp.catalog.build_catalog().probe_findings] == list(PROBE_FINDINGS)
