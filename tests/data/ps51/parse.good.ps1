function Get-Fine {
    if ($true) {
        'closed'
    }
}
Get-Fine
