function Split-AzrdpIdList {
    param([string]$Text)
    $list = New-Object 'System.Collections.Generic.List[string]'
    foreach ($part in ([string]$Text).Split('.')) { if ($part.Trim() -ne '') { $list.Add($part.Trim()) } }
    return , $list
}
function Get-AzrdpNames {
    # Items written one by one: @() collects them into an array.
    'a'
    'b'
}
function Test-AzrdpIds {
    param([string]$Only, [string]$Skip, $Known)
    foreach ($id in (Split-AzrdpIdList -Text ($Only + '.' + $Skip))) {
        if ($Known -notcontains $id) { return $false }
    }
    $names = @(Get-AzrdpNames)
    return ($names.Count -gt 0)
}
