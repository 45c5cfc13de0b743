# Code from strings and prompts: Run Command has no console.
$code = 'Get-Date'
Invoke-Expression -Command $code  # expect: forbidden
$answer = Read-Host -Prompt 'Continue?'  # expect: forbidden
Get-Credential  # expect: forbidden
