"""The kbrowse terminal UI (Textual): sources, snapshots, a file browser, restore."""
