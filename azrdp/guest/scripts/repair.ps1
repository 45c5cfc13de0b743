# azrdp repair and undo functions. Included into azrdp.ps1 before its main dispatch: functions only,
# no param block, no top-level code. Windows PowerShell 5.1, run as SYSTEM by Run Command.
#
# Every trigger below mirrors one in azrdp/repairs/guest.py and is evaluated on the diagnosis that
# Get-AzrdpDiagnosis collected a moment ago, so a value that turned healthy is never touched.
# Each change is preceded by its backup (recorded in the run's manifest and saved to disk) under
# C:\ProgramData\azrdp\backups\<runId>\, readable only by SYSTEM and Administrators. A step that
# fails part-way restores what it had changed, so the guest is either repaired or as it was.
# Never: lower SecurityLayer/UserAuthentication/MinEncryptionLevel, delete a MachineKeys file,
# take ownership recursively, touch Group Policy values, change FIPS, enable TLS 1.0/1.1, remove a
# firewall Block rule, stop a process, or touch the guest agent.

function Get-AzrdpRepairConstants {
    return @{
        BackupRoot = 'C:\ProgramData\azrdp\backups'
        # Only SYSTEM and Administrators, inherited by the run directories.
        BackupSddl = 'O:SYG:SYD:PAI(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)'
        MachineKeysSddl = 'O:SYG:SYD:PAI(A;;0x12019f;;;WD)(A;;FA;;;BA)'
        SessionEnvSid = 'S-1-5-80-4022436659-1090538466-1613889075-870485073-3428993833'
        Order = @('rdp-services', 'machinekeys-acl', 'rdp-cert-renew', 'tls12-server', 'rdp-listener',
            'rdp-port', 'firewall-rdp-rule', 'rdp-security-restore')
        SecurityPrerequisites = @('machinekeys-acl', 'rdp-cert-renew', 'tls12-server')
        # Schannel reads its protocol settings at boot: the re-diagnosis cannot prove these yet.
        RebootRequired = @('tls12-server')
        Services = [ordered]@{
            TermService = @('Manual', 'NT Authority\NetworkService')
            UmRdpService = @('Manual', 'LocalSystem')
            SessionEnv = @('Manual', 'LocalSystem')
            KeyIso = @('Manual', 'LocalSystem')
            CertPropSvc = @('Manual', 'LocalSystem')
            CryptSvc = @('Auto', 'NT Authority\NetworkService')
            MpsSvc = @('Auto', 'NT Authority\LocalService')
            BFE = @('Auto', 'NT Authority\LocalService')
        }
        MustRun = @('TermService', 'MpsSvc', 'BFE')
        ChangeText = 48
        ChangesPerStep = 4
        Budget = 3500
    }
}

# --- small helpers -------------------------------------------------------------------------------

function ConvertTo-AzrdpAccount {
    param([string]$Value)
    $text = ([string]$Value).ToLowerInvariant().Replace(' ', '')
    if ($text -eq 'ntauthority\system' -or $text -eq '.\localsystem') { return 'localsystem' }
    return $text
}

function Test-AzrdpExpired {
    param($Entry, [datetime]$Now)
    if ($null -eq $Entry -or $null -eq $Entry.na) { return $false }
    $styles = [System.Globalization.DateTimeStyles]'AssumeUniversal, AdjustToUniversal'
    $expires = [datetime]::Parse([string]$Entry.na, [System.Globalization.CultureInfo]::InvariantCulture, $styles)
    return ($expires -le $Now)
}

function Get-AzrdpListenerCert {
    param($D)
    if ($null -eq $D.cert) { return $null }
    $certs = @($D.cert.certs)
    if ($null -ne $D.cert.pin) {
        foreach ($entry in $certs) { if ($entry.tp -eq $D.cert.pin) { return $entry } }
        return $null
    }
    $newest = $null
    foreach ($entry in $certs) {
        if ($entry.s -ne 'RD') { continue }
        if ($null -eq $newest -or [string]$entry.na -gt [string]$newest.na) { $newest = $entry }
    }
    return $newest
}

function Get-AzrdpService {
    param($D, [string]$Name)
    foreach ($service in @($D.svc)) { if ($service.n -eq $Name) { return $service } }
    return $null
}

function New-AzrdpTrigger {
    # Untyped: a [string] parameter would turn the $null below back into ''.
    param($Changes, $Refused = $null)
    if ($Refused -eq '') { $Refused = $null }
    return @{ changes = $Changes; refused = $Refused }
}

function New-AzrdpChange {
    param([string]$Target, [object]$Before, [object]$After)
    return [ordered]@{ target = $Target; before = $Before; after = $After }
}

# --- triggers (mirror azrdp/repairs/guest.py) ----------------------------------------------------

function Test-AzrdpKeyAclBroken {
    param($D)
    $mk = $D.mk
    return ($null -ne $mk -and $mk.kf -eq $true -and ($mk.kns -eq $false -or $mk.kdn -eq $true))
}

function Get-AzrdpTriggerMachineKeys {
    param($D, [datetime]$Now, $K)
    $changes = New-Object 'System.Collections.Generic.List[object]'
    if ($null -eq $D.mk) { return (New-AzrdpTrigger $changes) }
    $keyBroken = Test-AzrdpKeyAclBroken -D $D
    $listener = Get-AzrdpListenerCert -D $D
    $certTrouble = ($null -ne $listener -and ($listener.ko -eq $false -or $listener.pk -eq $false))
    $events = $false
    if ($null -ne $D.evt) {
        foreach ($id in @('1057', '1058', '36870')) { if ([int]$D.evt[$id] -gt 0) { $events = $true } }
    }
    if ($null -ne $D.mk.sddl -and $D.mk.sddl -ne $K.MachineKeysSddl -and ($keyBroken -or $certTrouble -or $events)) {
        $changes.Add((New-AzrdpChange -Target 'MachineKeys folder SDDL' -Before $D.mk.sddl -After $K.MachineKeysSddl))
    }
    if ($keyBroken) {
        $changes.Add((New-AzrdpChange -Target 'RDP key file ACL' -Before 'unreadable' -After 'default'))
    }
    return (New-AzrdpTrigger $changes)
}

function Test-AzrdpBadListener {
    param($D, [datetime]$Now)
    $listener = Get-AzrdpListenerCert -D $D
    if ($null -eq $listener) { return $false }
    $lostKey = ($listener.ko -eq $false -and -not (Test-AzrdpKeyAclBroken -D $D))
    return ((Test-AzrdpExpired -Entry $listener -Now $Now) -or $listener.pk -eq $false -or $lostKey)
}

function Get-AzrdpBadCertificates {
    param($D, [datetime]$Now)
    $bad = New-Object 'System.Collections.Generic.List[object]'
    if ($null -eq $D.cert) { return , $bad }
    $aclBroken = Test-AzrdpKeyAclBroken -D $D
    foreach ($entry in @($D.cert.certs)) {
        if ($entry.s -ne 'RD') { continue }
        $lostKey = ($entry.ko -eq $false -and -not $aclBroken)
        if ((Test-AzrdpExpired -Entry $entry -Now $Now) -or $entry.pk -eq $false -or $lostKey) { $bad.Add($entry) }
    }
    return , $bad
}

function Test-AzrdpStalePin {
    param($D, [datetime]$Now)
    if ($null -eq $D.cert -or $null -eq $D.cert.pin) { return $false }
    foreach ($entry in @($D.cert.certs)) {
        if ($entry.tp -eq $D.cert.pin) { return (Test-AzrdpExpired -Entry $entry -Now $Now) }
    }
    return $true
}

