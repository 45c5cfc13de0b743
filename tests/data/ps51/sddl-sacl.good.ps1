$sections = [System.Security.AccessControl.AccessControlSections]'Access, Owner, Group'
$security = New-Object System.Security.AccessControl.DirectorySecurity
$security.SetSecurityDescriptorSddlForm('O:SYG:SYD:PAI(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)', $sections)
[System.IO.Directory]::SetAccessControl('C:\ProgramData\azrdp', $security)
$file = [System.IO.File]::GetAccessControl('C:\x')
Write-Output $file.SetSecurityDescriptorSddlForm('O:SYD:P(A;;FA;;;SY)', [System.Security.AccessControl.AccessControlSections]'Access, Owner')
