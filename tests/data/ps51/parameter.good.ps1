function Set-AzrdpValue {
    param([string]$Path, [string]$Name, [switch]$Force)
    return $Path + $Name + $Force
}
function Get-AzrdpAdvanced {
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)][Alias('Id')][string]$Name)
    return $Name
}
Get-Item -LiteralPath 'C:\' -ErrorAction SilentlyContinue
Get-Item -PSPath 'C:\' -ea Stop
Get-Item -LiteralPath:'C:\' -Force:$true
Remove-Item -LiteralPath 'C:\x' -WhatIf -Confirm:$false
Get-Service -Name 'TermService' -ErrorAction SilentlyContinue -ErrorVariable problems
get-service -name 'TermService'
Set-AzrdpValue -Path 'a' -Name 'b' -Force
Set-AzrdpValue 'a' 'b' -Force
Set-AzrdpValue -Force 'a' 'b'
Get-AzrdpAdvanced -Id 'x' -ErrorAction Stop
$options = @{ LiteralPath = 'C:\'; Recurse = $true }
Get-ChildItem @options
$arguments = @('qc', 'TermService')
& sc.exe @arguments
