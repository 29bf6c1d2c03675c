"""Command-line plumbing shared by `mover` and `kbrowse`: options, password, errors, progress, printers."""
