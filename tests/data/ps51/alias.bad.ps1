# Aliases: `sc` is Set-Content in Windows PowerShell, not sc.exe.
gci -LiteralPath 'C:\'  # expect: alias
sc qc TermService  # expect: alias
@(1, 2) | % { $_ }  # expect: alias
@(1, 2) | ? { $_ -gt 1 } | select -First 1  # expect: alias
