"""The two PowerShell files, read as text and as parsed scripts: they are the collector and the
executor only, their tables equal their Python twins, every cmdlet and parameter is in Windows
PowerShell 5.1 (or a Windows Server 2016 module), and the traps the old scripts fell into are
structurally absent. Behaviour is proven elsewhere, on the Windows model, with the same wire."""

from __future__ import annotations

import json
import re
from pathlib import Path

import ps51_rules as r
import pytest
from ps_tables import array, scalar, source, table

from azrdp.guest import envelope as ge
from azrdp.guest import facts as gf
from azrdp.guest import plan as gp
from azrdp.guest import scripts

SCRIPTS = Path(scripts.__file__).parent / "scripts"
OLD_LINES = 1683  # azrdp.ps1 + repair.ps1 before issue 11
FULL_CATALOGUE = Path("/work/shared/reference/ps51-cmdlets.json")


def function(name: str, script: str = "") -> str:
    """A function's text, from the script that defines it."""
    text = source(script) if script else scripts.composed_text()
    start = text.index(f"function {name} {{")
    end = text.index("\n}\n", start)
    return text[start:end]


# --- what ships --------------------------------------------------------------------------------


def test_the_powershell_is_the_collector_and_the_executor_only_and_shorter_than_before() -> None:
    assert sorted(p.name for p in SCRIPTS.glob("*.ps1")) == ["collector.ps1", "executor.ps1"]
    lines = {p.name: len(p.read_text(encoding="ascii").splitlines()) for p in SCRIPTS.glob("*.ps1")}
    total = sum(lines.values())
    print(f"\nPowerShell lines: {lines} = {total} (was {OLD_LINES})")
    assert total < OLD_LINES


def test_the_scripts_are_ascii_and_fit_run_command() -> None:
    for path in SCRIPTS.glob("*.ps1"):
        path.read_bytes().decode("ascii")
    sizes = {}
    for mode in ge.MODES:
        sent = "\n".join(scripts.script_lines(mode))
        sizes[mode] = len(sent.encode())
        assert sizes[mode] <= scripts.SCRIPT_BUDGET < scripts.SCRIPT_LIMIT
    print(f"\nscripts as sent: collect {sizes['collect']:,} bytes, the others {sizes['execute']:,}")
    # Compaction drops comments and indentation only: the token stream is the same.
    for text in (scripts.collector_text(), scripts.composed_text()):
        compacted = scripts.compact(text)
        assert _tokens(compacted) == _tokens(text)


def _tokens(text: str) -> list[str]:
    kept = [ln.strip() for ln in text.splitlines()[1:] if ln.strip() and not ln.lstrip().startswith("#")]
    return " ".join(kept).split()


def test_every_cmdlet_and_parameter_is_in_windows_powershell_51(tmp_path: Path) -> None:
    """The checker's catalogue subset (tests/data) answers in CI; the full catalogue, where this
    machine has it, is asked too."""
    rules = ("command", "parameter", "alias", "external")
    assert [str(v) for v in r.check_shipped() if v.rule in rules] == []
    used = {c.lower() for c in r.used_commands(r.shipped_scripts())}
    assert used <= set(r.catalogue().cmdlets)
    if FULL_CATALOGUE.is_file():
        full = json.loads(FULL_CATALOGUE.read_text(encoding="utf-8"))
        full.setdefault("aliases", json.loads(r.CATALOGUE.read_text(encoding="utf-8"))["aliases"])
        merged = tmp_path / "full.json"
        merged.write_text(json.dumps(full), encoding="utf-8")
        catalogue = r.Catalogue.load(merged)
        assert used <= set(catalogue.cmdlets)
        assert [str(v) for v in r.check_shipped(catalogue) if v.rule in rules] == []


def test_no_decision_is_made_in_powershell() -> None:
    """No finding id, repair id or severity appears in the scripts."""
    from azrdp.checks import all_checks
    from azrdp.repairs import all_repairs

    text = scripts.composed_text()
    for check in all_checks():
        assert check.id not in text, check.id
    for repair in all_repairs():
        assert repair.id not in text, repair.id
    assert not re.search(r"\b(blocker|severity)\b", text, re.I)


# --- tables equal to their Python twins --------------------------------------------------------


