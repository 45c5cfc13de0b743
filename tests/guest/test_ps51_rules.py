"""The Windows PowerShell 5.1 rules (ps51_rules.py): each proven by a fixture that breaks it and one
that passes, then applied to every script azrdp ships."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType

import ps51_rules as r
import pytest

FIXTURES = r.REPO / "tests" / "data" / "ps51"
MARKER = re.compile(r"#\s*expect:\s*([a-z0-9, -]+)")

# Violations the scripts may carry with a reason. Issue 11's collector.ps1 and executor.ps1 carry
# none; an entry that stops failing fails the test below, so the list can only shrink.
KNOWN_FAILURES: set[tuple[str, int, str]] = set()


def expected(path: Path) -> set[tuple[int, str]]:
    marks = set()
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        match = MARKER.search(line)
        if match:
            marks |= {(number, rule.strip()) for rule in match.group(1).split(",") if rule.strip() in r.RULES}
    return marks


def found(path: Path) -> set[tuple[int, str]]:
    return {(v.line, v.rule) for v in r.check_file(path)}


def test_every_rule_has_a_breaking_and_a_passing_fixture() -> None:
    for rule in r.RULES:
        assert (FIXTURES / f"{rule}.bad.ps1").is_file(), rule
        assert (FIXTURES / f"{rule}.good.ps1").is_file(), rule
    names = {p.name.split(".")[0] for p in FIXTURES.glob("*.ps1")}
    assert names == set(r.RULES), names ^ set(r.RULES)


@pytest.mark.parametrize("rule", sorted(r.RULES))
def test_the_breaking_fixture_fails_exactly_where_marked(rule: str) -> None:
    path = FIXTURES / f"{rule}.bad.ps1"
    marks = expected(path)
    assert rule in {m[1] for m in marks}, f"{path.name} marks no {rule} line"
    assert found(path) == marks, "\n".join(str(v) for v in r.check_file(path))


@pytest.mark.parametrize("rule", sorted(r.RULES))
def test_the_passing_fixture_passes(rule: str) -> None:
    path = FIXTURES / f"{rule}.good.ps1"
    assert r.check_file(path) == [], "\n".join(str(v) for v in r.check_file(path))


def test_the_shipped_scripts_follow_the_rules() -> None:
    violations = r.check_shipped()
    keys = {(v.file, v.line, v.rule) for v in violations}
    new = [str(v) for v in violations if (v.file, v.line, v.rule) not in KNOWN_FAILURES]
    assert new == [], "\n".join(new)
    fixed = KNOWN_FAILURES - keys
    assert fixed == set(), f"no longer failing: remove from KNOWN_FAILURES: {sorted(fixed)}"


def test_the_scripts_are_found_by_glob(tmp_path: Path) -> None:
    shipped = {p.relative_to(r.REPO).as_posix() for p in r.shipped_scripts()}
    assert {"azrdp/guest/scripts/collector.ps1", "azrdp/guest/scripts/executor.ps1"} <= shipped
    (tmp_path / "deep" / "er").mkdir(parents=True)
    (tmp_path / "deep" / "er" / "new.ps1").write_text("Get-Date\n")
    assert r.shipped_scripts(tmp_path) == [tmp_path / "deep" / "er" / "new.ps1"]


def test_composed_scripts_see_each_others_functions(tmp_path: Path) -> None:
    # The include marker composes scripts: the functions of one are visible to the other.
    (tmp_path / "main.ps1").write_text(
        "$Limits = @{ a = 1 }\nfunction Get-AzrdpMain {\n    param([string]$Name)\n    return $Name\n}\n"
        "# azrdp-include: part.ps1\nGet-AzrdpPart -Id 'x'\n"
    )
    (tmp_path / "part.ps1").write_text(
        "function Get-AzrdpPart {\n    param([string]$Id)\n    $names = @($Limits.Keys)\n"
        "    return Get-AzrdpMain -Name ($Id + $names.Count)\n}\n"
    )
    (tmp_path / "alone.ps1").write_text("Get-AzrdpMain -Name 'x'\n")
    assert r.check_file(tmp_path / "part.ps1") == []
    assert r.check_file(tmp_path / "main.ps1") == []
    (alone,) = r.check_file(tmp_path / "alone.ps1")
    assert alone.rule == "command" and "Get-AzrdpMain" in alone.message
    assert r.group_of(tmp_path / "part.ps1") == [tmp_path / "part.ps1", tmp_path / "main.ps1"]


def test_check_source_names_file_line_and_rule() -> None:
    source = "function Get-AzrdpX {\n    param($Items)\n    return $Items.Count\n}\n"
    (violation,) = r.check_source(source, "inline.ps1")
    assert (violation.file, violation.line, violation.rule) == ("inline.ps1", 3, "count-scalar")
    assert str(violation).startswith("inline.ps1:3: count-scalar: $Items.Count")
    # Companions supply functions and script-level variables.
    helper = ("helper.ps1", "$Items = @(1, 2)\nfunction Get-AzrdpY { return 1 }\n")
    assert r.check_source("Get-AzrdpY\n$n = $Items.Count\n", "main.ps1", [helper]) == []


def test_every_command_the_scripts_use_is_in_the_subset() -> None:
    missing = {n for n in r.used_commands(r.shipped_scripts()) if n.lower() not in r.catalogue().cmdlets}
    assert missing == set(), f"{sorted(missing)}: run {r.REGEN}"


def load_regen() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "regen_ps51_subset", r.REPO / "tests/data/regen_ps51_subset.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_regen_script_drops_the_catalogues_placeholder_lines() -> None:
    regen = load_regen()
    full = {
        "about": "the official help sources",
        "commonParameters": ["Verbose"],
        "commonAliases": {"vb": "Verbose"},
        "cmdlets": {
            "get-thing": {
                "name": "Get-Thing",
                "module": "M",
                "source": "reference:x.md",
                "aliases": ["gth"],
                "parameters": {
                    "Path": ["Required: True"],
                    "Kind": ["Accepted values: A", "B", "C"],
                    "LiteralPath": ["PSPath", "LP"],
                    "Uri": ["Required: True (SetA", "SetB)"],
                },
            },
            "set-other": {
                "name": "Set-Other",
                "module": "M",
                "source": "s",
                "aliases": ["so"],
                "parameters": {},
            },
        },
    }
    subset = regen.build_subset(full, ["get-thing"])
    assert subset["cmdlets"] == {
        "Get-Thing": {
            "module": "M",
            "source": "reference:x.md",
            "parameters": {"Kind": [], "LiteralPath": ["PSPath", "LP"], "Path": [], "Uri": []},
        }
    }
    assert subset["aliases"]["gth"] == "Get-Thing" and subset["aliases"]["so"] == "Set-Other"
    assert subset["aliases"]["gcm"] == "Get-Command"  # a default alias the help sources omit
    assert subset["sources"] == "the official help sources"
    with pytest.raises(SystemExit, match="Get-Nothing"):
        regen.build_subset(full, ["Get-Nothing"])


def test_the_subset_is_clean_and_names_its_sources() -> None:
    data = json.loads(r.CATALOGUE.read_text(encoding="utf-8"))
    assert "regen_ps51_subset.py" in data["about"] and "official help sources" in data["sources"]
    for name, entry in data["cmdlets"].items():
        assert entry["source"].endswith(".md"), name
        for parameter, aliases in entry["parameters"].items():
            assert all(re.fullmatch(r"[A-Za-z0-9_?%-]+", a) for a in aliases), (name, parameter, aliases)
    cat = r.catalogue()
    # ShouldProcess parameters only where the cmdlet supports them; the other common ones everywhere.
    assert cat.cmdlets["remove-item"].has("WhatIf") and not cat.cmdlets["get-item"].has("WhatIf")
    assert "ea" in cat.common and "whatif" not in cat.common
    assert not cat.cmdlets["start-service"].has("NoWait") and cat.cmdlets["stop-service"].has("NoWait")


def test_the_command_line_reports_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert r.main([str(FIXTURES / "alias.bad.ps1")]) == 1
    out = capsys.readouterr()
    assert "tests/data/ps51/alias.bad.ps1:2: alias: gci is an alias of Get-ChildItem" in out.out
    assert r.main([str(FIXTURES / "alias.good.ps1")]) == 0
