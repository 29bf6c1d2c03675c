"""`mover restore-wait RESTORE_UID`: the restore-wait init container of a restored pod (Velero's
velero-restore-helper). Waits until every volume mounted under /restores holds
``.velero/<RESTORE_UID>`` (the node agent writes it once the volume's data is restored), then
removes those marker folders, so the pod's containers start on the restored data alone."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time

from mover.velero.podvolumes import MARKER_DIR, RESTORES_DIR

POLL_SECONDS = 1.0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("restore-wait", help="wait for the node agent to restore a pod's volumes (the "
                                            "restore-wait init container)",
                       description="Wait until each folder under --dir holds .velero/RESTORE_UID.")
    p.add_argument("restore_uid", metavar="RESTORE_UID")
    p.add_argument("--dir", default=RESTORES_DIR, help=f"where the volumes are mounted (default {RESTORES_DIR})")
    p.add_argument("--timeout", type=float, default=0.0, metavar="SECONDS",
                   help="give up (exit 1) after this long; 0 waits for ever (default)")
    p.set_defaults(handler=run)


def pending(root: str, restore_uid: str) -> list[str]:
    """The volume folders under ``root`` whose marker is not there yet."""
    volumes = sorted(e.path for e in os.scandir(root) if e.is_dir())
    return [v for v in volumes if not os.path.exists(os.path.join(v, MARKER_DIR, restore_uid))]


def run(args: argparse.Namespace) -> int:
    deadline = time.monotonic() + args.timeout if args.timeout > 0 else None
    while True:
        try:
            waiting = pending(args.dir, args.restore_uid)
        except OSError as exc:
            print(f"mover restore-wait: cannot read {args.dir}: {exc.strerror}", file=sys.stderr)
            waiting = [args.dir]
        if not waiting:
            break
        if deadline is not None and time.monotonic() > deadline:
            print(f"mover restore-wait: gave up after {args.timeout:g}s; not restored: {', '.join(waiting)}",
                  file=sys.stderr)
            return 1
        time.sleep(POLL_SECONDS)
    print("All restic restores are done", flush=True)
    for volume in sorted(e.path for e in os.scandir(args.dir) if e.is_dir()):
        shutil.rmtree(os.path.join(volume, MARKER_DIR), ignore_errors=True)
    return 0
