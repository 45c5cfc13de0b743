$text = 'cafe'
Write-Output $text
