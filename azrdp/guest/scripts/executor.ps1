# azrdp's executor: functions only, placed into collector.ps1 by azrdp (modes execute, records,
# history). It runs a plan azrdp made in Python: primitive operations, each validated against the
# allow-lists below, each with a precondition. For every operation it checks the precondition
# (and refuses the step when the state moved), records what it found in the run's folder before
# changing anything, applies, and records what it reads back. When an operation fails or is
# refused it runs the step's rollback list (inverse operations azrdp built) for what it applied,
# and stops. Every wait is bounded, a pending service is never touched, the whole run has a
# deadline, and one run at a time holds the guest lock. It decides nothing about what is broken.

$ExecutorVersion = 1
$OpKinds = @('reg.set', 'reg.del', 'acl', 'key.ren', 'cert.rm', 'cert.put', 'svc.cfg', 'svc.ctl', 'fw.set', 'fw.new', 'fw.del', 'fw.prof', 'wait.cert', 'wait.lsn')
$RegWritable = @{
    ts = @('fDenyTSConnections', 'TSEnabled', 'TSUserEnabled', 'TSServerDrainMode')
    rdptcp = @('fEnableWinStation', 'fLogonDisabled', 'PortNumber', 'SecurityLayer', 'UserAuthentication', 'MinEncryptionLevel', 'fAllowSecProtocolNegotiation', 'SSLCertificateSHA1Hash')
    winlogon = @('WinStationsDisabled')
    tls12 = @('Enabled', 'DisabledByDefault')
    cipher = @('Functions')
    fwdom = @('DoNotAllowExceptions')
    fwstd = @('DoNotAllowExceptions')
    fwpub = @('DoNotAllowExceptions')
}
# Never the guest agent: Run Command needs it.
$ServicesAllowed = @('TermService', 'UmRdpService', 'SessionEnv', 'KeyIso', 'CertPropSvc', 'CryptSvc', 'MpsSvc', 'BFE')
$ProfilesAllowed = @('Domain', 'Private', 'Public')
$StartModes = @('', 'Automatic', 'Manual', 'Disabled')
$ServiceActions = @('start', 'stop', 'restart')
$KeyFilePattern = '^[0-9a-f]{32}_[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}(\.azrdp-[0-9a-f]{12}(-new)?)?$'
$CustomRulePattern = '^azrdp-RDP-[0-9]{1,5}$'
# Only SYSTEM and Administrators, inherited by the run folders.
$BackupSddl = 'D:PAI(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)'
$RollbackGrace = 120
$LockMargin = 120
# The longest a lock can be held: the longest deadline azrdp sends, the rollback grace, the margin.
$LockLongest = 600 + $RollbackGrace + $LockMargin

function Invoke-AzrdpNative {
    # Native tools never throw; under 'Stop' their StdErr would. Returns the exit code.
    param([string]$Exe, [string[]]$Arguments)
    $ErrorActionPreference = 'Continue'
    $null = & $Exe @Arguments 2>&1
    return $LASTEXITCODE
}

function Write-AzrdpJson {
    # UTF-8 through a temporary file, so a reader never sees half a record.
    param([string]$Path, $Value)
    $temporary = $Path + '.tmp'
    [System.IO.File]::WriteAllText($temporary, (ConvertTo-Json -InputObject $Value -Depth 8 -Compress), (New-Object System.Text.UTF8Encoding $false))
    if ([System.IO.File]::Exists($Path)) { [System.IO.File]::Delete($Path) }
    [System.IO.File]::Move($temporary, $Path)
}

function Read-AzrdpJson {
    param([string]$Path)
    return ConvertFrom-Json -InputObject ([System.IO.File]::ReadAllText($Path))
}

function Initialize-AzrdpRoot {
    # Anyone may create folders and junctions under C:\ProgramData, and SYSTEM acts on what the
    # records there say: a folder is used only when it is a real folder SYSTEM or Administrators
    # own, and it is kept private (DACL only: the owner and the audit settings stay).
    param([bool]$Create)
    foreach ($folder in @($AzrdpRoot, $BackupRoot)) {
        if (-not (Test-Path -LiteralPath $folder)) {
            if (-not $Create) { return $false }
            $null = New-Item -ItemType Directory -Path $folder -Force
        }
        if (((Get-Item -LiteralPath $folder -Force).Attributes -band [System.IO.FileAttributes]::ReparsePoint) -ne 0) {
            throw ($folder + ' is a junction or link, not a folder; azrdp will not use it.')
        }
        $owner = [System.IO.Directory]::GetAccessControl($folder, 'Owner').GetOwner([System.Security.Principal.SecurityIdentifier]).Value
        if (@('S-1-5-18', 'S-1-5-32-544') -notcontains $owner) {
            throw ($folder + ' is owned by ' + $owner + ', not SYSTEM or Administrators; azrdp will not use it.')
        }
        $security = New-Object System.Security.AccessControl.DirectorySecurity
        $security.SetSecurityDescriptorSddlForm($BackupSddl, [System.Security.AccessControl.AccessControlSections]::Access)
        [System.IO.Directory]::SetAccessControl($folder, $security)
    }
    return $true
}

