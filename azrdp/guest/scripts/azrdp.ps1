# azrdp-guest-script v1
# The in-guest half of azrdp. Runs as SYSTEM under action Run Command, in Windows PowerShell 5.1.
# Read-only in Mode diagnose. Prints exactly one line, last: AZRDP:<compact JSON>, whose shape is
# defined in azrdp/guest/contract.py and docs/guest-contract.md. Values arrive only as Run Command
# parameters (validated by azrdp before sending, and again here); nothing in this file is templated.
param(
    [string]$Mode = 'diagnose',
    [string]$RdpPort = '3389',
    # Used by the repair functions (repair.ps1) in Mode repair, undo and history.
    [string]$RunId = '',
    [string]$Only = '',
    [string]$Skip = '',
    [string]$DryRun = '0'
)

Set-StrictMode -Version 3.0
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
$WarningPreference = 'SilentlyContinue'
$ConfirmPreference = 'None'

$SchemaVersion = 1
$KnownModes = @('diagnose', 'repair', 'undo')
$ImplementedModes = @('diagnose')

# Output caps keep the marker line under 3,500 bytes on a VM where everything is broken.
$Limits = @{
    text = 23
    account = 28
    sddl = 100
    message = 36
    errors = 3
    certs = 2
    blocks = 1
    fatal = 160
    events = 9999
}

# Every registry path the script reads, written out in full (a test checks them against the
# reference list).
$RegTS = 'HKLM:\SYSTEM\CurrentControlSet\Control\Terminal Server'
$RegRdpTcp = 'HKLM:\SYSTEM\CurrentControlSet\Control\Terminal Server\WinStations\RDP-Tcp'
$RegTSPolicy = 'HKLM:\SOFTWARE\Policies\Microsoft\Windows NT\Terminal Services'
$RegWinlogon = 'HKLM:\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Winlogon'
# MachineGuid names the self-signed listener key file (TSSecKeySet1).
$RegCryptography = 'HKLM:\SOFTWARE\Microsoft\Cryptography'
$RegTls = [ordered]@{
    t10 = 'HKLM:\SYSTEM\CurrentControlSet\Control\SecurityProviders\SCHANNEL\Protocols\TLS 1.0\Server'
    t11 = 'HKLM:\SYSTEM\CurrentControlSet\Control\SecurityProviders\SCHANNEL\Protocols\TLS 1.1\Server'
    t12 = 'HKLM:\SYSTEM\CurrentControlSet\Control\SecurityProviders\SCHANNEL\Protocols\TLS 1.2\Server'
    t13 = 'HKLM:\SYSTEM\CurrentControlSet\Control\SecurityProviders\SCHANNEL\Protocols\TLS 1.3\Server'
}
$RegFips = 'HKLM:\SYSTEM\CurrentControlSet\Control\Lsa\FIPSAlgorithmPolicy'
$RegCredSsp = 'HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\Policies\System\CredSSP\Parameters'
$RegCipherPolicy = 'HKLM:\SOFTWARE\Policies\Microsoft\Cryptography\Configuration\SSL\00010002'
$RegFirewallProfile = @{
    Domain = 'HKLM:\SYSTEM\CurrentControlSet\Services\SharedAccess\Parameters\FirewallPolicy\DomainProfile'
    Private = 'HKLM:\SYSTEM\CurrentControlSet\Services\SharedAccess\Parameters\FirewallPolicy\StandardProfile'
    Public = 'HKLM:\SYSTEM\CurrentControlSet\Services\SharedAccess\Parameters\FirewallPolicy\PublicProfile'
}

