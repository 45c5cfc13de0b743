function Get-RegValue {
    param([string]$Path, [string]$Name)
    $key = Get-Item -LiteralPath $Path -ErrorAction SilentlyContinue
    if ($null -eq $key) { return $null }
    return , $key.GetValue($Name, $null)
}
function Get-AzrdpBytes {
    $bytes = New-Object byte[] 4
    return , $bytes
}
function Get-AzrdpFacts {
    $facts = [ordered]@{ a = 1 }
    return $facts
}
function Get-AzrdpText {
    param([string]$Value)
    return $Value.ToUpperInvariant()
}
