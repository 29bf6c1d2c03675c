"""Command-line plumbing shared by `mover` and `kbrowse`: repository options, the password,
error reporting and progress bars.

Global options (-r, --password-file, --json) are accepted before or after the subcommand, as
restic's are: they are declared on the main parser and on every subparser with SUPPRESS
defaults, so whichever position the user picks fills the same attribute.
"""

from __future__ import annotations

import argparse
import atexit
import getpass
import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Collection
from typing import NoReturn, Protocol, TypeVar

from mover.errors import RepoError


class _Opening(Protocol):
    location: str
    password: str


OpeningT = TypeVar("OpeningT", bound=_Opening)


class UsageError(RepoError):
    exit_code = 2


def add_global_options(p: argparse.ArgumentParser, top: bool) -> None:
    d = {} if top else {"default": argparse.SUPPRESS}
    p.add_argument("-r", "--repo", metavar="REPO", **({"default": None} if top else d),
                   help="repository: a directory or s3:http://host:port/bucket/prefix "
                        "(default: $RESTIC_REPOSITORY)")
    p.add_argument("--password-file", metavar="FILE", **({"default": None} if top else d),
                   help="read the repository password from FILE (default: $RESTIC_PASSWORD_FILE, "
                        "$RESTIC_PASSWORD, or a prompt)")
    p.add_argument("--json", action="store_true", **({"default": False} if top else d),
                   help="machine-readable output")


def add_kube_options(p: argparse.ArgumentParser) -> None:
    """--kubeconfig and --context, as kubectl takes them (velero spells the second --kubecontext)."""
    p.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or the "
                                        "service account when running in a pod)")
    p.add_argument("--context", "--kubecontext", dest="context", help="kubeconfig context to use")


def key_values(text: str) -> dict[str, str]:
    """An argparse type for ``k=v,k2=v2`` (labels, provider config), as velero's flags take them."""
    pairs = {}
    for item in filter(None, text.split(",")):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise argparse.ArgumentTypeError(f"expected key=value pairs separated by commas, got {item!r}")
        pairs[key.strip()] = value.strip()
    return pairs


def repo_location(args: argparse.Namespace) -> str:
    loc = args.repo or os.environ.get("RESTIC_REPOSITORY")
    if not loc:
        raise UsageError("no repository given: use -r/--repo or set RESTIC_REPOSITORY")
    return loc


def read_password_file(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            pw = f.read().rstrip("\r\n")
    except OSError as e:
        raise UsageError(f"cannot read password file {path}: {e.strerror}") from None
    if not pw:
        raise UsageError(f"password file {path} is empty")
    return pw


def password(args: argparse.Namespace, *, confirm: bool = False, location: str | None = None) -> str:
    """The repository password: a file, the environment, else a prompt on a terminal.

    ``location``, the repository about to be opened: a local one whose directory is missing is
    reported before the prompt, so nobody types a password for a path with a typo in it."""
    path = args.password_file or os.environ.get("RESTIC_PASSWORD_FILE")
    if path:
        return read_password_file(path)
    env = os.environ.get("RESTIC_PASSWORD")
    if env:
        return env
    if sys.stdin.isatty():
        local = location[len("local:"):] if location and location.startswith("local:") else location
        if local and "://" not in local and not local.startswith("s3:") and not os.path.isdir(local):
            raise RepoError(f"no repository at {local} (no such directory): check the path, "
                            "or create one with `mover init`")
        pw = getpass.getpass("enter password for repository: ")
        if confirm and getpass.getpass("enter password again: ") != pw:
            raise UsageError("passwords do not match")
        if not pw:
            raise UsageError("an empty password is not allowed")
        return pw
    raise UsageError("no password: use --password-file, RESTIC_PASSWORD_FILE or RESTIC_PASSWORD")


class _QuietParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise argparse.ArgumentError(None, message)


def peek(argv: list[str], options: Callable[[argparse.ArgumentParser, bool], None] | None = None
         ) -> argparse.Namespace | None:
    """The global options and the command name (``command``; ``help``: -h/--help anywhere),
    read before the full parser is built, or None when they do not parse. ``options`` adds a
    CLI's other top-level options (as ``add_options(parser, top)``), so that their values are
    not taken for the command.

    Building the full parser imports every command's module; this lets a command line decide
    what to build, and start opening the repository first (:func:`open_early`). The full parse
    has the last word: nothing here reports an error.
    """
    pre = _QuietParser(add_help=False)
    add_global_options(pre, top=True)
    if options is not None:
        options(pre, True)
    pre.add_argument("command", nargs="?")
    try:
        ns, _rest = pre.parse_known_args(argv)
    except argparse.ArgumentError:
        return None
    ns.help = any(a in ("-h", "--help") for a in argv)
    return ns


def open_early(ns: argparse.Namespace | None, commands: Collection[str],
               opener: Callable[[str, str], OpeningT]) -> OpeningT | None:
    """Start opening the repository (scrypt, ~0.5 s, releases the GIL) before the command line's
    modules are imported, when the command line (as :func:`peek` read it) names one of
    ``commands`` and gives the repository and the password without a prompt. :func:`opening`
    takes it if the full parse agrees."""
    if ns is None or ns.command not in commands or ns.help:
        return None
    try:
        loc = repo_location(ns)
        path = ns.password_file or os.environ.get("RESTIC_PASSWORD_FILE")
        pw = read_password_file(path) if path else os.environ.get("RESTIC_PASSWORD")
    except UsageError:
        return None  # reported by the full parse's own attempt
    return opener(loc, pw) if pw else None


def opening(args: argparse.Namespace, early: OpeningT | None,
            opener: Callable[[str, str], OpeningT]) -> OpeningT:
    """The repository ``args`` name, being opened: ``early`` if it was started for the same
    location and password, else a new one from ``opener`` (:class:`mover.repo.open.Opening` for the mover,
    which writes; :class:`mover.opener.ViewOpening` for readers of any format)."""
    loc = repo_location(args)
    pw = password(args, location=loc)
    if early is not None and early.location == loc and early.password == pw:
        return early
    return opener(loc, pw)


def print_json(obj: object) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")


def err(prog: str, msg: str) -> None:
    sys.stderr.write(f"{prog}: {msg}\n")


def run(prog: str, fn: Callable[[], int], *, fast_exit: bool = False) -> NoReturn:
    """Run a command body: clear one-line errors and exit codes, never a traceback.

    ``fast_exit`` (a process's own command line, not a caller's ``main(argv)``): once the work
    is done and no other thread needs waiting for, the exit handlers run, the output is flushed
    and the process ends with ``os._exit``, skipping the interpreter's teardown (a collection and
    a free of every object: ~35 of the ~45 ms of CPU a no-change backup spent exiting)."""
    try:
        code = fn()
    except RepoError as e:
        err(prog, f"error: {e}")
        code = e.exit_code
    except KeyboardInterrupt:
        err(prog, "interrupted")
        code = 130
    except BrokenPipeError:
        # the reader went away (e.g. `| head`); keep Python from complaining at exit
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        code = 141
    # The work is over: a Ctrl-C now would only turn the exit into death by SIGINT (Python puts
    # the default handler back while it shuts down), which says less than the code we have.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.stdout.flush()
    if fast_exit and isinstance(code, int) and not any(
            t is not threading.main_thread() and not t.daemon and t.is_alive()
            for t in threading.enumerate()):
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def restore_default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.default_int_handler)