function Enter-AzrdpLock {
    # One run at a time: the lock names the run holding it and until when.
    param([string]$Run, [int]$Seconds)
    if ([System.IO.File]::Exists($LockFile)) {
        # A lock that does not read (torn: the run was killed, or the VM lost power, while writing
        # it) holds for the longest a lock can last from when it was written, never forever.
        $holder = 'an unreadable lock'
        $until = [System.IO.File]::GetLastWriteTimeUtc($LockFile).AddSeconds($LockLongest)
        try {
            $lock = Read-AzrdpJson -Path $LockFile
            $expires = [datetime]::Parse([string]$lock.exp, $Invariant, [System.Globalization.DateTimeStyles]'AssumeUniversal, AdjustToUniversal')
            $holder = 'run ' + [string]$lock.run
            $until = $expires
        }
        catch { $holder = 'an unreadable lock' }
        if ($holder -cne ('run ' + $Run) -and $until -gt (Get-Date).ToUniversalTime()) {
            throw ('locked: ' + $holder + ' holds the guest lock until ' + (Format-AzrdpTime -Value $until) + '.')
        }
        [System.IO.File]::Delete($LockFile)
    }
    $text = ConvertTo-Json -InputObject ([ordered]@{ run = $Run; exp = Format-AzrdpTime -Value ((Get-Date).AddSeconds($Seconds)) }) -Compress
    # CreateNew: if another run took the lock in between, this one fails instead of sharing it.
    $stream = [System.IO.File]::Open($LockFile, [System.IO.FileMode]::CreateNew, [System.IO.FileAccess]::Write, [System.IO.FileShare]::None)
    try {
        $bytes = [System.Text.Encoding]::UTF8.GetBytes($text)
        $stream.Write($bytes, 0, $bytes.Length)
    }
    finally { $stream.Close() }
}

function Exit-AzrdpLock {
    # Never throws: the run's result matters more than the lock, which expires anyway.
    param([string]$Run)
    try { if ([System.IO.File]::Exists($LockFile) -and [string](Read-AzrdpJson -Path $LockFile).run -eq $Run) { [System.IO.File]::Delete($LockFile) } }
    catch { $null = $_ }
}

function ConvertFrom-AzrdpToken {
    # The Plan parameter: gzip + base64url without padding (what a command line passes unharmed).
    param([string]$Token)
    $text = $Token.Replace('-', '+').Replace('_', '/')
    $text += '=' * ((4 - $text.Length % 4) % 4)
    $compressed = New-Object System.IO.MemoryStream(, [System.Convert]::FromBase64String($text))
    $gzip = New-Object System.IO.Compression.GZipStream($compressed, [System.IO.Compression.CompressionMode]::Decompress)
    $reader = New-Object System.IO.StreamReader($gzip, [System.Text.Encoding]::UTF8)
    try { return ConvertFrom-Json -InputObject $reader.ReadToEnd() }
    finally { $reader.Close() }
}

function Assert-AzrdpAllowed {
    # Every operation, forward or rollback, is checked against the allow-lists before anything runs:
    # its kind first (each branch below only narrows it), then every field that names a target or
    # steers what the primitive does, compared case-sensitively as azrdp.guest.plan does.
    param($Op)
    $kind = [string]$Op.k
    $ok = $OpKinds -ccontains $kind
    if (-not $ok) { $ok = $false }
    elseif ($kind -like 'reg.*') { $ok = @($RegWritable.Keys) -ccontains [string]$Op.key -and $RegWritable[[string]$Op.key] -ccontains [string]$Op.n }
    elseif ($kind -eq 'svc.cfg') { $ok = $ServicesAllowed -ccontains [string]$Op.n -and $StartModes -ccontains [string]$Op.sm }
    elseif ($kind -eq 'svc.ctl') { $ok = $ServicesAllowed -ccontains [string]$Op.n -and $ServiceActions -ccontains [string]$Op.a }
    elseif ($kind -eq 'fw.set') { $ok = ($RdpRules -ccontains [string]$Op.n -or [string]$Op.n -cmatch $CustomRulePattern) -and @('', 'True', 'False') -ccontains [string]$Op.en -and @('', 'Allow', 'Block') -ccontains [string]$Op.act -and [string]$Op.lp -cmatch '^[A-Za-z0-9,-]*$' }
    elseif ($kind -eq 'fw.new' -or $kind -eq 'fw.del') { $ok = [string]$Op.n -ceq ($CustomRulePrefix + [string]$Op.p) -and [string]$Op.n -cmatch $CustomRulePattern }
    elseif ($kind -eq 'fw.prof') { $ok = $ProfilesAllowed -ccontains [string]$Op.n -and @('True', 'False', 'NotConfigured') -ccontains [string]$Op.inb }
    elseif ($kind -eq 'acl') { $ok = (@('mk', 'rds', 'rdc') -ccontains [string]$Op.o -and [int]$Op.tk -eq 0) -or [string]$Op.o -cmatch ('^(key|cng):' + $KeyFilePattern.Substring(1)) }
    elseif ($kind -eq 'key.ren') { $ok = [string]$Op.n -cmatch $KeyFilePattern -and [string]$Op.to -cmatch $KeyFilePattern }
    elseif ($kind -eq 'cert.rm') { $ok = [string]$Op.s -ceq 'rd' -and [string]$Op.tp -cmatch '^([0-9A-F]{40}|@)$' }
    elseif ($kind -eq 'cert.put') { $ok = [string]$Op.s -ceq 'rd' -and [string]$Op.tp -cmatch '^[0-9A-F]{40}$' -and [string]$Op.sr -cmatch '^([0-9a-f]{12})?$' }
    elseif ($kind -eq 'wait.lsn') { $ok = [string]$Op.p -cmatch '^[1-9][0-9]{0,4}$' }
    if (-not $ok) { throw ('plan: operation ' + $kind + ' is outside the allow-list.') }
}

