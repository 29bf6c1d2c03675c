"""Velero's API types (``velero.io`` v1 and v2alpha1) as schemas: the source the CRD YAML in
crds/ is generated from. Field names, types, enums, nullability and required fields follow
Velero's Go types (pkg/apis/velero/v1, v2alpha1) as of v1.18.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mover.deploy.schema import (
    Schema,
    array,
    boolean,
    duration,
    enum,
    integer,
    label_selector,
    obj,
    object_reference,
    raw_extension,
    secret_key_selector,
    string,
    string_map,
    strings,
    time,
    typed_local_object_reference,
)

GROUP = "velero.io"


@dataclass(frozen=True)
class Column:
    name: str
    json_path: str
    type: str = "string"
    description: str = ""
    format: str = ""
    priority: int = 0  # kubectl shows columns above 0 only with -o wide


AGE = Column("Age", ".metadata.creationTimestamp", "date")


@dataclass(frozen=True)
class Kind:
    kind: str
    plural: str
    version: str
    description: str
    spec: Schema
    status: Schema
    short_names: tuple[str, ...] = ()
    columns: tuple[Column, ...] = field(default=())

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{GROUP}"


# Shared parts

def _filters(what: str) -> dict[str, Schema]:
    return {
        "includedNamespaces": strings(f"namespaces to include objects from; empty means all ({what})"),
        "excludedNamespaces": strings(f"namespaces whose objects are not included ({what})"),
        "includedResources": strings(f"resource names to include; empty means all ({what})"),
        "excludedResources": strings(f"resource names that are not included ({what})"),
    }


def _exec_hook(restore: bool) -> Schema:
    fields = {
        "container": string("container to run the command in; the pod's first container if empty"),
        "command": {**strings("the command and its arguments", nullable=False), "minItems": 1},
        "onError": enum("Continue", "Fail", description="what an error from the hook does"),
    }
    if restore:
        fields |= {"execTimeout": duration("how long the command may run"),
                   "waitTimeout": duration("how long to wait for the container to be ready"),
                   "waitForReady": boolean("whether to wait for the container to be ready", nullable=True)}
    else:
        fields["timeout"] = duration("how long the command may run")
    return obj(fields, "a command run in a pod's container", required=("command",))


def _backup_hooks() -> Schema:
    hook = obj({"exec": _exec_hook(restore=False)}, required=("exec",))
    spec = obj({
        "name": string("the name of this hook"),
        **_filters("this hook"),
        "labelSelector": label_selector("filters the resources this hook applies to"),
        "pre": array(hook, "hooks run before the item is stored in the backup"),
        "post": array(hook, "hooks run after the item is stored in the backup"),
    }, required=("name",))
    return obj({"resources": array(spec, "hooks run when backing up instances of a resource", nullable=True)},
               "custom behaviours run at different phases of the backup")


def _restore_hooks() -> Schema:
    init = obj({
        "initContainers": array(raw_extension(), "init containers added to the restored pod"),
        "timeout": duration("how long to wait for the init containers to complete"),
    }, "init containers added to a restored pod")
    hook = obj({"exec": _exec_hook(restore=True), "init": init})
    spec = obj({
        "name": string("the name of this hook"),
        **_filters("this hook"),
        "labelSelector": label_selector("filters the resources this hook applies to"),
        "postHooks": array(hook, "hooks run after the item is restored"),
    }, required=("name",))
    return obj({"resources": array(spec)}, "custom behaviours run during the restore")


def backup_spec(description: str) -> Schema:
    return obj({
        "metadata": obj({"labels": string_map()}),
        **_filters("backup"),
        "includedClusterScopedResources": strings('cluster-scoped resource types to include; "*" for all'),
        "excludedClusterScopedResources": strings('cluster-scoped resource types to exclude; "*" for all'),
        "includedNamespaceScopedResources": strings('namespaced resource types to include; default "*"'),
        "excludedNamespaceScopedResources": strings('namespaced resource types to exclude; "*" for all'),
        "labelSelector": label_selector("only objects matching this selector are backed up"),
        "orLabelSelectors": array(label_selector(nullable=False), "objects matching any of these selectors are "
                                  "backed up; cannot be combined with labelSelector", nullable=True),
        "snapshotVolumes": boolean("whether to snapshot the persistent volumes of the backed-up objects",
                                   nullable=True),
        "ttl": duration("how long the backup is kept (default 720h)"),
        "includeClusterResources": boolean("whether cluster-scoped resources are included", nullable=True),
        "hooks": _backup_hooks(),
        "storageLocation": string("the BackupStorageLocation the backup is stored in"),
        "volumeSnapshotLocations": strings("VolumeSnapshotLocations used by this backup", nullable=False),
        "defaultVolumesToRestic": boolean("deprecated: use defaultVolumesToFsBackup", nullable=True),
        "defaultVolumesToFsBackup": boolean("whether every pod volume is backed up from the file system "
                                            "by default", nullable=True),
        "orderedResources": string_map("per resource, the order in which to back up its objects",
                                       nullable=True),
        "csiSnapshotTimeout": duration("how long to wait for a CSI VolumeSnapshot to become ready"),
        "itemOperationTimeout": duration("how long to wait for asynchronous item operations"),
        "resourcePolicy": typed_local_object_reference("the resource policies the backup follows"),
        "snapshotMoveData": boolean("whether snapshot data is moved to the storage location", nullable=True),
        "datamover": string('the data mover for snapshot data; "" or "velero" is the built-in one'),
        "uploaderConfig": obj({"parallelFilesUpload": integer("files uploaded in parallel")},
                              "configuration for the uploader", nullable=True),
        "volumeGroupSnapshotLabelKey": string("the label key grouping PVCs into volume group snapshots"),
    }, description)


def _hook_status() -> Schema:
    return obj({"hooksAttempted": integer("hooks run"), "hooksFailed": integer("hooks that failed")},
               "how many hooks ran and failed", nullable=True)


def _phases(*values: str) -> Schema:
    return enum(*values, description="the current state")


BACKUP = Kind(
    "Backup", "backups", "v1",
    "A capture of Kubernetes cluster state at a point in time (API objects and associated volume state).",
    backup_spec("The specification for a Velero backup."),
    obj({
        "version": integer("deprecated: the backup format major version"),
        "formatVersion": string("the backup format version, e.g. 1.1.0"),
        "expiration": time("when this backup is eligible for garbage collection"),
        "phase": _phases("New", "Queued", "ReadyToStart", "FailedValidation", "InProgress",
                         "WaitingForPluginOperations", "WaitingForPluginOperationsPartiallyFailed", "Finalizing",
                         "FinalizingPartiallyFailed", "Completed", "PartiallyFailed", "Failed", "Deleting"),
        "queuePosition": integer("the position in the queue of backups waiting to run"),
        "validationErrors": strings("why the backup failed validation"),
        "startTimestamp": time("when the backup started"),
        "completionTimestamp": time("when the backup completed, also when it failed"),
        "volumeSnapshotsAttempted": integer(),
        "volumeSnapshotsCompleted": integer(),
        "failureReason": string("the error that made the whole backup fail"),
        "warnings": integer("how many warnings the backup logged"),
        "errors": integer("how many errors the backup logged"),
        "progress": obj({"totalItems": integer("items to back up"),
                         "itemsBackedUp": integer("items written to the tarball so far")},
                        "best-effort progress of the backup", nullable=True),
        "csiVolumeSnapshotsAttempted": integer(),
        "csiVolumeSnapshotsCompleted": integer(),
        "backupItemOperationsAttempted": integer(),
        "backupItemOperationsCompleted": integer(),
        "backupItemOperationsFailed": integer(),
        "hookStatus": _hook_status(),
    }, "The current status of a Velero backup."),
)

RESTORE = Kind(
    "Restore", "restores", "v1",
    "A request to restore Kubernetes objects (and volumes) from a backup.",
    obj({
        "backupName": string("the backup to restore from"),
        "scheduleName": string("restore from the schedule's most recent successful backup"),
        **_filters("restore"),
        "namespaceMapping": string_map("source namespace -> target namespace"),
        "labelSelector": label_selector("only objects matching this selector are restored"),
        "orLabelSelectors": array(label_selector(nullable=False), "objects matching any of these selectors are "
                                  "restored", nullable=True),
        "restorePVs": boolean("whether to restore persistent volumes from snapshots", nullable=True),
        "restoreStatus": obj({"includedResources": strings("resources whose status is restored"),
                              "excludedResources": strings("resources whose status is not restored")},
                             "which resources get their status restored", nullable=True),
        "preserveNodePorts": boolean("whether services keep their node ports", nullable=True),
        "includeClusterResources": boolean("whether cluster-scoped resources are restored", nullable=True),
        "hooks": _restore_hooks(),
        "existingResourcePolicy": string("what to do with an object that already exists: none or update"),
        "itemOperationTimeout": duration("how long to wait for asynchronous item operations"),
        "resourceModifier": typed_local_object_reference("the ConfigMap of resource modifier rules"),
        "uploaderConfig": obj({"writeSparseFiles": boolean("whether files are written sparse", nullable=True),
                               "parallelFilesDownload": integer("files downloaded in parallel")},
                              "configuration for the uploader", nullable=True),
    }, "The specification for a Velero restore."),
    obj({
        "phase": _phases("New", "FailedValidation", "InProgress", "WaitingForPluginOperations",
                         "WaitingForPluginOperationsPartiallyFailed", "Finalizing", "FinalizingPartiallyFailed",
                         "Completed", "PartiallyFailed", "Failed"),
        "validationErrors": strings("why the restore failed validation"),
        "warnings": integer("how many warnings the restore logged"),
        "errors": integer("how many errors the restore logged"),
        "failureReason": string("the error that made the whole restore fail"),
        "startTimestamp": time("when the restore started"),
        "completionTimestamp": time("when the restore completed, also when it failed"),
        "progress": obj({"totalItems": integer("items to restore"),
                         "itemsRestored": integer("items restored so far")},
                        "best-effort progress of the restore", nullable=True),
        "restoreItemOperationsAttempted": integer(),
        "restoreItemOperationsCompleted": integer(),
        "restoreItemOperationsFailed": integer(),
        "hookStatus": _hook_status(),
    }, "The current status of a Velero restore."),
)

SCHEDULE = Kind(
    "Schedule", "schedules", "v1",
    "A backup that runs periodically, on a cron schedule.",
    obj({
        "template": backup_spec("the Backup every run creates"),
        "schedule": string("a cron expression: when to run the backup"),
        "useOwnerReferencesInBackup": boolean("whether backups get an owner reference to the schedule",
                                              nullable=True),
        "paused": boolean("whether the schedule is paused"),
        "skipImmediately": boolean("skip the first run when the schedule is created or unpaused",
                                   nullable=True),
    }, "The specification for a Velero schedule.", required=("schedule", "template")),
    obj({
        "phase": _phases("New", "Enabled", "FailedValidation"),
        "lastBackup": time("when the schedule last made a backup"),
        "lastSkipped": time("when the schedule last skipped a run"),
        "validationErrors": strings("why the schedule failed validation", nullable=False),
    }, "The current status of a Velero schedule."),
    columns=(Column("Status", ".status.phase", description="Status of the schedule"),
             Column("Schedule", ".spec.schedule", description="A Cron expression defining when to run the Backup"),
             Column("LastBackup", ".status.lastBackup", "date",
                    "The last time a Backup was run for this schedule"),
             AGE,
             Column("Paused", ".spec.paused", "boolean")),
)

BACKUP_STORAGE_LOCATION = Kind(
    "BackupStorageLocation", "backupstoragelocations", "v1",
    "A location where Velero stores backup objects.",
    obj({
        "provider": string("the object storage provider, e.g. aws"),
        "objectStorage": obj({
            "bucket": string("the bucket"),
            "prefix": string("the path inside the bucket; optional"),
            "caCert": string("deprecated: use caCertRef", fmt="byte"),
            "caCertRef": secret_key_selector("a CA bundle in a secret, for TLS to the provider", nullable=True),
        }, "where the objects go", required=("bucket",)),
        "config": string_map("provider-specific configuration"),
        "credential": secret_key_selector("the credentials for this location, in a secret", nullable=True),
        "default": boolean("whether this is the default location"),
        "accessMode": enum("ReadOnly", "ReadWrite", description="the permissions on this location"),
        "backupSyncPeriod": string("how often backups are synced from the bucket; 0 disables sync",
                                   nullable=True),
        "validationFrequency": string("how often the location is validated; 0 disables validation",
                                      nullable=True),
    }, "The desired state of a BackupStorageLocation.", required=("objectStorage", "provider")),
    obj({
        "phase": enum("Available", "Unavailable", description="the current state"),
        "lastSyncedTime": time("when the contents were last synced into the cluster"),
        "lastValidationTime": time("when the location was last validated"),
        "message": string("a message about the location's status"),
        "lastSyncedRevision": string("deprecated: no longer updated"),
        "accessMode": enum("ReadOnly", "ReadWrite", description="deprecated: see spec.accessMode"),
    }, "The observed state of a BackupStorageLocation."),
    short_names=("bsl",),
    columns=(Column("Phase", ".status.phase", description="Backup Storage Location status such as "
                    "Available/Unavailable"),
             Column("Last Validated", ".status.lastValidationTime", "date",
                    "LastValidationTime is the last time the backup store location was validated"),
             AGE,
             Column("Default", ".spec.default", "boolean", "Default backup storage location")),
)

VOLUME_SNAPSHOT_LOCATION = Kind(
    "VolumeSnapshotLocation", "volumesnapshotlocations", "v1",
    "A location where Velero stores volume snapshots.",
    obj({
        "provider": string("the volume snapshot provider"),
        "config": string_map("provider-specific configuration"),
        "credential": secret_key_selector("the credentials for this location, in a secret", nullable=True),
    }, "The specification for a VolumeSnapshotLocation.", required=("provider",)),
    obj({"phase": enum("Available", "Unavailable", description="the current state")},
        "The status of a VolumeSnapshotLocation."),
    short_names=("vsl",),
)

_VOLUME_PHASES = ("New", "Accepted", "Prepared", "InProgress", "Canceling", "Canceled", "Completed", "Failed")
_UPLOADER = enum("kopia", "restic", description="the uploader that moves the data")


def _bytes_progress(incremental: bool) -> Schema:
    fields = {"bytesDone": integer(int64=True), "totalBytes": integer(int64=True)}
    if incremental:
        fields["incrementalBytes"] = integer(int64=True)
    return obj(fields, "bytes moved so far, of the total")


def _volume_status(what: str, extra: dict[str, Schema], incremental: bool) -> Schema:
    return obj({
        "phase": _phases(*_VOLUME_PHASES),
        "message": string(f"a message about the {what}'s status"),
        "startTimestamp": time(f"when the {what} started"),
        "completionTimestamp": time(f"when the {what} completed, also when it failed"),
        "progress": _bytes_progress(incremental),
        "acceptedTimestamp": time(f"when the {what} was accepted by a node"),
        **extra,
    }, f"The current status of a {what}.")


def _volume_columns(incremental: bool, node: str, uploader: bool, incremental_priority: int = 0) -> tuple[Column, ...]:
    columns = [Column("Status", ".status.phase"), Column("Started", ".status.startTimestamp", "date"),
               Column("Bytes Done", ".status.progress.bytesDone", "integer", format="int64"),
               Column("Total Bytes", ".status.progress.totalBytes", "integer", format="int64")]
    if incremental:
        columns.append(Column("Incremental Bytes", ".status.progress.incrementalBytes", "integer",
                              format="int64", priority=incremental_priority))
    columns += [Column("Storage Location", ".spec.backupStorageLocation"), AGE, Column("Node", node)]
    if uploader:
        columns.append(Column("Uploader", ".spec.uploaderType"))
    return tuple(columns)


POD_VOLUME_BACKUP = Kind(
    "PodVolumeBackup", "podvolumebackups", "v1",
    "A file-system backup of one pod volume, made by the node agent.",
    obj({
        "node": string("the node the pod runs on"),
        "pod": object_reference("the pod whose volume is backed up"),
        "volume": string("the name of the pod volume"),
        "backupStorageLocation": string("the storage location holding the repository"),
        "repoIdentifier": string("the backup repository's identifier"),
        "uploaderType": _UPLOADER,
        "tags": string_map("tags added to the repository snapshot"),
        "uploaderSettings": string_map("uploader-specific settings", nullable=True),
        "cancel": boolean("a request to cancel the backup"),
    }, "The specification for a PodVolumeBackup.",
        required=("backupStorageLocation", "node", "pod", "repoIdentifier", "volume")),
    _volume_status("pod volume backup", {
        "path": string("the full path of the volume backed up"),
        "snapshotID": string("the identifier of the snapshot in the repository"),
    }, incremental=True),
    columns=_volume_columns(incremental=True, node=".spec.node", uploader=True),
)

POD_VOLUME_RESTORE = Kind(
    "PodVolumeRestore", "podvolumerestores", "v1",
    "A file-system restore of one pod volume, made by the node agent.",
    obj({
        "pod": object_reference("the pod whose volume is restored"),
        "volume": string("the name of the pod volume"),
        "backupStorageLocation": string("the storage location holding the repository"),
        "repoIdentifier": string("the backup repository's identifier"),
        "uploaderType": _UPLOADER,
        "snapshotID": string("the snapshot to restore"),
        "sourceNamespace": string("the namespace the volume was backed up from"),
        "uploaderSettings": string_map("uploader-specific settings", nullable=True),
        "cancel": boolean("a request to cancel the restore"),
        "snapshotSize": integer("the size of the snapshot, in bytes", int64=True),
    }, "The specification for a PodVolumeRestore.",
        required=("backupStorageLocation", "pod", "repoIdentifier", "snapshotID", "sourceNamespace", "volume")),
    _volume_status("pod volume restore", {"node": string("the node that processed the restore")},
                   incremental=False),
    columns=_volume_columns(incremental=False, node=".status.node", uploader=True),
)

BACKUP_REPOSITORY = Kind(
    "BackupRepository", "backuprepositories", "v1",
    "A repository (kopia or restic) holding the volume data of one namespace in one storage location.",
    obj({
        "volumeNamespace": string("the namespace whose volumes the repository holds"),
        "backupStorageLocation": string("the storage location holding the repository"),
        "repositoryType": enum("kopia", "restic", "", description="the type of the repository"),
        "resticIdentifier": string("deprecated: the restic repository's identifier"),
        "maintenanceFrequency": duration("how often maintenance runs on the repository"),
        "repositoryConfig": string_map("repository-specific configuration", nullable=True),
    }, "The specification for a BackupRepository.",
        required=("backupStorageLocation", "maintenanceFrequency", "resticIdentifier", "volumeNamespace")),
    obj({
        "phase": enum("New", "Ready", "NotReady", description="the current state"),
        "message": string("a message about the repository's status"),
        "lastMaintenanceTime": time("when maintenance last ran"),
        "recentMaintenance": array(obj({
            "result": enum("Succeeded", "Failed", description="the result of the maintenance"),
            "startTimestamp": time(), "completeTimestamp": time(),
            "message": string("details of the maintenance"),
        }), "the most recent maintenance runs"),
    }, "The current status of a BackupRepository."),
    columns=(AGE, Column("Repository Type", ".spec.repositoryType")),
)

DELETE_BACKUP_REQUEST = Kind(
    "DeleteBackupRequest", "deletebackuprequests", "v1",
    "A request to delete a backup: its objects in storage and in the cluster.",
    obj({"backupName": string("the backup to delete")}, "The specification for a DeleteBackupRequest.",
        required=("backupName",)),
    obj({"phase": enum("New", "InProgress", "Processed", description="the current state"),
         "errors": strings("what went wrong while deleting")}, "The current status of a DeleteBackupRequest."),
    columns=(Column("BackupName", ".spec.backupName", description="The name of the backup to be deleted"),
             Column("Status", ".status.phase", description="The status of the deletion request")),
)

DOWNLOAD_REQUEST = Kind(
    "DownloadRequest", "downloadrequests", "v1",
    "A request for a URL to download a backup's or restore's file from object storage.",
    obj({"target": obj({
        "kind": enum("BackupLog", "BackupContents", "BackupVolumeSnapshots", "BackupItemOperations",
                     "BackupResourceList", "BackupResults", "RestoreLog", "RestoreResults", "RestoreResourceList",
                     "RestoreItemOperations", "CSIBackupVolumeSnapshots", "CSIBackupVolumeSnapshotContents",
                     "BackupVolumeInfos", "RestoreVolumeInfo", description="the kind of file to download"),
        "name": string("the name of the backup or restore"),
    }, "what to download", required=("kind", "name"))}, "The specification for a DownloadRequest.",
        required=("target",)),
    obj({"phase": enum("New", "Processed", description="the current state"),
         "downloadURL": string("a pre-signed URL for the file"),
         "expiration": time("when the URL stops working")}, "The current status of a DownloadRequest."),
)

DATA_UPLOAD = Kind(
    "DataUpload", "datauploads", "v2alpha1",
    "The protocol between data mover plugins and the data mover controller for a data mover backup.",
    obj({
        "snapshotType": string("the type of the snapshot to be backed up"),
        "csiSnapshot": obj({
            "volumeSnapshot": string("the volume snapshot to be backed up"),
            "storageClass": string("the storage class of the PVC the snapshot is taken from"),
            "snapshotClass": string("the snapshot class the volume snapshot is created with"),
            "driver": string("the driver used by the VolumeSnapshotContent"),
        }, "the CSI snapshot, when snapshotType is CSI", required=("storageClass", "volumeSnapshot"),
            nullable=True),
        "sourcePVC": string("the PVC the snapshot is taken for"),
        "datamover": string('the data mover; "" or "velero" is the built-in one'),
        "backupStorageLocation": string("the storage location holding the repository"),
        "sourceNamespace": string("the namespace of the PVC"),
        "dataMoverConfig": string_map("data-mover-specific configuration", nullable=True),
        "cancel": boolean("a request to cancel the upload"),
        "operationTimeout": duration("how long internal operations may take"),
    }, "The specification for a DataUpload.",
        required=("backupStorageLocation", "operationTimeout", "snapshotType", "sourceNamespace", "sourcePVC")),
    _volume_status("data upload", {
        "path": string("the full path of the snapshot volume backed up"),
        "snapshotID": string("the identifier of the snapshot in the repository"),
        "dataMoverResult": string_map("data-mover-specific results", nullable=True),
        "node": string("the node that processed the upload"),
        "nodeOS": enum("auto", "linux", "windows", description="the OS of that node"),
        "acceptedByNode": string("the node that prepared the upload"),
    }, incremental=True),
    # Velero's `kubectl get datauploads`: STATUS STARTED BYTES DONE TOTAL BYTES STORAGE LOCATION AGE
    # NODE; the incremental bytes only with -o wide.
    columns=_volume_columns(incremental=True, node=".status.node", uploader=False, incremental_priority=10),
)

DATA_DOWNLOAD = Kind(
    "DataDownload", "datadownloads", "v2alpha1",
    "The protocol between data mover plugins and the data mover controller for a data mover restore.",
    obj({
        "targetVolume": obj({"pvc": string("the PVC to restore into"), "pv": string("the PV to restore into"),
                             "namespace": string("the namespace of the PVC")},
                            "the volume to restore into", required=("namespace", "pv", "pvc")),
        "backupStorageLocation": string("the storage location holding the repository"),
        "datamover": string('the data mover; "" or "velero" is the built-in one'),
        "snapshotID": string("the snapshot to restore"),
        "sourceNamespace": string("the namespace the data was backed up from"),
        "dataMoverConfig": string_map("data-mover-specific configuration", nullable=True),
        "cancel": boolean("a request to cancel the download"),
        "operationTimeout": duration("how long internal operations may take"),
        "nodeOS": enum("auto", "linux", "windows", description="the OS of the node to restore on"),
        "snapshotSize": integer("the size of the snapshot, in bytes", int64=True),
    }, "The specification for a DataDownload.",
        required=("backupStorageLocation", "operationTimeout", "snapshotID", "sourceNamespace", "targetVolume")),
    _volume_status("data download", {
        "node": string("the node that processed the download"),
        "acceptedByNode": string("the node that prepared the download"),
    }, incremental=False),
    columns=_volume_columns(incremental=False, node=".status.node", uploader=False),
)

ALL_KINDS: tuple[Kind, ...] = (
    BACKUP, RESTORE, SCHEDULE, BACKUP_STORAGE_LOCATION, VOLUME_SNAPSHOT_LOCATION, POD_VOLUME_BACKUP,
    POD_VOLUME_RESTORE, BACKUP_REPOSITORY, DELETE_BACKUP_REQUEST, DOWNLOAD_REQUEST, DATA_UPLOAD, DATA_DOWNLOAD,
)
