# `-is [byte[]]` on what a script function returned: the pipeline unrolled it already.
function Get-RegValue {
    param([string]$Path, [string]$Name)
    $key = Get-Item -LiteralPath $Path -ErrorAction SilentlyContinue
    if ($null -eq $key) { return $null }
    return , $key.GetValue($Name, $null)
}
function Get-CertPin {
    $pin = $null
    $pinBytes = Get-RegValue -Path 'HKLM:\SYSTEM\CurrentControlSet\Control\Terminal Server\WinStations\RDP-Tcp' -Name 'SSLCertificateSHA1Hash'
    if ($pinBytes -is [byte[]]) {  # expect: array-test
        $pin = -join ($pinBytes | ForEach-Object { $_.ToString('X2') })
    }
    if ((Get-RegValue -Path 'HKLM:\x' -Name 'y') -isnot [array]) { $pin = $null }  # expect: array-test
    return $pin
}