function Get-AzrdpTriggerCert {
    param($D, [datetime]$Now, $K)
    $changes = New-Object 'System.Collections.Generic.List[object]'
    if ($null -eq $D.cert) { return (New-AzrdpTrigger $changes) }
    $pin = Test-AzrdpStalePin -D $D -Now $Now
    if (-not $pin -and -not (Test-AzrdpBadListener -D $D -Now $Now)) { return (New-AzrdpTrigger $changes) }
    if ($D.cert.pinT -eq 2) {
        return (New-AzrdpTrigger $changes 'Group Policy owns the RDP certificate binding.')
    }
    foreach ($entry in (Get-AzrdpBadCertificates -D $D -Now $Now)) {
        $changes.Add((New-AzrdpChange -Target ('certificate ' + $entry.tp) -Before 'present' -After 'removed'))
    }
    if ($pin) { $changes.Add((New-AzrdpChange -Target 'SSLCertificateSHA1Hash' -Before $D.cert.pin -After $null)) }
    $changes.Add((New-AzrdpChange -Target 'Remote Desktop certificate' -Before 'none valid' -After 'new'))
    return (New-AzrdpTrigger $changes)
}

function Get-AzrdpTriggerServices {
    param($D, [datetime]$Now, $K)
    $changes = New-Object 'System.Collections.Generic.List[object]'
    foreach ($name in $K.Services.Keys) {
        $service = Get-AzrdpService -D $D -Name $name
        if ($null -eq $service -or $null -eq $service.st -or $service.st -eq 'NotFound') { continue }
        $default = $K.Services[$name]
        if ($service.sm -eq 'Disabled') {
            $changes.Add((New-AzrdpChange -Target ('service ' + $name + ' start type') -Before 'Disabled' -After $default[0]))
        }
        if ($null -ne $service.acct -and (ConvertTo-AzrdpAccount $service.acct) -ne (ConvertTo-AzrdpAccount $default[1])) {
            $changes.Add((New-AzrdpChange -Target ('service ' + $name + ' account') -Before $service.acct -After $default[1]))
        }
        if ($K.MustRun -contains $name -and $service.st -ne 'Running') {
            $changes.Add((New-AzrdpChange -Target ('service ' + $name + ' state') -Before $service.st -After 'Running'))
        }
    }
    return (New-AzrdpTrigger $changes)
}

function Get-AzrdpTriggerListener {
    param($D, [datetime]$Now, $K)
    $changes = New-Object 'System.Collections.Generic.List[object]'
    $rdp = $D.rdp
    if ($null -eq $rdp) { return (New-AzrdpTrigger $changes) }
    if ($rdp.denyP -eq 1) {
        return (New-AzrdpTrigger $changes 'Group Policy sets fDenyTSConnections=1.')
    }
    if ($rdp.deny -eq 1 -and $null -eq $rdp.denyP) {
        $changes.Add((New-AzrdpChange -Target 'fDenyTSConnections' -Before 1 -After 0))
    }
    if ($rdp.tse -eq 0) { $changes.Add((New-AzrdpChange -Target 'TSEnabled' -Before 0 -After 1)) }
    if ($rdp.ws -eq 0) { $changes.Add((New-AzrdpChange -Target 'fEnableWinStation' -Before 0 -After 1)) }
    if ($rdp.ld -eq 1) { $changes.Add((New-AzrdpChange -Target 'fLogonDisabled' -Before 1 -After 0)) }
    if ($null -ne $rdp.tsu -and $rdp.tsu -ne 0) { $changes.Add((New-AzrdpChange -Target 'TSUserEnabled' -Before $rdp.tsu -After 0)) }
    if (Test-AzrdpDrained -Rdp $rdp) {
        # On a Session Host a drain is usually deliberate: flag it, never end it.
        if ($rdp.tsm -eq 1) {
            if ($changes.Count -eq 0) { return (New-AzrdpTrigger $changes 'A drained Session Host: ask its owner.') }
        }
        else {
            if ($null -ne $rdp.drn -and $rdp.drn -ne 0) { $changes.Add((New-AzrdpChange -Target 'TSServerDrainMode' -Before $rdp.drn -After 0)) }
            if ($rdp.wsd -eq 1) { $changes.Add((New-AzrdpChange -Target 'WinStationsDisabled' -Before '1' -After '0')) }
        }
    }
    return (New-AzrdpTrigger $changes)
}

function Test-AzrdpDrained {
    param($Rdp)
    return (($null -ne $Rdp.drn -and $Rdp.drn -ne 0) -or $Rdp.wsd -eq 1)
}

function Get-AzrdpForeignOwner {
    param($D, $Port)
    if ($null -eq $Port -or $null -eq $D.lsn) { return $null }
    foreach ($owner in @($D.lsn.ports)) {
        if ($owner.p -eq $Port -and $null -ne $owner.pid -and $owner.pid -ne $D.lsn.ts) { return $owner }
    }
    return $null
}

function Get-AzrdpRdpRule {
    param($D, [string]$Name)
    if ($null -eq $D.fw) { return $null }
    foreach ($rule in @($D.fw.rules)) { if ($rule.n -eq $Name) { return $rule } }
    return $null
}

function Get-AzrdpTriggerPort {
    param($D, [datetime]$Now, $K, [int]$TargetPort)
    $changes = New-Object 'System.Collections.Generic.List[object]'
    if ($null -eq $D.rdp -or $null -eq $D.rdp.port) { return (New-AzrdpTrigger $changes) }
    $port = [int]$D.rdp.port
    $invalid = ($port -lt 1 -or $port -gt 65535)
    $owner = $null
    if (-not $invalid) { $owner = Get-AzrdpForeignOwner -D $D -Port $port }
    if (-not $invalid -and $null -eq $owner) {
        # A deliberately moved port is left alone: its NSG and firewall rules follow it.
        if ($port -ne $TargetPort) { return (New-AzrdpTrigger $changes 'RDP was moved to another port; azrdp leaves it.') }
        return (New-AzrdpTrigger $changes)
    }
    if ($null -ne $owner -and $port -eq $TargetPort) {
        return (New-AzrdpTrigger $changes 'Another process owns the RDP port; azrdp does not stop processes.')
    }
    if ($null -ne (Get-AzrdpForeignOwner -D $D -Port $TargetPort)) {
        return (New-AzrdpTrigger $changes 'The target port is owned by another process too.')
    }
    $changes.Add((New-AzrdpChange -Target 'PortNumber' -Before $port -After $TargetPort))
    $rule = Get-AzrdpRdpRule -D $D -Name 'RemoteDesktop-UserMode-In-TCP'
    if ($null -ne $rule -and $rule.ex -eq $true -and -not (Test-PortInFilter -LocalPorts @([string]$rule.lp) -Port $TargetPort)) {
        $changes.Add((New-AzrdpChange -Target 'RemoteDesktop-UserMode-In-TCP LocalPort' -Before $rule.lp -After $TargetPort))
    }
    return (New-AzrdpTrigger $changes)
}

function Get-AzrdpActiveProfiles {
    param($D)
    $active = @($D.fw.act)
    $list = New-Object 'System.Collections.Generic.List[object]'
    foreach ($profile in @($D.fw.prof)) {
        if ($profile.on -eq $true -and ($active.Count -eq 0 -or $active -contains $profile.n)) { $list.Add($profile) }
    }
    return , $list
}

