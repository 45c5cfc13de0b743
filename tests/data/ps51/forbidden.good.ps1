$now = Get-Date
Write-Output $now