$MachineKeysPath = 'C:\ProgramData\Microsoft\Crypto\RSA\MachineKeys'
$CngKeysPath = 'C:\ProgramData\Microsoft\Crypto\Keys'
$SelfSignedKeyPrefix = 'f686aace6942fb7f7ceb231212eef4a4_'
# The built-in rules by name (never the localized display name or group), then the rule azrdp adds
# when it moves RDP to another port: azrdp-RDP-<port>.
$RdpRuleNames = @('RemoteDesktop-UserMode-In-TCP', 'RemoteDesktop-UserMode-In-UDP')
$CustomRulePrefix = 'azrdp-RDP-'
$RdpRuleGroup = '@FirewallAPI.dll,-28752'
$ServiceNames = @('TermService', 'UmRdpService', 'SessionEnv', 'KeyIso', 'CryptSvc', 'CertPropSvc',
    'MpsSvc', 'BFE', 'RdAgent', 'WindowsAzureGuestAgent')
# Well-known SIDs, never localized names: NETWORK SERVICE, Everyone, Authenticated Users.
$KeyReaderSids = @('S-1-5-20', 'S-1-1-0', 'S-1-5-11')
$EventQueries = @(
    @{ Id = 1057; Provider = 'Microsoft-Windows-TerminalServices-RemoteConnectionManager' },
    @{ Id = 1058; Provider = 'Microsoft-Windows-TerminalServices-RemoteConnectionManager' },
    @{ Id = 36870; Provider = 'Schannel' },
    @{ Id = 36871; Provider = 'Schannel' },
    @{ Id = 36872; Provider = 'Schannel' },
    @{ Id = 7022; Provider = 'Service Control Manager' }
)
$Invariant = [System.Globalization.CultureInfo]::InvariantCulture
$TimeFormat = "yyyy'-'MM'-'dd'T'HH':'mm':'ss'Z'"
# Left by a repair that Windows applies only at boot: {boot = LastBootUpTime; runs = run ids}.
$PendingRebootPath = 'C:\ProgramData\azrdp\backups\reboot-pending.json'
# LastBootUpTime moves by the size of a clock correction; a restart moves it by far more.
$SameBootSeconds = 20