function Get-AzrdpTriggerFirewall {
    param($D, [datetime]$Now, $K)
    $changes = New-Object 'System.Collections.Generic.List[object]'
    if ($null -eq $D.fw) { return (New-AzrdpTrigger $changes) }
    $profiles = Get-AzrdpActiveProfiles -D $D
    if ($profiles.Count -eq 0) { return (New-AzrdpTrigger $changes) }
    $port = 3389
    if ($null -ne $D.rdp -and $null -ne $D.rdp.port) { $port = [int]$D.rdp.port }
    foreach ($profile in $profiles) {
        if ($profile.lr -eq $false) {
            return (New-AzrdpTrigger $changes 'Group Policy ignores local firewall rules.')
        }
        if ($profile.inb -eq $false) {
            $changes.Add((New-AzrdpChange -Target ('profile ' + $profile.n + ' AllowInboundRules') -Before $false -After 'True'))
        }
        if ($profile.dne -eq 1) {
            $changes.Add((New-AzrdpChange -Target ('profile ' + $profile.n + ' DoNotAllowExceptions') -Before 1 -After $null))
        }
    }
    $tcp = Get-AzrdpRdpRule -D $D -Name 'RemoteDesktop-UserMode-In-TCP'
    # The rule azrdp adds when it moves RDP (azrdp-RDP-<port>) lets the port in as well.
    $custom = Get-AzrdpRdpRule -D $D -Name ($CustomRulePrefix + $port)
    $admitted = ($null -ne $custom -and $custom.en -eq $true -and $custom.act -eq 'Allow' -and (Test-PortInFilter -LocalPorts @([string]$custom.lp) -Port $port))
    $udp = Get-AzrdpRdpRule -D $D -Name 'RemoteDesktop-UserMode-In-UDP'
    if ($null -ne $udp -and $udp.ex -eq $true -and $udp.en -eq $false) {
        $changes.Add((New-AzrdpChange -Target 'RemoteDesktop-UserMode-In-UDP' -Before 'disabled' -After 'enabled'))
    }
    if ($admitted) { }
    elseif ($null -eq $tcp -or $tcp.ex -eq $false) {
        # Not a copy of the built-in rule: azrdp's own, named for the port, which undo deletes.
        $changes.Add((New-AzrdpChange -Target ($CustomRulePrefix + $port) -Before $null -After 'created'))
    }
    else {
        if ($tcp.en -eq $false) {
            $changes.Add((New-AzrdpChange -Target 'RemoteDesktop-UserMode-In-TCP' -Before 'disabled' -After 'enabled'))
        }
        if ($null -ne $tcp.act -and $tcp.act -ne 'Allow') {
            $changes.Add((New-AzrdpChange -Target 'RemoteDesktop-UserMode-In-TCP action' -Before $tcp.act -After 'Allow'))
        }
        # An invalid listener port is rdp-port's to fix; the rule must not follow it there.
        if ($port -ge 1 -and $port -le 65535 -and -not (Test-PortInFilter -LocalPorts @([string]$tcp.lp) -Port $port)) {
            $changes.Add((New-AzrdpChange -Target 'RemoteDesktop-UserMode-In-TCP LocalPort' -Before $tcp.lp -After $port))
        }
    }
    if (@($D.fw.blk).Count -gt 0 -and $changes.Count -eq 0) {
        return (New-AzrdpTrigger $changes 'Inbound Block rules cover the RDP port; azrdp never removes them.')
    }
    return (New-AzrdpTrigger $changes)
}

function Get-AzrdpTriggerTls {
    param($D, [datetime]$Now, $K)
    $changes = New-Object 'System.Collections.Generic.List[object]'
    $t12 = $null
    if ($null -ne $D.tls) { $t12 = $D.tls.t12 }
    if ($null -eq $t12 -or -not ($t12.e -eq 0 -or $t12.d -eq 1)) { return (New-AzrdpTrigger $changes) }
    if ($t12.e -eq 0) { $changes.Add((New-AzrdpChange -Target 'TLS 1.2 Server Enabled' -Before 0 -After 1)) }
    if ($t12.d -eq 1) { $changes.Add((New-AzrdpChange -Target 'TLS 1.2 Server DisabledByDefault' -Before 1 -After 0)) }
    if ($D.tls.fn -eq 0) { $changes.Add((New-AzrdpChange -Target 'cipher policy Functions' -Before 'empty' -After $null)) }
    return (New-AzrdpTrigger $changes)
}

function Get-AzrdpEffective {
    param($Local, $Policy)
    if ($null -ne $Policy) { return $Policy }
    return $Local
}

function Get-AzrdpTriggerSecurity {
    param($D, [datetime]$Now, $K)
    $changes = New-Object 'System.Collections.Generic.List[object]'
    $rdp = $D.rdp
    if ($null -eq $rdp) { return (New-AzrdpTrigger $changes) }
    $sl = Get-AzrdpEffective -Local $rdp.sl -Policy $rdp.slP
    $ua = Get-AzrdpEffective -Local $rdp.ua -Policy $rdp.uaP
    if ($sl -ne 0 -and $ua -ne 0) { return (New-AzrdpTrigger $changes) }
    $owned = 0
    if ($sl -eq 0) {
        if ($null -ne $rdp.slP -or $rdp.srcSl -eq 1) { $owned++ }
        else {
            $changes.Add((New-AzrdpChange -Target 'SecurityLayer' -Before 0 -After 2))
            if ($null -ne $rdp.mel -and $rdp.mel -lt 2 -and $null -eq $rdp.melP) {
                $changes.Add((New-AzrdpChange -Target 'MinEncryptionLevel' -Before $rdp.mel -After 2))
            }
            if ($rdp.neg -eq 0) { $changes.Add((New-AzrdpChange -Target 'fAllowSecProtocolNegotiation' -Before 0 -After 1)) }
        }
    }
    if ($ua -eq 0) {
        if ($null -ne $rdp.uaP -or $rdp.srcUa -eq 1) { $owned++ }
        else { $changes.Add((New-AzrdpChange -Target 'UserAuthentication' -Before 0 -After 1)) }
    }
    if ($owned -gt 0 -and $changes.Count -eq 0) {
        return (New-AzrdpTrigger $changes 'Group Policy owns the insecure value.')
    }
    return (New-AzrdpTrigger $changes)
}

function Get-AzrdpTrigger {
    param([string]$Id, $D, [datetime]$Now, $K, [int]$TargetPort)
    switch ($Id) {
        'rdp-services' { return Get-AzrdpTriggerServices -D $D -Now $Now -K $K }
        'machinekeys-acl' { return Get-AzrdpTriggerMachineKeys -D $D -Now $Now -K $K }
        'rdp-cert-renew' { return Get-AzrdpTriggerCert -D $D -Now $Now -K $K }
        'tls12-server' { return Get-AzrdpTriggerTls -D $D -Now $Now -K $K }
        'rdp-listener' { return Get-AzrdpTriggerListener -D $D -Now $Now -K $K }
        'rdp-port' { return Get-AzrdpTriggerPort -D $D -Now $Now -K $K -TargetPort $TargetPort }
        'firewall-rdp-rule' { return Get-AzrdpTriggerFirewall -D $D -Now $Now -K $K }
        'rdp-security-restore' { return Get-AzrdpTriggerSecurity -D $D -Now $Now -K $K }
    }
    throw ('Unknown repair id ' + $Id)
}

# --- backups and the manifest --------------------------------------------------------------------

function Test-AzrdpBackupRoot {
    # Any user may create folders and junctions in C:\ProgramData, and undo writes what a manifest
    # says as SYSTEM: azrdp's folders are trusted only when they are real folders that SYSTEM or
    # Administrators own, and are kept private.
    param($K, [bool]$Create)
    foreach ($dir in @((Split-Path -Path $K.BackupRoot -Parent), $K.BackupRoot)) {
        if (-not (Test-Path -LiteralPath $dir)) {
            if (-not $Create) { return $false }
            New-Item -ItemType Directory -Path $dir -Force | Out-Null
        }
        # A junction would send the owner check and the ACL below to its target folder.
        if (((Get-Item -LiteralPath $dir -Force).Attributes -band [System.IO.FileAttributes]::ReparsePoint) -ne 0) {
            throw ($dir + ' is a junction or link, not a folder; azrdp will not use it.')
        }
        $sid = [System.Security.Principal.SecurityIdentifier]
        $owner = [System.IO.Directory]::GetAccessControl($dir, 'Owner').GetOwner($sid).Value
        if (@('S-1-5-18', 'S-1-5-32-544') -notcontains $owner) {
            throw ($dir + ' is owned by ' + $owner + ', not SYSTEM or Administrators; azrdp will not use it.')
        }
        $security = New-Object System.Security.AccessControl.DirectorySecurity
        $security.SetSecurityDescriptorSddlForm($K.BackupSddl)
        [System.IO.Directory]::SetAccessControl($dir, $security)
    }
    return $true
}

