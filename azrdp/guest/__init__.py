"""The in-guest side of azrdp: the PowerShell script (package data) and its JSON contract."""
