function Invoke-AzrdpNative {
    param([string]$Exe, [string[]]$Arguments)
    & $Exe @Arguments 2>&1 | Out-Null
    return $LASTEXITCODE
}
& icacls.exe 'C:\ProgramData\Microsoft\Crypto\RSA\MachineKeys' /save 'C:\x.acl'
$code = Invoke-AzrdpNative -Exe 'sc.exe' -Arguments @('qc', 'TermService')
$code = Invoke-AzrdpNative -Exe 'reg.exe' -Arguments @('export', 'HKLM\SYSTEM', 'C:\x.reg', '/y')
