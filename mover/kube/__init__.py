"""The mover's cluster side: a client, a small controller framework and the controllers of
Velero's server (backup, restore, schedule, GC, sync, storage locations, download requests)."""
