function Wait-AzrdpService {
    # The one bounded-wait helper: the timeout throws instead of waiting forever.
    param([string]$Name, [string]$Status, [int]$Seconds)
    $service = Get-Service -Name $Name
    $service.WaitForStatus($Status, [TimeSpan]::FromSeconds($Seconds))
}
Stop-Service -Name 'TermService' -Force -NoWait
Wait-AzrdpService -Name 'TermService' -Status 'Stopped' -Seconds 30
(Get-Service -Name 'TermService').Start()
Wait-AzrdpService -Name 'TermService' -Status 'Running' -Seconds 30
Set-Service -Name 'TermService' -StartupType Manual
