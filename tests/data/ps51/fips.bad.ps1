# The FIPS algorithm policy makes these throw on .NET Framework before 4.8.
param([string]$Name = 'tsseckeyset1')

$bytes = [System.Text.Encoding]::ASCII.GetBytes($Name)
$hash = [System.Security.Cryptography.MD5]::Create().ComputeHash($bytes)  # expect: fips
$provider = New-Object System.Security.Cryptography.MD5CryptoServiceProvider  # expect: fips
$sha = [System.Security.Cryptography.SHA256Managed]::new()  # expect: fips
$byName = [System.Security.Cryptography.HashAlgorithm]::Create('MD5')  # expect: fips
$file = Get-FileHash -LiteralPath 'C:\Windows\win.ini' -Algorithm MD5  # expect: fips
try { $ok = 1 }
catch { $late = [System.Security.Cryptography.MD5]::Create() }  # expect: fips
# A catch that reports the refusal as an error loses the result on every FIPS VM.
try {
    $digest = [System.Security.Cryptography.MD5]::Create().ComputeHash($bytes)  # expect: fips
}
catch { $failed = $_.Exception.Message }
Write-Output $hash.Length $provider $sha $byName $file $ok $late $digest $failed
