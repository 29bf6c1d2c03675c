"""`mover server`: every controller of Velero's server that the mover implements, in one
process, watching one namespace."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from mover.kube.controllers.backup import DEFAULT_TTL, BackupController, BackupSettings
from mover.kube.controllers.backuprepository import BackupRepositoryController
from mover.kube.controllers.bsl import BackupStorageLocationController
from mover.kube.controllers.download import DownloadRequestController
from mover.kube.controllers.gc import DeleteBackupRequestController, GarbageCollector
from mover.kube.controllers.restore import RestoreController
from mover.kube.controllers.schedule import ScheduleController
from mover.kube.controllers.sync import BackupSyncController
from mover.kube.framework.client import Kube
from mover.kube.framework.controller import Clock, Manager, utc_now
from mover.kube.framework.informer import WATCH_SECONDS
from mover.kube.items.actions import ItemAction, default_actions
from mover.kube.repositories import ensure_password_secret
from mover.kube.storage import StoreCache
from mover.velero.podvolumes import RESTORE_HELPER_IMAGE


@dataclass
class ServerOptions:
    namespace: str = "velero"
    resync: float = 60.0  # seconds; also the longest a time-driven check waits
    validation_frequency: timedelta = timedelta(minutes=1)  # Velero's --store-validation-frequency
    sync_period: timedelta = timedelta(minutes=1)  # Velero's --backup-sync-period
    default_location: str = "default"  # Velero's --default-backup-storage-location
    default_ttl: timedelta = DEFAULT_TTL  # Velero's --default-backup-ttl
    clock: Clock = utc_now
    backup_actions: list[ItemAction] = field(default_factory=default_actions)
    watch_seconds: int = WATCH_SECONDS
    restore_helper_image: str = RESTORE_HELPER_IMAGE
    pod_volume_timeout: timedelta = timedelta(hours=4)  # Velero's --fs-backup-timeout
    default_snapshot_move_data: bool = False  # Velero's --default-snapshot-move-data


class Server:
    def __init__(self, kube: Kube, options: ServerOptions) -> None:
        self.stores = StoreCache()
        self.manager = Manager(kube, options.namespace, resync=options.resync, clock=options.clock,
                               watch_seconds=options.watch_seconds)
        self.kube = kube
        self.namespace = options.namespace
        stores = self.stores
        backup = BackupSettings(options.default_location, options.default_ttl, options.backup_actions,
                                options.pod_volume_timeout, options.default_snapshot_move_data)
        self.manager.add(lambda ctx: BackupStorageLocationController(ctx, stores, options.validation_frequency))
        self.manager.add(lambda ctx: BackupController(ctx, stores, backup))
        self.manager.add(lambda ctx: RestoreController(ctx, stores, options.restore_helper_image,
                                                       options.pod_volume_timeout.total_seconds()))
        self.manager.add(lambda ctx: BackupRepositoryController(ctx, stores))
        self.manager.add(ScheduleController)
        self.manager.add(GarbageCollector)
        self.manager.add(lambda ctx: DeleteBackupRequestController(ctx, stores))
        self.manager.add(lambda ctx: BackupSyncController(ctx, stores, options.sync_period))
        self.manager.add(lambda ctx: DownloadRequestController(ctx, stores))

    def start(self) -> Server:
        ensure_password_secret(self.kube, self.namespace)
        self.manager.start()
        return self

    def stop(self, grace: float = 25.0) -> None:
        """Stop taking work, let work in hand finish (up to ``grace`` seconds), clean up."""
        self.manager.stop(grace)
        self.stores.close()

    def request_stop(self) -> None:
        """Make ``run()`` return; safe to call from a signal handler."""
        self.manager.stop_event.set()

    def run(self, grace: float = 25.0) -> None:
        """Serve until ``request_stop()``, then stop gracefully."""
        self.start()
        try:
            self.manager.stop_event.wait()
        finally:
            self.stop(grace)