function Confirm-AzrdpPrior {
    # Records what the op found and writes it down before anything changes; refuses when the
    # precondition does not hold (the state moved since azrdp read it).
    param($Record, $Now, $Op, [string]$Dir)
    $Record.p = $Now
    Save-AzrdpRecord -Record $Record -Dir $Dir
    if ([int]$Op.chk -eq 1) {
        $found = ConvertTo-Json -InputObject $Now -Depth 4 -Compress
        $expected = ConvertTo-Json -InputObject $Op.x -Depth 4 -Compress
        if ($found -cne $expected) { throw ('refused: ' + [string]$Op.k + ' found ' + $found + ', expected ' + $expected) }
    }
}

function Save-AzrdpRecord {
    param($Record, [string]$Dir)
    if ([int]$Record.i -ge 0) { Write-AzrdpJson -Path (Join-Path -Path $Dir -ChildPath ('op-' + $Record.i + '.json')) -Value $Record }
}

function Get-AzrdpRegState {
    # [kind, data] of a value or $null; Binary as hex. Returned whole (unary comma).
    param([string]$Path, [string]$Name)
    $key = Get-Item -LiteralPath $Path -ErrorAction SilentlyContinue
    if ($null -eq $key) { return $null }
    $data = $key.GetValue($Name, $null, 'DoNotExpandEnvironmentNames')
    if ($null -eq $data -and @($key.GetValueNames()) -notcontains $Name) { return $null }
    $kind = [string]$key.GetValueKind($Name)
    # As the collector reads it: bytes as hex, a kind .NET cannot read as its type Unknown.
    if ($data -is [byte[]]) { $data = [System.BitConverter]::ToString([byte[]]$data).Replace('-', '') }
    if ($null -eq $data) { $data = '' }
    if ($data -is [string] -and @('String', 'ExpandString', 'Binary') -notcontains $kind) { $kind = 'Unknown' }
    return , @($kind, $data)
}

function Invoke-AzrdpRegOp {
    param($Op, $Record, [string]$Dir)
    $path = $RegKeys[[string]$Op.key]
    $subKey = $path.Substring(6)
    $now = Get-AzrdpRegState -Path $path -Name $Op.n
    Confirm-AzrdpPrior -Record $Record -Now $now -Op $Op -Dir $Dir
    if ([string]$Op.k -eq 'reg.set') {
        $kind = [string]$Op.v[0]
        $value = $Op.v[1]
        if ($kind -eq 'DWord') { $value = [int]$value }
        elseif ($kind -eq 'QWord') { $value = [long]$value }
        elseif ($kind -eq 'MultiString') { $value = [string[]]@($Op.v[1]) }
        elseif ($kind -eq 'Binary') {
            $hex = [string]$Op.v[1]
            $value = New-Object byte[] ($hex.Length / 2)
            for ($i = 0; $i -lt $value.Length; $i++) { $value[$i] = [System.Convert]::ToByte($hex.Substring(2 * $i, 2), 16) }
        }
        elseif ($kind -eq 'String' -or $kind -eq 'ExpandString') { $value = [string]$value }
        else { throw ('A registry value of kind ' + $kind + ' cannot be written.') }
        $key = [Microsoft.Win32.Registry]::LocalMachine.CreateSubKey($subKey)
        try { $key.SetValue([string]$Op.n, $value, [Microsoft.Win32.RegistryValueKind]$kind) } finally { $key.Close() }
    }
    else {
        $key = [Microsoft.Win32.Registry]::LocalMachine.OpenSubKey($subKey, $true)
        if ($null -ne $key) {
            try {
                if ($null -ne $now) { $key.DeleteValue([string]$Op.n) }
                $empty = $key.ValueCount -eq 0 -and $key.SubKeyCount -eq 0
            }
            finally { $key.Close() }
            # Only a key this plan's own set created (the undo of that set asks for it).
            if ([int]$Op.dk -eq 1 -and $empty) { [Microsoft.Win32.Registry]::LocalMachine.DeleteSubKey($subKey) }
        }
    }
    $Record.a = Get-AzrdpRegState -Path $path -Name $Op.n
}

function Resolve-AzrdpAclTarget {
    param([string]$Id)
    if ($Id -eq 'mk') { return @{ kind = 'dir'; path = $MachineKeys } }
    if ($Id -eq 'rds') { return @{ kind = 'reg'; path = $RdStoreKey } }
    if ($Id -eq 'rdc') { return @{ kind = 'reg'; path = $RdStoreKey + '\Certificates' } }
    if ($Id -like 'key:*') { return @{ kind = 'file'; path = Join-Path -Path $MachineKeys -ChildPath $Id.Substring(4) } }
    return @{ kind = 'file'; path = Join-Path -Path $CngKeys -ChildPath $Id.Substring(4) }
}

