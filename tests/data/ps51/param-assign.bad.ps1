# Assignments to typed parameters (names are case-insensitive): the value is coerced to the type.
function Split-AzrdpIdList {
    param([string]$Text)
    $list = New-Object 'System.Collections.Generic.List[string]'
    return , $list
}
function Invoke-AzrdpRepair {
    param([string]$RunId, [string]$Only, [string]$Skip)
    $only = Split-AzrdpIdList -Text $Only  # expect: param-assign
    if ($only.Count -gt 0) { return $RunId }  # expect: count-scalar
    foreach ($skip in @('a', 'b')) { }  # expect: param-assign
    return $null
}
function New-AzrdpTrigger {
    param($Changes, [string]$Refused = $null)
    if ($Refused -eq '') { $Refused = $null }  # expect: param-assign
    return @{ changes = $Changes; refused = $Refused }
}
