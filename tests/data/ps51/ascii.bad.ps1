# Non-ASCII bytes change with the console code page.
$text = 'café'  # expect: ascii
Write-Output $text
