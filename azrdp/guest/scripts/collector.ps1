# azrdp-guest-script v2
# azrdp's collector: reads the facts Remote Desktop depends on and decides nothing. Runs as
# SYSTEM under action Run Command, in Windows PowerShell 5.1. Prints one line, last: AZRDP2: and
# gzip + base64 of compact JSON (schema: azrdp/guest/facts.py and envelope.py; documented in
# docs/guest-contract.md). Values arrive only as Run Command parameters; nothing is templated.
# Each section has its own try/catch: one that fails is null and named in err.
param(
    [string]$Mode = 'collect',
    [string]$RdpPort = '3389',
    # Used by the executor's functions, present when azrdp sends them (modes execute, records, history).
    [string]$RunId = 'none',
    [string]$Plan = 'none'
)

Set-StrictMode -Version 3.0
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
$WarningPreference = 'SilentlyContinue'
$ConfirmPreference = 'None'

$ContractVersion = 2
$Limits = @{
    text = 40
    ports = 200
    error = 80
    fatal = 200
    errors = 4
    certs = 5
    eku = 3
    dependents = 3
    owners = 3
    customRules = 1
    blocks = 3
    sources = 2
    runs = 4
    sddl = 1000
    events = 9999
}
# Over the output budget, facts are trimmed in this order (azrdp/guest/facts.py TRIMS).
$Trims = @('dep', 'src', 'eku', 'runs', 'blk', 'err', 'ksd', 'cert')
$OutputBudget = 3800
$RegKeys = [ordered]@{
    ts = 'HKLM:\SYSTEM\CurrentControlSet\Control\Terminal Server'
    rdptcp = 'HKLM:\SYSTEM\CurrentControlSet\Control\Terminal Server\WinStations\RDP-Tcp'
    tspol = 'HKLM:\SOFTWARE\Policies\Microsoft\Windows NT\Terminal Services'
    winlogon = 'HKLM:\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Winlogon'
    tls10 = 'HKLM:\SYSTEM\CurrentControlSet\Control\SecurityProviders\SCHANNEL\Protocols\TLS 1.0\Server'
    tls11 = 'HKLM:\SYSTEM\CurrentControlSet\Control\SecurityProviders\SCHANNEL\Protocols\TLS 1.1\Server'
    tls12 = 'HKLM:\SYSTEM\CurrentControlSet\Control\SecurityProviders\SCHANNEL\Protocols\TLS 1.2\Server'
    tls13 = 'HKLM:\SYSTEM\CurrentControlSet\Control\SecurityProviders\SCHANNEL\Protocols\TLS 1.3\Server'
    fips = 'HKLM:\SYSTEM\CurrentControlSet\Control\Lsa\FIPSAlgorithmPolicy'
    credssp = 'HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\Policies\System\CredSSP\Parameters'
    cipher = 'HKLM:\SOFTWARE\Policies\Microsoft\Cryptography\Configuration\SSL\00010002'
    fwdom = 'HKLM:\SYSTEM\CurrentControlSet\Services\SharedAccess\Parameters\FirewallPolicy\DomainProfile'
    fwstd = 'HKLM:\SYSTEM\CurrentControlSet\Services\SharedAccess\Parameters\FirewallPolicy\StandardProfile'
    fwpub = 'HKLM:\SYSTEM\CurrentControlSet\Services\SharedAccess\Parameters\FirewallPolicy\PublicProfile'
}
$RegReads = @{
    ts = @('fDenyTSConnections', 'TSEnabled', 'TSUserEnabled', 'TSServerDrainMode')
    rdptcp = @('fEnableWinStation', 'fLogonDisabled', 'PortNumber', 'SecurityLayer', 'UserAuthentication', 'MinEncryptionLevel', 'fAllowSecProtocolNegotiation', 'SSLCertificateSHA1Hash')
    tspol = @('fDenyTSConnections', 'SecurityLayer', 'UserAuthentication', 'MinEncryptionLevel')
    winlogon = @('WinStationsDisabled')
    tls10 = @('Enabled', 'DisabledByDefault')
    tls11 = @('Enabled', 'DisabledByDefault')
    tls12 = @('Enabled', 'DisabledByDefault')
    tls13 = @('Enabled', 'DisabledByDefault')
    fips = @('Enabled')
    credssp = @('AllowEncryptionOracle')
    cipher = @('Functions')
    fwdom = @('DoNotAllowExceptions')
    fwstd = @('DoNotAllowExceptions')
    fwpub = @('DoNotAllowExceptions')
}
$ServiceNames = @('TermService', 'UmRdpService', 'SessionEnv', 'KeyIso', 'CryptSvc', 'CertPropSvc', 'MpsSvc', 'BFE', 'RdAgent', 'WindowsAzureGuestAgent')
# System log events by provider; SCM events name the service (their first insertion string).
$EventQueries = @(
    @{ p = 'Microsoft-Windows-TerminalServices-RemoteConnectionManager'; ids = @(1057, 1058); named = $false },
    @{ p = 'Schannel'; ids = @(36870, 36871, 36872); named = $false },
    @{ p = 'Service Control Manager'; ids = @(7000, 7001, 7022, 7023, 7031); named = $true }
)
# The built-in rules by name (never the localized display name or group), then azrdp's own.
$RdpRules = @('RemoteDesktop-UserMode-In-TCP', 'RemoteDesktop-UserMode-In-UDP')
$CustomRulePrefix = 'azrdp-RDP-'
$MachineKeys = 'C:\ProgramData\Microsoft\Crypto\RSA\MachineKeys'
$CngKeys = 'C:\ProgramData\Microsoft\Crypto\Keys'
$RdStoreKey = 'SOFTWARE\Microsoft\SystemCertificates\Remote Desktop'
$AzrdpRoot = 'C:\ProgramData\azrdp'
$BackupRoot = 'C:\ProgramData\azrdp\backups'
$LockFile = 'C:\ProgramData\azrdp\lock.json'
$OwnerAndDacl = [System.Security.AccessControl.AccessControlSections]'Owner, Access'
$Invariant = [System.Globalization.CultureInfo]::InvariantCulture

