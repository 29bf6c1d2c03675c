"""`kbrowse mount` and `kbrowse umount`.

`kbrowse mount MOUNTPOINT` returns once the filesystem is mounted and serves it from a
background process, as `mount`, sshfs and `borg mount` do: the operator keeps the terminal to
browse the mount and ends it with `kbrowse umount MOUNTPOINT` (or `fusermount -u`). Errors that
happen before the mount is up (mountpoint, repository, password) are reported by the command
itself, with a non-zero exit. `--foreground` stays in the terminal like `restic mount`, logging
read errors there; Ctrl-C (SIGINT), SIGTERM and SIGHUP unmount cleanly in both modes.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from collections.abc import Callable
from types import ModuleType

from kbrowse.bucket import options as bucketopts
from mover.ui import cliargs

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str) -> int:
    """``256M``, ``1G``, ``65536``: binary units, an optional trailing B or iB."""
    m = re.fullmatch(r"\s*(\d+)\s*([KMGT]?)(?:i?B)?\s*", text, re.IGNORECASE)
    if not m:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (use e.g. 512M or 2G)")
    return int(m.group(1)) * _UNITS[m.group(2).upper()]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `mount` and `umount` to a CLI's subcommands; dispatch with :data:`COMMANDS`."""
    desc = ("mount a repository (or one SNAPSHOT) as a read-only filesystem: snapshots/<time>/, "
            "snapshots/latest, ids/<id>/, hosts/<host>/<time>/, tags/<tag>/<time>/; or, with "
            "--bsl, a Velero bucket: backups/<backup>/volumes/<namespace>/<pod>/<volume>/ and "
            "backups/<backup>/resources/<resource>/<namespace>/<name>.yaml. Returns once "
            "mounted; the filesystem is served in the background until `kbrowse umount`.")
    sp = subparsers.add_parser("mount", help="mount snapshots as a read-only filesystem",
                               description=desc)
    cliargs.add_global_options(sp, top=False)
    bucketopts.add_options(sp, top=False)
    sp.add_argument("mountpoint", metavar="MOUNTPOINT", help="an existing empty directory")
    sp.add_argument("snapshot", metavar="SNAPSHOT", nargs="?",
                    help="mount only this snapshot (id, id prefix or 'latest') at MOUNTPOINT")
    sp.add_argument("--cache-size", type=parse_size, default=parse_size("256M"), metavar="SIZE",
                    help="memory for decrypted data blobs (default 256M)")
    sp.add_argument("--allow-other", action="store_true",
                    help="let other users use the mount; the snapshot's permissions then apply")
    sp.add_argument("--foreground", "-f", action="store_true",
                    help="stay in the foreground and log read errors; Ctrl-C unmounts")
    sp.add_argument("--no-lock", action="store_true",
                    help="do not hold a shared lock on the repository while mounted")
    sp.add_argument("--fuse", choices=("kernel", "libfuse"), default=None,
                    help="how to serve FUSE: kernel (the protocol on /dev/fuse, Linux; the "
                         "default there) or libfuse (libfuse2 through fusepy; slower listings)")
    sp = subparsers.add_parser("umount", help="unmount a kbrowse mount",
                               description="unmount a filesystem mounted with `kbrowse mount`")
    cliargs.add_global_options(sp, top=False)
    sp.add_argument("mountpoint", metavar="MOUNTPOINT")


def cmd_mount(args: argparse.Namespace) -> int:
    # the mount's modules are imported when it runs: every kbrowse command builds its parser
    from kbrowse.fuse.mountpoint import check_mountpoint, load_fs

    if getattr(args, "bsl", None):
        if args.repo:
            raise cliargs.UsageError("give either -r/--repo (a repository) or --bsl (a bucket), "
                                     "not both")
        if args.snapshot:
            raise cliargs.UsageError("with --bsl the whole bucket is mounted: leave out SNAPSHOT")
    mp = check_mountpoint(args.mountpoint)
    fs = load_fs(args.fuse)
    if args.foreground:
        return _serve(args, mp, fs, on_ready=None)
    return _in_background(lambda on_ready: _serve(args, mp, fs, on_ready))


