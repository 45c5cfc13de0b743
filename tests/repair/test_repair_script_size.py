"""The scripts as Run Command receives them: compacted, under azrdp's size budget, still the same
PowerShell (same tokens, no parse error), and parameters a command line cannot mangle."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import tree_sitter_powershell as tsp
from tree_sitter import Language, Node, Parser

from azrdp.errors import UsageError
from azrdp.guest import contract as c
from azrdp.repairs import guest as rg
from azrdp.repairs import outcome as ro

PARSER = Parser(Language(tsp.language()))
# (what is sent, the readable source it comes from)
SCRIPTS = {
    "diagnose": (lambda: "\n".join(c.script_lines()), c.script_text),
    "repair": (lambda: "\n".join(ro.repair_script_lines()), ro.repair_script_text),
}


def walk(node: Node) -> Iterator[Node]:
    yield node
    for child in node.children:
        yield from walk(child)


def tokens(source: str) -> list[tuple[str, str]]:
    """Every leaf of the PowerShell syntax tree except comments, in order."""
    data = source.encode("ascii")
    tree = PARSER.parse(data)
    assert not tree.root_node.has_error
    return [
        (n.type, data[n.start_byte : n.end_byte].decode("ascii"))
        for n in walk(tree.root_node)
        if n.child_count == 0 and n.type != "comment"
    ]


@pytest.mark.parametrize("name", SCRIPTS)
def test_sent_script_stays_under_the_budget_with_margin(name: str) -> None:
    sent, _ = SCRIPTS[name]
    size = len(sent().encode("ascii"))
    assert size <= c.SCRIPT_BUDGET, f"{name}: {size:,} bytes sent"
    assert c.SCRIPT_BUDGET + 2048 <= c.SCRIPT_LIMIT  # the budget stays clear of azrdp's own ceiling
    print(f"{name}: {size:,} bytes sent (budget {c.SCRIPT_BUDGET:,}, ceiling {c.SCRIPT_LIMIT:,})")


@pytest.mark.parametrize("name", SCRIPTS)
def test_sent_script_is_the_same_powershell_without_comments(name: str) -> None:
    sent, source = SCRIPTS[name]
    text = sent()
    assert text.splitlines()[0] == c.SCRIPT_HEADER
    assert c.is_azrdp_script(text.splitlines())
    body = text.splitlines()[1:]
    assert all(line and line == line.strip() and not line.startswith("#") for line in body)
    # Same tokens in the same order: dropping comments, blank lines and indentation changed no code.
    assert tokens(text) == tokens(source())
    # The compaction is a pure function of the packaged files.
    assert sent() == text


def test_sources_have_nothing_the_compaction_would_break() -> None:
    for source in (c.script_text(), ro.repair_script_text()):
        for token in ("@'", '@"', "<#", "#>", "#requires"):
            assert token not in source, token
        assert not [n for n in walk(PARSER.parse(source.encode()).root_node) if n.type == "here_string"]


def test_a_script_over_the_limit_is_refused_before_sending() -> None:
    huge = c.SCRIPT_HEADER + "\n" + "$x = 1\n" * (c.SCRIPT_LIMIT // 7 + 1)
    with pytest.raises(c.ContractError, match="limit for Run Command"):
        c.checked_lines(huge)


def test_compaction_keeps_the_header_and_code_lines_only() -> None:
    text = (
        c.SCRIPT_HEADER
        + "\n# a comment\n\n    if ($a) {\n        # why\n        $b = '#not a comment'\n    }\n"
    )
    assert c.compact(text) == c.SCRIPT_HEADER + "\nif ($a) {\n$b = '#not a comment'\n}\n"


def test_parameters_fit_a_command_line_and_carry_nothing_it_reinterprets() -> None:
    every_id = list(rg.GUEST_ORDER)
    largest = ro.build_parameters(
        "repair", rdp_port=65535, run_id="a1b2c3d4e5f6", only=every_id, skip=[], known_ids=every_id
    )
    assert sum(len(p["name"]) + len(p["value"]) + 3 for p in largest) <= c.PARAMETERS_LIMIT
    assert len(largest) <= 6
    for bad in ("a&b", "a\nb", "a^b", 'a"b', "a b", "a%b", "a'b", "a;b", "a|b"):
        with pytest.raises(UsageError):
            c.check_parameters([{"name": "Only", "value": bad}])