function Limit-AzrdpText {
    param([object]$Value, [int]$Limit = 40)
    if ($null -eq $Value) { return $null }
    $text = [string]$Value
    if ($text.Length -le $Limit) { return $text }
    return $text.Substring(0, $Limit - 3) + '...'
}

function Format-AzrdpTime {
    param([datetime]$Value)
    return $Value.ToUniversalTime().ToString("yyyy'-'MM'-'dd'T'HH':'mm':'ss'Z'", $Invariant)
}

function Add-AzrdpError {
    param([System.Collections.Generic.List[object]]$List, [string]$Section, [string]$Message)
    if ($List.Count -lt $Limits.errors) { $List.Add(@($Section, (Limit-AzrdpText -Value $Message -Limit $Limits.error))) }
}

function Invoke-AzrdpSection {
    # One failing section must not hide the others. Sections write into the facts; none emits output.
    param([string]$SectionName, [scriptblock]$SectionBody, $ErrorList)
    try { $null = & $SectionBody }
    catch { Add-AzrdpError -List $ErrorList -Section $SectionName -Message $_.Exception.Message }
}

function Get-AzrdpSddl {
    # Owner and DACL only, never the SACL. [IO.File] works where Get-Acl fails under a hardened
    # MachineKeys folder (measured). A descriptor too long to report whole is an error, never cut.
    param([string]$Kind, [string]$Path)
    if ($Kind -eq 'dir') { $security = [System.IO.Directory]::GetAccessControl($Path, $OwnerAndDacl) }
    elseif ($Kind -eq 'file') { $security = [System.IO.File]::GetAccessControl($Path, $OwnerAndDacl) }
    else {
        $key = [Microsoft.Win32.Registry]::LocalMachine.OpenSubKey($Path, [Microsoft.Win32.RegistryKeyPermissionCheck]::Default, [System.Security.AccessControl.RegistryRights]::ReadPermissions)
        if ($null -eq $key) { return $null }
        try { $security = $key.GetAccessControl($OwnerAndDacl) } finally { $key.Close() }
    }
    $text = $security.GetSecurityDescriptorSddlForm($OwnerAndDacl)
    if ($text.Length -gt $Limits.sddl) { throw ('The security descriptor of ' + $Path + ' is longer than ' + $Limits.sddl + ' characters.') }
    return $text
}

function Read-AzrdpWideString {
    param([byte[]]$Bytes, [int]$At)
    $end = $At
    while ($end + 1 -lt $Bytes.Length -and ($Bytes[$end] -ne 0 -or $Bytes[$end + 1] -ne 0)) { $end += 2 }
    return [System.Text.Encoding]::Unicode.GetString($Bytes, $At, $end - $At)
}

