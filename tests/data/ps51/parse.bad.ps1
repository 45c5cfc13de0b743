# A brace that never closes: the script would not even start.
function Get-Broken {
    if ($true) {
        'never closed'
}  # expect: parse