function Invoke-AzrdpAclOp {
    # Owner and DACL to the descriptor azrdp computed from the one it expects (ACEs added, denies
    # for the accounts being granted removed, canonical order): only those sections are written,
    # so a SACL survives. takeown comes only after the descriptor above was recorded.
    param($Op, $Record, [string]$Dir)
    $target = Resolve-AzrdpAclTarget -Id ([string]$Op.o)
    $now = Get-AzrdpSddl -Kind $target.kind -Path $target.path
    Confirm-AzrdpPrior -Record $Record -Now $now -Op $Op -Dir $Dir
    # An owner holds READ_CONTROL and WRITE_DAC implicitly, never WRITE_OWNER ("How AccessCheck
    # Works"): the Owner section is written, and WRITE_OWNER asked for, only when the owner changes
    # here. After takeown SYSTEM already is the owner, so only the DACL is written.
    $sections = [System.Security.AccessControl.AccessControlSections]::Access
    if ([int]$Op.own -eq 1 -and [int]$Op.tk -ne 1) { $sections = $OwnerAndDacl }
    if ([int]$Op.tk -eq 1) {
        # This one file only: no /a (Administrators), no /r (recursion).
        $code = Invoke-AzrdpNative -Exe 'takeown.exe' -Arguments @('/f', $target.path)
        if ($code -ne 0) { throw ('takeown failed with exit code ' + $code) }
    }
    if ($target.kind -eq 'dir') { $security = New-Object System.Security.AccessControl.DirectorySecurity }
    elseif ($target.kind -eq 'file') { $security = New-Object System.Security.AccessControl.FileSecurity }
    else { $security = New-Object System.Security.AccessControl.RegistrySecurity }
    $security.SetSecurityDescriptorSddlForm([string]$Op.to, $sections)
    if ($target.kind -eq 'dir') { [System.IO.Directory]::SetAccessControl($target.path, $security) }
    elseif ($target.kind -eq 'file') { [System.IO.File]::SetAccessControl($target.path, $security) }
    else {
        $rights = [System.Security.AccessControl.RegistryRights]'ChangePermissions, ReadPermissions'
        if ($sections -eq $OwnerAndDacl) { $rights = [System.Security.AccessControl.RegistryRights]'ChangePermissions, ReadPermissions, TakeOwnership' }
        $key = [Microsoft.Win32.Registry]::LocalMachine.OpenSubKey($target.path, [Microsoft.Win32.RegistryKeyPermissionCheck]::ReadWriteSubTree, $rights)
        try { $key.SetAccessControl($security) } finally { $key.Close() }
    }
    $Record.a = Get-AzrdpSddl -Kind $target.kind -Path $target.path
}

function Invoke-AzrdpKeyRenameOp {
    # A key container is moved aside in its folder, never deleted.
    param($Op, $Record, [string]$Dir)
    $from = Join-Path -Path $MachineKeys -ChildPath ([string]$Op.n)
    $to = Join-Path -Path $MachineKeys -ChildPath ([string]$Op.to)
    $now = ([System.IO.File]::Exists($from) -and -not [System.IO.File]::Exists($to))
    # Optional: the container Windows may have created; nothing to move when it is not there.
    $Op.x = $now -or ([int]$Op.opt -eq 1 -and -not [System.IO.File]::Exists($from))
    Confirm-AzrdpPrior -Record $Record -Now $now -Op $Op -Dir $Dir
    if (-not $now) {
        if ([int]$Op.opt -eq 1 -and -not [System.IO.File]::Exists($from)) { return }
        throw ('refused: ' + [string]$Op.n + ' is missing or ' + [string]$Op.to + ' exists')
    }
    [System.IO.File]::Move($from, $to)
    $Record.a = [string]$Op.to
}

function Open-AzrdpStore {
    param([string]$Access)
    $store = New-Object System.Security.Cryptography.X509Certificates.X509Store('Remote Desktop', [System.Security.Cryptography.X509Certificates.StoreLocation]::LocalMachine)
    $store.Open([System.Security.Cryptography.X509Certificates.OpenFlags]$Access)
    return $store
}

function Invoke-AzrdpCertOp {
    # Removal backs up the serialized store entry first (the certificate and its properties, with
    # the link to its key; never the private key itself); the key container stays where it is.
    param($Op, $Record, [string]$Dir)
    $thumbprint = [string]$Op.tp
    $store = Open-AzrdpStore -Access 'ReadWrite'
    try {
        $found = @($store.Certificates.Find([System.Security.Cryptography.X509Certificates.X509FindType]::FindByThumbprint, $thumbprint, $false))
        $now = 'absent'
        if ($found.Count -gt 0) { $now = 'present' }
        $Op.x = 'absent'
        if ([string]$Op.k -eq 'cert.rm') { $Op.x = 'present' }
        Confirm-AzrdpPrior -Record $Record -Now $now -Op $Op -Dir $Dir
        if ([string]$Op.k -eq 'cert.rm') {
            if ($found.Count -gt 0) {
                $backup = [System.Security.Cryptography.X509Certificates.X509ContentType]::SerializedCert
                [System.IO.File]::WriteAllBytes((Join-Path -Path $Dir -ChildPath ('cert-' + $thumbprint + '.sst')), $found[0].Export($backup))
                $store.Remove($found[0])
            }
            $Record.a = 'absent'
        }
        else {
            $source = $Dir
            if ([string]$Op.sr -ne '') { $source = Join-Path -Path $BackupRoot -ChildPath ([string]$Op.sr) }
            $bytes = [System.IO.File]::ReadAllBytes((Join-Path -Path $source -ChildPath ('cert-' + $thumbprint + '.sst')))
            $certificate = New-Object -TypeName System.Security.Cryptography.X509Certificates.X509Certificate2 -ArgumentList (, $bytes)
            if ($certificate.Thumbprint -ne $thumbprint) { throw ('The backup holds ' + $certificate.Thumbprint + ', not ' + $thumbprint) }
            if ($found.Count -eq 0) { $store.Add($certificate) }
            $Record.a = 'present'
        }
    }
    finally { $store.Close() }
}

