# External programs outside EXTERNAL_PROGRAMS, directly or through a native-tool helper.
function Invoke-AzrdpNative {
    param([string]$Exe, [string[]]$Arguments)
    & $Exe @Arguments 2>&1 | Out-Null
    return $LASTEXITCODE
}
& netsh.exe advfirewall show allprofiles  # expect: external
$code = Invoke-AzrdpNative -Exe 'powershell.exe' -Arguments @('-Command', 'x')  # expect: external
$tool = 'sc.exe'
$code = Invoke-AzrdpNative -Exe $tool -Arguments @('qc', 'x')  # expect: external
