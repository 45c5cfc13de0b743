Get-ChildItem -LiteralPath 'C:\'
& sc.exe qc TermService
@(1, 2) | ForEach-Object { $_ }
@(1, 2) | Where-Object { $_ -gt 1 } | Select-Object -First 1
