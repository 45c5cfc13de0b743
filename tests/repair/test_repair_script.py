"""Static checks of repair.ps1 (functions only, 5.1 syntax, the safety rules) and of the script
composed from azrdp.ps1 + repair.ps1 that Run Command receives."""

from __future__ import annotations

import re
from collections.abc import Iterator
from importlib import resources

import pytest
import tree_sitter_powershell as tsp
from tree_sitter import Language, Node, Parser

from azrdp.guest import contract as c
from azrdp.repairs import guest as rg
from azrdp.repairs import outcome as ro

REPAIR = resources.files("azrdp.guest").joinpath("scripts").joinpath("repair.ps1").read_text(encoding="ascii")
PARSER = Parser(Language(tsp.language()))


def walk(node: Node) -> Iterator[Node]:
    yield node
    for child in node.children:
        yield from walk(child)


def errors(source: str) -> list[str]:
    tree = PARSER.parse(source.encode("ascii"))
    return [
        f"{n.start_point}: {source.encode()[n.start_byte : n.end_byte][:60]!r}"
        for n in walk(tree.root_node)
        if n.type == "ERROR" or n.is_missing
    ]


def code_without_comments(source: str) -> str:
    return "\n".join(line.split("#", 1)[0] for line in source.splitlines())


def test_only_functions_no_param_block_no_top_level_code() -> None:
    tree = PARSER.parse(REPAIR.encode("ascii"))
    top = [n for n in tree.root_node.children if n.type != "comment"]
    (statements,) = top
    kinds = {n.type for n in statements.children if n.type != "comment"}
    assert kinds == {"function_statement"}, kinds
    assert not [n for n in walk(tree.root_node) if n.type == "param_block" and n.parent == tree.root_node]


def test_composed_script_parses_and_places_the_functions_before_the_dispatch() -> None:
    text = ro.repair_script_text()
    assert errors(text) == []
    assert text.splitlines()[0] == c.SCRIPT_HEADER
    assert ro.INCLUDE_MARKER not in text
    assert text.index("function Invoke-AzrdpRepairMode") < text.index("$report = [ordered]@{")
    # The script azrdp sends for diagnose stays the diagnose-only one.
    assert "Invoke-AzrdpRepair " not in c.script_text().split("Invoke-AzrdpRepairMode")[0]


def test_no_host_output_and_no_localized_names() -> None:
    # The generic Windows PowerShell 5.1 rules (syntax, cmdlets, parameters, aliases, prompts) are
    # tests/guest/ps51_rules.py's; these are this script's own.
    code = code_without_comments(REPAIR)
    for forbidden in ("Write-Host", "-DisplayGroup"):
        assert forbidden not in code, forbidden


def test_safety_rules_hold_in_the_source() -> None:
    code = code_without_comments(REPAIR)
    # Never Learn's broad fix: no recursive takeown/icacls, no /grant, no /a.
    assert not re.search(r"takeown\.exe[^\n]*/(a|r)\b", code, re.I)
    assert not re.search(r"icacls\.exe[^\n]*(/t\b|/grant|/reset)", code, re.I)
    # Never delete a key: certificates are removed without -DeleteKey; no MachineKeys file is removed.
    assert "-DeleteKey" not in code
    assert not re.search(r"Remove-Item[^\n]*MachineKeys", code)
    # Never turn the firewall or a profile off, never enable TLS 1.0/1.1, never touch FIPS or the agent.
    assert not re.search(r"Set-NetFirewallProfile[^\n]*-Enabled", code)
    assert "TLS 1.0" not in code and "TLS 1.1" not in code and "FIPSAlgorithmPolicy" not in code
    assert "RdAgent" not in code and "WindowsAzureGuestAgent" not in code
    assert "Stop-Process" not in code
    # Security values are only ever raised.
    assert (
        "if ([int]$change.after -le [int]$change.before) { throw ('Refusing to lower ' + $name) }" in REPAIR
    )
    # Well-known SIDs only.
    for localized in ("NETWORK SERVICE'", "Everyone'", "Administrators'"):
        assert localized not in code


