"""`mover server`: run the controllers until SIGTERM or SIGINT, then stop gracefully (work in
hand finishes; an interrupted backup is resumed by the next server).

Flags follow `velero server` where they exist there. Logs go to stderr as logrus text, like
Velero's.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from mover.errors import RepoError
from mover.golang.duration import parse_duration
from mover.ui.cliargs import add_kube_options
from mover.velero.podvolumes import RESTORE_HELPER_IMAGE

if TYPE_CHECKING:
    from mover.kube.framework.client import Kube

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def _duration(text: str) -> timedelta:
    try:
        return timedelta(microseconds=parse_duration(text) // 1000)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r} (e.g. 30s, 1m, 720h)") from None


class _LogrusFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if message.startswith('time="'):  # an operation log line, already logrus text
            return message
        stamp = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        text = message.replace('"', '\\"')
        line = f'time="{stamp}" level={record.levelname.lower()} msg="{text}" logSource="{record.name}"'
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("server", help="run the server: Velero's backup, restore, schedule, GC, sync and "
                                      "storage-location controllers",
                       description="Watch velero.io objects in one namespace and carry them out.")
    add_kube_options(p)
    p.add_argument("-n", "--namespace", default=os.environ.get("VELERO_NAMESPACE") or "velero",
                   help="namespace of the velero.io objects (default: $VELERO_NAMESPACE or velero)")
    p.add_argument("--default-backup-storage-location", default="default", metavar="NAME",
                   help="location for backups that name none and when no location is marked default")
    p.add_argument("--default-backup-ttl", type=_duration, default=timedelta(hours=720), metavar="DURATION",
                   help="how long backups are kept when they do not say (default 720h)")
    p.add_argument("--store-validation-frequency", type=_duration, default=timedelta(minutes=1),
                   metavar="DURATION", help="how often storage locations are validated (default 1m)")
    p.add_argument("--backup-sync-period", type=_duration, default=timedelta(minutes=1), metavar="DURATION",
                   help="how often backups are synced from storage locations (default 1m)")
    p.add_argument("--resync-period", type=_duration, default=timedelta(minutes=1), metavar="DURATION",
                   help="how often every object is looked at again (default 1m)")
    p.add_argument("--restore-helper-image", default=RESTORE_HELPER_IMAGE, metavar="IMAGE",
                   help="image of the restore-wait init container of restored pods with volume data "
                        f"(default {RESTORE_HELPER_IMAGE})")
    p.add_argument("--default-snapshot-move-data", action="store_true",
                   help="move the data of CSI snapshots into the storage location for backups that do not "
                        "say (spec.snapshotMoveData)")
    p.add_argument("--log-level", choices=tuple(_LEVELS), default="info")
    p.set_defaults(handler=run)


def configure_logging(level: str) -> None:
    """Logrus text on stderr: the mover's own messages at ``level``, libraries (botocore,
    urllib3) only when they warn."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_LogrusFormatter())
    logging.basicConfig(level=logging.WARNING, handlers=[handler], force=True)
    logging.getLogger("mover").setLevel(_LEVELS[level])


def connect(args: argparse.Namespace) -> Kube:
    """The cluster of ``--kubeconfig``/``--context`` (or the pod's service account), checked."""
    from mover.kube.framework.client import Kube, KubeError, load_api_client

    try:
        kube = Kube(load_api_client(args.kubeconfig, args.context))
        kube.server_version()  # fail now, with a clear message, if the cluster is not there
    except KubeError as exc:
        raise RepoError(f"cannot reach the Kubernetes API: {exc.message}") from None
    return kube


def run(args: argparse.Namespace) -> int:
    # Imported here: the Kubernetes client is slow to import, and `mover --help` should not wait.
    from mover.kube.server import Server, ServerOptions

    configure_logging(args.log_level)
    options = ServerOptions(namespace=args.namespace, resync=args.resync_period.total_seconds(),
                            validation_frequency=args.store_validation_frequency,
                            sync_period=args.backup_sync_period,
                            default_location=args.default_backup_storage_location,
                            default_ttl=args.default_backup_ttl,
                            restore_helper_image=args.restore_helper_image,
                            default_snapshot_move_data=args.default_snapshot_move_data)
    server = Server(connect(args), options)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: server.request_stop())
    logging.getLogger("mover.kube").info("starting the server in namespace %s", args.namespace)
    server.run()
    logging.getLogger("mover.kube").info("server stopped")
    return 0
