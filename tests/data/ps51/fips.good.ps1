# Inside a try whose catch falls back; FIPS-approved classes anywhere.
param([string]$Name = 'tsseckeyset1')

$bytes = [System.Text.Encoding]::ASCII.GetBytes($Name)
$hash = $null
try { $hash = [System.Security.Cryptography.MD5]::Create().ComputeHash($bytes) }
catch { $hash = $null }
try {
    $provider = New-Object System.Security.Cryptography.MD5CryptoServiceProvider
    $file = Get-FileHash -LiteralPath 'C:\Windows\win.ini' -Algorithm MD5
}
catch { $provider = $null }
$sha = [System.Security.Cryptography.SHA256]::Create()
$approved = Get-FileHash -LiteralPath 'C:\Windows\win.ini' -Algorithm SHA256
$csp = New-Object System.Security.Cryptography.SHA256CryptoServiceProvider
Write-Output $hash $provider $file $sha $approved $csp