function Initialize-AzrdpBackupDir {
    param($Run, $K)
    [void](Test-AzrdpBackupRoot -K $K -Create $true)
    New-Item -ItemType Directory -Path $Run.dir -Force | Out-Null
}

function Save-AzrdpManifest {
    param($Run)
    Write-AzrdpManifest -Dir $Run.dir -Manifest $Run.manifest
}

function Write-AzrdpManifest {
    # UTF-8: a backed-up value is restored exactly, whatever its characters.
    param([string]$Dir, $Manifest)
    $json = ConvertTo-Json -InputObject $Manifest -Depth 8 -Compress
    [System.IO.File]::WriteAllText((Join-Path -Path $Dir -ChildPath 'manifest.json'), $json, (New-Object System.Text.UTF8Encoding $false))
}

function Read-AzrdpManifest {
    param([string]$Dir)
    $path = Join-Path -Path $Dir -ChildPath 'manifest.json'
    if (-not (Test-Path -LiteralPath $path)) { return $null }
    return ([System.IO.File]::ReadAllText($path) | ConvertFrom-Json)
}

function Set-AzrdpPendingReboot {
    # Windows reads SCHANNEL settings at boot: until the next one, diagnose would read the registry
    # as repaired while the listener still runs with the old setting. -Add records a run; without
    # it the run is taken out (undo put back what the listener still uses). No run left, no marker.
    param([string]$RunId, [bool]$Add)
    $runs = @()
    $marker = Read-PendingReboot
    if ($null -ne $marker) { $runs = @(@($marker.runs) | Where-Object { [string]$_ -ne $RunId }) }
    if ($Add) { $runs += $RunId }
    if ($runs.Count -gt 0) {
        $json = ConvertTo-Json -InputObject ([ordered]@{ boot = (Get-BootTime); runs = $runs }) -Compress
        [System.IO.File]::WriteAllText($PendingRebootPath, $json, (New-Object System.Text.UTF8Encoding $false))
    }
    elseif (Test-Path -LiteralPath $PendingRebootPath) { Remove-Item -LiteralPath $PendingRebootPath -Force }
}

function Add-AzrdpItem {
    param($Run, $Step, $Item)
    # Recorded and written to disk before the change it backs up is made.
    $Step.items.Add($Item)
    Save-AzrdpManifest -Run $Run
}

function Get-AzrdpRegKind {
    param([string]$Path, [string]$Name)
    $key = Get-Item -LiteralPath $Path -ErrorAction SilentlyContinue
    if ($null -eq $key -or $null -eq $key.GetValue($Name, $null)) { return $null }
    return [string]$key.GetValueKind($Name)
}

