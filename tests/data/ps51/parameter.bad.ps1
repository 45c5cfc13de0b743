# Unknown and abbreviated parameters, extra positional arguments and splats the checker cannot see.
function Set-AzrdpValue {
    param([string]$Path, [string]$Name, [switch]$Force)
    return $Path + $Name + $Force
}
Get-Item -Pth 'C:\'  # expect: parameter
Get-Item -Lit 'C:\'  # expect: parameter
Get-Item -LiteralPath 'C:\' -WhatIf  # expect: parameter
Get-Service -Name 'TermService' -ErrAction SilentlyContinue  # expect: parameter
Set-AzrdpValue -Path 'a' -Value 'b'  # expect: parameter
Set-AzrdpValue -Pa 'a'  # expect: parameter
Set-AzrdpValue -Path 'a' -ErrorAction Stop  # expect: parameter
Set-AzrdpValue 'a' 'b' 'c'  # expect: parameter
$options = @{ LiteralPath = 'C:\'; Recursive = $true }  # expect: parameter
Get-ChildItem @options
Get-ChildItem @PSBoundParameters  # expect: parameter