function Invoke-AzrdpServiceConfigOp {
    param($Op, $Record, [string]$Dir)
    $filter = "Name='" + [string]$Op.n + "'"
    $service = Get-CimInstance -ClassName Win32_Service -Filter $filter
    Confirm-AzrdpPrior -Record $Record -Now ([ordered]@{ sm = [string]$service.StartMode; acct = [string]$service.StartName }) -Op $Op -Dir $Dir
    if ([string]$Op.sm -ne '') {
        $result = Invoke-CimMethod -InputObject $service -MethodName ChangeStartMode -Arguments @{ StartMode = [string]$Op.sm }
        if ($result.ReturnValue -ne 0) { throw ('ChangeStartMode returned ' + $result.ReturnValue) }
    }
    if ([string]$Op.acct -ne '') {
        # Built-in accounts take an empty password (Learn: Win32_Service Change).
        $result = Invoke-CimMethod -InputObject $service -MethodName Change -Arguments @{ StartName = [string]$Op.acct; StartPassword = '' }
        if ($result.ReturnValue -ne 0) { throw ('Change returned ' + $result.ReturnValue) }
    }
    $service = Get-CimInstance -ClassName Win32_Service -Filter $filter
    $Record.a = [ordered]@{ sm = [string]$service.StartMode; acct = [string]$service.StartName }
}

function Get-AzrdpWait {
    # No wait outlives the run's deadline.
    param([int]$Seconds, [datetime]$Deadline)
    $left = ($Deadline - (Get-Date)).TotalSeconds
    return [TimeSpan]::FromSeconds([math]::Max(1, [math]::Min($Seconds, $left)))
}

function Invoke-AzrdpServiceOp {
    # Never the blocking cmdlets (they wait without bound on a pending service): the controller's
    # Start/Stop and WaitForStatus with a timeout. A pending service is refused. The op has one
    # bound (its w, capped by the deadline) and every wait gets what is left of it, so a restart
    # with dependents takes w, not w for each wait. Running dependents (DependentServices lists
    # them in a safe stopping order) are stopped here within that bound: Stop() would otherwise
    # stop them itself and wait 30 s for each (ServiceController.Stop). A restart starts them again.
    param($Op, $Record, [string]$Dir, [datetime]$Deadline)
    $service = Get-Service -Name ([string]$Op.n)
    $now = [string]$service.Status
    $check = $Op.x
    if ([string]$Op.x -eq '') { $Op.x = $now }
    Confirm-AzrdpPrior -Record $Record -Now $now -Op $Op -Dir $Dir
    $Op.x = $check
    if ($now -like '*Pending') { throw ('refused: ' + [string]$Op.n + ' is ' + $now) }
    $until = (Get-Date).Add((Get-AzrdpWait -Seconds ([int]$Op.w) -Deadline $Deadline))
    $dependents = New-Object 'System.Collections.Generic.List[object]'
    if ([string]$Op.a -ne 'start' -and $now -eq 'Running') {
        foreach ($dependent in $service.DependentServices) {
            if ([string]$dependent.Status -ne 'Running') { continue }
            $dependents.Add([string]$dependent.Name)
            $dependent.Stop()
            $wait = Get-AzrdpWait -Seconds ([int]$Op.w) -Deadline $until
            $dependent.WaitForStatus([System.ServiceProcess.ServiceControllerStatus]::Stopped, $wait)
        }
        $service.Stop()
        $wait = Get-AzrdpWait -Seconds ([int]$Op.w) -Deadline $until
        $service.WaitForStatus([System.ServiceProcess.ServiceControllerStatus]::Stopped, $wait)
    }
    if ([string]$Op.a -ne 'stop') {
        $service.Refresh()
        if ([string]$service.Status -ne 'Running') { $service.Start() }
        $wait = Get-AzrdpWait -Seconds ([int]$Op.w) -Deadline $until
        $service.WaitForStatus([System.ServiceProcess.ServiceControllerStatus]::Running, $wait)
        if ([string]$Op.a -eq 'restart') {
            # In start order (the reverse of the stopping order); one Windows started meanwhile is
            # left as it is (Start() on a running service throws).
            $dependents.Reverse()
            foreach ($dependentName in $dependents) {
                $dependent = Get-Service -Name $dependentName
                if ([string]$dependent.Status -ne 'Running') { $dependent.Start() }
                $wait = Get-AzrdpWait -Seconds ([int]$Op.w) -Deadline $until
                $dependent.WaitForStatus([System.ServiceProcess.ServiceControllerStatus]::Running, $wait)
            }
        }
    }
    $service.Refresh()
    $Record.a = [string]$service.Status
}

function Get-AzrdpRuleState {
    param([string]$Name)
    $rule = @(Get-NetFirewallRule -Name $Name -PolicyStore PersistentStore -ErrorAction SilentlyContinue)
    if ($rule.Count -eq 0) { return $null }
    $filter = Get-NetFirewallPortFilter -AssociatedNetFirewallRule $rule[0]
    return [ordered]@{ en = ([string]$rule[0].Enabled -eq 'True'); act = [string]$rule[0].Action; lp = (@($filter.LocalPort) -join ',') }
}

