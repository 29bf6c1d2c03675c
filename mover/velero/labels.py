"""The labels Velero puts on its objects and reads back: one spelling for every controller and
for kbrowse's commands."""

BACKUP_NAME = "velero.io/backup-name"
BACKUP_UID = "velero.io/backup-uid"
RESTORE_NAME = "velero.io/restore-name"
SCHEDULE_NAME = "velero.io/schedule-name"
STORAGE_LOCATION = "velero.io/storage-location"
EXCLUDE_FROM_BACKUP = "velero.io/exclude-from-backup"
