"""`mover forget` and `mover prune`: restic 0.14's command lines, texts and exit codes.

The engine is :mod:`mover.repo.forget` and :mod:`mover.repo.prune`; this module parses the
options and prints what restic prints: the keep/remove tables, the "Would have removed" set,
the prune plan, and each counted phase's final ``[m:ss] 100.00%  N / N what`` line (restic
prints only that line when stdout is not a terminal; on a terminal a bar runs meanwhile).
"""

from __future__ import annotations

import argparse
import sys
import time
import unicodedata
from typing import TYPE_CHECKING, Any

from mover.progress import human_duration
from mover.repo.open import Opening
from mover.ui import cliargs

if TYPE_CHECKING:
    from mover.repo.forget import KeepReason
    from mover.repo.prune import PruneStats
    from mover.view.snapshot import Snapshot

KEEP_OPTIONS = (("last", "l"), ("hourly", "H"), ("daily", "d"), ("weekly", "w"),
                ("monthly", "m"), ("yearly", "y"))


def _count(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if n < 0:
        # restic 0.14 takes a negative count and then removes every snapshot of the group
        raise argparse.ArgumentTypeError(f"{n}: a count must be 0 or more")
    return n


def add_parsers(cmd) -> None:
    """Add `forget` and `prune` through the CLI's subcommand factory ``cmd(name, help)``."""
    sp = cmd("forget", "remove snapshots by id or by a keep policy (optionally prune after)")
    sp.add_argument("snapshots", nargs="*", metavar="SNAPSHOT",
                    help="snapshot ids (or prefixes, or 'latest') to remove; no policy then")
    for name, short in KEEP_OPTIONS:
        sp.add_argument(f"-{short}", f"--keep-{name}", type=_count, default=0, metavar="N",
                        help=f"keep the last N {'snapshots' if name == 'last' else name + ' snapshots'}")
    sp.add_argument("--keep-tag", action="append", default=[], metavar="TAGLIST",
                    help="keep snapshots with all of these tags ('a,b'; repeatable)")
    sp.add_argument("--host", action="append", default=[], metavar="HOST",
                    help="only consider snapshots of this host (repeatable)")
    sp.add_argument("--tag", action="append", default=[], metavar="TAGLIST",
                    help="only consider snapshots with all of these tags ('a,b'; repeatable)")
    sp.add_argument("--path", action="append", default=[], metavar="PATH",
                    help="only consider snapshots with this path (repeatable)")
    sp.add_argument("-g", "--group-by", default="host,paths", metavar="GROUP",
                    help="group snapshots by host, paths and/or tags, separated by commas "
                         "('' for one group; default host,paths)")
    sp.add_argument("-n", "--dry-run", action="store_true",
                    help="do not delete anything, just print what would be done")
    sp.add_argument("--prune", action="store_true",
                    help="run prune afterwards if snapshots were removed")
    _max_unused(sp)
    sp = cmd("prune", "remove data no snapshot uses any more (repack, delete, rewrite the index)")
    sp.add_argument("-n", "--dry-run", action="store_true",
                    help="do not modify the repository, just print what would be done")
    _max_unused(sp)


def _max_unused(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--max-unused", default="5%", metavar="LIMIT",
                    help="tolerate this much unused data: a percentage (default 5%%), a size "
                         "with k/m/g/t, or 'unlimited'")


def _taglists(args: list[str]) -> list[list[str]]:
    return [[t.strip() for t in a.split(",")] for a in args]


# ---- restic's output ------------------------------------------------------------------------

def format_bytes(n: int) -> str:
    """restic's ui.FormatBytes."""
    for shift, unit in ((40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")):
        if n >= 1 << shift:
            return f"{n / (1 << shift):.3f} {unit}"
    return f"{n} B"


def format_percent(part: int, whole: int) -> str:
    if whole == 0:
        return ""
    return f"{min(100.0, 100.0 * part / whole):.2f}%"


class ResticSteps:
    """:class:`mover.repo.prune.Steps` printing restic's lines on stdout, with a bar on stderr
    while a phase runs when stderr is a terminal; ``with`` it, so Ctrl-C takes the bar down."""

    def __init__(self, out=None, bar: bool | None = None) -> None:
        self.out = out or sys.stdout
        self.bar = sys.stderr.isatty() if bar is None else bar
        self._what = ""
        self._total = 0
        self._done = 0
        self._started = 0.0
        self._progress: Any = None  # a rich Progress while a phase runs on a terminal
        self._task: Any = None

    def __enter__(self) -> ResticSteps:
        return self

    def __exit__(self, *exc) -> None:
        self._stop_bar()

    def say(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def begin(self, what: str, total: int) -> None:
        self._what, self._total, self._done = what, total, 0
        self._started = time.monotonic()
        if self.bar:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(TimeElapsedColumn(), BarColumn(), MofNCompleteColumn(),
                                      TextColumn(what), console=Console(stderr=True), transient=True)
            self._progress.start()
            self._task = self._progress.add_task(what, total=total or None)

    def advance(self, n: int = 1) -> None:
        self._done += n
        if self._progress is not None:
            self._progress.update(self._task, completed=self._done)

    def end(self) -> None:
        self._stop_bar()
        took = human_duration(time.monotonic() - self._started)  # restic's [m:ss] too
        if self._total:
            line = (f"[{took}] {format_percent(self._done, self._total)}  "
                    f"{self._done} / {self._total} {self._what}")
        else:
            line = f"[{took}]          {self._done} {self._what}"
        self.out.write(line + "\n\n")
        self.out.flush()

    def _stop_bar(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def plan(self, s: PruneStats) -> None:
        w = self.out.write
        w("\n")
        w(f"to repack:    {s.repack.blobs:10d} blobs / {format_bytes(s.repack.size)}\n")
        w(f"this removes: {s.repack_removed.blobs:10d} blobs / {format_bytes(s.repack_removed.size)}\n")
        w(f"to delete:    {s.remove.blobs:10d} blobs / "
          f"{format_bytes(s.remove.size + s.unreferenced_size)}\n")
        w(f"total prune:  {s.prune_blobs:10d} blobs / {format_bytes(s.prune_size)}\n")
        remaining = s.total_size - s.prune_size
        w(f"remaining:    {s.total_blobs - s.prune_blobs:10d} blobs / {format_bytes(remaining)}\n")
        w(f"unused size after prune: {format_bytes(s.unused_after)} "
          f"({format_percent(s.unused_after, remaining)} of remaining size)\n")
        w("\n")
        self.out.flush()


class _Quiet(ResticSteps):
    """--json: nothing but the JSON document on stdout."""

    def __init__(self) -> None:
        super().__init__(bar=False)

    def say(self, text: str) -> None:
        pass

    def end(self) -> None:
        pass

    def plan(self, s: PruneStats) -> None:
        pass


def _width(text: str) -> int:
    """Terminal cells (restic's TerminalDisplayWidth): wide East Asian characters take two."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def snapshot_table(snaps: list[Snapshot], reasons: list[KeepReason] | None = None) -> str:
    """restic 0.14's PrintSnapshots (as `forget` uses it): oldest first, padded Host and Tags
    headers, a Reasons column for kept snapshots, one line per path or reason."""
    from mover.ui.printers import local_time

    why = {id(r.snapshot): r.matches for r in reasons or []}
    ordered = sorted(snaps, key=lambda s: s.time)
    head = ["ID", "Time", "Host      ", "Tags      "] + (["Reasons"] if reasons else []) + ["Paths"]
    rows = []
    for s in ordered:
        row = [s.short_id, local_time(s.time), s.hostname, ",".join(s.tags)]
        if reasons:
            row.append("\n".join(why.get(id(s), [])))
        row.append("\n".join(s.paths))
        rows.append(row)
    widths = [max(_width(line) for cell in [head[i]] + [r[i] for r in rows]
                  for line in cell.split("\n")) for i in range(len(head))]
    total = sum(widths) + 2 * (len(head) - 1)

    def lines(cells: list[str]) -> list[str]:
        split = [c.split("\n") for c in cells]
        out = []
        for i in range(max(len(c) for c in split)):
            parts = [(c[i] if i < len(c) else "") for c in split]
            out.append("  ".join(p + " " * (w - _width(p)) for p, w in zip(parts, widths, strict=True)).rstrip(" "))
        return out

    text = lines(head) + ["-" * total]
    multiline = any(len(s.paths) > 1 for s in ordered)
    for n, row in enumerate(rows):
        if multiline and n:
            text.append("")  # restic separates snapshots with several paths by a blank line
        text += lines(row)
    text += ["-" * total, f"{len(ordered)} snapshots"]
    return "\n".join(text) + "\n"


def _snapshot_json(s: Snapshot, with_id: bool = True) -> dict:
    d = s.to_json()
    if with_id:
        d["id"] = s.id.hex()
        d["short_id"] = s.short_id
    return d


def _id_set(ids) -> str:
    """restic's IDSet.String: sorted short ids in braces."""
    return "{" + " ".join(sorted(i.hex()[:8] for i in ids)) + "}"


# ---- the commands -----------------------------------------------------------------------------

def cmd_forget(args: argparse.Namespace) -> int:
    from mover.repo.forget import KeepPolicy, parse_group_by
    from mover.repo.prune import parse_max_unused

    policy = KeepPolicy(**{name: getattr(args, f"keep_{name}") for name, _ in KEEP_OPTIONS},
                        tags=_taglists(args.keep_tag))
    group_by = parse_group_by(args.group_by)
    parse_max_unused(args.max_unused)  # a bad value fails before anything is removed
    opening = cliargs.opening(args, None, Opening)
    from mover.repo.forget import apply_policy, forget_snapshots, group_snapshots, matches_filter
    from mover.repo.lock import Lock
    from mover.repo.prune import prune

    repo = opening.result()
    out = sys.stdout
    with Lock(repo, exclusive=True).acquire():
        snaps = repo.snapshots()
        remove: dict[bytes, Snapshot] = {}
        groups_json = []
        if args.snapshots:
            for ref in args.snapshots:
                snap = _resolve(repo, ref, snaps, args)
                if snap is not None:
                    remove[snap.id] = snap
        else:
            chosen = [s for s in snaps
                      if matches_filter(s, args.host, _taglists(args.tag), args.path)]
            if policy.empty():
                if not args.json:
                    out.write("no policy was specified, no snapshots will be removed\n")
            else:
                if not args.json:
                    out.write(f"Applying Policy: {policy.describe()}\n")
                for key, group in group_snapshots(chosen, group_by):
                    keep, gone, reasons = apply_policy(group, policy)
                    if keep and not args.json:
                        out.write(f"keep {len(keep)} snapshots:\n")
                        out.write(snapshot_table(keep, reasons) + "\n")
                    if gone and not args.json:
                        out.write(f"remove {len(gone)} snapshots:\n")
                        out.write(snapshot_table(gone) + "\n")
                    groups_json.append({
                        **key.to_json(),
                        "keep": [_snapshot_json(s) for s in keep] or None,
                        "remove": [_snapshot_json(s) for s in gone] or None,
                        "reasons": [{"snapshot": _snapshot_json(r.snapshot, with_id=False),
                                     "matches": r.matches, "counters": r.counters}
                                    for r in reasons] or None})
                    for s in gone:
                        remove[s.id] = s
        out.flush()
        steps = _Quiet() if args.json else ResticSteps()
        with steps:
            if remove:
                if not args.dry_run:
                    steps.begin("files deleted", len(remove))
                    forget_snapshots(repo, list(remove), locked=True)
                    steps.advance(len(remove))
                    steps.end()
                elif not args.json:
                    out.write(f"Would have removed the following snapshots:\n{_id_set(remove)}\n\n")
            if args.json and groups_json:
                cliargs.print_json(groups_json)
            if remove and args.prune:
                if not args.json:
                    out.write(f"{len(remove)} snapshots have been removed, running prune\n")
                stats = prune(repo, dry_run=args.dry_run, max_unused=args.max_unused,
                              ignore_snapshots=list(remove), steps=steps, locked=True)
                if args.json:
                    cliargs.print_json(prune_json(stats))
    return 0


def _resolve(repo, ref: str, snaps: list[Snapshot], args: argparse.Namespace) -> Snapshot | None:
    """One SNAPSHOT argument, as restic 0.14's FindFilteredSnapshots: a miss is reported on
    stderr ("Ignoring ...") and skipped, not an error."""
    from mover.repo.forget import matches_filter

    if ref == "latest":
        chosen = [s for s in snaps if matches_filter(s, args.host, _taglists(args.tag), args.path)]
        if chosen:
            return max(chosen, key=lambda s: (s.time, s.id))
        sys.stderr.write(f'Ignoring "{ref}": no snapshot found\n')
        return None
    matches = [s for s in snaps if s.id.hex().startswith(ref.lower())] if ref else []
    if len(matches) == 1:
        return matches[0]
    if matches:
        sys.stderr.write(f'Ignoring "{ref}": multiple IDs with prefix "{ref}" found\n')
    else:
        sys.stderr.write(f'Ignoring "{ref}": no matching ID found for prefix "{ref}"\n')
    return None


def prune_json(s: PruneStats) -> dict:
    return {"message_type": "summary", "dry_run": s.dry_run, "snapshots": s.snapshots,
            "used_blobs": s.used.blobs, "used_size": s.used.size,
            "duplicate_blobs": s.duplicate.blobs, "duplicate_size": s.duplicate.size,
            "unused_blobs": s.unused.blobs, "unused_size": s.unused.size,
            "unreferenced_size": s.unreferenced_size,
            "repack_blobs": s.repack.blobs, "repack_size": s.repack.size,
            "repack_removed_blobs": s.repack_removed.blobs,
            "repack_removed_size": s.repack_removed.size,
            "delete_blobs": s.remove.blobs, "delete_size": s.remove.size + s.unreferenced_size,
            "remaining_blobs": s.total_blobs - s.prune_blobs,
            "remaining_size": s.total_size - s.prune_size, "unused_after": s.unused_after,
            "packs_keep": s.packs_keep, "packs_repack": s.packs_repack,
            "packs_delete": s.packs_remove + s.packs_unreferenced}


def cmd_prune(args: argparse.Namespace) -> int:
    from mover.repo.prune import parse_max_unused

    parse_max_unused(args.max_unused)
    opening = cliargs.opening(args, None, Opening)
    from mover.repo.prune import prune

    repo = opening.result()
    with (_Quiet() if args.json else ResticSteps()) as steps:
        stats = prune(repo, dry_run=args.dry_run, max_unused=args.max_unused, steps=steps)
    if args.json:
        cliargs.print_json(prune_json(stats))
    return 0
