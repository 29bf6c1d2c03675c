"""Widgets of the kbrowse TUI, one per module."""
