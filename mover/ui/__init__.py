"""Command-line plumbing shared by `mover` and `kbrowse`: options, password, errors, printers."""
