"""The velero-shaped commands' shared part: one table of kinds (backup, restore, schedule,
backup-location, repo) and the handlers every kind gets from it the same way (get, create's submit
and wait, logs), plus the plumbing of talking to the cluster.

Every command takes -n/--namespace (the server's namespace, default velero), --kubeconfig and
--context; get, describe and create take -o json|yaml (create then prints the object instead of
submitting it, as velero does).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mover.errors import RepoError

Obj = dict[str, Any]
Handler = Callable[[argparse.Namespace], int]
Group = argparse._SubParsersAction


@dataclass(frozen=True)
class Kind:
    word: str  # the command group, and the noun in messages: "backup"
    title: str  # the object's kind: "Backup"
    resource_name: str  # its constant in mover.kube.resources (imported only when a command runs)
    table_name: str  # its function in kbrowse.cluster.printers: what `velero <word> get` prints
    submitted: str = '{title} request "{name}" submitted successfully.'
    logs_pending: str = "logs for {word} {name} are not available until it's finished processing"
    runs: bool = True  # the server works on it after creation (a backup, a restore): --wait follows it
    dated: bool = False  # the table shows ages: its function takes the time now too

    @property
    def resource(self) -> Any:
        # mover.kube imports the Kubernetes client, which takes most of a second: commands
        # import it when they run, so `kbrowse --help` and the repository commands do not wait
        return getattr(importlib.import_module("mover.kube.resources"), self.resource_name)

    def table(self, objs: list[Obj]) -> str:
        # the printers import Velero's object types: only a command that prints waits for them,
        # not the parser every kbrowse command builds
        from kbrowse.cluster import printers

        fn = getattr(printers, self.table_name)
        return fn(objs, now()) if self.dated else fn(objs)


BACKUP = Kind("backup", "Backup", "BACKUPS", "backup_table", dated=True,
              logs_pending="logs for backup {name} are not available until it's finished processing; "
                           "please wait until the backup has a phase of Completed or Failed and try again")
RESTORE = Kind("restore", "Restore", "RESTORES", "restore_table")
SCHEDULE = Kind("schedule", "Schedule", "SCHEDULES", "schedule_table", dated=True,
                submitted='{title} "{name}" created successfully.', runs=False)
LOCATION = Kind("backup-location", "BackupStorageLocation", "BSLS", "location_table")
REPOSITORY = Kind("repo", "BackupRepository", "BACKUP_REPOSITORIES", "repository_table", runs=False)


# -- plumbing ----------------------------------------------------------------------------------

def kube(args: argparse.Namespace) -> Any:
    from mover.kube.framework.client import Kube, load_api_client

    return Kube(load_api_client(getattr(args, "kubeconfig", None), getattr(args, "kubecontext", None)))


def api_errors(body: Handler) -> Handler:
    """Turn API failures into one-line errors (the CLI prints RepoErrors without a traceback)."""
    def wrapped(args: argparse.Namespace) -> int:
        from mover.kube.framework.client import KubeError

        try:
            return body(args)
        except KubeError as exc:
            raise RepoError(exc.message if exc.status else f"cannot reach the cluster: {exc.message}") from None
    return wrapped


def now() -> datetime:
    return datetime.now(UTC)


def split(values: list[str] | None) -> list[str]:
    return [v.strip() for value in values or [] for v in value.split(",") if v.strip()]


def boolean(text: str) -> bool:
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def duration(text: str) -> str:
    from mover.golang.duration import format_duration, parse_duration

    try:
        return format_duration(parse_duration(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r} (e.g. 24h, 30m, 720h0m0s)") from None


def print_objects(objs: list[Obj], fmt: str, single: bool, kind: str) -> None:
    doc: Any = objs[0] if single and len(objs) == 1 else {"apiVersion": "velero.io/v1", "kind": f"{kind}List",
                                                          "items": objs}
    if fmt == "json":
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    else:
        import yaml

        sys.stdout.write(yaml.safe_dump(doc, sort_keys=False))


def output(args: argparse.Namespace) -> str | None:
    return args.output or ("json" if getattr(args, "json", False) else None)


def namespace(args: argparse.Namespace) -> str:
    return getattr(args, "namespace", None) or "velero"


def select(api: Any, res: Any, args: argparse.Namespace) -> list[Obj]:
    """The named objects, or every one (matching -l when given)."""
    names = getattr(args, "names", None) or []
    if names:
        return [api.get(res, namespace(args), n) for n in names]
    return api.list(res, namespace(args), label_selector=getattr(args, "selector", None))["items"]


def confirm(args: argparse.Namespace, what: str) -> bool:
    if args.confirm:
        return True
    if not sys.stdin.isatty():
        raise RepoError(f"refusing to {what} without --confirm (stdin is not a terminal)")
    return input(f"Are you sure you want to {what} (Y/N)? ").strip().lower() in ("y", "yes")


def fetch_file(api: Any, ns: str, kind: str, name: str, note: Callable[[str], None] | None = None,
               cancelled: Callable[[], bool] | None = None) -> Any:
    """A JSON file of a backup or restore, through a DownloadRequest; None (after a note, on
    stderr by default) when the server cannot give it."""
    from kbrowse.cluster.wait import download

    try:
        return json.loads(download(api, ns, kind, name, cancelled=cancelled))
    except (RepoError, ValueError) as exc:
        message = f"{kind} of {name} is not available: {exc}"
        if note is None:
            print(f"kbrowse: note: {message}", file=sys.stderr)
        else:
            note(message)
        return None


# -- what every kind does alike ------------------------------------------------------------------

def submit(kind: Kind, args: argparse.Namespace, obj: Obj, api: Any = None) -> int:
    """Create ``obj`` as `velero <kind> create` does: print it instead with -o; with --wait
    follow it until it finishes."""
    if args.output:
        print_objects([obj], args.output, True, kind.title)
        return 0
    api = api or kube(args)
    api.create(kind.resource, namespace(args), obj)
    name = obj["metadata"]["name"]
    print(kind.submitted.format(title=kind.title, name=name))
    if not kind.runs:
        return 0
    if not args.wait:
        print(f"Run `kbrowse {kind.word} describe {name}` or `kbrowse {kind.word} logs {name}` for more details.")
        return 0
    from kbrowse.cluster.wait import wait

    print(f"Waiting for {kind.word} to complete. You may safely press ctrl-c to stop waiting - your {kind.word} "
          "will continue in the background.")
    return finished(kind, wait(api, kind.resource, namespace(args), name, kind.word))


def finished(kind: Kind, obj: Obj) -> int:
    phase = (obj.get("status") or {}).get("phase") or "New"
    name = obj["metadata"]["name"]
    if phase not in ("Completed", "PartiallyFailed", "Failed", "FailedValidation"):
        print(f"{kind.title} {name} has not finished (phase {phase}).")
        return 1
    print(f"{kind.title} completed with status: {phase}. You may check for more information using the commands "
          f"`kbrowse {kind.word} describe {name}` and `kbrowse {kind.word} logs {name}`.")
    return 0 if phase == "Completed" else 1


def get_handler(kind: Kind, keep: Callable[[argparse.Namespace, Obj], bool] | None = None) -> Handler:
    """`<kind> get [NAME...] [-l SELECTOR] [-o json|yaml]`; ``keep`` filters further."""
    @api_errors
    def handler(args: argparse.Namespace) -> int:
        objs = select(kube(args), kind.resource, args)
        if keep is not None:
            objs = [o for o in objs if keep(args, o)]
        if fmt := output(args):
            print_objects(objs, fmt, bool(args.names), kind.title)
        else:
            sys.stdout.write(kind.table(objs))
        return 0
    return handler


def logs_handler(kind: Kind) -> Handler:
    """`<kind> logs NAME`: the log the server uploaded, once the object has finished."""
    @api_errors
    def handler(args: argparse.Namespace) -> int:
        from kbrowse.cluster.wait import download

        api = kube(args)
        phase = (api.get(kind.resource, namespace(args), args.name).get("status") or {}).get("phase") or "New"
        if phase in ("New", "InProgress"):
            raise RepoError(kind.logs_pending.format(word=kind.word, name=args.name))
        log = download(api, namespace(args), f"{kind.title}Log", args.name, args.timeout)
        sys.stdout.write(log.decode("utf-8", "replace"))
        return 0
    return handler


# -- parsers -------------------------------------------------------------------------------------

def common_options(p: argparse.ArgumentParser, with_output: bool = True) -> None:
    """-n, --kubeconfig and --context on every command. Their defaults are left to the main
    parser (kbrowse declares the same options there), so they work before or after the command."""
    hidden = argparse.SUPPRESS
    p.add_argument("-n", "--namespace", default=hidden, metavar="NS",
                   help="the namespace the server runs in (default: velero)")
    p.add_argument("--kubeconfig", default=hidden, metavar="FILE",
                   help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or in-cluster)")
    p.add_argument("--context", "--kubecontext", dest="kubecontext", default=hidden, metavar="CONTEXT",
                   help="kubeconfig context (default: the current one)")
    if with_output:
        p.add_argument("-o", "--output", choices=("json", "yaml"), help="print objects in this format")


def leaf(group: Group, name: str, help_: str, handler: Handler, with_output: bool = True) -> argparse.ArgumentParser:
    p = group.add_parser(name, help=help_, description=help_)
    common_options(p, with_output)
    p.set_defaults(handler=handler)
    return p


def names_and_selector(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("names", nargs="*", metavar="NAME")
    p.add_argument("-l", "--selector", help="only objects with these labels")
    return p


def add_get(group: Group, kind: Kind, help_: str, keep: Callable[[argparse.Namespace, Obj], bool] | None = None
            ) -> argparse.ArgumentParser:
    return names_and_selector(leaf(group, "get", help_, get_handler(kind, keep)))


def add_logs(group: Group, kind: Kind) -> None:
    p = leaf(group, "logs", f"print a {kind.word}'s log", logs_handler(kind), with_output=False)
    p.add_argument("name", metavar="NAME")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the log (default 60)")
