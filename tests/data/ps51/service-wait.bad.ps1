# Service cmdlets that wait without a bound while a service is pending.
Restart-Service -Name 'TermService' -Force  # expect: service-wait
Start-Service -Name 'TermService'  # expect: service-wait
Stop-Service -Name 'TermService' -Force  # expect: service-wait
Set-Service -Name 'TermService' -Status Running  # expect: service-wait
function Wait-AzrdpService {
    param([string]$Name)
    $service = Get-Service -Name $Name
    $service.WaitForStatus('Running')  # expect: service-wait
}
function Wait-AzrdpServiceToo {
    param([string]$Name)
    $service = Get-Service -Name $Name
    $service.WaitForStatus('Stopped', [TimeSpan]::FromSeconds(30))  # expect: service-wait
}
