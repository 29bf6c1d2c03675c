"""Go's encodings that restic's files, kopia's files and the velero CLI's output depend on."""
