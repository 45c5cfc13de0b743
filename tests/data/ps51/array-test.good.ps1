function Get-CertPin {
    $pin = $null
    $key = Get-Item -LiteralPath 'HKLM:\SYSTEM\CurrentControlSet\Control\Terminal Server\WinStations\RDP-Tcp' -ErrorAction SilentlyContinue
    $pinBytes = $null
    if ($null -ne $key) { $pinBytes = $key.GetValue('SSLCertificateSHA1Hash', $null) }
    if ($pinBytes -is [byte[]]) {
        $pin = -join ($pinBytes | ForEach-Object { $_.ToString('X2') })
    }
    return $pin
}
