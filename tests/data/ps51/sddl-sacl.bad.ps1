# The one-argument form also writes the audit section: a null SACL wipes auditing.
$security = New-Object System.Security.AccessControl.DirectorySecurity
$security.SetSecurityDescriptorSddlForm('O:SYG:SYD:PAI(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)')  # expect: sddl-sacl
[System.IO.Directory]::SetAccessControl('C:\ProgramData\azrdp', $security)
$file = [System.IO.File]::GetAccessControl('C:\x')
Write-Output $file.SetSecurityDescriptorSddlForm('O:SYD:P(A;;FA;;;SY)')  # expect: sddl-sacl
