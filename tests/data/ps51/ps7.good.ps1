$a = 1
$b = $a
if ($null -eq $b) { $b = 2 }
$length = $null
if ($null -ne $a) { $length = [string]$a }
Get-Date
@(1, 2) | ForEach-Object { $_ }
$h = '{}' | ConvertFrom-Json
'x' | Out-File -FilePath 'C:\x.txt' -Encoding ascii
if ($PSVersionTable.PSVersion.Major -ge 5) { }
