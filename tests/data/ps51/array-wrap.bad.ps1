# @() around a function that returns with the unary comma: one element, the list itself
# (PowerShell#4257). The pattern from repair.ps1's parameter validation.
function Split-AzrdpIdList {
    param([string]$Text)
    $list = New-Object 'System.Collections.Generic.List[string]'
    foreach ($part in ([string]$Text).Split('.')) { if ($part.Trim() -ne '') { $list.Add($part.Trim()) } }
    return , $list
}
function Test-AzrdpIds {
    param([string]$Only, [string]$Skip, $Known)
    foreach ($id in @(Split-AzrdpIdList -Text $Only) + @(Split-AzrdpIdList -Text $Skip)) {  # expect: array-wrap
        if ($Known -notcontains $id) { return $false }
    }
    $ids = @(Split-AzrdpIdList -Text $Only | Sort-Object)  # expect: array-wrap
    return ($ids.Count -gt 0)
}
