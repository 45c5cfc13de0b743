"""One test per defect found by reading collector.ps1 and executor.ps1 against Windows PowerShell 5.1
and .NET Framework 4.x (the review after issue 11). Where the defect is PowerShell's alone, the test
reads the parsed scripts; where Windows' behaviour was missing from the model, the model learned it
(with its source) and the test drives it through the real wire."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from guest_driver import NOW, Guest, ids

from azrdp.emulator.guest_scenarios import FIPS, TS
from azrdp.emulator.windows import executor, image
from azrdp.guest import facts as gf
from azrdp.guest import plan as gp
from azrdp.guest import scripts
from azrdp.guest.wire import pack_token


def functions(text: str) -> dict[str, list[str]]:
    """Each function of a script, as its lines."""
    out: dict[str, list[str]] = {}
    for match in re.finditer(r"^function ([\w-]+) \{\n(.*?)^\}$", text, re.M | re.S):
        out[match.group(1)] = match.group(2).splitlines()
    return out


# --- values cut for the output ------------------------------------------------------------------

# Method calls that only compare or collect cut values (de-duplicating names for the output).
_COLLECTING = re.compile(r"\.(Contains|Add)\($")


def test_a_value_cut_for_the_output_is_never_used_afterwards_as_an_input() -> None:
    """Get-AzrdpKeyFacts cut the key's container and provider names to 40 characters, then opened
    the key with them: the self-signed certificate's provider, 'Microsoft Enhanced RSA and AES
    Cryptographic Provider', is 53 characters, so SYSTEM never opened a healthy listener key, and
    azrdp judged it damaged and planned to move it aside and delete the certificate."""
    found = []
    for name, lines in functions(scripts.composed_text()).items():
        for index, line in enumerate(lines):
            cut = re.match(r"\s*(\$[\w.]+) = Limit-AzrdpText\b", line)
            if cut is None:
                continue
            target = re.escape(cut.group(1)) + r"(?![\w.])"
            for later in lines[index + 1 :]:
                for use in re.finditer(target, later):
                    before = later[: use.start()]
                    # Inside an argument list: a method, a constructor, New-Object, a static call.
                    depth, opener = 0, ""
                    for position in range(len(before) - 1, -1, -1):
                        char = before[position]
                        if char == ")":
                            depth += 1
                        elif char == "(":
                            if depth == 0:
                                opener = before[: position + 1]
                                break
                            depth -= 1
                    as_argument = bool(re.search(r"[\w\]]\($", opener)) and not _COLLECTING.search(opener)
                    if as_argument or re.search(r"New-Object\b|-ArgumentList\b", before):
                        found.append(f"{name}: {cut.group(1)} is cut, then used in: {later.strip()}")
    assert found == []
    # The key is opened with the names as the certificate's key-provider info holds them.
    key = "\n".join(functions(scripts.collector_text())["Get-AzrdpKeyFacts"])
    assert key.index("CspParameters($k.pt, $k.pn, $k.c)") < key.index("$k.pn = Limit-AzrdpText")
    assert key.index("CngKey]::Open($k.c") < key.index("$k.c = Limit-AzrdpText")


# --- owners -------------------------------------------------------------------------------------

THUMB = "0F0F0F0F0F0F0F0F0F0F0F0F0F0F0F0F0F0F0F0F"
LOCKED_OUT = "O:S-1-5-21-1-2-3-1001D:P(A;;FR;;;SY)"  # SYSTEM reads the DACL, cannot write it


def test_the_owner_section_is_written_and_write_owner_asked_only_when_the_owner_changes_here() -> None:
    """The executor opened the Remote Desktop store key with TakeOwnership (WRITE_OWNER) to edit
    its DACL, and wrote the Owner section after takeown: an owner holds READ_CONTROL and WRITE_DAC
    implicitly, never WRITE_OWNER, so the shipped store-denied repair (a Deny KA for SYSTEM) and
    every locked-out key file failed on Windows with access denied."""
    acl = "\n".join(functions(scripts.executor_text())["Invoke-AzrdpAclOp"])
    assert "if ([int]$Op.own -eq 1 -and [int]$Op.tk -ne 1) { $sections = $OwnerAndDacl }" in acl
    opened = re.findall(r"RegistryRights\]'([^']*)'", acl)
    assert opened == [
        "ChangePermissions, ReadPermissions",
        "ChangePermissions, ReadPermissions, TakeOwnership",
    ]
    assert acl.index("if ($sections -eq $OwnerAndDacl) { $rights =") > acl.index(
        "'ChangePermissions, ReadPermissions'"
    )


def test_windows_refuses_an_owner_without_write_owner_or_outside_the_token() -> None:
    """The model now checks what Windows checks when the Owner section is written."""
    cases = [
        # SYSTEM owns it (READ_CONTROL, WRITE_DAC implicitly) but is not granted WRITE_OWNER.
        ("O:SYD:P(A;;FR;;;SY)(A;;FR;;;NS)", "O:BAD:P(A;;FA;;;SY)(A;;FR;;;NS)", "unauthorized"),
        # A user SID as owner needs SeRestorePrivilege, which SetAccessControl does not enable.
        (
            "O:SYD:P(A;;FA;;;SY)",
            "O:S-1-5-21-1-2-3-1001D:P(A;;FA;;;SY)(A;;FR;;;NS)",
            "not allowed to be the owner",
        ),
    ]
    for now, new, error in cases:
        guest = Guest({"certificates": [{"thumbprint": THUMB, "key": {"sddl": now}}]})
        facts = guest.collect().facts
        assert facts is not None and facts.certs is not None
        key = facts.certs.certs[0].key
        assert key is not None and key.file and key.sddl == now
        step = gp.Step("machinekeys-acl", (gp.Acl(f"key:{key.file}", now, new, owner=True),))
        plan = gp.Plan("c1c2c3c4c5c6", (step,), 600)
        # Sent as it is: azrdp's own validation refuses the second one before the guest sees it.
        out = guest.run("execute", scripts.execute_parameters(plan.run_id, pack_token(plan.to_wire())))
        assert out.run is not None and out.run.steps[0].status == "rolledBack", out.run
        assert error in (out.run.steps[0].error or ""), out.run.steps[0].error
    with pytest.raises(gp.PlanError, match="owner only to SYSTEM or Administrators"):
        gp.Acl("mk", "O:SYD:", "O:S-1-5-21-1-2-3-1001D:P(A;;FA;;;SY)", owner=True).validate()


def test_undo_of_a_takeown_restores_the_dacl_and_leaves_system_the_owner() -> None:
    """The inverse of a takeown'd key ACL asked to put the old owner back; Windows refuses an owner
    outside SYSTEM's token without SeRestorePrivilege, so undo (and the rollback of a failing step)
    failed every time. The DACL goes back; SYSTEM, the default owner of a key container, stays."""
    guest = Guest({"certificates": [{"thumbprint": THUMB, "key": {"sddl": LOCKED_OUT}}]})
    plan, _ = guest.plan()
    (acl,) = [op for op in plan.ops if isinstance(op, gp.Acl)]
    assert acl.take_ownership
    (inverse,) = acl.inverse()
    assert isinstance(inverse, gp.Acl) and not inverse.owner and inverse.sddl == LOCKED_OUT
    out = guest.execute(plan)
    assert out.run is not None and out.run.state == "applied", out.run
    undo = guest.execute(guest.undo_plan(plan.run_id))
    assert undo.run is not None and undo.run.state == "applied", undo.run
    after = guest.collect().facts
    assert after is not None and after.certs is not None and after.certs.certs[0].key is not None
    assert after.certs.certs[0].key.sddl == "O:SYD:P(A;;FR;;;SY)"


# --- FIPS ----------------------------------------------------------------------------------------


def test_on_a_fips_vm_the_listener_key_is_still_located_and_fixed() -> None:
    """The collector named a CAPI key file with MD5, which .NET before 4.8 refuses under the FIPS
    policy (a setting azrdp itself reports): on such a VM every key read as unknown and the main
    0x904 cause went unseen. The key's own unique name, read when SYSTEM opens it, names it now
    (and checker rule `fips` keeps such algorithms inside a try that falls back)."""
    fips = {FIPS: {"Enabled": 1}}
    guest = Guest({"registry": fips, "certificates": [{"thumbprint": THUMB, "keyReadable": False}]})
    facts = guest.collect().facts
    assert facts is not None and facts.certs is not None
    key = facts.certs.certs[0].key
    assert key is not None and key.error is None and key.opens == 0 and key.exists is True
    assert key.file is not None and key.file.startswith("f686aace6942fb7f7ceb231212eef4a4_")
    assert "machinekeys-acl-corrupt" in ids(guest.findings())
    plan, _ = guest.plan()
    out = guest.execute(plan)
    assert out.run is not None and out.run.state == "applied", out.run
    assert guest.machine().listener_key_readable()
    # A key SYSTEM cannot open there: its file stays unknown, never judged lost, never removed.
    damaged = Guest({"registry": fips, "certificates": [{"thumbprint": THUMB, "keyOpens": False}]})
    facts = damaged.collect().facts
    assert facts is not None and facts.certs is not None
    key = facts.certs.certs[0].key
    assert key is not None and key.file is None and key.exists is None and key.opens != 0
    plan, _ = damaged.plan()
    assert not [op for op in plan.ops if isinstance(op, (gp.CertRemove, gp.KeyRename))]
    # In the script: MD5 inside a try that falls back, the name from the opened key otherwise.
    body = "\n".join(functions(scripts.collector_text())["Get-AzrdpKeyFacts"])
    assert "catch { $k.f = $null }" in body
    assert "if ($null -eq $k.f) { $k.f = [string]$rsa.CspKeyContainerInfo.UniqueKeyContainerName }" in body
    assert body.index("UniqueKeyContainerName") < body.index(
        "$path = Join-Path -Path $folder -ChildPath $k.f"
    )


# --- registry values .NET cannot read as their type ----------------------------------------------


def test_a_registry_value_of_a_kind_dotnet_cannot_read_keeps_the_report_valid() -> None:
    """.NET reads REG_NONE as kind Unknown with bytes: the collector printed the bytes as a JSON
    array under kind Unknown, azrdp's parser refused the whole report as off-contract, and one odd
    value made the VM undiagnosable. They are hex under kind Unknown now, never read as a number."""
    guest = Guest({"registry": {TS: {"fDenyTSConnections": {"kind": "None", "data": "01000000"}}}})
    report = guest.collect()
    assert report.facts is not None, report.error
    entry = report.facts.value("ts", "fDenyTSConnections")
    assert entry is not None and (entry.kind, entry.data, entry.number) == ("Unknown", "01000000", None)
    assert gf.RegEntry("winlogon", "WinStationsDisabled", "String", "1").number == 1
    # azrdp never writes a kind it cannot name; the executor refuses one too.
    with pytest.raises(gp.PlanError, match="unknown registry kind"):
        gp.RegSet("ts", "fDenyTSConnections", None, ("Unknown", "01000000")).validate()
    step = gp.Step(
        "rdp-listener", (gp.RegSet("ts", "fDenyTSConnections", ("Unknown", "01000000"), ("Unknown", "00")),)
    )
    plan = gp.Plan("e1e2e3e4e5e6", (step,), 600)
    out = guest.run("execute", scripts.execute_parameters(plan.run_id, pack_token(plan.to_wire())))
    assert out.run is not None and "cannot be written" in (out.run.steps[0].error or ""), out.run
    for script, name in ((scripts.collector_text(), None), (scripts.executor_text(), "Get-AzrdpRegState")):
        text = "\n".join(functions(script)[name]) if name else script
        assert (
            "if ($data -is [byte[]]) { $data = [System.BitConverter]::ToString([byte[]]$data)"
            ".Replace('-', '') }" in text
        )
        assert "@('String', 'ExpandString', 'Binary') -notcontains $kind) { $kind = 'Unknown' }" in text


# --- the allow-list -----------------------------------------------------------------------------


def _plan_with(op: dict[str, object]) -> str:
    base = {"i": 0, "chk": 1, "of": -1, "w": 5, "x": None}
    step = {"id": "rdp-listener", "b": 0, "ops": [{**base, **op}], "rb": []}
    return pack_token({"v": gp.PLAN_VERSION, "run": "f1f2f3f4f5f6", "dl": 600, "u": "", "steps": [step]})


def test_the_executor_allow_list_checks_the_kind_first_and_every_steering_field() -> None:
    """A kind outside $OpKinds passed when it began with reg., svc. or cert. (the prefix branches
    replaced the kind check: 'reg.x' ran as a delete, 'cert.x' as a restore), and cert.put's source
    run (a path part), svc.ctl's action, fw.set's values and takeown on a non-file target were never
    checked; names compared case-insensitively where azrdp's lists are exact."""
    bad = [
        {"k": "reg.x", "key": "ts", "n": "fDenyTSConnections"},
        {"k": "reg.del", "key": "TS", "n": "fDenyTSConnections", "dk": 0},
        {"k": "cert.x", "s": "rd", "tp": "A" * 40, "sr": ""},
        {"k": "cert.put", "s": "rd", "tp": "A" * 40, "sr": "..\\..\\Users\\Public"},
        {"k": "svc.ctl", "n": "TermService", "a": "kill"},
        {"k": "svc.cfg", "n": "TermService", "sm": "Boot", "acct": ""},
        {"k": "fw.set", "n": "RemoteDesktop-UserMode-In-TCP", "en": "Yes", "act": "", "lp": ""},
        {"k": "fw.prof", "n": "Public", "inb": "Maybe"},
        {"k": "acl", "o": "mk", "to": "O:SYD:", "own": 0, "tk": 1},
        {"k": "wait.lsn", "p": "3389;"},
    ]
    for op in bad:
        out = Guest().run("execute", scripts.execute_parameters("f1f2f3f4f5f6", _plan_with(op)))
        assert (out.error_code, out.run) == ("plan", None), op
    good = {"k": "fw.set", "n": "RemoteDesktop-UserMode-In-TCP", "en": "", "act": "Block", "lp": "Any"}
    out = Guest().run("execute", scripts.execute_parameters("f1f2f3f4f5f6", _plan_with(good)))
    assert out.error_code != "plan", out.error  # a rollback may set a rule back to Block, or Any
    body = "\n".join(functions(scripts.executor_text())["Assert-AzrdpAllowed"])
    assert "$ok = $OpKinds -ccontains $kind\n    if (-not $ok) { $ok = $false }" in body
    # Plan fields are compared case-sensitively (-ceq, -ccontains, -cmatch), as Python compares.
    loose = r"(?<!\[int\])\$Op\.\w+\s+-i?(eq|like|match|contains)\b|-i?contains\s+\[string\]\$Op\."
    assert not re.search(loose, body), re.findall(loose, body)
    assert table_array("StartModes") == gp.SET_START_MODES
    assert table_array("ServiceActions") == gp.ACTIONS


