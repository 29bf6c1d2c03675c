"""The ``kbrowse`` command: look into a repository or a Velero bucket, take files out of it.

    kbrowse -r REPO snapshots
    kbrowse -r REPO ls SNAPSHOT[:PATH] [-l] [-R]
    kbrowse -r REPO cat SNAPSHOT:PATH > file
    kbrowse -r REPO cp SNAPSHOT:PATH DEST

    kbrowse --bsl BSL backups                      what `velero backup get` prints
    kbrowse --bsl BSL describe BACKUP              what `velero backup describe --details` prints
    kbrowse --bsl BSL logs BACKUP
    kbrowse --bsl BSL ls|cat|cp BACKUP/resources/RESOURCE/NAMESPACE/NAME ...
    kbrowse --bsl BSL ls|cat|cp BACKUP/volumes/NAMESPACE/POD/VOLUME[:PATH] ...

Global options (-r, --bsl, --password-file, --json, ...) go before or after the subcommand, as
restic's.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys

from mover.ui.earlyexit import quiet_sigint

quiet_sigint("kbrowse")
from collections.abc import Callable, Iterator  # noqa: E402
from typing import TYPE_CHECKING, NoReturn  # noqa: E402

# Only what every command needs is imported here: `ls`, `cat`, `cp` and `snapshots` start
# opening the repository (scrypt, which releases the GIL) before the parser is built and before
# the command imports its own modules; those imports then run while the key is derived. The
# parser itself imports no command's modules (the bucket's options are apart from its reader),
# and a repository command leaves out the demo, mount and cluster parsers.
from mover.errors import RepoError  # noqa: E402
from mover.opener import ViewOpening  # noqa: E402
from mover.ui import cliargs  # noqa: E402
from mover.ui.cliargs import UsageError, err, print_json, restore_default_sigint, run  # noqa: E402

if TYPE_CHECKING:
    from kbrowse.browse.pathspec import Target
    from mover.velero.bsl import BucketView
    from mover.view import Node, SnapshotView

PROG = "kbrowse"


def _open(args: argparse.Namespace, early: ViewOpening | None = None) -> SnapshotView:
    return cliargs.opening(args, early, ViewOpening).result()


def cmd_snapshots(args: argparse.Namespace, view: SnapshotView) -> int:
    from mover.ui import printers

    snaps = view.snapshots()
    if args.json:
        print_json([printers.snapshot_json(s) for s in snaps])
    else:
        sys.stdout.write(printers.snapshot_table(snaps))
    return 0


def _walk(view: SnapshotView, node: Node, recursive: bool) -> Iterator[tuple[str, Node]]:
    """(path relative to ``node``, child) in tree order, each directory before its contents."""
    stack = [("", iter(view.list_dir(node)))]
    while stack:
        prefix, it = stack[-1]
        child = next(it, None)
        if child is None:
            stack.pop()
            continue
        rel = prefix + child.name
        yield rel, child
        if recursive and child.type == "dir":
            stack.append((rel + "/", iter(view.list_dir(child))))


def _target(args: argparse.Namespace, view: SnapshotView) -> Target:
    from kbrowse.browse.pathspec import resolve

    if not args.target:
        raise UsageError(f"{args.command}: give SNAPSHOT[:PATH], e.g. latest:/")
    return resolve(view, args.target)


def cmd_ls(args: argparse.Namespace, view: SnapshotView) -> int:
    return ls_target(args, view, _target(args, view))


def cmd_cat(args: argparse.Namespace, view: SnapshotView) -> int:
    return cat_target(view, _target(args, view))


def cmd_cp(args: argparse.Namespace, view: SnapshotView) -> int:
    return cp_target(args, view, _target(args, view))


def ls_target(args: argparse.Namespace, view: SnapshotView, t: Target) -> int:
    from kbrowse.browse import listing
    from mover.golang.gojson import go_quote

    if t.node.type == "dir":
        entries = _walk(view, t.node, args.recursive)
        base = t.path.rstrip("/") + "/"
    else:
        entries = iter([(t.node.name, t.node)])
        base = t.path[: -len(t.node.name)]
    if args.json:
        for rel, node in entries:
            print_json(listing.node_json(node, base + rel))
        return 0
    # lines go out a thousand at a time: one write each would be one system call each when
    # stdout is unbuffered (python -u, PYTHONUNBUFFERED), a third of a long listing's time
    lines: list[str] = []
    for rel, node in entries:
        lines.append(listing.long_line(node, rel) if args.long else go_quote(rel))
        if len(lines) == 1000:
            sys.stdout.write("\n".join(lines) + "\n")
            lines.clear()
    if lines:
        sys.stdout.write("\n".join(lines) + "\n")
    return 0


def cat_target(view: SnapshotView, t: Target) -> int:
    if t.node.type != "file":
        raise RepoError(f"{t.path} in snapshot {t.snapshot.short_id} is a {t.node.type}, not a file")
    out = sys.stdout.buffer
    try:
        for data in view.iter_content(t.node):
            out.write(data)
    except RepoError as e:
        raise RepoError(f"{t.path}: {e}") from None
    out.flush()
    return 0


def cp_target(args: argparse.Namespace, view: SnapshotView, t: Target) -> int:
    from mover.progress import Counters, ProgressBar, human_bytes

    counters = Counters()
    with ProgressBar(counters, "restoring", enabled=False if args.json else None):
        result = view.restore(t.node, args.dest, counters)
    for w in result.warnings:
        err(PROG, f"warning: {w}")
    for e in result.errors:
        err(PROG, f"error: {e}")
    secs = counters.elapsed()
    if args.json:
        print_json({"files": result.files, "dirs": result.dirs, "bytes": result.bytes,
                    "errors": len(result.errors), "warnings": len(result.warnings),
                    "cancelled": result.cancelled, "seconds": round(secs, 3)})
    else:
        line = (f"restored {result.files} files, {human_bytes(result.bytes)} in {secs:.1f}s "
                f"({human_bytes(result.bytes / max(secs, 1e-6))}/s)")
        if result.errors:
            line += f"; {len(result.errors)} errors"
        sys.stdout.write(line + "\n")
    return 0 if result.ok else 1


COMMANDS: dict[str, Callable[[argparse.Namespace, SnapshotView], int]] = {
    "snapshots": cmd_snapshots, "ls": cmd_ls, "cat": cmd_cat, "cp": cmd_cp,
}


# -- on a Velero bucket (--bsl) -----------------------------------------------------------------


def bsl_ls(args: argparse.Namespace, bucket: BucketView) -> int:
    from kbrowse.bucket import commands as bucketcmd
    from kbrowse.bucket import paths as bucketpaths

    p = bucketpaths.parse(args.target)
    if p.is_volume:
        return ls_target(args, *bucketcmd.volume_target(bucket, p))
    return bucketcmd.ls_level(args, bucket, p)


def bsl_cat(args: argparse.Namespace, bucket: BucketView) -> int:
    from kbrowse.bucket import commands as bucketcmd
    from kbrowse.bucket import paths as bucketpaths

    p = bucketpaths.parse(args.target)
    if p.is_volume:
        return cat_target(*bucketcmd.volume_target(bucket, p))
    return bucketcmd.cat_resource(bucket, p)


def bsl_cp(args: argparse.Namespace, bucket: BucketView) -> int:
    from kbrowse.bucket import commands as bucketcmd
    from kbrowse.bucket import paths as bucketpaths

    p = bucketpaths.parse(args.target)
    if p.is_volume:
        return cp_target(args, *bucketcmd.volume_target(bucket, p))
    if p.area == bucketpaths.VOLUMES:
        raise UsageError(f"{p}: cp takes one volume, BACKUP/volumes/NAMESPACE/POD/VOLUME[:PATH]")
    return bucketcmd.cp_resources(args, bucket, p)


def bsl_commands() -> dict[str, Callable[[argparse.Namespace, BucketView], int]]:
    from kbrowse.bucket import commands as bucketcmd

    return {"backups": bucketcmd.cmd_backups, "describe": bucketcmd.cmd_describe, "logs": bucketcmd.cmd_logs,
            "ls": bsl_ls, "cat": bsl_cat, "cp": bsl_cp}


def build_parser(everything: bool = True) -> argparse.ArgumentParser:
    """The command line; without ``everything``, the repository and bucket commands only: the
    parsers of demo, mount and the cluster commands import their modules, which a repository
    command does not otherwise need (help is always the whole parser's)."""
    from kbrowse.bucket import options as bucketopts

    p = argparse.ArgumentParser(
        prog=PROG, description="Browse and restore backups in a restic-format repository (-r) "
                               "or in a Velero backup storage location (--bsl).",
        epilog="SNAPSHOT is an id, an unambiguous id prefix, or 'latest'; PATH is a path inside "
               "it ('/' when left out). With --bsl, targets are backup paths: "
               "BACKUP[/resources[/RESOURCE[.GROUP]/NAMESPACE/NAME]] (NAMESPACE _cluster for "
               "cluster-scoped objects) or BACKUP/volumes[/NAMESPACE/POD/VOLUME[:PATH]].")
    cliargs.add_global_options(p, top=True)
    bucketopts.add_options(p, top=True)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def cmd(name: str, help: str) -> argparse.ArgumentParser:
        s = sub.add_parser(name, help=help, description=help)
        cliargs.add_global_options(s, top=False)
        bucketopts.add_options(s, top=False)
        return s

    cmd("snapshots", "list the snapshots")
    s = cmd("backups", "list the backups in a bucket (--bsl), as `velero backup get` does")
    s.add_argument("-o", "--output", choices=("table", "json", "yaml"), default="table",
                   help="output format (default: table)")
    s = cmd("describe", "describe a backup in a bucket (--bsl), as `velero backup describe "
                        "--details` does")
    s.add_argument("backup", metavar="BACKUP")
    s.add_argument("--details", action="store_true",
                   help="accepted for velero's sake: the details are always shown")
    s = cmd("logs", "print a backup's log from a bucket (--bsl)")
    s.add_argument("backup", metavar="BACKUP")
    s = cmd("ls", "list a directory (or one file) of a snapshot, or a level of a backup path")
    s.add_argument("target", metavar="SNAPSHOT[:PATH]", nargs="?")
    s.add_argument("-l", "--long", action="store_true", help="mode, owner, size, time, link target")
    s.add_argument("-R", "--recursive", action="store_true", help="list sub-directories too")
    s = cmd("cat", "write a file's bytes (or a backed-up object as YAML) to stdout")
    s.add_argument("target", metavar="SNAPSHOT:PATH", nargs="?")
    s = cmd("cp", "restore a file or a directory (SNAPSHOT:/ is everything), or backed-up "
                  "objects as YAML, into DEST")
    s.add_argument("target", metavar="SNAPSHOT:PATH")
    s.add_argument("dest", metavar="DEST",
                   help="directory that receives a directory's contents (created if missing); "
                        "for a file, a directory to put it in or the new file's path")
    if not everything:
        return p
    from kbrowse.cluster import commands as clustercmd
    from kbrowse.fuse import mountcmd

    s = sub.add_parser("demo", help="build a local Velero bucket with two backups and show it",
                       description="Build ./kbrowse-demo/bucket: two Velero backups of a sample "
                                   "namespace (resources, a pod volume by file-system backup, a "
                                   "claim by CSI snapshot data movement), written by the mover "
                                   "in-process; then open the app on it. No cluster needed.")
    s.add_argument("--dir", default="kbrowse-demo", help="where to put the demo (default: %(default)s)")
    mountcmd.register(sub)
    clustercmd.register(sub)  # backup, restore, schedule, backup-location, repo: leaves set `handler`
    return p


def cmd_demo(args: argparse.Namespace) -> int:
    from pathlib import Path

    from kbrowse.bucket import commands as bucketcmd
    from kbrowse.demo import BACKUPS, FS_VOLUME, NAMESPACE, POD, run_demo
    from mover.velero.bsl import BucketView

    demo = run_demo(Path(args.dir))
    bsl = str(demo.bucket)
    with BucketView.open(bsl) as bucket:
        print(f"\nVelero bucket {bsl}, no cluster needed:\n")
        args.output = "table"
        bucketcmd.cmd_backups(args, bucket)
    latest = BACKUPS[-1]
    print(f"\ntry: kbrowse --bsl {bsl} describe {latest}\n     kbrowse --bsl {bsl} cat "
          f"{latest}/volumes/{NAMESPACE}/{POD}/{FS_VOLUME}:/config/app.yaml")
    if sys.stdin.isatty() and sys.stdout.isatty():
        from kbrowse.tui.app import run_tui  # Textual takes ~0.5 s to import: only for the app

        with BucketView.open(bsl) as bucket:
            run_tui(None, bsl, bucket=bucket)
    return 0


def open_app(args: argparse.Namespace) -> int:
    """The TUI on --bsl (bucket mode), on a cluster (--kubecontext/--kubeconfig: cluster mode),
    on -r/RESTIC_REPOSITORY when given, else on its source picker."""
    # Textual's and the Kubernetes client's imports make ~150,000 objects and no garbage to
    # speak of: the collector's passes over them are wasted (~0.15 CPU s). run_tui turns it
    # back on.
    gc.disable()
    from kbrowse.bucket import commands as bucketcmd
    from kbrowse.tui.app import run_tui  # Textual takes ~0.5 s to import: only for the app

    if args.bsl:
        if args.repo:
            raise UsageError("give either -r/--repo (a repository) or --bsl (a bucket), not both")
        with bucketcmd.open_bucket(args) as bucket:
            run_tui(None, bucket.location(), bucket=bucket)
        return 0
    if args.kubecontext or args.kubeconfig:
        if args.repo:
            raise UsageError("give either -r/--repo (a repository) or --kubecontext (a cluster), not both")
        from kbrowse.cluster.session import ClusterSession, KubeTarget

        session = ClusterSession.connect(KubeTarget(args.kubeconfig, args.kubecontext, args.namespace))
        try:
            # The first LISTs travel to the cluster while Textual starts; the Backups screen
            # reads what the store holds once it is mounted.
            session.store.start()
            run_tui(None, cluster=session)
        finally:
            session.close()
        return 0
    if args.repo or os.environ.get("RESTIC_REPOSITORY"):
        view = _open(args)
        try:
            run_tui(view, view.location())
        finally:
            view.close()
    else:
        run_tui(None)
    return 0


def main(argv: list[str] | None = None) -> NoReturn:
    from kbrowse.bucket.options import add_options

    fast_exit = argv is None  # the process's own command line (see cliargs.run)
    argv = sys.argv[1:] if argv is None else argv
    peek = cliargs.peek(argv, add_options)
    early = None
    if peek is not None and not peek.bsl:
        early = cliargs.open_early(peek, COMMANDS, ViewOpening)
    parser = build_parser(everything=peek is None or peek.command not in COMMANDS or peek.help)
    restore_default_sigint()  # after the parser's imports: Ctrl-C there exits quietly
    args = parser.parse_args(argv)
    if args.command is None:
        if not (sys.stdin.isatty() and sys.stdout.isatty()):
            parser.print_help()
            sys.exit(0)
        run(PROG, lambda: open_app(args))

    def body() -> int:
        from kbrowse.fuse import mountcmd

        if hasattr(args, "handler"):
            return args.handler(args)
        if args.command == "demo":
            return cmd_demo(args)
        if args.command in mountcmd.COMMANDS:
            return mountcmd.COMMANDS[args.command](args)
        if args.bsl:
            if args.repo:
                raise UsageError("give either -r/--repo (a repository) or --bsl (a bucket), not both")
            commands = bsl_commands()
            if args.command not in commands:
                raise UsageError(f"{args.command} works on a repository (-r), not on --bsl")
            from kbrowse.bucket import commands as bucketcmd

            with bucketcmd.open_bucket(args) as bucket:
                return commands[args.command](args, bucket)
        if args.command not in COMMANDS:
            raise UsageError(f"{args.command} needs --bsl: a bucket URL or a directory with "
                             "Velero's layout")
        view = _open(args, early)
        try:
            return COMMANDS[args.command](args, view)
        finally:
            view.close()

    run(PROG, body, fast_exit=fast_exit)


if __name__ == "__main__":
    main()