function Limit-Text {
    param([object]$Value, [int]$Limit)
    if ($null -eq $Value) { return $null }
    # Free text (messages, names) is printed one byte per character: the 5.1 JSON writer would
    # spell ' < > & as six-byte \u00XX escapes, and non-ASCII depends on the console code page.
    # A backslash is printed as two bytes, so it counts two.
    $text = [regex]::Replace([string]$Value, '[^ -~]', '?').Replace("'", '`').Replace('"', '`').Replace('<', '(').Replace('>', ')').Replace('&', '+')
    if ($text.Length + $text.Split('\').Count - 1 -le $Limit) { return $text }
    $head = New-Object System.Text.StringBuilder
    $width = 0
    foreach ($ch in $text.ToCharArray()) {
        $width += 1 + [int]($ch -eq [char]'\')
        if ($width -gt $Limit - 3) { break }
        [void]$head.Append($ch)
    }
    return $head.ToString() + '...'
}

function Format-UtcTime {
    param([datetime]$Value)
    return $Value.ToUniversalTime().ToString($TimeFormat, $Invariant)
}

function Get-RegValue {
    param([string]$Path, [string]$Name)
    # Absent key or value -> $null; absent is often the healthy state.
    $key = Get-Item -LiteralPath $Path -ErrorAction SilentlyContinue
    if ($null -eq $key) { return $null }
    # The comma keeps a REG_BINARY (byte[]) or REG_MULTI_SZ (string[]) value whole on the way out.
    return , $key.GetValue($Name, $null)
}

function Get-RegInt {
    param([string]$Path, [string]$Name)
    $value = Get-RegValue -Path $Path -Name $Name
    if ($null -eq $value) { return $null }
    $number = 0
    if ([int]::TryParse([string]$value, [ref]$number)) { return $number }
    return $null
}

function ConvertTo-GpoBool {
    param([object]$Value)
    # GpoBoolean: True, False or NotConfigured (-> null).
    $text = [string]$Value
    if ($text -eq 'True') { return $true }
    if ($text -eq 'False') { return $false }
    return $null
}

function Add-SectionError {
    param($Errors, [string]$Section, [string]$Message)
    if (@($Errors).Count -lt $Limits.errors) {
        $Errors.Add([ordered]@{ s = $Section; m = (Limit-Text -Value $Message -Limit $Limits.message) })
    }
}

function Invoke-Section {
    param([string]$Name, $Errors, [scriptblock]$Body)
    # One failing section must not hide the others: it becomes null plus an entry in err.
    try {
        $result = & $Body
        # The comma keeps a list a list on the way out (PowerShell unrolls returned collections).
        return , $result
    }
    catch {
        Add-SectionError -Errors $Errors -Section $Name -Message $_.Exception.Message
        return $null
    }
}

function Get-OsFacts {
    $os = Get-CimInstance -ClassName Win32_OperatingSystem
    $cs = Get-CimInstance -ClassName Win32_ComputerSystem
    return [ordered]@{
        ver = [string]$os.Version
        bld = [int]$os.BuildNumber
        ps = [string]$PSVersionTable.PSVersion
        dom = [bool]$cs.PartOfDomain
    }
}

function Get-RdpFacts {
    param($TsGeneral, $TsSetting)
    $facts = [ordered]@{
        deny = Get-RegInt -Path $RegTS -Name 'fDenyTSConnections'
        denyP = Get-RegInt -Path $RegTSPolicy -Name 'fDenyTSConnections'
        tse = Get-RegInt -Path $RegTS -Name 'TSEnabled'
        tsu = Get-RegInt -Path $RegTS -Name 'TSUserEnabled'
        drn = Get-RegInt -Path $RegTS -Name 'TSServerDrainMode'
        ld = Get-RegInt -Path $RegRdpTcp -Name 'fLogonDisabled'
        # REG_SZ "0" or "1" (remote logons disabled, e.g. by change logon /disable).
        wsd = Get-RegInt -Path $RegWinlogon -Name 'WinStationsDisabled'
        ws = Get-RegInt -Path $RegRdpTcp -Name 'fEnableWinStation'
        port = Get-RegInt -Path $RegRdpTcp -Name 'PortNumber'
        sl = Get-RegInt -Path $RegRdpTcp -Name 'SecurityLayer'
        slP = Get-RegInt -Path $RegTSPolicy -Name 'SecurityLayer'
        ua = Get-RegInt -Path $RegRdpTcp -Name 'UserAuthentication'
        uaP = Get-RegInt -Path $RegTSPolicy -Name 'UserAuthentication'
        mel = Get-RegInt -Path $RegRdpTcp -Name 'MinEncryptionLevel'
        melP = Get-RegInt -Path $RegTSPolicy -Name 'MinEncryptionLevel'
        neg = Get-RegInt -Path $RegRdpTcp -Name 'fAllowSecProtocolNegotiation'
        srcSl = $null
        srcUa = $null
        srcMel = $null
        tsm = $null
    }
    if ($null -ne $TsSetting) {
        # 1 = the Remote Desktop Session Host role: a drain there is usually deliberate.
        $facts.tsm = [int]$TsSetting.TerminalServerMode
    }
    if ($null -ne $TsGeneral) {
        $facts.srcSl = [int]$TsGeneral.PolicySourceSecurityLayer
        $facts.srcUa = [int]$TsGeneral.PolicySourceUserAuthenticationRequired
        $facts.srcMel = [int]$TsGeneral.PolicySourceMinEncryptionLevel
    }
    return $facts
}

function Get-ListenerFacts {
    param([int[]]$Ports)
    $termService = Get-CimInstance -ClassName Win32_Service -Filter "Name='TermService'"
    $tsPid = $null
    if ($null -ne $termService -and [int]$termService.ProcessId -gt 0) { $tsPid = [int]$termService.ProcessId }
    $owners = New-Object 'System.Collections.Generic.List[object]'
    foreach ($port in $Ports) {
        $listening = @(Get-NetTCPConnection -State Listen -LocalPort $port -ErrorAction SilentlyContinue)
        $ownerPid = $null
        $ownerName = $null
        if ($listening.Count -gt 0) {
            # A PID that is not TermService's is the interesting fact, so it wins.
            $chosen = $listening[0]
            foreach ($entry in $listening) {
                if ([int]$entry.OwningProcess -ne $tsPid) { $chosen = $entry; break }
            }
            $ownerPid = [int]$chosen.OwningProcess
            $process = Get-Process -Id $ownerPid -ErrorAction SilentlyContinue
            if ($null -ne $process) { $ownerName = Limit-Text -Value $process.ProcessName -Limit $Limits.text }
        }
        $owners.Add([ordered]@{ p = $port; pid = $ownerPid; pn = $ownerName })
    }
    return [ordered]@{ ts = $tsPid; ports = $owners }
}

function Get-ServiceFacts {
    $filter = ($ServiceNames | ForEach-Object { "Name='" + $_ + "'" }) -join ' OR '
    $found = @{}
    foreach ($service in @(Get-CimInstance -ClassName Win32_Service -Filter $filter)) {
        $found[[string]$service.Name] = $service
    }
    $list = New-Object 'System.Collections.Generic.List[object]'
    foreach ($name in $ServiceNames) {
        if ($found.ContainsKey($name)) {
            $service = $found[$name]
            $list.Add([ordered]@{
                n = $name
                st = [string]$service.State
                sm = [string]$service.StartMode
                acct = Limit-Text -Value $service.StartName -Limit $Limits.account
                ex = [int]$service.ExitCode
            })
        }
        else {
            $list.Add([ordered]@{ n = $name; st = 'NotFound'; sm = $null; acct = $null; ex = $null })
        }
    }
    return , $list
}

function Get-KeyFilePath {
    param($Certificate, [bool]$SelfSigned)
    # Returns @{ path; opens }: where the private key lives and whether it could be opened.
    $result = @{ path = $null; opens = $null }
    if (-not $Certificate.HasPrivateKey) { return $result }
    try {
        $rsa = [System.Security.Cryptography.X509Certificates.RSACertificateExtensions]::GetRSAPrivateKey($Certificate)
        $result.opens = ($null -ne $rsa)
        if ($rsa -is [System.Security.Cryptography.RSACng]) {
            $result.path = Join-Path -Path $CngKeysPath -ChildPath $rsa.Key.UniqueName
        }
        elseif ($rsa -is [System.Security.Cryptography.RSACryptoServiceProvider]) {
            $unique = $rsa.CspKeyContainerInfo.UniqueKeyContainerName
            $result.path = Join-Path -Path $MachineKeysPath -ChildPath $unique
        }
    }
    catch {
        # "Keyset does not exist" and friends: the key is unreadable even for SYSTEM.
        $result.opens = $false
    }
    $guid = [string](Get-RegValue -Path $RegCryptography -Name 'MachineGuid')
    if ($null -eq $result.path -and $SelfSigned -and $guid -ne '') {
        # The key would not open: the self-signed listener key is the CAPI container TSSecKeySet1,
        # whose file name ends with this machine's GUID (never a stale one left by a cloned image).
        # A certificate from another store has its own key, which cannot be located this way.
        $file = Join-Path -Path $MachineKeysPath -ChildPath ($SelfSignedKeyPrefix + $guid)
        if (Test-Path -LiteralPath $file) { $result.path = $file }
    }
    return $result
}

function Get-CertFacts {
    param($TsGeneral)
    $pin = $null
    $pinBytes = Get-RegValue -Path $RegRdpTcp -Name 'SSLCertificateSHA1Hash'
    if ($pinBytes -is [byte[]]) {
        $pin = -join ($pinBytes | ForEach-Object { $_.ToString('X2') })
    }
    $pinType = $null
    if ($null -ne $TsGeneral) { $pinType = [int]$TsGeneral.SSLCertificateSHA1HashType }
    $rdStore = @(Get-ChildItem -LiteralPath 'Cert:\LocalMachine\Remote Desktop' -ErrorAction SilentlyContinue)
    $chosen = New-Object 'System.Collections.Generic.List[object]'
    $pinned = $null
    if ($null -ne $pin) {
        foreach ($cert in $rdStore) {
            if ($cert.Thumbprint -eq $pin) { $pinned = @{ cert = $cert; store = 'RD' } }
        }
        if ($null -eq $pinned) {
            $inMy = Get-Item -LiteralPath ('Cert:\LocalMachine\My\' + $pin) -ErrorAction SilentlyContinue
            if ($null -ne $inMy) { $pinned = @{ cert = $inMy; store = 'My' } }
        }
        if ($null -ne $pinned) { $chosen.Add($pinned) }
    }
    foreach ($cert in @($rdStore | Sort-Object -Property NotAfter -Descending)) {
        if ($chosen.Count -ge $Limits.certs) { break }
        if ($null -ne $pinned -and $cert.Thumbprint -eq $pinned.cert.Thumbprint) { continue }
        $chosen.Add(@{ cert = $cert; store = 'RD' })
    }
    $listener = $null
    if ($null -ne $pinned) { $listener = $pinned.cert }
    elseif ($null -eq $pin -and $rdStore.Count -gt 0) {
        $listener = @($rdStore | Sort-Object -Property NotAfter -Descending)[0]
    }
    $entries = New-Object 'System.Collections.Generic.List[object]'
    $listenerKey = $null
    foreach ($item in $chosen) {
        $key = Get-KeyFilePath -Certificate $item.cert -SelfSigned ($item.store -eq 'RD')
        if ($null -ne $listener -and $item.cert.Thumbprint -eq $listener.Thumbprint) { $listenerKey = $key }
        $entries.Add([ordered]@{
            tp = [string]$item.cert.Thumbprint
            na = Format-UtcTime -Value $item.cert.NotAfter
            pk = [bool]$item.cert.HasPrivateKey
            ko = $key.opens
            s = $item.store
        })
    }
    return @{
        facts = [ordered]@{ pin = $pin; pinT = $pinType; n = $rdStore.Count; certs = $entries }
        key = $listenerKey
    }
}

function Test-KeyReaders {
    param([string]$Path)
    # [IO.File]::GetAccessControl works where Get-Acl fails under a hardened MachineKeys folder.
    $acl = [System.IO.File]::GetAccessControl($Path)
    $rules = $acl.GetAccessRules($true, $true, [System.Security.Principal.SecurityIdentifier])
    $allow = $false
    $deny = $false
    foreach ($rule in $rules) {
        if ($KeyReaderSids -notcontains $rule.IdentityReference.Value) { continue }
        $mask = [int]$rule.FileSystemRights
        # 0x20089 = read data, attributes, extended attributes and permissions; generic read/all count too.
        $reads = (($mask -band 0x20089) -eq 0x20089) -or (($mask -band 0x10000000) -ne 0) -or (($mask -band [int]::MinValue) -ne 0)
        if ([string]$rule.AccessControlType -eq 'Deny' -and (($mask -band 0x20089) -ne 0 -or $reads)) { $deny = $true }
        elseif ([string]$rule.AccessControlType -eq 'Allow' -and $reads) { $allow = $true }
    }
    return @{ readable = ($allow -and -not $deny); denied = $deny }
}

function Get-MachineKeyFacts {
    param($Errors, $ListenerKey)
    $sections = [System.Security.AccessControl.AccessControlSections]'Access, Owner, Group'
    $folder = [System.IO.Directory]::GetAccessControl($MachineKeysPath, $sections)
    $facts = [ordered]@{
        sddl = Limit-Text -Value $folder.GetSecurityDescriptorSddlForm($sections) -Limit $Limits.sddl
        kf = $null
        kns = $null
        kdn = $null
    }
    if ($null -ne $ListenerKey -and $null -ne $ListenerKey.path) {
        $facts.kf = Test-Path -LiteralPath $ListenerKey.path
        if ($facts.kf) {
            try {
                $readers = Test-KeyReaders -Path $ListenerKey.path
                $facts.kns = $readers.readable
                $facts.kdn = $readers.denied
            }
            catch {
                # Even SYSTEM cannot read the key's ACL: keep the folder facts, report the key.
                Add-SectionError -Errors $Errors -Section 'mk.key' -Message $_.Exception.Message
            }
        }
    }
    return $facts
}

function Get-TlsFacts {
    $facts = [ordered]@{}
    foreach ($name in $RegTls.Keys) {
        $facts[$name] = [ordered]@{
            e = Get-RegInt -Path $RegTls[$name] -Name 'Enabled'
            d = Get-RegInt -Path $RegTls[$name] -Name 'DisabledByDefault'
        }
    }
    $facts.fips = Get-RegInt -Path $RegFips -Name 'Enabled'
    $facts.oracle = Get-RegInt -Path $RegCredSsp -Name 'AllowEncryptionOracle'
    $functions = Get-RegValue -Path $RegCipherPolicy -Name 'Functions'
    $facts.fn = $null
    if ($null -ne $functions) {
        $joined = @($functions) -join ','
        $facts.fn = @($joined.Split(',') | Where-Object { $_.Trim() -ne '' }).Count
    }
    return $facts
}

function Test-PortInFilter {
    param([object[]]$LocalPorts, [int]$Port)
    foreach ($item in $LocalPorts) {
        $text = [string]$item
        if ($text -eq 'Any') { return $true }
        foreach ($part in $text.Split(',')) {
            $bounds = $part.Trim().Split('-')
            $low = 0
            $high = 0
            if (-not [int]::TryParse($bounds[0], [ref]$low)) { continue }
            $high = $low
            if ($bounds.Count -gt 1 -and -not [int]::TryParse($bounds[1], [ref]$high)) { continue }
            if ($Port -ge $low -and $Port -le $high) { return $true }
        }
    }
    return $false
}

function Get-FirewallFacts {
    param([int]$Port)
    $rules = New-Object 'System.Collections.Generic.List[object]'
    $custom = $CustomRulePrefix + $Port
    foreach ($name in @($RdpRuleNames) + @($custom)) {
        $rule = @(Get-NetFirewallRule -Name $name -PolicyStore ActiveStore -ErrorAction SilentlyContinue) | Select-Object -First 1
        if ($null -eq $rule) {
            # azrdp's own rule is listed only when it exists (the output budget is tight).
            if ($name -ne $custom) {
                $rules.Add([ordered]@{ n = $name; ex = $false; en = $null; act = $null; prof = $null; lp = $null; grp = $null })
            }
            continue
        }
        $filter = $rule | Get-NetFirewallPortFilter
        $rules.Add([ordered]@{
            n = $name
            ex = $true
            en = ([string]$rule.Enabled -eq 'True')
            act = [string]$rule.Action
            prof = Limit-Text -Value ([string]$rule.Profile) -Limit $Limits.text
            lp = Limit-Text -Value (@($filter.LocalPort) -join ',') -Limit $Limits.text
            grp = ([string]$rule.Group -eq $RdpRuleGroup)
        })
    }
    $blocks = New-Object 'System.Collections.Generic.List[object]'
    $blockRules = @(Get-NetFirewallRule -Direction Inbound -Action Block -Enabled True -PolicyStore ActiveStore -ErrorAction SilentlyContinue)
    foreach ($rule in $blockRules) {
        if ($blocks.Count -ge $Limits.blocks) { break }
        $filter = $rule | Get-NetFirewallPortFilter
        $protocol = [string]$filter.Protocol
        if ($protocol -ne 'TCP' -and $protocol -ne 'Any') { continue }
        if (Test-PortInFilter -LocalPorts @($filter.LocalPort) -Port $Port) {
            $blocks.Add((Limit-Text -Value $rule.Name -Limit $Limits.text))
        }
    }
    $profiles = New-Object 'System.Collections.Generic.List[object]'
    foreach ($fwProfile in @(Get-NetFirewallProfile -PolicyStore ActiveStore)) {
        $profileName = [string]$fwProfile.Name
        $exceptions = $null
        if ($RegFirewallProfile.ContainsKey($profileName)) {
            $exceptions = Get-RegInt -Path $RegFirewallProfile[$profileName] -Name 'DoNotAllowExceptions'
        }
        $profiles.Add([ordered]@{
            n = $profileName
            on = ([string]$fwProfile.Enabled -eq 'True')
            inb = ConvertTo-GpoBool -Value $fwProfile.AllowInboundRules
            lr = ConvertTo-GpoBool -Value $fwProfile.AllowLocalFirewallRules
            dne = $exceptions
        })
    }
    $active = New-Object 'System.Collections.Generic.List[object]'
    foreach ($connection in @(Get-NetConnectionProfile -ErrorAction SilentlyContinue)) {
        $category = [string]$connection.NetworkCategory
        if ($category -eq 'DomainAuthenticated') { $category = 'Domain' }
        if (-not $active.Contains($category)) { $active.Add($category) }
    }
    return [ordered]@{ rules = $rules; blk = $blocks; prof = $profiles; act = $active }
}

function Get-EventFacts {
    $since = (Get-Date).AddDays(-7)
    $counts = [ordered]@{}
    foreach ($query in $EventQueries) {
        $filter = @{ LogName = 'System'; ProviderName = $query.Provider; Id = $query.Id; StartTime = $since }
        $count = 0
        try {
            $count = @(Get-WinEvent -FilterHashtable $filter -MaxEvents $Limits.events).Count
        }
        catch {
            # No matching event (or a provider that never logged) is reported as an error;
            # anything else is a real failure.
            if ($_.FullyQualifiedErrorId -notlike 'NoMatching*') { throw }
        }
        $counts[[string]$query.Id] = $count
    }
    return $counts
}

function Get-DiskFacts {
    $drive = [string]$env:SystemDrive
    $disk = Get-CimInstance -ClassName Win32_LogicalDisk -Filter ("DeviceID='" + $drive + "'")
    return [ordered]@{ drv = $drive; free = [long]$disk.FreeSpace; size = [long]$disk.Size }
}

function Get-BootTime {
    return Format-UtcTime -Value (Get-CimInstance -ClassName Win32_OperatingSystem).LastBootUpTime
}

function Read-PendingReboot {
    # The marker, when SYSTEM or Administrators own it (anyone may write under C:\ProgramData),
    # it names a run and it was written during this boot; $null otherwise.
    $path = $PendingRebootPath
    if (-not (Test-Path -LiteralPath $path)) { return $null }
    $owner = [System.IO.File]::GetAccessControl($path, 'Owner').GetOwner([System.Security.Principal.SecurityIdentifier]).Value
    $marker = [System.IO.File]::ReadAllText($path) | ConvertFrom-Json
    # Both sides in local time: the cast reads the trailing Z and converts, as CIM does for boot time.
    $span = (Get-CimInstance -ClassName Win32_OperatingSystem).LastBootUpTime - [datetime][string]$marker.boot
    if (@('S-1-5-18', 'S-1-5-32-544') -notcontains $owner -or [math]::Abs($span.TotalSeconds) -gt $SameBootSeconds -or @($marker.runs).Count -eq 0) { return $null }
    return $marker
}

function Get-AzrdpDiagnosis {
    # Read-only collection, reusable by later modes (diagnose -> repair -> verify in one run).
    param([int]$ExpectedPort)
    $errors = New-Object 'System.Collections.Generic.List[object]'
    $tsGeneral = Invoke-Section -Name 'rdp.cim' -Errors $errors -Body {
        Get-CimInstance -Namespace 'root\cimv2\TerminalServices' -ClassName Win32_TSGeneralSetting -Filter "TerminalName='RDP-Tcp'"
    }
    $d = [ordered]@{}
    $d.os = Invoke-Section -Name 'os' -Errors $errors -Body { Get-OsFacts }
    $tsSetting = Invoke-Section -Name 'rdp.tss' -Errors $errors -Body {
        Get-CimInstance -Namespace 'root\cimv2\TerminalServices' -ClassName Win32_TerminalServiceSetting
    }
    $d.rdp = Invoke-Section -Name 'rdp' -Errors $errors -Body { Get-RdpFacts -TsGeneral $tsGeneral -TsSetting $tsSetting }
    $listenerPort = $ExpectedPort
    if ($null -ne $d.rdp -and $null -ne $d.rdp.port) { $listenerPort = [int]$d.rdp.port }
    $ports = @($listenerPort)
    if ($ExpectedPort -ne $listenerPort) { $ports += $ExpectedPort }
    $d.lsn = Invoke-Section -Name 'lsn' -Errors $errors -Body { Get-ListenerFacts -Ports $ports }
    $d.svc = Invoke-Section -Name 'svc' -Errors $errors -Body { Get-ServiceFacts }
    $certResult = Invoke-Section -Name 'cert' -Errors $errors -Body { Get-CertFacts -TsGeneral $tsGeneral }
    $listenerKey = $null
    $d.cert = $null
    if ($null -ne $certResult) {
        $d.cert = $certResult.facts
        $listenerKey = $certResult.key
    }
    $d.mk = Invoke-Section -Name 'mk' -Errors $errors -Body { Get-MachineKeyFacts -Errors $errors -ListenerKey $listenerKey }
    $d.tls = Invoke-Section -Name 'tls' -Errors $errors -Body { Get-TlsFacts }
    $d.fw = Invoke-Section -Name 'fw' -Errors $errors -Body { Get-FirewallFacts -Port $listenerPort }
    $d.evt = Invoke-Section -Name 'evt' -Errors $errors -Body { Get-EventFacts }
    $d.disk = Invoke-Section -Name 'disk' -Errors $errors -Body { Get-DiskFacts }
    $d.err = $errors
    $d.rb = Invoke-Section -Name 'rb' -Errors $errors -Body { if ($null -ne (Read-PendingReboot)) { 1 } }
    return $d
}

# azrdp-include: repair.ps1
$report = [ordered]@{
    v = $SchemaVersion
    m = Limit-Text -Value $Mode -Limit $Limits.text
    t = Format-UtcTime -Value (Get-Date)
    d = $null
    e = $null
    ec = $null
}
try {
    $portNumber = 0
    if ($PSVersionTable.PSVersion.Major -lt 5) {
        $report.ec = 'unsupported'
        $report.e = 'Windows PowerShell ' + [string]$PSVersionTable.PSVersion + ' is too old; azrdp needs 5.1.'
    }
    elseif (@('repair', 'undo', 'history') -contains $Mode -and $null -ne (Get-Command -Name 'Invoke-AzrdpRepairMode' -CommandType Function -ErrorAction SilentlyContinue)) {
        # The repair modes, present when azrdp included repair.ps1 at the marker above.
        Invoke-AzrdpRepairMode -Report $report -Mode $Mode -RdpPort $RdpPort -RunId $RunId -Only $Only -Skip $Skip -DryRun $DryRun
    }
    elseif ($KnownModes -notcontains $Mode) {
        $report.ec = 'parameter'
        $report.e = 'Mode must be one of: ' + ($KnownModes -join ', ') + '.'
    }
    elseif ($ImplementedModes -notcontains $Mode) {
        $report.ec = 'mode'
        $report.e = 'Mode ' + $Mode + ' is not implemented by this script version.'
    }
    elseif (-not [int]::TryParse($RdpPort, [ref]$portNumber) -or $portNumber -lt 1 -or $portNumber -gt 65535) {
        $report.ec = 'parameter'
        $report.e = 'RdpPort must be a TCP port from 1 to 65535.'
    }
    else {
        $report.d = Get-AzrdpDiagnosis -ExpectedPort $portNumber
    }
}
catch {
    $report.ec = 'internal'
    $report.e = Limit-Text -Value $_.Exception.Message -Limit $Limits.fatal
}
finally {
    $json = ConvertTo-Json -InputObject $report -Depth 8 -Compress
    Write-Output ('AZRDP:' + $json)
}
