"""The guest scenario descriptions keep the case of acronyms and names ("RDP moved ...", "TLS 1.2
...", "CredSSP ...") when they continue "in the guest:"; only a sentence-starting word is lowered."""

from __future__ import annotations

import json
import re

from typer.testing import CliRunner

from azrdp.cli.app import app
from azrdp.emulator.guest_scenarios import GUEST_SCENARIOS, continued, scenario_document

BROKEN_CASE = re.compile(r"\b[a-z][A-Z]")  # "rDP", "tLS", "sessionEnv": a lowered acronym or name


def test_continued_lowers_only_sentence_starters() -> None:
    assert continued("RDP moved to 3390") == "RDP moved to 3390"
    assert continued("TLS 1.2 disabled for servers") == "TLS 1.2 disabled for servers"
    assert continued("CredSSP AllowEncryptionOracle = 2") == "CredSSP AllowEncryptionOracle = 2"
    assert continued("TermService is stopped") == "TermService is stopped"
    assert continued("Remote Desktop turned off") == "Remote Desktop turned off"
    assert continued("The FIPS algorithm policy is enabled") == "the FIPS algorithm policy is enabled"
    assert continued("Another process listens") == "another process listens"


def test_every_guest_scenario_description_keeps_its_words() -> None:
    for entry in GUEST_SCENARIOS:
        text = scenario_document(entry)["description"]
        guest_part = text.split("in the guest: ", 1)[1]
        assert guest_part.lower() == entry.description.lower(), entry.name
        assert guest_part[1:] == entry.description[1:], entry.name
        assert not BROKEN_CASE.search(guest_part.split(" ", 1)[0]), (entry.name, guest_part)


def test_scenarios_command_lists_them_as_written() -> None:
    result = CliRunner().invoke(app, ["emulator", "scenarios", "-o", "json"])
    assert result.exit_code == 0, result.stderr
    listed = {s["name"]: s["description"] for s in json.loads(result.stdout)["scenarios"]}
    assert (
        "in the guest: RDP moved to 3390 with an azrdp-RDP-3390" in listed["guest-port-moved-with-azrdp-rule"]
    )
    assert "in the guest: TLS 1.2 disabled" in listed["guest-tls12-server-disabled"]
    for name, description in listed.items():
        head = description.split("in the guest: ", 1)[-1].split(" ", 1)[0]
        assert not BROKEN_CASE.search(head), (name, description)
