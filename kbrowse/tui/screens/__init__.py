"""Screens of the kbrowse TUI, one per module."""