def test_collector_tables_equal_the_facts_schema() -> None:
    assert table("collector", "Limits") == dict(gf.LIMITS)
    keys = table("collector", "RegKeys")
    assert keys == dict(gf.REG_KEYS)
    assert list(keys) == list(gf.REG_KEYS)
    assert {k: tuple(v) for k, v in table("collector", "RegReads").items()} == dict(gf.REG_READS)
    assert tuple(array("collector", "ServiceNames")) == gf.SERVICE_NAMES
    assert tuple(array("collector", "RdpRules")) == gf.RDP_RULES
    assert tuple(array("collector", "Trims")) == gf.TRIMS
    assert scalar("collector", "CustomRulePrefix") == gf.CUSTOM_RULE_PREFIX
    assert scalar("collector", "MachineKeys") == gf.MACHINEKEYS
    assert scalar("collector", "CngKeys") == gf.CNG_KEYS
    assert "HKLM:\\" + scalar("collector", "RdStoreKey") == gf.RD_STORE_KEY
    assert scalar("collector", "AzrdpRoot") == gf.AZRDP_ROOT
    assert scalar("collector", "BackupRoot") == gf.BACKUP_ROOT
    assert scalar("collector", "LockFile") == gf.LOCK_FILE
    assert int(scalar("collector", "OutputBudget")) == ge.OUTPUT_BUDGET
    assert int(scalar("collector", "ContractVersion")) == ge.VERSION
    ids = [int(i) for i in re.findall(r"ids = @\(([\d, ]+)\)", source("collector")) for i in i.split(",")]
    assert tuple(ids) == gf.EVENT_IDS
    assert f"AddDays(-{gf.EVENT_DAYS})" in source("collector")
    assert f"'{ge.MARKER}'" in source("collector")


def test_executor_allow_lists_equal_the_plans() -> None:
    assert tuple(array("executor", "OpKinds")) == tuple(gp.KINDS)
    assert {k: tuple(v) for k, v in table("executor", "RegWritable").items()} == dict(gp.REG_WRITABLE)
    assert tuple(array("executor", "ServicesAllowed")) == gp.SERVICES
    assert tuple(array("executor", "ProfilesAllowed")) == gf.PROFILES
    assert int(scalar("executor", "ExecutorVersion")) == gp.PLAN_VERSION
    key_files = scalar("executor", "KeyFilePattern")
    assert key_files == gp.KEY_FILE.pattern[:-1] + r"(\.azrdp-[0-9a-f]{12}(-new)?)?$"
    assert scalar("executor", "CustomRulePattern") == gp.CUSTOM_RULE.pattern
    # The executor writes only registry keys the collector reads.
    assert set(gp.REG_WRITABLE) <= set(gf.REG_KEYS)
    for alias, names in gp.REG_WRITABLE.items():
        assert set(names) <= set(gf.REG_READS[alias]), alias
    # Never the guest agent: Run Command needs it.
    assert not {"RdAgent", "WindowsAzureGuestAgent"} & set(gp.SERVICES)


def test_the_parameters_are_the_four_azrdp_sends() -> None:
    params = re.search(r"^param\((.*?)^\)", source("collector"), re.M | re.S)
    assert params is not None
    names = re.findall(r"\[string\]\$(\w+)", params.group(1))
    assert tuple(names) == scripts.PARAMETER_NAMES
    assert not re.search(r"\$(Only|Skip|DryRun)\b", scripts.composed_text(), re.I)


# --- the traps of the old scripts, structurally absent ----------------------------------------


def test_defect_1_no_id_lists_and_no_typed_parameter_reassigned() -> None:
    """Every run was refused: `@()` around a function returning `, $list`, and `$only = ...`
    assigning the typed [string]$Only. No id list travels any more (the plan is one token), no
    function returns with the unary comma, and no parameter is assigned in any case."""
    text = scripts.composed_text()
    whole = [
        name
        for name in re.findall(r"^function ([\w-]+) \{", text, re.M)
        if re.search(r"return\s*,", function(name))
    ]
    assert whole == ["Get-AzrdpRegState"]  # [kind, data], returned whole on purpose
    for name in whole:
        assert not re.search(rf"@\(\s*{name}\b", text), name
    assigned = {m.lower() for m in re.findall(r"^\s*\$(\w+)\s*=", text, re.M)}
    assert not assigned & {p.lower() for p in scripts.PARAMETER_NAMES}
    assert [v for v in r.check_shipped() if v.rule in ("array-wrap", "param-assign")] == []


def test_defect_2_keys_are_located_from_the_key_provider_info_never_by_opening_them() -> None:
    body = function("Get-AzrdpKeyFacts", "collector")
    code = "\n".join(ln for ln in body.splitlines() if not ln.strip().startswith("#"))
    assert "GetRSAPrivateKey" not in code and "PrivateKey" not in code
    assert "'Blob'" in code and "-eq 2" in code  # CERT_KEY_PROV_INFO_PROP_ID
    # CAPI keys in RSA\MachineKeys, CNG keys in Crypto\Keys, chosen by the provider type.
    assert "$k.pt -ne 0" in code and "$folder = $CngKeys" in code
    # The key file's owner and DACL, and whether SYSTEM can open it, are reported raw.
    assert "Get-AzrdpSddl -Kind 'file'" in code and "$k.o = $inner.HResult" in code


