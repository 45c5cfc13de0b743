"""Emulator fixtures (the emulator issue fills this in)."""