function Get-AzrdpKeyFacts {
    # Where the private key lives, from the certificate's key-provider info (property 2 of its
    # serialized store entry), never by opening it first: on .NET 4.6+ GetRSAPrivateKey() turns a
    # CAPI key into RSACng and points at the wrong folder (dotnet/corefx#3502).
    param([string]$StoreName, [string]$Thumbprint, [string]$Guid)
    $k = [ordered]@{ pt = $null; c = $null; pn = $null; f = $null; x = $null; sd = $null; o = $null; e = $null }
    $folder = $MachineKeys
    $spec = 1
    try {
        $entry = Get-Item -LiteralPath ('HKLM:\SOFTWARE\Microsoft\SystemCertificates\' + $StoreName + '\Certificates\' + $Thumbprint)
        $blob = [byte[]]$entry.GetValue('Blob')
        # Records of {property id, 1, size, data}; CRYPT_KEY_PROV_INFO keeps offsets from its start.
        $at = 0
        while ($at + 12 -le $blob.Length) {
            $size = [int][System.BitConverter]::ToUInt32($blob, $at + 8)
            if ([System.BitConverter]::ToUInt32($blob, $at) -eq 2) {
                $base = $at + 12
                $k.pt = [int][System.BitConverter]::ToUInt32($blob, $base + 8)
                $spec = [int][System.BitConverter]::ToUInt32($blob, $base + 24)
                $offset = [int][System.BitConverter]::ToUInt32($blob, $base)
                if ($offset -gt 0) { $k.c = Read-AzrdpWideString -Bytes $blob -At ($base + $offset) }
                $offset = [int][System.BitConverter]::ToUInt32($blob, $base + 4)
                if ($offset -gt 0) { $k.pn = Read-AzrdpWideString -Bytes $blob -At ($base + $offset) }
            }
            $at += 12 + $size
        }
        if ($null -ne $k.c -and $k.pt -ne 0) {
            # CAPI names the file after the MD5 of the lower-case container name and its NUL, as four
            # little-endian words, then the MachineGuid (TSSecKeySet1: f686aace..., the reference).
            # Under the FIPS policy .NET before 4.8 refuses MD5 (Learn: retargeting changes for 4.8;
            # Server 2016 ships 4.6.2): the key's own unique name, read below when SYSTEM opens it,
            # names the file then.
            try {
                $hash = [System.Security.Cryptography.MD5]::Create().ComputeHash([System.Text.Encoding]::ASCII.GetBytes($k.c.ToLowerInvariant() + [char]0))
                $name = ''
                foreach ($i in 0, 4, 8, 12) { $name += [System.BitConverter]::ToUInt32($hash, $i).ToString('x8') }
                $k.f = $name + '_' + $Guid
            }
            catch { $k.f = $null }
        }
        elseif ($null -ne $k.c) {
            $folder = $CngKeys
            $provider = New-Object System.Security.Cryptography.CngProvider([string]$k.pn)
            $cng = [System.Security.Cryptography.CngKey]::Open($k.c, $provider, [System.Security.Cryptography.CngKeyOpenOptions]::MachineKey)
            $k.f = [string]$cng.UniqueName
            $cng.Dispose()
        }
    }
    catch { $k.e = Limit-AzrdpText -Value $_.Exception.Message -Limit $Limits.error }
    if ($null -ne $k.c -and $k.pt -ne 0) {
        # SYSTEM opens the key: proves the container is intact. The HRESULT when it cannot.
        try {
            $csp = New-Object System.Security.Cryptography.CspParameters($k.pt, $k.pn, $k.c)
            $csp.Flags = [System.Security.Cryptography.CspProviderFlags]'UseMachineKeyStore, UseExistingKey'
            $csp.KeyNumber = $spec
            $rsa = New-Object System.Security.Cryptography.RSACryptoServiceProvider($csp)
            try { if ($null -eq $k.f) { $k.f = [string]$rsa.CspKeyContainerInfo.UniqueKeyContainerName } }
            finally { $rsa.Dispose() }
            $k.o = 0
        }
        catch {
            $inner = $_.Exception
            while ($null -ne $inner.InnerException) { $inner = $inner.InnerException }
            $k.o = $inner.HResult
        }
    }
    elseif ($null -ne $k.f) { $k.o = 0 }
    if ($null -ne $k.f) {
        $path = Join-Path -Path $folder -ChildPath $k.f
        $k.x = Test-Path -LiteralPath $path
        if ($k.x) {
            try { $k.sd = Get-AzrdpSddl -Kind 'file' -Path $path }
            catch { $k.e = Limit-AzrdpText -Value $_.Exception.Message -Limit $Limits.error }
        }
    }
    # Cut for the output only now: the key was opened with the full names (a provider name such as
    # 'Microsoft Enhanced RSA and AES Cryptographic Provider' is longer than the text limit).
    $k.c = Limit-AzrdpText -Value $k.c
    $k.pn = Limit-AzrdpText -Value $k.pn
    return $k
}

function Get-AzrdpRule {
    # One rule with the filters that decide whom it lets in (or blocks), from $Filters: every filter
    # of the ActiveStore by the InstanceID it shares with its rule. A rule missing there is asked
    # for alone.
    param($Rule, $Filters)
    $id = [string]$Rule.InstanceID
    $port = $Filters.port[$id]
    if ($null -eq $port) { $port = Get-NetFirewallPortFilter -AssociatedNetFirewallRule $Rule }
    $address = $Filters.address[$id]
    if ($null -eq $address) { $address = Get-NetFirewallAddressFilter -AssociatedNetFirewallRule $Rule }
    $program = $Filters.program[$id]
    if ($null -eq $program) { $program = Get-NetFirewallApplicationFilter -AssociatedNetFirewallRule $Rule }
    $service = $Filters.service[$id]
    if ($null -eq $service) { $service = Get-NetFirewallServiceFilter -AssociatedNetFirewallRule $Rule }
    return [ordered]@{
        n = Limit-AzrdpText -Value $Rule.Name
        en = ([string]$Rule.Enabled -eq 'True')
        dir = [string]$Rule.Direction
        act = [string]$Rule.Action
        pr = [string]$port.Protocol
        lp = Limit-AzrdpText -Value (@($port.LocalPort) -join ',') -Limit $Limits.ports
        ra = Limit-AzrdpText -Value (@($address.RemoteAddress) -join ',')
        prg = Limit-AzrdpText -Value ([string]$program.Program)
        svc = Limit-AzrdpText -Value ([string]$service.Service)
        prof = Limit-AzrdpText -Value ([string]$Rule.Profile)
        grp = Limit-AzrdpText -Value ([string]$Rule.Group)
        src = [string]$Rule.PolicyStoreSourceType
    }
}

function ConvertTo-AzrdpBool {
    param($Value)
    # GpoBoolean: True, False or NotConfigured (null).
    $text = [string]$Value
    if ($text -eq 'True') { return $true }
    if ($text -eq 'False') { return $false }
    return $null
}

function Get-AzrdpFacts {
    # Read-only. Also ends every executor run, so the facts after travel with its result.
    param([int]$Port)
    $errs = New-Object 'System.Collections.Generic.List[object]'
    $f = [ordered]@{ os = $null; reg = $null; regk = @(); ts = $null; svc = $null; lsn = $null; cert = $null; mk = $null; fw = $null; evt = $null; disk = $null; azr = $null; err = $errs; cut = (New-Object 'System.Collections.Generic.List[object]') }
    # Sections run in child scopes: what they share goes through this table, never a plain variable.
    $ctx = @{ port = $Port; pin = '' }
    Invoke-AzrdpSection -SectionName 'os' -ErrorList $errs -SectionBody {
        $os = Get-CimInstance -ClassName Win32_OperatingSystem
        $cs = Get-CimInstance -ClassName Win32_ComputerSystem
        $version = [System.Diagnostics.FileVersionInfo]::GetVersionInfo([System.Environment]::SystemDirectory + '\tspkg.dll')
        $f.os = [ordered]@{
            ver = [string]$os.Version
            bld = [int]$os.BuildNumber
            ps = [string]$PSVersionTable.PSVersion
            dom = [bool]$cs.PartOfDomain
            boot = Format-AzrdpTime -Value $os.LastBootUpTime
            guid = [string](Get-Item -LiteralPath 'HKLM:\SOFTWARE\Microsoft\Cryptography').GetValue('MachineGuid')
            tspkg = [string]$version.FileMajorPart + '.' + $version.FileMinorPart + '.' + $version.FileBuildPart + '.' + $version.FilePrivatePart
        }
    }
    Invoke-AzrdpSection -SectionName 'reg' -ErrorList $errs -SectionBody {
        $entries = New-Object 'System.Collections.Generic.List[object]'
        $present = New-Object 'System.Collections.Generic.List[object]'
        foreach ($alias in $RegKeys.Keys) {
            $key = Get-Item -LiteralPath $RegKeys[$alias] -ErrorAction SilentlyContinue
            if ($null -eq $key) { continue }
            $present.Add($alias)
            foreach ($valueName in $RegReads[$alias]) {
                $data = $key.GetValue($valueName, $null, 'DoNotExpandEnvironmentNames')
                if ($null -eq $data -and @($key.GetValueNames()) -notcontains $valueName) { continue }
                $kind = [string]$key.GetValueKind($valueName)
                # Bytes become hex here, inline (a function returning the array would enumerate it). .NET
                # reads REG_NONE (kind Unknown), REG_DWORD_BIG_ENDIAN and an oversized REG_DWORD/QWORD as
                # bytes, and a REG_LINK or REG_RESOURCE_LIST as nothing (RegistryKey.InternalGetValue):
                # all of them are kind Unknown, hex or empty.
                if ($data -is [byte[]]) { $data = [System.BitConverter]::ToString([byte[]]$data).Replace('-', '') }
                if ($null -eq $data) { $data = '' }
                if ($data -is [string] -and @('String', 'ExpandString', 'Binary') -notcontains $kind) { $kind = 'Unknown' }
                $entries.Add(@($alias, $valueName, $kind, $data))
                if ($alias -eq 'rdptcp' -and $valueName -eq 'PortNumber' -and $kind -eq 'DWord' -and $data -ge 1 -and $data -le 65535) { $ctx.port = [int]$data }
                if ($alias -eq 'rdptcp' -and $valueName -eq 'SSLCertificateSHA1Hash' -and $kind -eq 'Binary') { $ctx.pin = [string]$data }
            }
        }
        $f.reg = $entries
        $f.regk = $present
    }
    Invoke-AzrdpSection -SectionName 'ts' -ErrorList $errs -SectionBody {
        $general = Get-CimInstance -Namespace 'root\cimv2\TerminalServices' -ClassName Win32_TSGeneralSetting -Filter "TerminalName='RDP-Tcp'"
        $setting = Get-CimInstance -Namespace 'root\cimv2\TerminalServices' -ClassName Win32_TerminalServiceSetting
        $f.ts = [ordered]@{
            psl = [int]$general.PolicySourceSecurityLayer
            pua = [int]$general.PolicySourceUserAuthenticationRequired
            pmel = [int]$general.PolicySourceMinEncryptionLevel
            h = [string]$general.SSLCertificateSHA1Hash
            ht = [int]$general.SSLCertificateSHA1HashType
            tsm = [int]$setting.TerminalServerMode
        }
    }
    Invoke-AzrdpSection -SectionName 'svc' -ErrorList $errs -SectionBody {
        $filter = ($ServiceNames | ForEach-Object { "Name='" + $_ + "'" }) -join ' OR '
        $found = @{}
        foreach ($service in @(Get-CimInstance -ClassName Win32_Service -Filter $filter)) { $found[[string]$service.Name] = $service }
        $list = New-Object 'System.Collections.Generic.List[object]'
        foreach ($serviceName in $ServiceNames) {
            $entry = [ordered]@{ n = $serviceName; dn = $null; st = 'NotFound'; sm = $null; dl = $null; acct = $null; ex = $null; pid = $null; dep = @() }
            if ($found.ContainsKey($serviceName)) {
                $service = $found[$serviceName]
                $dependents = New-Object 'System.Collections.Generic.List[object]'
                foreach ($dependent in (Get-Service -Name $serviceName).DependentServices) {
                    if ($dependents.Count -lt $Limits.dependents) { $dependents.Add([string]$dependent.Name) }
                }
                $entry.dn = Limit-AzrdpText -Value $service.DisplayName
                $entry.st = [string]$service.State
                $entry.sm = [string]$service.StartMode
                $entry.dl = [bool]$service.DelayedAutoStart
                $entry.acct = Limit-AzrdpText -Value $service.StartName
                $entry.ex = [long]$service.ExitCode
                $entry.pid = [long]$service.ProcessId
                $entry.dep = $dependents
            }
            $list.Add($entry)
        }
        $f.svc = $list
    }
    Invoke-AzrdpSection -SectionName 'lsn' -ErrorList $errs -SectionBody {
        $owners = New-Object 'System.Collections.Generic.List[object]'
        $ports = @($ctx.port)
        if ($Port -ne $ctx.port) { $ports += $Port }
        foreach ($p in $ports) {
            $seen = @{}
            foreach ($connection in @(Get-NetTCPConnection -State Listen -LocalPort $p -ErrorAction SilentlyContinue)) {
                $owner = [int]$connection.OwningProcess
                if ($seen.ContainsKey($owner) -or $seen.Count -ge $Limits.owners) { continue }
                $seen[$owner] = $true
                $process = Get-Process -Id $owner -ErrorAction SilentlyContinue
                $processName = $null
                if ($null -ne $process) { $processName = Limit-AzrdpText -Value $process.ProcessName }
                $owners.Add(@($p, $owner, $processName))
            }
        }
        $f.lsn = $owners
    }
    Invoke-AzrdpSection -SectionName 'cert' -ErrorList $errs -SectionBody {
        $guid = [string](Get-Item -LiteralPath 'HKLM:\SOFTWARE\Microsoft\Cryptography').GetValue('MachineGuid')
        $inUse = ''
        if ($null -ne $f.ts) { $inUse = [string]$f.ts.h }
        $rd = @(Get-ChildItem -LiteralPath 'Cert:\LocalMachine\Remote Desktop' -ErrorAction SilentlyContinue)
        $my = @(Get-ChildItem -LiteralPath 'Cert:\LocalMachine\My' -ErrorAction SilentlyContinue)
        # Capped by rule: the certificate in use, the pinned one, then the Remote Desktop store, newest first.
        $picked = @{}
        $chosen = New-Object 'System.Collections.Generic.List[object]'
        foreach ($wanted in @($inUse, $ctx.pin)) {
            if ($wanted -eq '' -or $picked.ContainsKey($wanted)) { continue }
            $store = 'rd'
            $hit = @($rd | Where-Object { $_.Thumbprint -eq $wanted })
            if ($hit.Count -eq 0) {
                $store = 'my'
                $hit = @($my | Where-Object { $_.Thumbprint -eq $wanted })
            }
            if ($hit.Count -gt 0) {
                $chosen.Add(@($store, $hit[0]))
                $picked[$wanted] = $true
            }
        }
        foreach ($certificate in @($rd | Sort-Object -Property NotAfter -Descending)) {
            if ($chosen.Count -ge $Limits.certs) { break }
            if ($picked.ContainsKey($certificate.Thumbprint)) { continue }
            $chosen.Add(@('rd', $certificate))
            $picked[$certificate.Thumbprint] = $true
        }
        $list = New-Object 'System.Collections.Generic.List[object]'
        foreach ($item in $chosen) {
            $certificate = $item[1]
            $usages = New-Object 'System.Collections.Generic.List[object]'
            foreach ($extension in $certificate.Extensions) {
                if ($extension -is [System.Security.Cryptography.X509Certificates.X509EnhancedKeyUsageExtension]) {
                    foreach ($usage in $extension.EnhancedKeyUsages) { if ($usages.Count -lt $Limits.eku) { $usages.Add([string]$usage.Value) } }
                }
            }
            $key = $null
            $storeName = 'Remote Desktop'
            if ($item[0] -eq 'my') { $storeName = 'My' }
            if ($certificate.HasPrivateKey) { $key = Get-AzrdpKeyFacts -StoreName $storeName -Thumbprint $certificate.Thumbprint -Guid $guid }
            $list.Add([ordered]@{
                s = $item[0]
                tp = [string]$certificate.Thumbprint
                nb = Format-AzrdpTime -Value $certificate.NotBefore
                na = Format-AzrdpTime -Value $certificate.NotAfter
                sub = Limit-AzrdpText -Value $certificate.Subject
                iss = Limit-AzrdpText -Value $certificate.Issuer
                eku = $usages
                pk = [bool]$certificate.HasPrivateKey
                k = $key
            })
        }
        $f.cert = [ordered]@{
            nrd = $rd.Count
            nmy = $my.Count
            l = $list
            rds = Get-AzrdpSddl -Kind 'reg' -Path $RdStoreKey
            rdc = Get-AzrdpSddl -Kind 'reg' -Path ($RdStoreKey + '\Certificates')
        }
    }
    Invoke-AzrdpSection -SectionName 'mk' -ErrorList $errs -SectionBody {
        $f.mk = [ordered]@{ sd = Get-AzrdpSddl -Kind 'dir' -Path $MachineKeys }
    }
    Invoke-AzrdpSection -SectionName 'fw' -ErrorList $errs -SectionBody {
        $profiles = New-Object 'System.Collections.Generic.List[object]'
        foreach ($active in @(Get-NetFirewallProfile -PolicyStore ActiveStore)) {
            $local = Get-NetFirewallProfile -Name $active.Name -PolicyStore PersistentStore
            $profiles.Add([ordered]@{
                n = [string]$active.Name
                on = ([string]$active.Enabled -eq 'True')
                inb = ConvertTo-AzrdpBool -Value $active.AllowInboundRules
                lr = ConvertTo-AzrdpBool -Value $active.AllowLocalFirewallRules
                inbl = [string]$local.AllowInboundRules
            })
        }
        $categories = New-Object 'System.Collections.Generic.List[object]'
        foreach ($connection in @(Get-NetConnectionProfile -ErrorAction SilentlyContinue)) {
            $category = [string]$connection.NetworkCategory
            if ($category -eq 'DomainAuthenticated') { $category = 'Domain' }
            if (-not $categories.Contains($category)) { $categories.Add($category) }
        }
        # A firewall query costs about as much as the machine has rules, however few it asks for
        # (public measurements: tens of seconds each with ~1,000 rules): each filter class is read
        # once, joined by InstanceID (Learn, Get-NetFirewallPortFilter: "The filter to rule
        # relationship is always one-to-one"), and the rules by name in one query.
        $filters = @{ port = @{}; address = @{}; program = @{}; service = @{} }
        foreach ($filter in @(Get-NetFirewallPortFilter -PolicyStore ActiveStore)) { $filters.port[[string]$filter.InstanceID] = $filter }
        foreach ($filter in @(Get-NetFirewallAddressFilter -PolicyStore ActiveStore)) { $filters.address[[string]$filter.InstanceID] = $filter }
        foreach ($filter in @(Get-NetFirewallApplicationFilter -PolicyStore ActiveStore)) { $filters.program[[string]$filter.InstanceID] = $filter }
        foreach ($filter in @(Get-NetFirewallServiceFilter -PolicyStore ActiveStore)) { $filters.service[[string]$filter.InstanceID] = $filter }
        $named = @(Get-NetFirewallRule -Name ($RdpRules + @($CustomRulePrefix + '*')) -PolicyStore ActiveStore -ErrorAction SilentlyContinue)
        $rules = New-Object 'System.Collections.Generic.List[object]'
        foreach ($ruleName in $RdpRules) {
            foreach ($rule in @($named | Where-Object { $_.Name -eq $ruleName })) {
                $rules.Add((Get-AzrdpRule -Rule $rule -Filters $filters))
                break
            }
        }
        $custom = 0
        # The rule for the listener's port first, then by name.
        $own = $CustomRulePrefix + $ctx.port
        $named = @($named | Where-Object { $_.Name -like ($CustomRulePrefix + '*') } | Sort-Object -Property Name)
        foreach ($rule in @($named | Where-Object { $_.Name -eq $own }) + @($named | Where-Object { $_.Name -ne $own })) {
            if ($custom -ge $Limits.customRules) { break }
            $rules.Add((Get-AzrdpRule -Rule $rule -Filters $filters))
            $custom += 1
        }
        # Capped by rule: Block rules on any port first, then those naming the RDP port, then ranges.
        $candidates = New-Object 'System.Collections.Generic.List[object]'
        foreach ($rule in @(Get-NetFirewallRule -Direction Inbound -Action Block -Enabled True -PolicyStore ActiveStore -ErrorAction SilentlyContinue)) {
            $entry = Get-AzrdpRule -Rule $rule -Filters $filters
            if ($entry.pr -ne 'TCP' -and $entry.pr -ne 'Any') { continue }
            # Ranked from the whole list (the entry's may be cut).
            $filter = $filters.port[[string]$rule.InstanceID]
            if ($null -eq $filter) { $filter = Get-NetFirewallPortFilter -AssociatedNetFirewallRule $rule }
            $ports = @($filter.LocalPort) -join ','
            $rank = 3
            if ($ports -eq 'Any') { $rank = 0 }
            elseif ((',' + $ports + ',') -like ('*,' + $ctx.port + ',*')) { $rank = 1 }
            elseif ($ports -like '*-*') { $rank = 2 }
            $candidates.Add(@($rank, $entry))
        }
        $blocks = New-Object 'System.Collections.Generic.List[object]'
        foreach ($pair in @($candidates | Sort-Object -Property { $_[0] })) {
            if ($blocks.Count -ge $Limits.blocks) { break }
            $blocks.Add($pair[1])
        }
        $f.fw = [ordered]@{ prof = $profiles; act = $categories; rules = $rules; blk = $blocks; nblk = $candidates.Count }
    }
    Invoke-AzrdpSection -SectionName 'evt' -ErrorList $errs -SectionBody {
        $since = (Get-Date).AddDays(-7)
        $list = New-Object 'System.Collections.Generic.List[object]'
        foreach ($query in $EventQueries) {
            $counts = @{}
            $named = @{}
            $newest = @{}
            foreach ($id in $query.ids) {
                $counts[$id] = 0
                $named[$id] = New-Object 'System.Collections.Generic.List[object]'
            }
            $found = @()
            try { $found = @(Get-WinEvent -FilterHashtable @{ LogName = 'System'; ProviderName = $query.p; Id = $query.ids; StartTime = $since } -MaxEvents 20000) }
            catch { if ($_.FullyQualifiedErrorId -notlike 'NoMatchingEventsFound*') { throw } }
            foreach ($record in $found) {
                $id = [int]$record.Id
                if (-not $counts.ContainsKey($id) -or $counts[$id] -ge $Limits.events) { continue }
                $counts[$id] += 1
                # Get-WinEvent reads newest first.
                if (-not $newest.ContainsKey($id)) { $newest[$id] = Format-AzrdpTime -Value $record.TimeCreated }
                if ($query.named -and @($named[$id]).Count -lt $Limits.sources -and @($record.Properties).Count -gt 0) {
                    $source = Limit-AzrdpText -Value $record.Properties[0].Value
                    if (-not $named[$id].Contains($source)) { $named[$id].Add($source) }
                }
            }
            foreach ($id in $query.ids) { if ($counts[$id] -gt 0) { $list.Add(@($id, $counts[$id], $named[$id], $newest[$id])) } }
        }
        $f.evt = $list
    }
    Invoke-AzrdpSection -SectionName 'disk' -ErrorList $errs -SectionBody {
        $drive = [string]$env:SystemDrive
        $disk = Get-CimInstance -ClassName Win32_LogicalDisk -Filter ("DeviceID='" + $drive + "'")
        $f.disk = [ordered]@{ drv = $drive; free = [long]$disk.FreeSpace; size = [long]$disk.Size }
    }
    Invoke-AzrdpSection -SectionName 'azr' -ErrorList $errs -SectionBody {
        $runs = New-Object 'System.Collections.Generic.List[object]'
        $facts = [ordered]@{ own = $null; runs = $runs; lk = $null; lx = $null }
        if (Test-Path -LiteralPath $AzrdpRoot) {
            # Reported, not trusted here: azrdp believes these records only when SYSTEM or Administrators own the folder.
            $facts.own = [System.IO.Directory]::GetAccessControl($AzrdpRoot, 'Owner').GetOwner([System.Security.Principal.SecurityIdentifier]).Value
            if (Test-Path -LiteralPath $BackupRoot) {
                foreach ($folder in @(Get-ChildItem -LiteralPath $BackupRoot -Directory | Sort-Object -Property CreationTimeUtc -Descending)) {
                    if ($runs.Count -ge $Limits.runs) { break }
                    $file = Join-Path -Path $folder.FullName -ChildPath 'run.json'
                    if (-not (Test-Path -LiteralPath $file)) { continue }
                    $run = ConvertFrom-Json -InputObject ([System.IO.File]::ReadAllText($file))
                    $runs.Add([ordered]@{ id = [string]$run.id; t = [string]$run.t; boot = [string]$run.boot; st = [string]$run.st; rb = [bool]$run.rb; u = [string]$run.u })
                }
            }
            if (Test-Path -LiteralPath $LockFile) {
                $lock = ConvertFrom-Json -InputObject ([System.IO.File]::ReadAllText($LockFile))
                $facts.lk = [string]$lock.run
                $facts.lx = [string]$lock.exp
            }
        }
        $f.azr = $facts
    }
    return $f
}

function ConvertTo-AzrdpLine {
    # One line: the marker, then gzip + base64 of the JSON (Run Command keeps 4,096 bytes of StdOut).
    param($Document)
    $json = ConvertTo-Json -InputObject $Document -Depth 12 -Compress
    $bytes = [System.Text.Encoding]::UTF8.GetBytes($json)
    $memory = New-Object System.IO.MemoryStream
    $gzip = New-Object System.IO.Compression.GZipStream($memory, [System.IO.Compression.CompressionMode]::Compress)
    $gzip.Write($bytes, 0, $bytes.Length)
    $gzip.Close()
    return 'AZRDP2:' + [System.Convert]::ToBase64String($memory.ToArray())
}

function Limit-AzrdpList {
    param([System.Collections.Generic.List[object]]$List, [int]$Count)
    while ($List.Count -gt $Count) { $List.RemoveAt($List.Count - 1) }
}

function Limit-AzrdpFacts {
    # Over the output budget: trim the facts one step at a time, in $Trims' order, naming each in cut.
    param($Report)
    $f = $Report.f
    foreach ($trim in $Trims) {
        if ((ConvertTo-AzrdpLine -Document $Report).Length -le $OutputBudget) { return }
        $certs = New-Object 'System.Collections.Generic.List[object]'
        if ($null -ne $f.cert) { $certs = $f.cert.l }
        if ($trim -eq 'dep') { foreach ($service in $f.svc) { $service.dep = @() } }
        elseif ($trim -eq 'src') { foreach ($row in $f.evt) { $row[2] = @() } }
        elseif ($trim -eq 'eku') { foreach ($item in $certs) { $item.eku = @() } }
        elseif ($trim -eq 'runs' -and $null -ne $f.azr) { Limit-AzrdpList -List $f.azr.runs -Count 2 }
        elseif ($trim -eq 'blk' -and $null -ne $f.fw) { Limit-AzrdpList -List $f.fw.blk -Count 1 }
        elseif ($trim -eq 'err') { Limit-AzrdpList -List $f.err -Count 1 }
        elseif ($trim -eq 'ksd') { for ($i = 1; $i -lt @($certs).Count; $i++) { if ($null -ne $certs[$i].k) { $certs[$i].k.sd = $null } } }
        elseif ($trim -eq 'cert') { Limit-AzrdpList -List $certs -Count 2 }
        $f.cut.Add($trim)
    }
}

# azrdp-include: executor.ps1

$report = [ordered]@{ v = $ContractVersion; m = Limit-AzrdpText -Value $Mode; t = Format-AzrdpTime -Value (Get-Date); e = $null; ec = $null }
try {
    $portNumber = 0
    if ($PSVersionTable.PSVersion.Major -lt 5) {
        $report.ec = 'unsupported'
        $report.e = 'Windows PowerShell ' + [string]$PSVersionTable.PSVersion + ' is too old; azrdp needs 5.1.'
    }
    elseif ([System.Environment]::Is64BitOperatingSystem -and -not [System.Environment]::Is64BitProcess) {
        # WOW64 redirects HKLM\SOFTWARE (MachineGuid is not there) and System32: every fact would
        # silently be another view's (Learn: "Registry Keys Affected by WOW64", "File System Redirector").
        $report.ec = 'unsupported'
        $report.e = 'This is a 32-bit Windows PowerShell on 64-bit Windows, which sees a redirected registry and System32; azrdp needs the 64-bit one.'
    }
    elseif (-not [int]::TryParse($RdpPort, [ref]$portNumber) -or $portNumber -lt 1 -or $portNumber -gt 65535) {
        $report.ec = 'parameter'
        $report.e = 'RdpPort must be a TCP port from 1 to 65535.'
    }
    elseif ($Mode -eq 'collect') {
        $report.f = Get-AzrdpFacts -Port $portNumber
        Limit-AzrdpFacts -Report $report
        if ((ConvertTo-AzrdpLine -Document $report).Length -gt $OutputBudget) {
            $report.f = $null
            $report.ec = 'budget'
            $report.e = 'The facts do not fit Run Command output even trimmed.'
        }
    }
    elseif ($null -ne (Get-Command -Name 'Invoke-AzrdpExecute' -CommandType Function -ErrorAction SilentlyContinue)) {
        # Modes execute, records and history, present when azrdp sent the executor's functions.
        Invoke-AzrdpMode -Report $report -Port $portNumber
    }
    else {
        $report.ec = 'parameter'
        $report.e = 'Mode must be collect: the executor was not sent with this script.'
    }
}
catch {
    $report.ec = 'internal'
    $report.e = Limit-AzrdpText -Value $_.Exception.Message -Limit $Limits.fatal
}
finally {
    Write-Output (ConvertTo-AzrdpLine -Document $report)
}
