Set-StrictMode -Version 3.0
$ServiceNames = @('TermService', 'UmRdpService')
function Add-SectionError {
    param([System.Collections.Generic.List[object]]$Errors, [string]$Message)
    if ($Errors.Count -lt 3) { $Errors.Add($Message) }
}
function Get-AzrdpList {
    $list = New-Object 'System.Collections.Generic.List[object]'
    return , $list
}
function Get-AzrdpCounts {
    param($Trigger, [string[]]$Names, [string]$Text)
    $listening = @(Get-NetTCPConnection -State Listen -LocalPort 3389 -ErrorAction SilentlyContinue)
    $total = $listening.Count
    $total += @($Trigger.changes).Count
    $total += $Names.Count
    $total += $ServiceNames.Count
    $total += $Text.Split(',').Count
    $table = @{ a = 1 }
    $total += $table.Count + $table.Keys.Count
    $built = [System.Collections.ArrayList]::new()
    $total += $built.Count
    $returned = Get-AzrdpList
    $total += $returned.Count
    $runs = @()
    $runs += 'x'
    $total += $runs.Count + $args.Count
    return $total
}
