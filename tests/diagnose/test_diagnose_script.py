"""Static checks of the in-guest PowerShell script: it parses, stays PowerShell 5.1, is safe, and
agrees with the Python contract (keys, limits, registry paths)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import tree_sitter_powershell as tsp
from tree_sitter import Language, Node, Parser

from azrdp.guest import contract as c

SCRIPT = c.script_text()
SOURCE = SCRIPT.encode("ascii")

# Registry keys the reference fact sheet (windows-rdp-guest.md) names, as PowerShell paths.
REFERENCE_REGISTRY = {
    r"HKLM:\SYSTEM\CurrentControlSet\Control\Terminal Server",
    r"HKLM:\SYSTEM\CurrentControlSet\Control\Terminal Server\WinStations",
    r"HKLM:\SYSTEM\CurrentControlSet\Control\Terminal Server\WinStations\RDP-Tcp",
    r"HKLM:\SOFTWARE\Policies\Microsoft\Windows NT\Terminal Services",
    r"HKLM:\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Winlogon",
    r"HKLM:\SOFTWARE\Microsoft\Windows NT\CurrentVersion\ProfileList",
    # MachineGuid: the reference names the self-signed key file MK\f686aace..._<MachineGuid>.
    r"HKLM:\SOFTWARE\Microsoft\Cryptography",
    *(
        rf"HKLM:\SYSTEM\CurrentControlSet\Control\SecurityProviders\SCHANNEL\Protocols\TLS {v}\Server"
        for v in ("1.0", "1.1", "1.2", "1.3")
    ),
    r"HKLM:\SOFTWARE\Policies\Microsoft\Cryptography\Configuration\SSL\00010002",
    r"HKLM:\SYSTEM\CurrentControlSet\Control\Lsa\FIPSAlgorithmPolicy",
    r"HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\Policies\System\CredSSP\Parameters",
    *(
        rf"HKLM:\SYSTEM\CurrentControlSet\Services\SharedAccess\Parameters\FirewallPolicy\{p}"
        for p in ("DomainProfile", "StandardProfile", "PublicProfile")
    ),
}

# Mode diagnose only reads: no command that writes, restarts or reaches the network. (The generic
# Windows PowerShell 5.1 rules, aliases and prompts included, are tests/guest/ps51_rules.py's.)
WRITING_COMMANDS = {
    "invoke-webrequest", "invoke-restmethod", "start-bitstransfer", "get-wmiobject", "set-itemproperty",
    "new-itemproperty", "remove-item", "set-acl", "restart-service", "stop-service", "start-service",
    "set-service", "restart-computer",
}  # fmt: skip


@pytest.fixture(scope="module")
def tree() -> Node:
    parser = Parser(Language(tsp.language()))
    return parser.parse(SOURCE).root_node


def walk(node: Node) -> Iterator[Node]:
    yield node
    for child in node.children:
        yield from walk(child)


def text(node: Node) -> str:
    return SOURCE[node.start_byte : node.end_byte].decode("ascii")


def string_literals(tree: Node) -> list[str]:
    out = []
    for node in walk(tree):
        if node.type in ("verbatim_string_characters", "expandable_string_literal"):
            out.append(text(node).strip("'\""))
    return out


def test_script_starts_with_the_header() -> None:
    assert SCRIPT.splitlines()[0] == c.SCRIPT_HEADER
    assert c.is_azrdp_script(c.script_lines())
    assert c.script_version(c.script_lines()) == c.SCHEMA_VERSION


def test_param_block_takes_mode_and_port_as_strings(tree: Node) -> None:
    params = [n for n in walk(tree) if n.type == "param_block" and n.parent and n.parent.type == "program"]
    assert len(params) == 1
    declared = text(params[0])
    assert re.search(r"\[string\]\$Mode\b", declared)
    assert re.search(r"\[string\]\$RdpPort\b", declared)
    assert {p["name"] for p in c.build_parameters()} == {"Mode", "RdpPort"}


def test_strict_mode_stop_and_no_prompts() -> None:
    assert re.search(r"^Set-StrictMode -Version", SCRIPT, re.M)
    assert "$ErrorActionPreference = 'Stop'" in SCRIPT
    assert "$ProgressPreference = 'SilentlyContinue'" in SCRIPT
    assert "$ConfirmPreference = 'None'" in SCRIPT


def commands(tree: Node) -> list[str]:
    return [text(n) for n in walk(tree) if n.type == "command_name"]


def test_diagnose_only_reads(tree: Node) -> None:
    names = commands(tree)
    assert names, "the grammar should expose command names"
    assert {n.lower() for n in names} & WRITING_COMMANDS == set()


def test_json_is_written_once_with_depth_and_compress() -> None:
    assert SCRIPT.count("ConvertTo-Json") == 1
    assert "ConvertTo-Json -InputObject $report -Depth 8 -Compress" in SCRIPT
    assert SCRIPT.count("'AZRDP:'") == 1
    assert "Write-Host" not in SCRIPT


def test_registry_paths_are_all_in_the_reference_list(tree: Node) -> None:
    paths = {s for s in string_literals(tree) if s.upper().startswith("HKLM")}
    assert paths, "the script reads the registry"
    assert paths <= REFERENCE_REGISTRY, sorted(paths - REFERENCE_REGISTRY)
    # Paths are never assembled at run time: HKLM only appears inside those literals.
    assert len(re.findall(r"HKLM", SCRIPT)) == len(
        [s for s in string_literals(tree) if s.upper().startswith("HKLM")]
    )


def test_sids_not_localized_names() -> None:
    for sid in ("S-1-5-20", "S-1-1-0", "S-1-5-11"):
        assert sid in SCRIPT
    for localized in ("NETWORK SERVICE'", "Everyone'", "Administrators'", "-DisplayGroup", "-DisplayName"):
        assert localized not in SCRIPT
    assert "-Name $name -PolicyStore ActiveStore" in SCRIPT  # firewall rules by name


def hashtable_keys(tree: Node) -> set[str]:
    keys = set()
    for node in walk(tree):
        if node.type == "key_expression":
            keys.add(text(node).strip("'\""))
    return keys


def test_every_contract_key_is_printed_by_the_script(tree: Node) -> None:
    keys = hashtable_keys(tree)
    # Keys assigned after creation ($facts.fips = ...) or through variables ($counts['1057']).
    assigned = set(re.findall(r"\$(?:facts|report|d)\.(\w+)\s*=", SCRIPT))
    event_ids = {str(e) for e in c.EVENT_IDS}
    tls_keys = {"t10", "t11", "t12", "t13"}
    printed = keys | assigned | event_ids
    assert c.wire_keys() - printed == set()
    assert event_ids == set(re.findall(r"Id = (\d+);", SCRIPT))
    assert tls_keys <= keys


def test_limits_match_the_contract() -> None:
    block = re.search(r"\$Limits = @\{(.*?)\}", SCRIPT, re.S)
    assert block is not None
    script_limits = {k: int(v) for k, v in re.findall(r"(\w+) = (\d+)", block.group(1))}
    assert script_limits == dict(c.LIMITS)


def test_constants_match_the_contract() -> None:
    for name in c.SERVICE_NAMES:
        assert f"'{name}'" in SCRIPT
    for rule in c.RDP_FIREWALL_RULES:
        assert f"'{rule}'" in SCRIPT
    assert f"'{c.RDP_FIREWALL_GROUP}'" in SCRIPT
    assert f"$SchemaVersion = {c.SCHEMA_VERSION}" in SCRIPT
    modes = re.search(r"\$KnownModes = @\((.*?)\)", SCRIPT)
    implemented = re.search(r"\$ImplementedModes = @\((.*?)\)", SCRIPT)
    assert modes and implemented
    assert tuple(re.findall(r"'(\w+)'", modes.group(1))) == c.MODES
    assert tuple(re.findall(r"'(\w+)'", implemented.group(1))) == c.IMPLEMENTED_MODES


def test_script_is_never_templated() -> None:
    # No placeholders a caller could fill with user data.
    for marker in ("{{", "}}", "%s", "{0}", "__AZRDP"):
        assert marker not in SCRIPT


@pytest.mark.parametrize(
    ("mode", "port"),
    [
        ("repair", 3389),
        ("undo", 3389),
        ("DIAGNOSE", 3389),
        ("diagnose", 0),
        ("diagnose", 70000),
        ("diagnose", True),
    ],
)
def test_parameters_are_validated_before_sending(mode: str, port: Any) -> None:
    from azrdp.errors import UsageError

    with pytest.raises(UsageError):
        c.build_parameters(mode, port)


def test_parameters_are_strings() -> None:
    assert c.build_parameters("diagnose", 3390) == [
        {"name": "Mode", "value": "diagnose"},
        {"name": "RdpPort", "value": "3390"},
    ]


def function_body(name: str) -> str:
    return SCRIPT.split(f"function {name} {{", 1)[1].split("\n}\n", 1)[0]


def test_free_text_is_printed_one_byte_per_character() -> None:
    body = function_body("Limit-Text")
    # Non-ASCII and the characters 5.1's ConvertTo-Json writes as \u00XX are respelled first.
    assert "'[^ -~]', '?'" in body
    for old, new in (('"\'"', "'`'"), ("'\"'", "'`'"), ("'<'", "'('"), ("'>'", "')'"), ("'&'", "'+'")):
        assert f".Replace({old}, {new})" in body, old
    assert "[char]'\\'" in body  # a backslash counts two bytes


def test_the_self_signed_key_is_located_by_this_machines_guid_only() -> None:
    body = function_body("Get-KeyFilePath")
    assert "'MachineGuid'" in body and "$SelfSigned" in body
    assert "-Filter" not in body  # never "the first file with the prefix" (a cloned image's stale key)
    assert "-SelfSigned ($item.store -eq 'RD')" in SCRIPT


def test_logon_switches_and_rules_are_read() -> None:
    rdp = function_body("Get-RdpFacts")
    for name in ("TSUserEnabled", "TSServerDrainMode", "fLogonDisabled", "WinStationsDisabled"):
        assert f"'{name}'" in rdp
    assert "TerminalServerMode" in rdp and "Win32_TerminalServiceSetting" in SCRIPT
    assert "$RdpRuleNames = @('RemoteDesktop-UserMode-In-TCP', 'RemoteDesktop-UserMode-In-UDP')" in SCRIPT
    assert f"$CustomRulePrefix = '{c.CUSTOM_RULE_PREFIX}'" in SCRIPT
