# .Count on what was not built as a collection in the scope: throws under strict mode on a scalar.
Set-StrictMode -Version 3.0
function Add-SectionError {
    param($Errors, [string]$Message)
    if ($Errors.Count -lt 3) { $Errors.Add($Message) }  # expect: count-scalar
}
function Get-AzrdpCounts {
    param($Trigger, [string]$Name)
    $listening = Get-NetTCPConnection -State Listen -LocalPort 3389 -ErrorAction SilentlyContinue
    $total = $listening.Count  # expect: count-scalar
    $total += $Trigger.changes.Count  # expect: count-scalar
    $total += $Name.Count  # expect: count-scalar
    $maybe = @()
    if ($total -gt 1) { $maybe = $null }
    $total += $maybe.Count  # expect: count-scalar
    return $total
}