def table_array(name: str) -> tuple[str, ...]:
    match = re.search(rf"^\${name} = @\((.*)\)$", scripts.executor_text(), re.M)
    assert match is not None, name
    return tuple(re.findall(r"'([^']*)'", match.group(1)))


# --- service waits -------------------------------------------------------------------------------


def test_a_service_op_takes_its_bound_once_not_once_per_wait() -> None:
    """Each WaitForStatus of a restart got the op's full bound (stop, start, every dependent), and
    ServiceController.Stop() waited up to 30 s more for each running dependent: a restart declared
    60 s could take 210 s and run the executor past its deadline, its rollback grace and azrdp's own
    Run Command wait. Every wait now gets what is left of one bound."""
    body = functions(scripts.executor_text())["Invoke-AzrdpServiceOp"]
    code = [ln.strip() for ln in body if not ln.strip().startswith("#")]
    assert (
        sum(
            "$until = (Get-Date).Add((Get-AzrdpWait -Seconds ([int]$Op.w) -Deadline $Deadline))" in ln
            for ln in code
        )
        == 1
    )
    waits = [i for i, ln in enumerate(code) if "WaitForStatus(" in ln]
    assert len(waits) == 4
    for index in waits:
        assert code[index - 1] == "$wait = Get-AzrdpWait -Seconds ([int]$Op.w) -Deadline $until", code[
            index - 1
        ]
    # Dependents are stopped here, before Stop() would stop them with its own 30 s waits.
    assert min(i for i, ln in enumerate(code) if "$dependent.Stop()" in ln) < code.index("$service.Stop()")
    # On the model: a restart whose dependent hangs on its start ends within the op's bound.
    machine = image.load({"services": {"UmRdpService": {"hang": "start"}}}, NOW)
    run = executor.Run(machine, "a9a9a9a9a9a9", 600)
    op = gp.ServiceControl("TermService", "restart", "Running", 60).wire(0)
    record: dict[str, object] = {"i": 0, "g": 0, "op": op, "s": "applying", "p": None, "a": None, "e": None}
    started = machine.clock
    with pytest.raises(executor.Failed):
        run.apply(op, record, run.deadline)
    assert (machine.clock - started).total_seconds() <= 60 + 1


