"""Velero's server controllers, one a file: backup, restore, schedule, BSL, GC, sync, download."""
