"""UI-free work on snapshots for the CLI and the TUI: paths, listings, find, compare."""
