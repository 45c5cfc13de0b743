"""The command-line layer: the only part of azrdp that imports typer or rich."""
