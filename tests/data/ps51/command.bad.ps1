# Commands that are neither script functions nor Windows PowerShell 5.1 cmdlets.
Get-RdpEverything -Name 'x'  # expect: command
. .\other.ps1  # expect: command
$tool = 'cmd.exe'
& $tool /c dir  # expect: command
C:\Windows\System32\sc.exe query  # expect: command
