# Arrays returned without the unary comma are enumerated on the way out.
function Get-RegValue {
    param([string]$Path, [string]$Name)
    $key = Get-Item -LiteralPath $Path -ErrorAction SilentlyContinue
    if ($null -eq $key) { return $null }
    return $key.GetValue($Name, $null)  # expect: array-return
}
function Get-AzrdpBytes {
    $bytes = New-Object byte[] 4
    return $bytes  # expect: array-return
}
function Get-AzrdpNames {
    param($Items)
    return @($Items)  # expect: array-return
}
function Get-AzrdpList {
    $list = New-Object 'System.Collections.Generic.List[object]'
    return $list  # expect: array-return
}
