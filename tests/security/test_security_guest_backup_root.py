"""The guest's run folders under C:\\ProgramData, where any user may create folders and junctions:
SYSTEM trusts (and re-ACLs) them only when they are real folders owned by SYSTEM or
Administrators. A junction would send the owner check and the new ACL to its target, e.g. a
SYSTEM-owned folder of another service, and the backups with them. The Windows model refuses an
untrusted folder the same way."""

from __future__ import annotations

from datetime import datetime, timezone

from azrdp.emulator.windows import executor, image
from azrdp.guest import plan as gp
from azrdp.guest import scripts

EXECUTOR = scripts.executor_text()
NOW = datetime(2026, 1, 15, 10, 0, tzinfo=timezone.utc)


def function_body(name: str) -> str:
    return EXECUTOR.split(f"function {name} {{", 1)[1].split("\n}\n", 1)[0]


def test_a_junction_is_refused_before_its_owner_is_trusted_or_its_acl_changed() -> None:
    check = function_body("Initialize-AzrdpRoot")
    loop = check.split("foreach ($folder in", 1)[1]
    assert "[System.IO.FileAttributes]::ReparsePoint" in loop
    reparse = loop.index("ReparsePoint")
    assert reparse < loop.index("GetOwner(") and reparse < loop.index("SetAccessControl(")
    refusal = loop[reparse : loop.index("GetOwner(")]
    assert "throw" in refusal
    assert "Get-Item -LiteralPath $folder -Force" in loop
    # Only the DACL is written: the owner (checked above) and any audit settings stay.
    assert (
        "SetSecurityDescriptorSddlForm($BackupSddl, "
        "[System.Security.AccessControl.AccessControlSections]::Access)" in loop
    )


def test_every_reader_of_the_records_checks_the_folder_first() -> None:
    for reader in ("Get-AzrdpRunFolder", "Get-AzrdpHistory"):
        assert "Initialize-AzrdpRoot -Create $false" in function_body(reader), reader
    execute = function_body("Invoke-AzrdpExecute")
    assert execute.index("Initialize-AzrdpRoot -Create $true") < execute.index("Enter-AzrdpLock")


def test_the_model_refuses_a_folder_someone_else_owns() -> None:
    machine = image.load({}, NOW)
    machine.azrdp.exists = True
    machine.azrdp.owner = "S-1-5-21-1-2-3-1001"  # a user who created C:\ProgramData\azrdp first
    plan = gp.Plan("a1b2c3d4e5f6", (gp.make_step("rdp-listener", [gp.WaitListener(3389)], 0),))
    result, error, code = executor.execute(machine, plan.run_id, plan.token())
    assert result is None and code == "internal"
    assert error is not None and "not SYSTEM or Administrators" in error
    assert machine.azrdp.runs == {}
    assert executor.records(machine, plan.run_id)[2] == "internal"