def _serve(args: argparse.Namespace, mp: str, fs: ModuleType,
           on_ready: Callable[[], None] | None) -> int:
    if getattr(args, "bsl", None):
        return _serve_bucket(args, mp, fs, on_ready)
    from kbrowse.fuse.tree import RepositoryTree, SnapEntry
    from mover.opener import open_view

    loc = cliargs.repo_location(args)
    view = open_view(loc, cliargs.password(args, location=loc), cache_bytes=args.cache_size)
    try:
        if args.snapshot:
            snap = view.find_snapshot(args.snapshot)
            ops = fs.SnapshotFS(view, SnapEntry(snap, view.root(snap), b""), on_ready=on_ready)
        else:
            # the snapshot list only: trees are loaded when a directory is looked into
            tree = RepositoryTree(view)
            ops = fs.SnapshotFS(view, tree.root(), on_ready=on_ready, reload=tree.reload)
        if on_ready is None:
            cliargs.err("kbrowse", f"serving {view.location()} at {mp}; Ctrl-C or "
                                   f"`kbrowse umount {mp}` unmounts")
        if args.no_lock:
            fs.serve(ops, mp, allow_other=args.allow_other, transport=args.fuse)
        else:
            # like restic mount: a prune must not delete packs under a live mount
            with view.read_lock():
                fs.serve(ops, mp, allow_other=args.allow_other, transport=args.fuse)
    finally:
        view.close()
    return 0


def _serve_bucket(args: argparse.Namespace, mp: str, fs: ModuleType,
                  on_ready: Callable[[], None] | None) -> int:
    """A Velero bucket: backups/<backup>/{volumes,resources}/..., loaded as it is looked into.
    No lock is taken in the volume repositories: the bucket is Velero's, and stays unwritten."""
    from kbrowse.bucket import commands as bucketcmd  # the bucket reader: only for --bsl
    from kbrowse.fuse.bucket import BucketTree

    with bucketcmd.open_bucket(args) as bucket:
        tree = BucketTree(bucket, time.time_ns())
        ops = fs.SnapshotFS(None, tree.root(), on_ready=on_ready, reload=tree.reload)
        if on_ready is None:
            cliargs.err("kbrowse", f"serving {bucket.location()} at {mp}; Ctrl-C or "
                                   f"`kbrowse umount {mp}` unmounts")
        fs.serve(ops, mp, allow_other=args.allow_other, transport=args.fuse)
    return 0


def _in_background(serve: Callable[[Callable[[], None]], int]) -> int:
    """Run ``serve`` in a child process; return 0 once it reports the mount ready, or the
    child's exit code if it fails first (it has printed why on our stderr)."""
    sys.stdout.flush()
    sys.stderr.flush()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        cliargs.run("kbrowse", lambda: serve(lambda: _detach(w)))  # exits
    os.close(w)
    with os.fdopen(r, "rb") as ready:
        if ready.read(1):
            return 0
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) or 1


def _detach(ready_fd: int) -> None:
    """In the serving child, once mounted: leave the terminal's session and let the caller go.
    stdio go to /dev/null so a caller reading our output sees its end; stderr stays only if it
    is a terminal, where later read errors are still worth showing."""
    os.setsid()
    os.chdir("/")
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1) if os.isatty(2) else (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
    os.write(ready_fd, b"\n")
    os.close(ready_fd)


def cmd_umount(args: argparse.Namespace) -> int:
    from kbrowse.fuse.mountpoint import MountError, fusermount

    mp = os.path.abspath(args.mountpoint)
    try:
        os.stat(mp)
        mounted = os.path.ismount(mp)
    except FileNotFoundError:
        raise MountError(f"{args.mountpoint} does not exist") from None
    except OSError:
        mounted = True  # a dead mount (ENOTCONN): still unmountable
    if not mounted:
        raise MountError(f"{args.mountpoint} is not mounted")
    why = fusermount("-u", mp)
    if why:
        raise MountError(f"cannot unmount {args.mountpoint}: {why}")
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {"mount": cmd_mount, "umount": cmd_umount}

