"""The velero-shaped commands: ask the cluster for work by creating velero.io objects, exactly
as the velero CLI does, and show what the server reports. They work against `mover server`
and against real Velero alike.

    kbrowse backup create|get|describe|logs|delete
    kbrowse restore create|get|describe|logs
    kbrowse schedule create|get|pause|unpause|delete
    kbrowse backup-location get
    kbrowse repo get

One module a kind; what every kind does alike (get, submit and wait, logs) comes from the table
in :mod:`kbrowse.cluster.kinds`.
"""

from __future__ import annotations

import argparse

from kbrowse.cluster import backup, location, repo, restore, schedule


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `backup`, `restore`, `schedule`, `backup-location` and `repo` to a CLI; each leaf parser sets
    ``handler`` (a function of the parsed args returning the exit code)."""
    def group(name: str, help_: str) -> argparse._SubParsersAction:
        p = subparsers.add_parser(name, help=help_, description=help_)
        return p.add_subparsers(dest=f"{name.replace('-', '_')}_command", metavar="COMMAND", required=True)

    backup.register(group("backup", "work with backups (velero backup ...)"))
    restore.register(group("restore", "work with restores (velero restore ...)"))
    schedule.register(group("schedule", "work with schedules (velero schedule ...)"))
    location.register(group("backup-location", "work with backup storage locations (velero backup-location ...)"))
    repo.register(group("repo", "work with the repositories of volume data (velero repo ...)"))


def create_args(group: str, ns: str, **values: object) -> argparse.Namespace:
    """`kbrowse GROUP create` as parsed with no flags, then ``values`` set (by attribute name):
    how the app's forms reuse the command's defaults and its object building."""
    parser = argparse.ArgumentParser(prog=group, exit_on_error=False)
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args([group, "create"])
    args.namespace = ns
    for key, value in values.items():
        if not hasattr(args, key):
            raise AttributeError(f"{group} create has no option {key!r}")
        setattr(args, key, value)
    return args
