# PowerShell 6/7 syntax, cmdlets, parameters and variables that Windows PowerShell 5.1 lacks.
$a = 1
$b = $a ?? 2  # expect: ps7
$c = ${a}?.Length  # expect: ps7
Get-Date && Get-Date  # expect: ps7
Get-Date || Get-Date  # expect: ps7
@(1, 2) | ForEach-Object -Parallel { $_ }  # expect: ps7
$h = '{}' | ConvertFrom-Json -AsHashtable  # expect: ps7
'x' | Out-File -FilePath 'C:\x.txt' -Encoding utf8NoBOM  # expect: ps7
if ($IsWindows) { }  # expect: ps7
Test-Json -Json '{}'  # expect: ps7
$t = $a ? 1 : 2  # expect: ps7
function Get-AzrdpClean {
    process { }
    clean { }  # expect: ps7
}  # expect: parse (the function's end no longer matches)
$a ??= 3  # expect: ps7