function Invoke-AzrdpFirewallOp {
    # Rules by name in the local (Persistent) store; azrdp creates and deletes only azrdp-RDP-<port>.
    param($Op, $Record, [string]$Dir)
    $name = [string]$Op.n
    $kind = [string]$Op.k
    if ($kind -eq 'fw.prof') {
        $now = [string](Get-NetFirewallProfile -Name $name -PolicyStore PersistentStore).AllowInboundRules
        Confirm-AzrdpPrior -Record $Record -Now $now -Op $Op -Dir $Dir
        Set-NetFirewallProfile -Name $name -PolicyStore PersistentStore -AllowInboundRules ([string]$Op.inb)
        $Record.a = [string](Get-NetFirewallProfile -Name $name -PolicyStore PersistentStore).AllowInboundRules
        return
    }
    $now = Get-AzrdpRuleState -Name $name
    if ($kind -eq 'fw.new') {
        $Op.x = $null
        Confirm-AzrdpPrior -Record $Record -Now $now -Op $Op -Dir $Dir
        $null = New-NetFirewallRule -Name $name -DisplayName $name -Direction Inbound -Protocol TCP -LocalPort ([string]$Op.p) -Action Allow -Service 'TermService' -Profile Any -PolicyStore PersistentStore
    }
    elseif ($kind -eq 'fw.del') {
        $Op.x = [ordered]@{ en = $true; act = 'Allow'; lp = [string]$Op.p }
        Confirm-AzrdpPrior -Record $Record -Now $now -Op $Op -Dir $Dir
        if ($null -ne $now) { Remove-NetFirewallRule -Name $name -PolicyStore PersistentStore }
    }
    else {
        Confirm-AzrdpPrior -Record $Record -Now $now -Op $Op -Dir $Dir
        if ([string]$Op.en -ne '') { Set-NetFirewallRule -Name $name -PolicyStore PersistentStore -Enabled ([string]$Op.en) }
        if ([string]$Op.act -ne '') { Set-NetFirewallRule -Name $name -PolicyStore PersistentStore -Action ([string]$Op.act) }
        if ([string]$Op.lp -ne '') { Set-NetFirewallRule -Name $name -PolicyStore PersistentStore -LocalPort ([string[]]([string]$Op.lp).Split(',')) }
    }
    $Record.a = Get-AzrdpRuleState -Name $name
}

function Invoke-AzrdpWaitOp {
    # Bounded waits: for a certificate Windows creates, or for TermService listening on a port.
    param($Op, $Record, [datetime]$Deadline)
    $until = (Get-Date).Add((Get-AzrdpWait -Seconds ([int]$Op.w) -Deadline $Deadline))
    $found = $null
    while ($null -eq $found) {
        if ([string]$Op.k -eq 'wait.cert') {
            $store = Open-AzrdpStore -Access 'ReadOnly'
            try {
                foreach ($certificate in $store.Certificates) {
                    if (@($Op.ex) -notcontains $certificate.Thumbprint -and $certificate.HasPrivateKey -and $certificate.NotAfter -gt (Get-Date)) { $found = [string]$certificate.Thumbprint }
                }
            }
            finally { $store.Close() }
        }
        else {
            $termService = Get-CimInstance -ClassName Win32_Service -Filter "Name='TermService'"
            foreach ($connection in @(Get-NetTCPConnection -State Listen -LocalPort ([int]$Op.p) -ErrorAction SilentlyContinue)) {
                if ([long]$connection.OwningProcess -eq [long]$termService.ProcessId -and [long]$termService.ProcessId -gt 0) { $found = [long]$connection.OwningProcess }
            }
        }
        if ($null -eq $found) {
            if ((Get-Date) -ge $until) { throw ([string]$Op.k + ': nothing appeared within ' + [int]$Op.w + ' s.') }
            Start-Sleep -Seconds 2
        }
    }
    $Record.a = $found
}

function Invoke-AzrdpOp {
    param($Op, $Record, [string]$Dir, [datetime]$Deadline)
    $kind = [string]$Op.k
    if ($kind -like 'reg.*') { Invoke-AzrdpRegOp -Op $Op -Record $Record -Dir $Dir }
    elseif ($kind -eq 'acl') { Invoke-AzrdpAclOp -Op $Op -Record $Record -Dir $Dir }
    elseif ($kind -eq 'key.ren') { Invoke-AzrdpKeyRenameOp -Op $Op -Record $Record -Dir $Dir }
    elseif ($kind -like 'cert.*') { Invoke-AzrdpCertOp -Op $Op -Record $Record -Dir $Dir }
    elseif ($kind -eq 'svc.cfg') { Invoke-AzrdpServiceConfigOp -Op $Op -Record $Record -Dir $Dir }
    elseif ($kind -eq 'svc.ctl') { Invoke-AzrdpServiceOp -Op $Op -Record $Record -Dir $Dir -Deadline $Deadline }
    elseif ($kind -like 'fw.*') { Invoke-AzrdpFirewallOp -Op $Op -Record $Record -Dir $Dir }
    else { Invoke-AzrdpWaitOp -Op $Op -Record $Record -Deadline $Deadline }
}

function New-AzrdpRecord {
    param($Op, [int]$Step)
    return [ordered]@{ i = [int]$Op.i; g = $Step; op = $Op; s = 'applying'; p = $null; a = $null; e = $null }
}

