function Split-AzrdpIdList {
    param([string]$Text)
    $list = New-Object 'System.Collections.Generic.List[string]'
    return , $list
}
function Invoke-AzrdpRepair {
    param([string]$RunId, [string]$Only, $Untyped)
    $onlyIds = Split-AzrdpIdList -Text $Only
    if ($onlyIds.Count -gt 0) { return $RunId }
    $Untyped = 'an untyped parameter keeps what it is given'
    return $Untyped
}
function New-AzrdpTrigger {
    param($Changes, [string]$Refused = '')
    $reason = $null
    if ($Refused -ne '') { $reason = $Refused }
    return @{ changes = $Changes; refused = $reason }
}
