"""The guest's backup folders under C:\\ProgramData, where any user may create folders and
junctions: SYSTEM trusts (and re-ACLs) them only when they are real folders owned by SYSTEM or
Administrators. A junction would send the owner check and the new ACL to its target, e.g. a
SYSTEM-owned folder of another service, and the backups with them."""

from __future__ import annotations

from importlib import resources

REPAIR = resources.files("azrdp.guest").joinpath("scripts").joinpath("repair.ps1").read_text(encoding="ascii")


def function_body(name: str) -> str:
    return REPAIR.split(f"function {name} {{", 1)[1].split("\n}\n", 1)[0]


def test_a_junction_is_refused_before_its_owner_is_trusted_or_its_acl_changed() -> None:
    check = function_body("Test-AzrdpBackupRoot")
    loop = check.split("foreach ($dir in", 1)[1]
    assert "[System.IO.FileAttributes]::ReparsePoint" in loop
    reparse = loop.index("ReparsePoint")
    assert reparse < loop.index("GetOwner(") and reparse < loop.index("SetAccessControl(")
    refusal = loop[reparse : loop.index("GetOwner(")]
    assert "throw" in refusal
    assert "Get-Item -LiteralPath $dir -Force" in loop