function Undo-AzrdpStep {
    # The step's rollback list, for the operations it applied; returns how many could not be undone.
    param($Step, $Applied, $Records, [string]$Dir, [datetime]$Deadline)
    $failed = 0
    foreach ($op in @($Step.rb)) {
        if (-not $Applied.Contains([int]$op.of)) { continue }
        if ([string]$op.k -eq 'cert.rm' -and [string]$op.tp -eq '@') { $op.tp = [string]$Records[[int]$op.of].a }
        $record = New-AzrdpRecord -Op $op -Step -1
        try { Invoke-AzrdpOp -Op $op -Record $record -Dir $Dir -Deadline $Deadline }
        catch {
            $failed += 1
            continue
        }
        # Reverted, whether or not its record can still be written (a full disk).
        $Records[[int]$op.of].s = 'rolledBack'
        try { Save-AzrdpRecord -Record $Records[[int]$op.of] -Dir $Dir }
        catch { $null = $_ }
    }
    return $failed
}

function Invoke-AzrdpExecute {
    param($Report, [int]$Port)
    if ($RunId -cnotmatch '^[0-9a-f]{12}$') {
        $Report.ec = 'parameter'
        $Report.e = 'RunId must be 12 lower-case hex characters.'
        return
    }
    try {
        $document = ConvertFrom-AzrdpToken -Token $Plan
        if ([int]$document.v -ne $ExecutorVersion -or [string]$document.run -cne $RunId) { throw 'plan: not a plan of this version for this run' }
        foreach ($step in @($document.steps)) { foreach ($op in @($step.ops) + @($step.rb)) { Assert-AzrdpAllowed -Op $op } }
    }
    catch {
        $Report.ec = 'plan'
        $Report.e = Limit-AzrdpText -Value $_.Exception.Message -Limit $Limits.fatal
        return
    }
    [void](Initialize-AzrdpRoot -Create $true)
    try { Enter-AzrdpLock -Run $RunId -Seconds ([int]$document.dl + $RollbackGrace + $LockMargin) }
    catch {
        $Report.ec = 'locked'
        $Report.e = Limit-AzrdpText -Value $_.Exception.Message -Limit $Limits.fatal
        return
    }
    $dir = Join-Path -Path $BackupRoot -ChildPath $RunId
    $steps = New-Object 'System.Collections.Generic.List[object]'
    $results = New-Object 'System.Collections.Generic.List[object]'
    $state = 'applied'
    $atBoot = $false
    try {
        if (Test-Path -LiteralPath $dir) { throw ('Run ' + $RunId + ' already exists in this guest.') }
        $null = New-Item -ItemType Directory -Path $dir -Force
        $boot = Format-AzrdpTime -Value (Get-CimInstance -ClassName Win32_OperatingSystem).LastBootUpTime
        $run = [ordered]@{ id = $RunId; t = Format-AzrdpTime -Value (Get-Date); boot = $boot; st = 'applying'; rb = $false; u = [string]$document.u; steps = $steps }
        Write-AzrdpJson -Path (Join-Path -Path $dir -ChildPath 'run.json') -Value $run
        $deadline = (Get-Date).AddSeconds([int]$document.dl)
        $records = @{}
        $stepIndex = 0
        foreach ($step in @($document.steps)) {
            $outcome = [ordered]@{ id = [string]$step.id; s = 'applied'; e = $null }
            $steps.Add($outcome)
            if ($state -ne 'applied') {
                $outcome.s = 'notRun'
                continue
            }
            $applied = New-Object 'System.Collections.Generic.List[int]'
            foreach ($op in @($step.ops)) {
                $record = New-AzrdpRecord -Op $op -Step $stepIndex
                $records[[int]$op.i] = $record
                try {
                    if ((Get-Date).AddSeconds([int]$op.w) -gt $deadline) { throw ('refused: the run deadline would pass during ' + [string]$op.k) }
                    Invoke-AzrdpOp -Op $op -Record $record -Dir $dir -Deadline $deadline
                    $record.s = 'applied'
                    $applied.Add([int]$op.i)
                    # A change whose record cannot be written (a full disk, a file held by a scanner)
                    # fails its step, which is rolled back: the guest's records are the undo's source.
                    Save-AzrdpRecord -Record $record -Dir $dir
                }
                catch {
                    $message = $_.Exception.Message
                    $record.s = 'failed'
                    $outcome.s = 'failed'
                    if ($message -like 'refused: *') {
                        $record.s = 'refused'
                        $outcome.s = 'refused'
                        $message = $message.Substring(9)
                    }
                    $record.e = Limit-AzrdpText -Value $message -Limit $Limits.error
                    $outcome.e = $record.e
                }
                if ($record.s -ne 'applied') {
                    try { Save-AzrdpRecord -Record $record -Dir $dir }
                    catch { $null = $_ }
                }
                $results.Add([ordered]@{ i = [int]$op.i; s = $record.s; e = $record.e; p = $record.p; a = $record.a })
                if ($record.s -ne 'applied') { break }
            }
            if ($outcome.s -ne 'applied') {
                $state = 'partial'
                $failed = 0
                if ($applied.Count -gt 0) { $failed = Undo-AzrdpStep -Step $step -Applied $applied -Records $records -Dir $dir -Deadline $deadline.AddSeconds($RollbackGrace) }
                foreach ($result in $results) { if ($applied.Contains([int]$result.i)) { $result.s = $records[[int]$result.i].s } }
                # Nothing of the step is left changed: rolled back (a refusal changed nothing at all).
                if ($failed -eq 0 -and $outcome.s -eq 'failed') { $outcome.s = 'rolledBack' }
                if ($failed -gt 0) {
                    $outcome.s = 'failed'
                    $outcome.e = Limit-AzrdpText -Value ([string]$failed + ' change(s) could not be rolled back: ' + $outcome.e) -Limit $Limits.error
                }
            }
            elseif ([int]$step.b -eq 1) { $atBoot = $true }
            $stepIndex += 1
        }
        # Past the changes nothing may lose the run's result: the records are best effort now.
        try {
            if ($state -eq 'applied' -and [string]$document.u -ne '') {
                $undone = Join-Path -Path (Join-Path -Path $BackupRoot -ChildPath ([string]$document.u)) -ChildPath 'run.json'
                if (Test-Path -LiteralPath $undone) {
                    $old = Read-AzrdpJson -Path $undone
                    $old.st = 'undone'
                    Write-AzrdpJson -Path $undone -Value $old
                }
            }
        }
        catch { $null = $_ }
        $run.st = $state
        $run.rb = $atBoot
        try { Write-AzrdpJson -Path (Join-Path -Path $dir -ChildPath 'run.json') -Value $run }
        catch { $null = $_ }
    }
    finally { Exit-AzrdpLock -Run $RunId }
    $Report.r = [ordered]@{ id = $RunId; st = $state; dir = $dir; steps = $steps; ops = $results; all = $true }
    $Report.f = Get-AzrdpFacts -Port $Port
    # Over the output budget, the per-op values go first (they stay in the guest: mode records).
    if ((ConvertTo-AzrdpLine -Document $Report).Length -gt $OutputBudget) {
        foreach ($result in $results) {
            $result.p = $null
            $result.a = $null
        }
        $Report.r.all = $false
    }
    Limit-AzrdpFacts -Report $Report
    if ((ConvertTo-AzrdpLine -Document $Report).Length -gt $OutputBudget) { $Report.r.ops = @() }
    # The steps' results always come back; facts that still do not fit stay behind (azrdp collects again).
    if ((ConvertTo-AzrdpLine -Document $Report).Length -gt $OutputBudget) { $Report.f = $null }
}