def test_backups_before_changes_and_a_private_backup_directory() -> None:
    assert "C:\\ProgramData\\azrdp\\backups" in REPAIR
    assert "(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)" in REPAIR  # SYSTEM and Administrators only
    for name in ("Set-AzrdpRegDword", "Remove-AzrdpRegValue"):
        body = REPAIR.split(f"function {name} {{", 1)[1].split("\n}\n", 1)[0]
        first = next(
            ln.strip() for ln in body.splitlines() if ln.strip() and not ln.strip().startswith("param")
        )
        assert first.startswith("Backup-AzrdpRegValue"), (name, first)
    # A failing step restores its own items.
    assert "$failed = Restore-AzrdpItems -Items $step.items" in REPAIR


def test_the_script_mirrors_the_python_triggers() -> None:
    order = re.search(r"Order = @\((.*?)\)", REPAIR, re.S)
    assert order is not None
    assert tuple(re.findall(r"'([\w-]+)'", order.group(1))) == rg.GUEST_ORDER
    prereq = re.search(r"SecurityPrerequisites = @\((.*?)\)", REPAIR)
    assert (
        prereq is not None and tuple(re.findall(r"'([\w-]+)'", prereq.group(1))) == rg.SECURITY_PREREQUISITES
    )
    assert f"MachineKeysSddl = '{rg.MACHINEKEYS_DEFAULT_SDDL}'" in REPAIR
    for name, (start, account) in rg.SERVICE_DEFAULTS.items():
        assert f"{name} = @('{start}', '{account}')" in REPAIR
    must_run = re.search(r"MustRun = @\((.*?)\)", REPAIR)
    assert must_run is not None and tuple(re.findall(r"'(\w+)'", must_run.group(1))) == rg.MUST_RUN
    for repair_id in rg.GUEST_ORDER:
        assert f"'{repair_id}' {{ return Get-AzrdpTrigger" in REPAIR
        assert f"'{repair_id}' {{ Repair-Azrdp" in REPAIR


@pytest.mark.parametrize("key", ["id", "dir", "dry", "st", "h", "s", "ch", "e"])
def test_output_keys_are_the_contract_keys(key: str) -> None:
    assert key in {
        f.metadata["wire"]
        for cls in (ro.RepairOutcome, ro.StepOutcome)
        for f in cls.__dataclass_fields__.values()
    }
    assert re.search(rf"\b{key} = ", REPAIR)


def test_parameters_are_validated_before_sending() -> None:
    from azrdp.errors import UsageError

    known = rg.GUEST_ORDER
    assert ro.build_parameters("repair", run_id="a1b2c3d4e5f6", only=["rdp-listener"], known_ids=known) == [
        {"name": "Mode", "value": "repair"},
        {"name": "RdpPort", "value": "3389"},
        {"name": "RunId", "value": "a1b2c3d4e5f6"},
        {"name": "Only", "value": "rdp-listener"},
        {"name": "DryRun", "value": "0"},
    ]
    # Lists are dot-separated; an empty one is not sent (Run Command cannot carry an empty value).
    assert ro.build_parameters(
        "repair", run_id="a1b2c3d4e5f6", skip=["rdp-port", "rdp-listener"], known_ids=known
    )[3] == {"name": "Skip", "value": "rdp-port.rdp-listener"}
    for bad in (
        lambda: ro.build_parameters("repair", run_id="a1b2c3d4e5f6; rm", known_ids=known),
        lambda: ro.build_parameters("repair", run_id="a1b2c3d4e5f6", only=["x'; Stop"], known_ids=known),
        lambda: ro.build_parameters("repair", rdp_port=0, run_id="a1b2c3d4e5f6", known_ids=known),
        lambda: ro.build_parameters("diagnose", run_id="a1b2c3d4e5f6", known_ids=known),
    ):
        with pytest.raises(UsageError):
            bad()