# --- records that cannot be written --------------------------------------------------------------


def test_a_record_that_cannot_be_written_after_a_change_rolls_its_step_back_and_keeps_the_result() -> None:
    """The record written after each change sat outside the op's try: when it failed (a full disk,
    one of the faults azrdp diagnoses; a file a scanner holds), the exception left the run with the
    step half applied and never rolled back, and the run's result was lost ("internal"). Such a
    change now fails its step, which is rolled back, and the result comes back."""
    guest = Guest({"registry": {TS: {"fDenyTSConnections": 1}}})
    plan, _ = guest.plan()
    assert [(op.KIND, getattr(op, "name", "")) for op in plan.steps[0].ops][:2] == [
        ("reg.set", "fDenyTSConnections"),
        ("svc.ctl", "TermService"),
    ]
    guest.vm.setdefault("_emulator", {})["failSaves"] = [1]
    out = guest.execute(plan)
    assert out.run is not None, out.error
    step = out.run.steps[0]
    assert (step.status, step.error) == ("rolledBack", executor.DISK_FULL)
    facts = out.facts
    assert facts is not None and facts.number("ts", "fDenyTSConnections") == 1  # the first op reverted
    code = [ln.strip() for ln in functions(scripts.executor_text())["Invoke-AzrdpExecute"]]
    applied = code.index("$applied.Add([int]$op.i)")
    assert code[applied + 3] == "Save-AzrdpRecord -Record $record -Dir $dir"  # inside the op's try
    assert code[applied + 4] == "}" and code[applied + 5] == "catch {"
    # Every write after the first change sits inside a try: none can abort the run.
    opened = max(i for i, line in enumerate(code[:applied]) if line == "try {")
    tail = "\n".join(code[opened:])
    for write in re.finditer(r"Save-AzrdpRecord|Write-AzrdpJson", tail):
        assert inside_try(tail, write.start()), tail[write.start() : write.start() + 60]
    undo = functions(scripts.executor_text())["Undo-AzrdpStep"]
    assert "try { Save-AzrdpRecord -Record $Records[[int]$op.of] -Dir $Dir }" in [ln.strip() for ln in undo]


