"""`mover`: the data mover's command line: repository commands, and `install`/`server` for a cluster."""

from __future__ import annotations

import argparse
import importlib
import json
import sys

from mover.ui.earlyexit import quiet_sigint

quiet_sigint("mover")

# Only what parsing needs is imported here. A repository command starts opening the repository
# (scrypt, which releases the GIL) and imports its own modules while that runs; the cluster
# commands' modules (YAML and the CRD types, ~35 ms) load only when one of them is asked for.
from mover import __version__  # noqa: E402
from mover.repo.open import Opening, open_backend  # noqa: E402
from mover.ui import cliargs, maintcmd  # noqa: E402

EXIT_PARTIAL = 3  # as restic: the snapshot exists but some sources could not be read


def build_parser(cluster: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mover", description="restic-compatible data mover")
    p.add_argument("--version", action="version", version=f"mover {__version__}")
    cliargs.add_global_options(p, top=True)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def cmd(name: str, help_: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_, description=help_)
        cliargs.add_global_options(sp, top=False)
        return sp

    sp = cmd("init", "create a new repository")
    sp.add_argument("--repository-version", type=int, default=2, choices=(1, 2),
                    help="format version to write (default 2, compressed)")
    sp = cmd("backup", "back up files and directories into a new snapshot")
    sp.add_argument("paths", nargs="+", metavar="PATH")
    sp.add_argument("--tag", action="append", default=[], metavar="TAG",
                    help="add a tag (repeatable; 'a,b' adds two)")
    sp.add_argument("--host", help="hostname recorded in the snapshot (default: this host)")
    sp.add_argument("--parent", metavar="SNAPSHOT",
                    help="compare against this snapshot (default: latest with the same host and paths)")
    sp.add_argument("--force", action="store_true", help="read every file, ignore the parent")
    sp.add_argument("--with-atime", action="store_true",
                    help="record access times (default: atime = mtime, as restic does)")
    cmd("snapshots", "list snapshots")
    sp = cmd("check", "verify the repository's structure")
    sp.add_argument("--read-data", action="store_true", help="also read and verify every pack")
    maintcmd.add_parsers(cmd)
    if cluster:
        for module in CLUSTER_COMMANDS:  # their parsers set `handler`
            importlib.import_module(module).register(sub)
    return p


CLUSTER_COMMANDS = ("mover.deploy.installcmd", "mover.kube.servercmd", "mover.kube.nodeagentcmd",
                    "mover.kube.restorewait")


def main(argv: list[str] | None = None) -> None:
    fast_exit = argv is None  # the process's own command line (see cliargs.run)
    argv = sys.argv[1:] if argv is None else argv
    peek = cliargs.peek(argv)
    # a repository command parses without the cluster commands; help lists them all
    parser = build_parser(cluster=peek is None or peek.command not in COMMANDS or peek.help)
    cliargs.restore_default_sigint()  # after the parser's imports: Ctrl-C there exits quietly
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        sys.exit(0)
    handler = getattr(args, "handler", None) or COMMANDS[args.command]
    cliargs.run("mover", lambda: handler(args), fast_exit=fast_exit)


def cmd_init(args: argparse.Namespace) -> int:
    from mover.repo.repository import Repository

    loc = cliargs.repo_location(args)
    pw = cliargs.password(args, confirm=True)
    repo = Repository.init(open_backend(loc), pw, version=args.repository_version)
    if args.json:
        cliargs.print_json({"message_type": "initialized", "id": repo.id, "repository": loc})
    else:
        print(f"created repository {repo.id[:10]} (version {repo.version}) at {loc}")
    return 0


def cmd_backup(args: argparse.Namespace) -> int:
    from mover.archiver.prescan import Prescan

    opening = cliargs.opening(args, None, Opening)
    # stat the source tree while the key is derived and the modules below load (see Prescan)
    prescan = Prescan(args.paths)
    from mover.archiver.pipeline import Archiver, find_parent
    from mover.progress import Counters, ProgressBar, human_bytes, human_duration
    from mover.repo import identity
    from mover.repo.lock import Lock

    repo = opening.result()
    host = args.host or identity.hostname()
    tags = [t for arg in args.tag for t in arg.split(",") if t]

    def warn(m: str) -> None:
        if args.json:  # like restic --json: stdout stays the summary, warnings go to stderr as JSON
            sys.stderr.write(json.dumps(
                {"message_type": "error", "error": {"message": m}, "during": "archival"}) + "\n")
        else:
            cliargs.err("mover", f"warning: {m}")

    # the walk runs during the lock's 200 ms re-check; the first write waits for it
    with Lock(repo, exclusive=False).acquire(confirm_before_write=True):
        parent = None
        if args.parent:
            parent = repo.find_snapshot(args.parent)
        elif not args.force:
            parent = find_parent(repo, args.paths, host)
        counters = Counters()
        arch = Archiver(repo, counters, warn=warn, with_atime=args.with_atime, prescan=prescan)
        with ProgressBar(counters, "backup", enabled=None if not args.json else False):
            res = arch.backup(args.paths, host=host, tags=tags, parent=parent)
    s = res.stats
    elapsed = counters.elapsed()
    if args.json:
        cliargs.print_json({
            "message_type": "summary", "snapshot_id": res.snapshot.id.hex(),
            "parent": parent.id.hex() if parent else None,
            "files_new": s.files_new, "files_changed": s.files_changed,
            "files_unmodified": s.files_unmodified, "dirs": s.dirs,
            "data_blobs": s.data_blobs_added, "data_added": s.data_added,
            "bytes_read": s.bytes_read, "total_files_processed": counters.files,
            "total_bytes_processed": counters.bytes, "errors": len(s.warnings),
            "total_duration": round(elapsed, 3)})
    else:
        if parent:
            print(f"using parent snapshot {parent.short_id}")
        print(f"Files: {s.files_new} new, {s.files_changed} changed, {s.files_unmodified} unmodified")
        rate = human_bytes(counters.bytes / elapsed) + "/s" if elapsed > 0 else ""
        print(f"processed {counters.files} files, {human_bytes(counters.bytes)} in "
              f"{human_duration(elapsed)} ({rate}); added {human_bytes(s.data_added)}; "
              f"snapshot {res.snapshot.short_id} saved")
        if s.warnings:
            n = len(s.warnings)
            print(f"mover: warning: {n} source path{'s' if n != 1 else ''} could not be read; "
                  f"the snapshot is incomplete",
                  file=sys.stderr)
    return EXIT_PARTIAL if s.warnings else 0


def cmd_snapshots(args: argparse.Namespace) -> int:
    from mover.ui import printers

    repo = cliargs.opening(args, None, Opening).result()
    snaps = repo.snapshots()
    if args.json:
        cliargs.print_json([printers.snapshot_json(s) for s in snaps])
        return 0
    sys.stdout.write(printers.snapshot_table(snaps))
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    opening = cliargs.opening(args, None, Opening)
    from mover.repo.check import check
    from mover.repo.lock import Lock

    repo = opening.result()
    # check only reads: it runs during the lock's 200 ms re-check, and its findings only count
    # once the re-check has confirmed the lock
    with Lock(repo, exclusive=True).acquire(confirm_before_write=True) as lock:
        rep = check(repo, read_data=args.read_data)
        lock.confirm()
    if args.json:
        cliargs.print_json({"ok": rep.ok, "errors": rep.errors, "hints": rep.hints,
                            "advice": rep.advice, "packs": rep.packs, "snapshots": rep.snapshots})
    else:
        for h in rep.hints + rep.advice:
            print(h)
        for e in rep.errors:
            print(f"error: {e}", file=sys.stderr)
        what = f"{rep.packs} packs, {rep.snapshots} snapshots, {rep.trees} trees"
        if args.read_data:
            what += f", {rep.packs_read} packs read"
        print(("no errors were found" if rep.ok else f"{len(rep.errors)} errors found") + f" ({what})")
    return 0 if rep.ok else 1


COMMANDS = {"init": cmd_init, "backup": cmd_backup, "snapshots": cmd_snapshots, "check": cmd_check,
            "forget": maintcmd.cmd_forget, "prune": maintcmd.cmd_prune}

if __name__ == "__main__":
    main()