def function_body(source: str, name: str) -> str:
    return source.split(f"function {name} {{", 1)[1].split("\n}\n", 1)[0]


def test_undo_trusts_only_backup_folders_owned_by_system_or_administrators() -> None:
    # Any user can create folders in C:\ProgramData; a planted manifest would make SYSTEM write
    # whatever it says. The owner is checked before a manifest is read or written.
    check = function_body(REPAIR, "Test-AzrdpBackupRoot")
    assert "GetOwner(" in check and "'S-1-5-18', 'S-1-5-32-544'" in check and "throw" in check
    assert "Split-Path -Path $K.BackupRoot -Parent" in check  # the parent folder too
    undo = function_body(REPAIR, "Invoke-AzrdpUndo")
    assert undo.index("Test-AzrdpBackupRoot") < undo.index("Read-AzrdpManifest")
    assert "Test-AzrdpBackupRoot" in function_body(REPAIR, "Get-AzrdpHistory")
    assert "Test-AzrdpBackupRoot -K $K -Create $true" in function_body(REPAIR, "Initialize-AzrdpBackupDir")


def test_manifests_are_utf8_and_native_tools_go_through_one_helper() -> None:
    code = code_without_comments(REPAIR)
    assert "Encoding]::ASCII" not in code and "UTF8Encoding $false" in code
    for tool in ("reg.exe", "icacls.exe", "takeown.exe", "certutil.exe"):
        assert not re.search(rf"&\s*{re.escape(tool)}", code), tool
    native = function_body(REPAIR, "Invoke-AzrdpNative")
    assert "$ErrorActionPreference = 'Continue'" in native and "$LASTEXITCODE" in native


def test_a_pinned_certificates_key_keeps_its_other_entries() -> None:
    body = function_body(REPAIR, "Repair-AzrdpMachineKeys")
    self_signed, other = body.split("if ($listener.s -eq 'RD') {", 1)[1].split("else {", 1)
    assert "SetSecurityDescriptorSddlForm" in self_signed  # TSSecKeySet1 back to its default
    assert "SetSecurityDescriptorSddlForm" not in other.split("[System.IO.File]::SetAccessControl")[0]
    assert "RemoveAccessRuleSpecific" in other and "'S-1-5-20'" in other
    assert "-SelfSigned ($listener.s -eq 'RD')" in body


def test_undo_restarts_termservice_only_when_it_restored_something() -> None:
    undo = function_body(REPAIR, "Invoke-AzrdpUndo")
    assert "if ($results.Count -gt 0) { Restart-AzrdpRdpServices -Names @('TermService') }" in undo


def test_reboot_and_new_checks_mirror_python() -> None:
    reboot = re.search(r"RebootRequired = @\((.*?)\)", REPAIR)
    assert reboot is not None and set(re.findall(r"'([\w-]+)'", reboot.group(1))) == set(rg.REBOOT_REQUIRED)
    assert "rb = ($K.RebootRequired -contains $id)" in REPAIR
    trigger = function_body(REPAIR, "Get-AzrdpTriggerListener")
    for name in ("fLogonDisabled", "TSUserEnabled", "TSServerDrainMode", "WinStationsDisabled"):
        assert f"-Target '{name}'" in trigger
    assert "$rdp.tsm -eq 1" in trigger  # a Session Host's drain is flagged, never ended
    listener = function_body(REPAIR, "Repair-AzrdpListener")
    assert "-Name 'WinStationsDisabled' -Value '0' -Type 'String'" in listener  # REG_SZ, not a DWORD
    firewall = function_body(REPAIR, "Repair-AzrdpFirewall")
    assert "-Group" not in firewall  # azrdp's rule never poses as the built-in one
    assert "($CustomRulePrefix + $port)" in function_body(REPAIR, "Get-AzrdpTriggerFirewall")
