"""The labels Velero puts on its objects and reads back: one spelling for every controller and
for kbrowse's commands."""

BACKUP_NAME = "velero.io/backup-name"
BACKUP_UID = "velero.io/backup-uid"
RESTORE_NAME = "velero.io/restore-name"
RESTORE_UID = "velero.io/restore-uid"
POD_UID = "velero.io/pod-uid"
PVC_UID = "velero.io/pvc-uid"
VOLUME_NAMESPACE = "velero.io/volume-namespace"
REPOSITORY_TYPE = "velero.io/repository-type"
SCHEDULE_NAME = "velero.io/schedule-name"
STORAGE_LOCATION = "velero.io/storage-location"
EXCLUDE_FROM_BACKUP = "velero.io/exclude-from-backup"