function Backup-AzrdpRegValue {
    param($Run, $Step, [string]$Path, [string]$Name)
    $kind = Get-AzrdpRegKind -Path $Path -Name $Name
    $old = $null
    if ($null -ne $kind) {
        $raw = (Get-Item -LiteralPath $Path).GetValue($Name, $null, 'DoNotExpandEnvironmentNames')
        if ($kind -eq 'Binary') { $old = -join (@($raw) | ForEach-Object { $_.ToString('X2') }) }
        elseif ($kind -eq 'MultiString') { $old = @($raw) }
        else { $old = $raw }
    }
    $file = Join-Path -Path $Run.dir -ChildPath ('reg-' + @($Step.items).Count + '.reg')
    if (Test-Path -LiteralPath $Path) {
        [void](Invoke-AzrdpNative -Exe 'reg.exe' -Arguments @('export', $Path.Replace('HKLM:\', 'HKLM\'), $file, '/y'))
    }
    Add-AzrdpItem -Run $Run -Step $Step -Item ([ordered]@{ t = 'reg'; k = $Path; n = $Name; kind = $kind; old = $old; file = $file })
}

function Set-AzrdpRegDword {
    param($Run, $Step, [string]$Path, [string]$Name, [object]$Value, [string]$Type = 'DWord')
    Backup-AzrdpRegValue -Run $Run -Step $Step -Path $Path -Name $Name
    if (-not (Test-Path -LiteralPath $Path)) { New-Item -Path $Path -Force | Out-Null }
    Set-ItemProperty -LiteralPath $Path -Name $Name -Value $Value -Type $Type -Force
}

function Remove-AzrdpRegValue {
    param($Run, $Step, [string]$Path, [string]$Name)
    Backup-AzrdpRegValue -Run $Run -Step $Step -Path $Path -Name $Name
    Remove-ItemProperty -LiteralPath $Path -Name $Name -Force
}

function Backup-AzrdpServiceConfig {
    param($Run, $Step, [string]$Name)
    $path = 'HKLM:\SYSTEM\CurrentControlSet\Services\' + $Name
    $service = Get-CimInstance -ClassName Win32_Service -Filter ("Name='" + $Name + "'")
    $qc = Join-Path -Path $Run.dir -ChildPath ('sc-' + $Name + '.txt')
    $ErrorActionPreference = 'Continue'
    & sc.exe qc $Name 2>&1 | Out-File -FilePath $qc -Encoding ascii
    $ErrorActionPreference = 'Stop'
    Add-AzrdpItem -Run $Run -Step $Step -Item ([ordered]@{
        t = 'svc'; n = $Name
        start = Get-RegInt -Path $path -Name 'Start'
        obj = [string](Get-RegValue -Path $path -Name 'ObjectName')
        type = Get-RegInt -Path $path -Name 'Type'
        state = [string]$service.State
    })
}

function Invoke-AzrdpNative {
    # Native tools never throw; in 5.1 their StdErr under 'Stop' would. Returns the exit code.
    param([string]$Exe, [string[]]$Arguments)
    $ErrorActionPreference = 'Continue'
    & $Exe @Arguments 2>&1 | Out-Null
    return $LASTEXITCODE
}

function Invoke-AzrdpSc {
    param([string[]]$Arguments)
    $code = Invoke-AzrdpNative -Exe 'sc.exe' -Arguments $Arguments
    if ($code -ne 0) { throw ('sc.exe ' + $Arguments[0] + ' ' + $Arguments[1] + ' failed with ' + $code) }
}

function Get-AzrdpStartWord {
    param($Start)
    switch ([int]$Start) {
        0 { return 'boot' }
        1 { return 'system' }
        2 { return 'auto' }
        3 { return 'demand' }
        4 { return 'disabled' }
    }
    return 'demand'
}

function Restore-AzrdpItem {
    param($Item)
    switch ([string]$Item.t) {
        'reg' {
            if ($null -eq $Item.kind) {
                Remove-ItemProperty -LiteralPath $Item.k -Name $Item.n -Force -ErrorAction SilentlyContinue
            }
            else {
                if (-not (Test-Path -LiteralPath $Item.k)) { New-Item -Path $Item.k -Force | Out-Null }
                $value = $Item.old
                if ($Item.kind -eq 'Binary') {
                    $hex = [string]$Item.old
                    $bytes = New-Object byte[] ($hex.Length / 2)
                    for ($i = 0; $i -lt $bytes.Length; $i++) { $bytes[$i] = [Convert]::ToByte($hex.Substring(2 * $i, 2), 16) }
                    $value = $bytes
                }
                elseif ($Item.kind -eq 'MultiString') { $value = [string[]]@($Item.old) }
                Set-ItemProperty -LiteralPath $Item.k -Name $Item.n -Value $value -Type $Item.kind -Force
            }
        }
        'sddl' {
            if ($Item.kind -eq 'dir') {
                $security = New-Object System.Security.AccessControl.DirectorySecurity
                $security.SetSecurityDescriptorSddlForm($Item.old)
                [System.IO.Directory]::SetAccessControl($Item.p, $security)
            }
            else {
                $security = New-Object System.Security.AccessControl.FileSecurity
                $security.SetSecurityDescriptorSddlForm($Item.old)
                [System.IO.File]::SetAccessControl($Item.p, $security)
            }
        }
        'svc' {
            Invoke-AzrdpSc -Arguments @('config', $Item.n, 'start=', (Get-AzrdpStartWord -Start $Item.start))
            if ($Item.obj) { Invoke-AzrdpSc -Arguments @('config', $Item.n, 'obj=', $Item.obj) }
            if ($Item.state -ne 'Running') { Stop-Service -Name $Item.n -Force -ErrorAction SilentlyContinue }
        }
        'cert' {
            Import-Certificate -FilePath $Item.file -CertStoreLocation 'Cert:\LocalMachine\Remote Desktop' | Out-Null
            # Re-links the private key if its container is still there (it was never deleted).
            [void](Invoke-AzrdpNative -Exe 'certutil.exe' -Arguments @('-repairstore', 'Remote Desktop', $Item.tp))
        }
        'certnew' {
            Remove-Item -LiteralPath ('Cert:\LocalMachine\Remote Desktop\' + $Item.tp) -Force -ErrorAction SilentlyContinue
        }
        'fw' {
            if ($Item.created) { Remove-NetFirewallRule -Name $Item.n -ErrorAction SilentlyContinue }
            else {
                Set-NetFirewallRule -Name $Item.n -Enabled $Item.en -Action $Item.act
                if ($null -ne $Item.lp) { Set-NetFirewallRule -Name $Item.n -LocalPort @(([string]$Item.lp).Split(',')) }
            }
        }
        'fwp' { Set-NetFirewallProfile -Name $Item.n -AllowInboundRules $Item.inb }
    }
}

function Restore-AzrdpItems {
    param($Items)
    $list = @($Items)
    $failed = 0
    for ($i = $list.Count - 1; $i -ge 0; $i--) {
        try { Restore-AzrdpItem -Item $list[$i] }
        catch { $failed++ }
    }
    return $failed
}

# --- the repairs ---------------------------------------------------------------------------------

function Restart-AzrdpRdpServices {
    param([string[]]$Names)
    foreach ($name in $Names) {
        $service = Get-Service -Name $name -ErrorAction SilentlyContinue
        if ($null -eq $service) { continue }
        if ($service.Status -eq 'Running') { Restart-Service -Name $name -Force }
        else { Start-Service -Name $name }
    }
}

function Repair-AzrdpServices {
    param($Run, $Step, $D, $K)
    foreach ($name in $K.Services.Keys) {
        $service = Get-AzrdpService -D $D -Name $name
        if ($null -eq $service -or $null -eq $service.st -or $service.st -eq 'NotFound') { continue }
        $default = $K.Services[$name]
        $disabled = ($service.sm -eq 'Disabled')
        $account = ($null -ne $service.acct -and (ConvertTo-AzrdpAccount $service.acct) -ne (ConvertTo-AzrdpAccount $default[1]))
        $stopped = ($K.MustRun -contains $name -and $service.st -ne 'Running')
        if (-not ($disabled -or $account -or $stopped)) { continue }
        Backup-AzrdpServiceConfig -Run $Run -Step $Step -Name $name
        if ($disabled) {
            $word = 'demand'
            if ($default[0] -eq 'Auto') { $word = 'auto' }
            Invoke-AzrdpSc -Arguments @('config', $name, 'start=', $word)
        }
        if ($account) { Invoke-AzrdpSc -Arguments @('config', $name, 'obj=', $default[1]) }
    }
    foreach ($name in @('BFE', 'MpsSvc', 'TermService')) {
        $service = Get-AzrdpService -D $D -Name $name
        if ($null -ne $service -and $service.st -ne 'Running' -and $service.st -ne 'NotFound') { Start-Service -Name $name }
    }
}

function Repair-AzrdpMachineKeys {
    param($Run, $Step, $D, $K, $Trigger)
    $sections = [System.Security.AccessControl.AccessControlSections]'Access, Owner, Group'
    foreach ($change in $Trigger.changes) {
        if ($change.target -eq 'MachineKeys folder SDDL') {
            $folder = [System.IO.Directory]::GetAccessControl($MachineKeysPath, $sections)
            $saved = Join-Path -Path $Run.dir -ChildPath 'machinekeys-folder.icacls'
            [void](Invoke-AzrdpNative -Exe 'icacls.exe' -Arguments @($MachineKeysPath, '/save', $saved))
            Add-AzrdpItem -Run $Run -Step $Step -Item ([ordered]@{ t = 'sddl'; kind = 'dir'; p = $MachineKeysPath; old = $folder.GetSecurityDescriptorSddlForm($sections); file = $saved })
            # Not inheritable: the key files keep their own ACLs.
            $security = New-Object System.Security.AccessControl.DirectorySecurity
            # With the sections: the one-argument form also writes (wipes) the folder's SACL.
            $security.SetSecurityDescriptorSddlForm($K.MachineKeysSddl, $sections)
            [System.IO.Directory]::SetAccessControl($MachineKeysPath, $security)
        }
        elseif ($change.target -eq 'RDP key file ACL') {
            $listener = Get-AzrdpListenerCert -D $D
            $path = $null
            if ($null -ne $listener) {
                $cert = Get-Item -LiteralPath ('Cert:\LocalMachine\Remote Desktop\' + $listener.tp) -ErrorAction SilentlyContinue
                if ($null -eq $cert) { $cert = Get-Item -LiteralPath ('Cert:\LocalMachine\My\' + $listener.tp) -ErrorAction SilentlyContinue }
                if ($null -ne $cert) { $path = (Get-KeyFilePath -Certificate $cert -SelfSigned ($listener.s -eq 'RD')).path }
            }
            if ($null -eq $path) { throw 'The listener key file was not found.' }
            $fileSections = [System.Security.AccessControl.AccessControlSections]'Access, Owner'
            $before = $null
            try { $before = [System.IO.File]::GetAccessControl($path, $fileSections).GetSecurityDescriptorSddlForm($fileSections) }
            catch {
                # SYSTEM is locked out of this one file: take ownership of it alone (no /a, no /r).
                [void](Invoke-AzrdpNative -Exe 'takeown.exe' -Arguments @('/f', $path))
                $before = [System.IO.File]::GetAccessControl($path, $fileSections).GetSecurityDescriptorSddlForm($fileSections)
            }
            $saved = Join-Path -Path $Run.dir -ChildPath 'machinekeys-key.icacls'
            [void](Invoke-AzrdpNative -Exe 'icacls.exe' -Arguments @($path, '/save', $saved))
            Add-AzrdpItem -Run $Run -Step $Step -Item ([ordered]@{ t = 'sddl'; kind = 'file'; p = $path; old = $before; file = $saved })
            if ($listener.s -eq 'RD') {
                # The self-signed key (TSSecKeySet1) goes back to its measured default.
                $third = '(A;;0x120089;;;BA)'
                if ($null -ne $D.os -and [int]$D.os.bld -ge 17763) { $third = '(A;;FA;;;' + $K.SessionEnvSid + ')' }
                $security = New-Object System.Security.AccessControl.FileSecurity
                $security.SetSecurityDescriptorSddlForm('O:SYD:P(A;;FA;;;SY)(A;;0x120089;;;NS)' + $third, $fileSections)
            }
            else {
                # A pinned certificate's key may serve other services too: keep its other entries,
                # drop only the Deny entries for the readers and let NETWORK SERVICE read.
                $security = [System.IO.File]::GetAccessControl($path)
                $sid = [System.Security.Principal.SecurityIdentifier]
                foreach ($rule in @($security.GetAccessRules($true, $false, $sid))) {
                    if ([string]$rule.AccessControlType -eq 'Deny' -and $KeyReaderSids -contains $rule.IdentityReference.Value) {
                        [void]$security.RemoveAccessRuleSpecific($rule)
                    }
                }
                $read = New-Object System.Security.AccessControl.FileSystemAccessRule((New-Object System.Security.Principal.SecurityIdentifier 'S-1-5-20'), 'Read', 'Allow')
                $security.AddAccessRule($read)
            }
            [System.IO.File]::SetAccessControl($path, $security)
        }
    }
    Restart-AzrdpRdpServices -Names @('SessionEnv', 'TermService', 'UmRdpService')
}

function Repair-AzrdpCertificate {
    param($Run, $Step, $D, $K, [datetime]$Now)
    $store = 'Cert:\LocalMachine\Remote Desktop'
    $removed = @{}
    foreach ($entry in (Get-AzrdpBadCertificates -D $D -Now $Now)) {
        $cert = Get-Item -LiteralPath ($store + '\' + $entry.tp) -ErrorAction SilentlyContinue
        if ($null -eq $cert) { continue }
        $file = Join-Path -Path $Run.dir -ChildPath ($entry.tp + '.cer')
        # Public part only: a private key is never exported.
        Export-Certificate -Cert $cert -FilePath $file -Type CERT | Out-Null
        Add-AzrdpItem -Run $Run -Step $Step -Item ([ordered]@{ t = 'cert'; tp = $entry.tp; na = $entry.na; file = $file })
        # Without -DeleteKey: the key container stays, so undo can re-link it.
        Remove-Item -LiteralPath ($store + '\' + $entry.tp) -Force
        $removed[$entry.tp] = $true
    }
    if (Test-AzrdpStalePin -D $D -Now $Now) {
        Remove-AzrdpRegValue -Run $Run -Step $Step -Path $RegRdpTcp -Name 'SSLCertificateSHA1Hash'
    }
    $existing = @{}
    foreach ($cert in @(Get-ChildItem -LiteralPath $store)) { $existing[$cert.Thumbprint] = $true }
    Restart-AzrdpRdpServices -Names @('SessionEnv', 'TermService')
    $deadline = (Get-Date).AddSeconds(60)
    $fresh = $null
    while ($null -eq $fresh -and (Get-Date) -lt $deadline) {
        foreach ($cert in @(Get-ChildItem -LiteralPath $store)) {
            if (-not $existing.ContainsKey($cert.Thumbprint) -and $cert.HasPrivateKey -and $cert.NotAfter -gt (Get-Date)) { $fresh = $cert }
        }
        if ($null -eq $fresh) {
            # An in-date certificate that was already there also serves the listener.
            foreach ($cert in @(Get-ChildItem -LiteralPath $store)) {
                if (-not $removed.ContainsKey($cert.Thumbprint) -and $cert.HasPrivateKey -and $cert.NotAfter -gt (Get-Date) -and $existing.ContainsKey($cert.Thumbprint)) { $fresh = $cert }
            }
            if ($null -eq $fresh) { Start-Sleep -Seconds 3 }
        }
    }
    if ($null -eq $fresh) { throw 'Windows did not create a new RDP certificate within 60 s.' }
    if (-not $existing.ContainsKey($fresh.Thumbprint)) {
        Add-AzrdpItem -Run $Run -Step $Step -Item ([ordered]@{ t = 'certnew'; tp = [string]$fresh.Thumbprint })
    }
}

function Repair-AzrdpListener {
    param($Run, $Step, $D)
    $rdp = $D.rdp
    if ($rdp.deny -eq 1) { Set-AzrdpRegDword -Run $Run -Step $Step -Path $RegTS -Name 'fDenyTSConnections' -Value 0 }
    if ($rdp.tse -eq 0) { Set-AzrdpRegDword -Run $Run -Step $Step -Path $RegTS -Name 'TSEnabled' -Value 1 }
    if ($rdp.ws -eq 0) { Set-AzrdpRegDword -Run $Run -Step $Step -Path $RegRdpTcp -Name 'fEnableWinStation' -Value 1 }
    $logons = ($rdp.ld -eq 1 -or ($null -ne $rdp.tsu -and $rdp.tsu -ne 0) -or ((Test-AzrdpDrained -Rdp $rdp) -and $rdp.tsm -ne 1))
    if ($rdp.ld -eq 1) { Set-AzrdpRegDword -Run $Run -Step $Step -Path $RegRdpTcp -Name 'fLogonDisabled' -Value 0 }
    if ($null -ne $rdp.tsu -and $rdp.tsu -ne 0) { Set-AzrdpRegDword -Run $Run -Step $Step -Path $RegTS -Name 'TSUserEnabled' -Value 0 }
    if ($rdp.tsm -ne 1) {
        if ($null -ne $rdp.drn -and $rdp.drn -ne 0) { Set-AzrdpRegDword -Run $Run -Step $Step -Path $RegTS -Name 'TSServerDrainMode' -Value 0 }
        if ($rdp.wsd -eq 1) { Set-AzrdpRegDword -Run $Run -Step $Step -Path $RegWinlogon -Name 'WinStationsDisabled' -Value '0' -Type 'String' }
    }
    $port = 3389
    if ($null -ne $rdp.port) { $port = [int]$rdp.port }
    # TermService reads the logon switches when it starts (the plan says sessions are disconnected).
    if ($logons -or $null -eq (Get-NetTCPConnection -State Listen -LocalPort $port -ErrorAction SilentlyContinue)) {
        Restart-AzrdpRdpServices -Names @('TermService')
    }
}

function Backup-AzrdpFirewallRule {
    param($Run, $Step, [string]$Name, [bool]$Created)
    $item = [ordered]@{ t = 'fw'; n = $Name; created = $Created; en = $null; act = $null; lp = $null }
    if (-not $Created) {
        $rule = Get-NetFirewallRule -Name $Name
        $item.en = [string]$rule.Enabled
        $item.act = [string]$rule.Action
        $item.lp = (@(($rule | Get-NetFirewallPortFilter).LocalPort) -join ',')
    }
    Add-AzrdpItem -Run $Run -Step $Step -Item $item
}

function Repair-AzrdpPort {
    param($Run, $Step, $D, $Trigger, [int]$TargetPort)
    Set-AzrdpRegDword -Run $Run -Step $Step -Path $RegRdpTcp -Name 'PortNumber' -Value $TargetPort
    foreach ($change in $Trigger.changes) {
        if ($change.target -eq 'RemoteDesktop-UserMode-In-TCP LocalPort') {
            Backup-AzrdpFirewallRule -Run $Run -Step $Step -Name 'RemoteDesktop-UserMode-In-TCP' -Created $false
            Set-NetFirewallRule -Name 'RemoteDesktop-UserMode-In-TCP' -LocalPort $TargetPort
        }
    }
    Restart-AzrdpRdpServices -Names @('TermService')
}

function Repair-AzrdpFirewall {
    param($Run, $Step, $D, $Trigger)
    $port = 3389
    if ($null -ne $D.rdp -and $null -ne $D.rdp.port) { $port = [int]$D.rdp.port }
    $backedUp = @{}
    foreach ($change in $Trigger.changes) {
        $target = [string]$change.target
        if ($target -like 'profile * AllowInboundRules') {
            $name = $target.Split(' ')[1]
            $profile = Get-NetFirewallProfile -Name $name -PolicyStore PersistentStore
            Add-AzrdpItem -Run $Run -Step $Step -Item ([ordered]@{ t = 'fwp'; n = $name; inb = [string]$profile.AllowInboundRules })
            Set-NetFirewallProfile -Name $name -AllowInboundRules True
        }
        elseif ($target -like 'profile * DoNotAllowExceptions') {
            $name = $target.Split(' ')[1]
            Remove-AzrdpRegValue -Run $Run -Step $Step -Path $RegFirewallProfile[$name] -Name 'DoNotAllowExceptions'
        }
        elseif ($change.after -eq 'created') {
            Backup-AzrdpFirewallRule -Run $Run -Step $Step -Name $target -Created $true
            New-NetFirewallRule -Name $target -DisplayName $target -Direction Inbound -Protocol TCP -LocalPort $port -Action Allow -Service 'TermService' -Profile Any | Out-Null
        }
        else {
            $name = $target.Split(' ')[0]
            if (-not $backedUp.ContainsKey($name)) {
                Backup-AzrdpFirewallRule -Run $Run -Step $Step -Name $name -Created $false
                $backedUp[$name] = $true
            }
            if ($target -like '* action') { Set-NetFirewallRule -Name $name -Action Allow }
            elseif ($target -like '* LocalPort') { Set-NetFirewallRule -Name $name -LocalPort $port }
            else { Enable-NetFirewallRule -Name $name }
        }
    }
}

function Repair-AzrdpTls {
    param($Run, $Step, $D)
    $path = $RegTls['t12']
    if ($D.tls.t12.e -eq 0) { Set-AzrdpRegDword -Run $Run -Step $Step -Path $path -Name 'Enabled' -Value 1 }
    if ($D.tls.t12.d -eq 1) { Set-AzrdpRegDword -Run $Run -Step $Step -Path $path -Name 'DisabledByDefault' -Value 0 }
    if ($D.tls.fn -eq 0) { Remove-AzrdpRegValue -Run $Run -Step $Step -Path $RegCipherPolicy -Name 'Functions' }
}

function Repair-AzrdpSecurity {
    param($Run, $Step, $Trigger)
    $values = @{ SecurityLayer = $true; MinEncryptionLevel = $true; fAllowSecProtocolNegotiation = $true; UserAuthentication = $true }
    foreach ($change in $Trigger.changes) {
        $name = [string]$change.target
        if (-not $values.ContainsKey($name)) { continue }
        # Only ever raises: the trigger compares with the current value first.
        if ([int]$change.after -le [int]$change.before) { throw ('Refusing to lower ' + $name) }
        Set-AzrdpRegDword -Run $Run -Step $Step -Path $RegRdpTcp -Name $name -Value ([int]$change.after)
    }
    Restart-AzrdpRdpServices -Names @('TermService')
}

function Invoke-AzrdpRepairStep {
    param($Run, [string]$Id, $D, $K, $Trigger, [datetime]$Now, [int]$TargetPort)
    $step = [ordered]@{ id = $Id; s = 'applying'; items = New-Object 'System.Collections.Generic.List[object]'; e = $null }
    $Run.manifest.steps.Add($step)
    Save-AzrdpManifest -Run $Run
    try {
        switch ($Id) {
            'rdp-services' { Repair-AzrdpServices -Run $Run -Step $step -D $D -K $K }
            'machinekeys-acl' { Repair-AzrdpMachineKeys -Run $Run -Step $step -D $D -K $K -Trigger $Trigger }
            'rdp-cert-renew' { Repair-AzrdpCertificate -Run $Run -Step $step -D $D -K $K -Now $Now }
            'tls12-server' { Repair-AzrdpTls -Run $Run -Step $step -D $D }
            'rdp-listener' { Repair-AzrdpListener -Run $Run -Step $step -D $D }
            'rdp-port' { Repair-AzrdpPort -Run $Run -Step $step -D $D -Trigger $Trigger -TargetPort $TargetPort }
            'firewall-rdp-rule' { Repair-AzrdpFirewall -Run $Run -Step $step -D $D -Trigger $Trigger }
            'rdp-security-restore' { Repair-AzrdpSecurity -Run $Run -Step $step -Trigger $Trigger }
        }
        $step.s = 'applied'
    }
    catch {
        $step.e = Limit-Text -Value $_.Exception.Message -Limit $Limits.message
        # Put back what this step had changed: the guest is repaired or as it was, never half-changed.
        $failed = Restore-AzrdpItems -Items $step.items
        if ($failed -eq 0) { $step.s = 'rolledBack' } else { $step.s = 'failed' }
    }
    Save-AzrdpManifest -Run $Run
    return $step
}

function ConvertTo-AzrdpChangeText {
    param($Change, $K)
    $before = 'absent'
    $after = 'absent'
    if ($null -ne $Change.before) { $before = [string]$Change.before }
    if ($null -ne $Change.after) { $after = [string]$Change.after }
    # 'to', not an arrow: Limit-Text respells '>' (the 5.1 JSON writer would make it six bytes).
    return (Limit-Text -Value ($Change.target + ': ' + $before + ' to ' + $after) -Limit $K.ChangeText)
}

function Split-AzrdpIdList {
    param([string]$Text)
    $list = New-Object 'System.Collections.Generic.List[string]'
    # Dot-separated: Run Command passes values unquoted, and a comma would make an array of them.
    foreach ($part in ([string]$Text).Split('.')) { if ($part.Trim() -ne '') { $list.Add($part.Trim()) } }
    return , $list
}

function Invoke-AzrdpRepair {
    # Mode repair: diagnose, apply the triggered repairs (or only plan them with -DryRun), diagnose
    # again. Returns @{ d = diagnosis after; r = what was done }.
    param([string]$RunId, [string]$Only, [string]$Skip, [bool]$DryRun, [int]$ExpectedPort)
    # Invoke-AzrdpRepairMode validated every parameter.
    $K = Get-AzrdpRepairConstants
    $onlyIds = Split-AzrdpIdList -Text $Only
    $skipIds = Split-AzrdpIdList -Text $Skip
    $before = Get-AzrdpDiagnosis -ExpectedPort $ExpectedPort
    $now = (Get-Date).ToUniversalTime()
    $run = @{
        dir = Join-Path -Path $K.BackupRoot -ChildPath $RunId
        manifest = [ordered]@{ v = 1; id = $RunId; t = Format-UtcTime -Value (Get-Date); state = 'applying'; steps = New-Object 'System.Collections.Generic.List[object]' }
    }
    if ((-not $DryRun) -and (Test-Path -LiteralPath $run.dir)) { throw ('Run ' + $RunId + ' already exists in this guest.') }
    $selected = New-Object 'System.Collections.Generic.List[string]'
    foreach ($id in $K.Order) {
        if ($skipIds -contains $id) { continue }
        if ($onlyIds.Count -gt 0 -and $onlyIds -notcontains $id) { continue }
        $selected.Add($id)
    }
    $results = New-Object 'System.Collections.Generic.List[object]'
    $prepared = $false
    foreach ($id in $selected) {
        $trigger = Get-AzrdpTrigger -Id $id -D $before -Now $now -K $K -TargetPort $ExpectedPort
        if ($null -eq $trigger.refused -and $trigger.changes.Count -eq 0) { continue }
        $text = New-Object 'System.Collections.Generic.List[string]'
        foreach ($change in $trigger.changes) {
            if ($text.Count -lt $K.ChangesPerStep) { $text.Add((ConvertTo-AzrdpChangeText -Change $change -K $K)) }
        }
        $entry = [ordered]@{ id = $id; s = 'planned'; ch = $text; e = $null; rb = ($K.RebootRequired -contains $id) }
        if ($null -ne $trigger.refused) {
            $entry.s = 'refused'
            $entry.e = Limit-Text -Value $trigger.refused -Limit $Limits.message
        }
        elseif ($id -eq 'rdp-security-restore') {
            # Raising the security layer while the certificate, key or TLS is broken locks clients out.
            foreach ($prerequisite in $K.SecurityPrerequisites) {
                $needed = Get-AzrdpTrigger -Id $prerequisite -D $before -Now $now -K $K -TargetPort $ExpectedPort
                $ran = $false
                foreach ($done in $results) { if ($done.id -eq $prerequisite -and $done.s -eq 'applied') { $ran = $true } }
                if (($needed.changes.Count -gt 0 -or $null -ne $needed.refused) -and -not $ran -and -not $DryRun) {
                    $entry.s = 'refused'
                    $entry.e = 'Fix the certificate, key or TLS first.'
                }
            }
        }
        if ($entry.s -eq 'planned' -and -not $DryRun) {
            if (-not $prepared) {
                Initialize-AzrdpBackupDir -Run $run -K $K
                $prepared = $true
            }
            $step = Invoke-AzrdpRepairStep -Run $run -Id $id -D $before -K $K -Trigger $trigger -Now $now -TargetPort $ExpectedPort
            $entry.s = $step.s
            $entry.e = $step.e
        }
        $results.Add($entry)
    }
    $dir = $null
    if ($prepared) {
        $run.manifest.state = 'applied'
        Save-AzrdpManifest -Run $run
        $dir = $run.dir
        $atBoot = $false
        foreach ($done in $results) { if ($done.s -eq 'applied' -and $K.RebootRequired -contains $done.id) { $atBoot = $true } }
        if ($atBoot) { Set-AzrdpPendingReboot -RunId $RunId -Add $true }
    }
    $after = $before
    if ($prepared) { $after = Get-AzrdpDiagnosis -ExpectedPort $ExpectedPort }
    # Only the sections that changed: two whole diagnoses would not fit the output budget.
    $delta = [ordered]@{}
    foreach ($key in @($before.Keys)) {
        $old = ConvertTo-Json -InputObject $before[$key] -Depth 8 -Compress
        $new = ConvertTo-Json -InputObject $after[$key] -Depth 8 -Compress
        if ($old -eq $new) { continue }
        if ($before[$key] -is [System.Collections.IDictionary] -and $after[$key] -is [System.Collections.IDictionary]) {
            # Object sections: only the keys that changed.
            $part = [ordered]@{}
            foreach ($name in @($before[$key].Keys)) {
                $oldValue = ConvertTo-Json -InputObject $before[$key][$name] -Depth 8 -Compress
                $newValue = ConvertTo-Json -InputObject $after[$key][$name] -Depth 8 -Compress
                if ($oldValue -ne $newValue) { $part[$name] = $before[$key][$name] }
            }
            $delta[$key] = $part
        }
        else { $delta[$key] = $before[$key] }
    }
    return @{ b = $delta; d = $after; r = [ordered]@{ id = $RunId; dir = $dir; dry = $DryRun; st = $results } }
}

function Invoke-AzrdpUndo {
    # Mode undo: restore every backed-up item of a run, newest first. Undoing twice changes nothing.
    param([string]$RunId, [int]$ExpectedPort)
    $K = Get-AzrdpRepairConstants
    $dir = Join-Path -Path $K.BackupRoot -ChildPath $RunId
    $manifest = $null
    if (Test-AzrdpBackupRoot -K $K -Create $false) { $manifest = Read-AzrdpManifest -Dir $dir }
    if ($null -eq $manifest) { throw ('No backup of run ' + $RunId + ' in this guest.') }
    $results = New-Object 'System.Collections.Generic.List[object]'
    if ($manifest.state -ne 'undone') {
        $steps = @($manifest.steps)
        for ($i = $steps.Count - 1; $i -ge 0; $i--) {
            $step = $steps[$i]
            if ($step.s -ne 'applied') { continue }
            $failed = Restore-AzrdpItems -Items $step.items
            $status = 'restored'
            if ($failed -gt 0) { $status = 'failed' }
            $step.s = 'undone'
            $results.Add([ordered]@{ id = [string]$step.id; s = $status; ch = @(); e = $null; rb = (@($K.RebootRequired) -contains [string]$step.id) })
        }
        $manifest.state = 'undone'
        Write-AzrdpManifest -Dir $dir -Manifest $manifest
        Set-AzrdpPendingReboot -RunId $RunId -Add $false
        # The listener reads the restored settings; this disconnects RDP sessions (docs/repair.md).
        if ($results.Count -gt 0) { Restart-AzrdpRdpServices -Names @('TermService') }
    }
    $after = Get-AzrdpDiagnosis -ExpectedPort $ExpectedPort
    return @{ d = $after; r = [ordered]@{ id = $RunId; dir = $dir; dry = $false; st = $results } }
}

function Get-AzrdpHistory {
    # Mode history: the runs whose manifests are in this guest, newest first (at most 10).
    $K = Get-AzrdpRepairConstants
    $runs = New-Object 'System.Collections.Generic.List[object]'
    if (-not (Test-AzrdpBackupRoot -K $K -Create $false)) { return , $runs }
    $dirs = @(Get-ChildItem -LiteralPath $K.BackupRoot -Directory | Sort-Object -Property CreationTimeUtc -Descending)
    foreach ($dir in $dirs) {
        if ($runs.Count -ge 10) { break }
        $manifest = Read-AzrdpManifest -Dir $dir.FullName
        if ($null -eq $manifest) { continue }
        $ids = New-Object 'System.Collections.Generic.List[string]'
        foreach ($step in @($manifest.steps)) { $ids.Add(([string]$step.id) + ':' + ([string]$step.s)) }
        $runs.Add([ordered]@{ id = [string]$manifest.id; t = [string]$manifest.t; state = [string]$manifest.state; st = $ids })
    }
    return , $runs
}

function Compress-AzrdpRepairReport {
    # The marker line must fit the Run Command output limit: drop the change texts first (azrdp can
    # recompute them from the diagnosis before), then that diagnosis before.
    param($Report)
    $K = Get-AzrdpRepairConstants
    if ($null -eq $Report.r) { return }
    if ((ConvertTo-Json -InputObject $Report -Depth 8 -Compress).Length -le $K.Budget) { return }
    foreach ($entry in @($Report.r.st)) { $entry.ch = @() }
    if ((ConvertTo-Json -InputObject $Report -Depth 8 -Compress).Length -le $K.Budget) { return }
    $Report.b = $null
}

function Invoke-AzrdpRepairMode {
    # Entry point for -Mode repair, undo and history, called from azrdp.ps1's dispatch when these
    # functions were included. Fills $Report (d = diagnosis after, b = what changed, r = outcome).
    param($Report, [string]$Mode, [string]$RdpPort, [string]$RunId, [string]$Only, [string]$Skip, [string]$DryRun)
    $K = Get-AzrdpRepairConstants
    $portNumber = 0
    if (-not [int]::TryParse($RdpPort, [ref]$portNumber) -or $portNumber -lt 1 -or $portNumber -gt 65535) {
        $Report.ec = 'parameter'
        $Report.e = 'RdpPort must be a TCP port from 1 to 65535.'
        return
    }
    if ($Mode -ne 'history' -and $RunId -cnotmatch '^[0-9a-f]{12}$') {
        $Report.ec = 'parameter'
        $Report.e = 'RunId must be 12 lower-case hex characters.'
        return
    }
    foreach ($id in (Split-AzrdpIdList -Text ($Only + '.' + $Skip))) {
        if ($K.Order -notcontains $id) {
            $Report.ec = 'parameter'
            $Report.e = Limit-Text -Value ('Unknown repair id ' + $id) -Limit $Limits.message
            return
        }
    }
    if ($DryRun -ne '0' -and $DryRun -ne '1') {
        $Report.ec = 'parameter'
        $Report.e = 'DryRun must be 0 or 1.'
        return
    }
    if ($Mode -eq 'repair') {
        $outcome = Invoke-AzrdpRepair -RunId $RunId -Only $Only -Skip $Skip -DryRun ($DryRun -eq '1') -ExpectedPort $portNumber
        $Report.d = $outcome.d
        $Report.b = $outcome.b
        $Report.r = $outcome.r
    }
    elseif ($Mode -eq 'undo') {
        $outcome = Invoke-AzrdpUndo -RunId $RunId -ExpectedPort $portNumber
        $Report.d = $outcome.d
        $Report.r = $outcome.r
    }
    else {
        $Report.d = Get-AzrdpDiagnosis -ExpectedPort $portNumber
        $Report.r = [ordered]@{ id = $null; dir = $K.BackupRoot; dry = $false; st = @(); h = (Get-AzrdpHistory) }
    }
    Compress-AzrdpRepairReport -Report $Report
}
