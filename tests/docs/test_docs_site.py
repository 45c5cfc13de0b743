"""The docs site builds strictly and offline; every command, check, repair and probe finding has an entry."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from azrdp.catalog import build_catalog
from azrdp.codes import all_entries
from azrdp.errors import ExitCode, most_serious

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def _hook() -> ModuleType:
    spec = importlib.util.spec_from_file_location("azrdp_reference", DOCS / "hooks" / "azrdp_reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


hook = _hook()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    yield out


def _page_ids(site: Path, page: str) -> set[str]:
    html = (site / page.removesuffix(".md") / "index.html").read_text(encoding="utf-8")
    return set(re.findall(r'id="([^"]+)"', html))


def test_every_command_has_a_docs_entry(site: Path) -> None:
    ids = _page_ids(site, "commands.md")
    paths = [path for path, _, _ in hook.iter_commands()]
    assert ["explain"] in paths and ["checks", "list"] in paths and ["checks", "show"] in paths
    for path, command, _ in hook.iter_commands():
        assert (command.help or "").strip(), f"azrdp {' '.join(path)} has no help text to document"
        assert hook.command_anchor(path) in ids, (
            f"azrdp {' '.join(path)} is missing from the command reference"
        )


def test_every_check_repair_and_probe_finding_has_a_docs_entry(site: Path) -> None:
    catalog = build_catalog()
    assert catalog.items, "the catalogue is empty: the registries did not load"
    for item in catalog.items:
        page, anchor = item.docs_anchor.split("#", 1)
        assert anchor in _page_ids(site, page), f"{item.kind} {item.id} has no entry at {item.docs_anchor}"


def test_every_error_code_is_on_the_error_codes_page(site: Path) -> None:
    html = (site / "error-codes" / "index.html").read_text(encoding="utf-8")
    for _, raw in all_entries():
        assert raw["name"] in html, raw["name"]


def test_site_is_self_contained(site: Path) -> None:
    """No web fonts or CDN assets: the site renders offline."""
    for page in site.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        assert "fonts.googleapis.com" not in text, page
        assert "fonts.gstatic.com" not in text, page
        assert not re.search(r'<script[^>]+src="https?://', text), page


def test_config_uses_no_downloading_plugins() -> None:
    class Loader(yaml.SafeLoader):
        pass

    # mkdocs.yml may carry !ENV / python tags; the test only reads plain keys.
    Loader.add_multi_constructor("", lambda loader, suffix, node: None)
    config = yaml.load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"), Loader=Loader)
    assert config["theme"]["font"] is False
    plugins = [p if isinstance(p, str) else next(iter(p)) for p in config.get("plugins", [])]
    assert set(plugins) <= {"search"}
    assert config["hooks"] == ["docs/hooks/azrdp_reference.py"]


def test_every_nav_page_exists() -> None:
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    pages = re.findall(r":\s+([\w-]+\.md)\s*$", config, flags=re.MULTILINE)
    assert sorted(pages) == sorted(p.name for p in DOCS.glob("*.md"))


def test_every_generator_is_used_by_a_page() -> None:
    used = {m.group(1) for page in DOCS.glob("*.md") for m in hook.MARKER.finditer(page.read_text("utf-8"))}
    assert used == set(hook.GENERATORS)


def test_an_unknown_marker_fails_the_build() -> None:
    with pytest.raises(ValueError, match="unknown docs marker"):
        hook.expand("<!-- azrdp:no-such-thing -->")


def test_exit_code_table_matches_the_code() -> None:
    text = (DOCS / "output.md").read_text(encoding="utf-8")
    documented = {int(code) for code in re.findall(r"^\| (\d+) \|", text, flags=re.MULTILINE)}
    assert documented == {int(code) for code in ExitCode}
    order_line = re.search(r"\*\*(\d+(?: > \d+)+)\*\*", text)
    assert order_line is not None
    order = [int(x) for x in order_line.group(1).split(" > ")]
    assert sorted(order) == sorted(int(code) for code in ExitCode)
    for index, code in enumerate(order):
        assert most_serious(order[index:]) == code


def test_custom_roles_hold_exactly_the_declared_actions() -> None:
    catalog = build_catalog()
    diagnostician, operator = hook.role_definitions()
    check_actions = {a for c in catalog.checks for a in c.rbac}
    repair_actions = {a for r in catalog.repairs for a in r.rbac}
    assert set(diagnostician["Actions"]) == check_actions
    assert set(operator["Actions"]) == check_actions | repair_actions
    for role in (diagnostician, operator):
        assert not any("*" in action for action in role["Actions"]), "no wildcards in a least-privilege role"


def test_command_reference_shows_flags_and_env_vars() -> None:
    text = hook.commands_markdown()
    assert "## azrdp explain {#azrdp-explain}" in text
    assert "`-e, --extended CODE`" in text
    assert "env var: NO_COLOR, AZURE_CORE_NO_COLOR" in text
