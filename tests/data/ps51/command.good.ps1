function Get-AzrdpThing {
    param([string]$Name, [scriptblock]$Body)
    $result = & $Body
    return $Name + $result
}
Get-AzrdpThing -Name 'x' -Body { Get-Date }
$block = { Get-Date }
& $block
Get-Date