def test_defect_3_the_pin_is_converted_inline_never_returned_from_a_function() -> None:
    reg = source("collector")
    assert "[System.BitConverter]::ToString([byte[]]$data).Replace('-', '')" in reg
    # `-is [byte[]]` only on what RegistryKey.GetValue just returned, in the same place, never on a
    # function's result (the pipeline would have unrolled it).
    text = scripts.composed_text()
    for test in re.finditer(r"\$(\w+) -is \[byte\[\]\]", text):
        assigned = re.findall(rf"^\s*\${test.group(1)} = (.*)$", text[: test.start()], re.M)
        assert assigned and assigned[-1].startswith("$key.GetValue("), test.group(0)
    assert [v for v in r.check_shipped() if v.rule in ("array-test", "array-return")] == []


def test_defect_5_services_never_wait_without_bound() -> None:
    text = scripts.composed_text()
    code = "\n".join(ln for ln in text.splitlines() if not ln.strip().startswith("#"))
    assert not re.search(r"\b(Restart|Start|Stop|Suspend|Resume)-Service\b", code)
    service_op = function("Invoke-AzrdpServiceOp")
    assert "$now -like '*Pending'" in service_op and "throw ('refused: '" in service_op
    waits = re.findall(r"WaitForStatus\(([^)]*)\)", code)
    assert waits and all(w.strip().endswith(", $wait") for w in waits), waits
    assert all("WaitForStatus" not in function(f) for f in ("Invoke-AzrdpWaitOp", "Invoke-AzrdpAclOp"))
    assert "Get-AzrdpWait -Seconds" in service_op
    # The whole run has a deadline, checked before every operation.
    execute = function("Invoke-AzrdpExecute")
    assert "(Get-Date).AddSeconds([int]$op.w) -gt $deadline" in execute


def test_defect_6_acl_edits_write_owner_and_dacl_only_after_their_backup() -> None:
    acl = function("Invoke-AzrdpAclOp")
    # The two-argument form: only the sections named are written, a SACL survives.
    assert re.search(r"SetSecurityDescriptorSddlForm\(\[string\]\$Op\.to, \$sections\)", acl)
    assert "[System.Security.AccessControl.AccessControlSections]::Access" in acl
    assert acl.index("Confirm-AzrdpPrior") < acl.index("takeown.exe")
    assert "'/a'" not in acl and "'/r'" not in acl
    assert [v for v in r.check_shipped() if v.rule == "sddl-sacl"] == []
    # Descriptors are read with owner and DACL only, never cut.
    sddl = function("Get-AzrdpSddl", "collector")
    assert "$OwnerAndDacl" in sddl and "throw" in sddl


def test_defect_6_every_change_is_recorded_before_it_is_made() -> None:
    prior = function("Confirm-AzrdpPrior")
    assert "Save-AzrdpRecord" in prior
    for name in (
        "Invoke-AzrdpRegOp",
        "Invoke-AzrdpAclOp",
        "Invoke-AzrdpKeyRenameOp",
        "Invoke-AzrdpCertOp",
        "Invoke-AzrdpServiceConfigOp",
        "Invoke-AzrdpServiceOp",
        "Invoke-AzrdpFirewallOp",
    ):
        body = function(name)
        assert "Confirm-AzrdpPrior" in body, name
    # A key container is never deleted; a removed certificate's entry is exported first.
    assert "Delete" not in function("Invoke-AzrdpKeyRenameOp")
    cert = function("Invoke-AzrdpCertOp")
    assert cert.index("WriteAllBytes") < cert.index("$store.Remove")


def test_defect_6_every_output_is_bounded_and_every_parameter_is_sent() -> None:
    text = scripts.composed_text()
    for name in ("Get-AzrdpHistory", "Get-AzrdpRecords", "Invoke-AzrdpExecute"):
        assert "$OutputBudget" in function(name), name
    assert "Limit-AzrdpFacts -Report $report" in source("collector")
    # The parameters have non-empty defaults and azrdp always sends each non-empty.
    params = re.search(r"^param\((.*?)^\)", source("collector"), re.M | re.S)
    assert params is not None and "= ''" not in params.group(1)
    assert "Invoke-Expression" not in text and "Read-Host" not in text


@pytest.mark.parametrize("mode", ge.MODES)
def test_each_mode_has_its_parameters_rule(mode: str) -> None:
    maker = {
        "collect": lambda: scripts.collect_parameters(3389),
        "execute": lambda: scripts.execute_parameters("a1b2c3d4e5f6", "H4sIAAAA", 3389),
        "records": lambda: scripts.records_parameters("a1b2c3d4e5f6"),
        "history": scripts.history_parameters,
    }[mode]
    for item in maker():
        assert re.fullmatch(r"[A-Za-z0-9._][A-Za-z0-9._-]*", item["value"]), item