function Get-AzrdpRunFolder {
    param([string]$Run)
    if ($Run -cnotmatch '^[0-9a-f]{12}$') { throw 'RunId must be 12 lower-case hex characters.' }
    if (-not (Initialize-AzrdpRoot -Create $false)) { return $null }
    $dir = Join-Path -Path $BackupRoot -ChildPath $Run
    if (-not (Test-Path -LiteralPath (Join-Path -Path $dir -ChildPath 'run.json'))) { return $null }
    return $dir
}

function Get-AzrdpRecords {
    # Mode records: what one run recorded, for undo when the local journal lacks it. Read-only.
    param($Report)
    $dir = Get-AzrdpRunFolder -Run $RunId
    if ($null -eq $dir) {
        $Report.ec = 'unknown'
        $Report.e = 'No records of run ' + $RunId + ' in this guest.'
        return
    }
    $run = Read-AzrdpJson -Path (Join-Path -Path $dir -ChildPath 'run.json')
    $ops = New-Object 'System.Collections.Generic.List[object]'
    foreach ($file in @(Get-ChildItem -LiteralPath $dir -Filter 'op-*.json' | Sort-Object -Property { [int]($_.BaseName.Substring(3)) })) {
        $ops.Add((Read-AzrdpJson -Path $file.FullName))
    }
    $Report.rec = [ordered]@{ id = [string]$run.id; t = [string]$run.t; boot = [string]$run.boot; st = [string]$run.st; u = [string]$run.u; steps = @($run.steps); ops = $ops; all = $true }
    while ((ConvertTo-AzrdpLine -Document $Report).Length -gt $OutputBudget -and $ops.Count -gt 0) {
        $ops.RemoveAt($ops.Count - 1)
        $Report.rec.all = $false
    }
}

function Get-AzrdpHistory {
    # Mode history: the newest runs kept in this guest, bounded to the output budget. Read-only.
    param($Report)
    $runs = New-Object 'System.Collections.Generic.List[object]'
    if (Initialize-AzrdpRoot -Create $false) {
        foreach ($folder in @(Get-ChildItem -LiteralPath $BackupRoot -Directory | Sort-Object -Property CreationTimeUtc -Descending)) {
            if ($runs.Count -ge 10) { break }
            $file = Join-Path -Path $folder.FullName -ChildPath 'run.json'
            if (-not (Test-Path -LiteralPath $file)) { continue }
            $run = Read-AzrdpJson -Path $file
            $steps = New-Object 'System.Collections.Generic.List[object]'
            foreach ($step in @($run.steps)) { $steps.Add([string]$step.id + ':' + [string]$step.s) }
            $runs.Add([ordered]@{ id = [string]$run.id; t = [string]$run.t; st = [string]$run.st; u = [string]$run.u; s = $steps })
        }
    }
    $Report.h = $runs
    while ((ConvertTo-AzrdpLine -Document $Report).Length -gt $OutputBudget -and $runs.Count -gt 0) { $runs.RemoveAt($runs.Count - 1) }
}

function Invoke-AzrdpMode {
    param($Report, [int]$Port)
    if ($Mode -eq 'execute') { Invoke-AzrdpExecute -Report $Report -Port $Port }
    elseif ($Mode -eq 'records') { Get-AzrdpRecords -Report $Report }
    elseif ($Mode -eq 'history') { Get-AzrdpHistory -Report $Report }
    else {
        $Report.ec = 'parameter'
        $Report.e = 'Mode must be one of: collect, execute, records, history.'
    }
}