def inside_try(text: str, position: int) -> bool:
    """Whether `position` lies in the block of a `try {` (braces matched from the text's start)."""
    stack: list[bool] = []
    index = 0
    while index < position:
        if text.startswith("try {", index):
            stack.append(True)
            index += 5
            continue
        if text[index] == "{":
            stack.append(False)
        elif text[index] == "}" and stack:
            stack.pop()
        index += 1
    return any(stack)


# --- the guest lock ------------------------------------------------------------------------------


def test_a_torn_lock_file_holds_for_the_longest_a_lock_lasts_never_forever() -> None:
    """A lock file without JSON in it (the run killed, or the VM losing power, while it was being
    written) made every later execute answer `locked`, with the parse error, forever: nothing ever
    expired it. It holds now for the longest a lock lasts from when it was written."""
    for minutes, locked in ((2, True), (15, False)):
        written = (NOW - timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")
        guest = Guest(
            {
                "registry": {TS: {"fDenyTSConnections": 1}},
                "azrdp": {"lock": {"torn": True, "written": written}},
            }
        )
        plan, _ = guest.plan()
        out = guest.execute(plan)
        if locked:
            assert out.error_code == "locked" and "an unreadable lock holds the guest lock" in (
                out.error or ""
            )
        else:
            assert out.run is not None and out.run.state == "applied", out.error
            assert guest.machine().azrdp.lock is None
    assert gp.LOCK_LONGEST == 14 * 60  # 2 min < 14 min < 15 min
    text = scripts.executor_text()
    assert re.search(rf"^\$LockMargin = {gp.LOCK_MARGIN}$", text, re.M)
    assert re.search(rf"^\$RollbackGrace = {gp.ROLLBACK_GRACE}$", text, re.M)
    assert re.search(rf"^\$LockLongest = {gp.MAX_DEADLINE} \+ \$RollbackGrace \+ \$LockMargin$", text, re.M)
    enter = "\n".join(functions(text)["Enter-AzrdpLock"])
    assert inside_try(enter, enter.index("Read-AzrdpJson -Path $LockFile"))


# --- the process ---------------------------------------------------------------------------------


def test_a_32_bit_powershell_is_refused_rather_than_read_through_wow64() -> None:
    """Nothing checked the process's bitness: a 32-bit powershell.exe on 64-bit Windows reads
    HKLM\\SOFTWARE\\WOW6432Node (no MachineGuid, other policies) and SysWOW64, so every fact would
    silently come from another view. It is refused, as an old PowerShell is."""
    out = Guest({"os": {"powerShell32Bit": True}}).collect()
    assert out.error_code == "unsupported" and "32-bit" in (out.error or "") and out.facts is None
    text = scripts.collector_text()
    assert (
        "elseif ([System.Environment]::Is64BitOperatingSystem -and -not "
        "[System.Environment]::Is64BitProcess) {" in text
    )
    assert text.index("Is64BitProcess") < text.index("elseif ($Mode -eq 'collect')")


# --- firewall port lists -------------------------------------------------------------------------


def test_a_block_rule_naming_the_rdp_port_past_the_40th_character_still_blocks_it() -> None:
    """Rule fields were cut to 40 characters, local ports too: a Block rule listing the RDP port
    after that read as not covering it (azrdp judged RDP admitted while Windows blocked it), and
    the collector ranked which Block rules to list from the cut text. Ports are cut only past what
    a real rule holds, and ranked from the whole list."""
    ports = "135,137,138,139,445,593,1433,1434,5985,5986,3389"
    assert len(ports) > gf.LIMITS["text"]
    rule = {"action": "Block", "localPorts": ports, "program": "Any", "service": "Any"}
    guest = Guest({"firewall": {"rules": {"Corp-Hardening": rule}}})
    facts = guest.collect().facts
    assert facts is not None and facts.firewall is not None
    assert [b.local_ports for b in facts.firewall.blocks] == [ports]
    assert "firewall-rule-disabled" in ids(guest.findings())
    assert re.search(r"^\s*ports = 200$", scripts.collector_text(), re.M) and gf.LIMITS["ports"] == 200
    rule_text = "\n".join(functions(scripts.collector_text())["Get-AzrdpRule"])
    assert "lp = Limit-AzrdpText -Value (@($port.LocalPort) -join ',') -Limit $Limits.ports" in rule_text
    fw = scripts.collector_text()
    fw = fw[fw.index("SectionName 'fw'") :]
    assert "-like ('*,' + $ctx.port + ',*')" in fw and "$entry.lp -" not in fw


def test_the_collector_reads_the_firewall_in_a_fixed_number_of_queries() -> None:
    """Four filter queries per rule (the RDP rules, azrdp's, every enabled inbound Block rule) and a
    query per rule name: a firewall query costs about as much as the machine has rules, however few
    it asks for (public measurements: tens of seconds each with ~1,000 rules), so a rule-heavy
    server's collection ran for minutes, past the executor's budget for its final collection. Each
    filter class is read once and joined by InstanceID; a rule missing there is asked for alone."""
    text = scripts.collector_text()
    lines = [ln.strip() for ln in text.splitlines() if not ln.strip().startswith("#")]
    per_rule = [ln for ln in lines if "-AssociatedNetFirewallRule" in ln]
    assert per_rule and all(
        re.match(r"if \(\$null -eq \$\w+\) \{ \$\w+ = Get-NetFirewall", ln) for ln in per_rule
    )
    bulk = [ln for ln in lines if re.search(r"Get-NetFirewall\w+Filter -PolicyStore ActiveStore\)", ln)]
    assert len(bulk) == 4 and all("$filters." in ln and ".InstanceID] = $filter" in ln for ln in bulk)
    assert sum(ln.count("Get-NetFirewallRule ") for ln in lines) == 2


def test_a_value_of_a_kind_dotnet_cannot_read_is_reported_not_judged_absent() -> None:
    """The other checks count a kind-Unknown value as absent (for fDenyTSConnections: RDP on); a
    warning says so, naming the value, instead of letting "absent, so fine" pass silently."""
    guest = Guest({"registry": {TS: {"fDenyTSConnections": {"kind": "None", "data": "01000000"}}}})
    found = {f.id: f for f in guest.findings()}
    assert "rdp-disabled" not in found
    odd = found["registry-value-unreadable"]
    assert odd.details["values"] == [{"key": "ts", "name": "fDenyTSConnections", "data": "01000000"}]
    assert "fDenyTSConnections" in odd.evidence
    assert "registry-value-unreadable" not in ids(Guest({}).findings())
