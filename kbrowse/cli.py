"""The ``kbrowse`` command: look into a repository and take files out of it.

    kbrowse -r REPO snapshots
    kbrowse -r REPO ls SNAPSHOT[:PATH] [-l] [-R]
    kbrowse -r REPO cat SNAPSHOT:PATH > file
    kbrowse -r REPO cp SNAPSHOT:PATH DEST

Global options (-r, --password-file, --json) go before or after the subcommand, as restic's.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from collections.abc import Callable, Iterator
from typing import NoReturn

from kbrowse import listing
from kbrowse.demo import DEMO_PASSWORD, run_demo
from kbrowse.pathspec import resolve
from mover.cliargs import add_global_options, err, password, print_json, repo_location, run
from mover.progress import Counters, ProgressBar, human_bytes
from mover.repo.errors import RepoError
from mover.repo.gojson import go_quote
from mover.repo.open import open_repository
from mover.repo.tree import Node
from mover.repo.view import RepositoryView
from mover.restorer import restore

PROG = "kbrowse"


def _open(args: argparse.Namespace) -> RepositoryView:
    return RepositoryView(open_repository(repo_location(args), password(args)))


def cmd_snapshots(args: argparse.Namespace, view: RepositoryView) -> int:
    snaps = view.snapshots()
    if args.json:
        print_json([listing.snapshot_json(s) for s in snaps])
    else:
        sys.stdout.write(listing.snapshot_table(snaps))
    return 0


def _walk(view: RepositoryView, node: Node, recursive: bool) -> Iterator[tuple[str, Node]]:
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


def cmd_ls(args: argparse.Namespace, view: RepositoryView) -> int:
    t = resolve(view, args.target)
    if t.node.type == "dir":
        entries = _walk(view, t.node, args.recursive)
        base = t.path.rstrip("/") + "/"
    else:
        entries = iter([(t.node.name, t.node)])
        base = t.path[: -len(t.node.name)]
    out = sys.stdout
    for rel, node in entries:
        if args.json:
            print_json(listing.node_json(node, base + rel))
        elif args.long:
            out.write(listing.long_line(node, rel) + "\n")
        else:
            out.write(go_quote(rel) + "\n")
    return 0


def cmd_cat(args: argparse.Namespace, view: RepositoryView) -> int:
    t = resolve(view, args.target)
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


def cmd_cp(args: argparse.Namespace, view: RepositoryView) -> int:
    t = resolve(view, args.target)
    counters = Counters()
    with ProgressBar(counters, "restoring", enabled=False if args.json else None):
        result = restore(view.repo, t.node, args.dest, counters)
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


COMMANDS: dict[str, Callable[[argparse.Namespace, RepositoryView], int]] = {
    "snapshots": cmd_snapshots, "ls": cmd_ls, "cat": cmd_cat, "cp": cmd_cp,
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG, description="Browse and restore backups in a restic-format repository.",
        epilog="SNAPSHOT is an id, an unambiguous id prefix, or 'latest'; PATH is a path inside "
               "it ('/' when left out).")
    add_global_options(p, top=True)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def cmd(name: str, help: str) -> argparse.ArgumentParser:
        s = sub.add_parser(name, help=help, description=help)
        add_global_options(s, top=False)
        return s

    cmd("snapshots", "list the snapshots")
    s = cmd("ls", "list a directory (or one file) of a snapshot")
    s.add_argument("target", metavar="SNAPSHOT[:PATH]")
    s.add_argument("-l", "--long", action="store_true", help="mode, owner, size, time, link target")
    s.add_argument("-R", "--recursive", action="store_true", help="list sub-directories too")
    s = cmd("cat", "write a file's bytes to stdout")
    s.add_argument("target", metavar="SNAPSHOT:PATH")
    s = cmd("cp", "restore a file or a directory (SNAPSHOT:/ is everything) into DEST")
    s.add_argument("target", metavar="SNAPSHOT:PATH")
    s.add_argument("dest", metavar="DEST",
                   help="directory that receives a directory's contents (created if missing); "
                        "for a file, a directory to put it in or the new file's path")
    s = sub.add_parser("demo", help="back up a sample volume into a local repository and show it",
                       description="Build ./kbrowse-demo: a sample volume, a local repository "
                                   "with two snapshots made by the mover in-process.")
    s.add_argument("--dir", default="kbrowse-demo", help="where to put the demo (default: %(default)s)")
    return p


def cmd_demo(args: argparse.Namespace) -> int:
    demo = run_demo(Path(args.dir))
    view = RepositoryView(open_repository(str(demo.repo_path), DEMO_PASSWORD))
    try:
        print(f"\nrepository {demo.repo_path} (password in {demo.password_file}):\n")
        cmd_snapshots(args, view)
        print("\nkbrowse ls -l latest:/")
        args.target, args.long, args.recursive = "latest:/", True, False
        cmd_ls(args, view)
    finally:
        view.repo.close()
    print(f"\ntry: kbrowse -r {demo.repo_path} --password-file {demo.password_file} cat latest:/config/app.yaml")
    return 0


def main(argv: list[str] | None = None) -> NoReturn:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        sys.exit(0)

    def body() -> int:
        if args.command == "demo":
            return cmd_demo(args)
        view = _open(args)
        try:
            return COMMANDS[args.command](args, view)
        finally:
            view.repo.close()

    run(PROG, body)


if __name__ == "__main__":
    main()
