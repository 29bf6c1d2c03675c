"""`kbrowse schedule create|get|pause|unpause|delete`, as `velero schedule ...`."""

from __future__ import annotations

import argparse

from kbrowse.cluster.backup import add_backup_flags, backup_spec
from kbrowse.cluster.kinds import (
    SCHEDULE,
    Group,
    Handler,
    Obj,
    add_get,
    api_errors,
    boolean,
    confirm,
    kube,
    leaf,
    names_and_selector,
    namespace,
    select,
    submit,
)
from mover.errors import RepoError


@api_errors
def schedule_create(args: argparse.Namespace) -> int:
    from mover.velero.cron import CronError, parse

    try:
        parse(args.schedule)
    except CronError as exc:
        raise RepoError(f"invalid --schedule {args.schedule!r}: {exc}") from None
    template = backup_spec(args)
    spec: Obj = {"schedule": args.schedule, "template": template}
    if args.paused:
        spec["paused"] = True
    if args.skip_immediately is not None:
        spec["skipImmediately"] = args.skip_immediately
    if args.use_owner_references_in_backup:
        spec["useOwnerReferencesInBackup"] = True
    schedule = {"apiVersion": "velero.io/v1", "kind": "Schedule",
                "metadata": {"name": args.name, "namespace": namespace(args),
                             **({"labels": args.labels} if args.labels else {})}, "spec": spec}
    return submit(SCHEDULE, args, schedule)


def _set_paused(paused: bool) -> Handler:
    @api_errors
    def handler(args: argparse.Namespace) -> int:
        api = kube(args)
        schedules = select(api, SCHEDULE.resource, args) if args.names or args.all else []
        if not schedules:
            raise RepoError("no schedules given: name them, or use --all")
        for schedule in schedules:
            name = schedule["metadata"]["name"]
            if bool((schedule.get("spec") or {}).get("paused")) == paused:
                print(f"schedule {name} is already {'paused' if paused else 'unpaused'}, skip")
                continue
            patch: Obj = {"spec": {"paused": paused}}
            if not paused and args.skip_immediately is not None:
                patch["spec"]["skipImmediately"] = args.skip_immediately
            api.patch(SCHEDULE.resource, namespace(args), name, patch)
            print(f"schedule {name} {'paused' if paused else 'unpaused'} successfully")
        return 0
    return handler


@api_errors
def schedule_delete(args: argparse.Namespace) -> int:
    api = kube(args)
    schedules = select(api, SCHEDULE.resource, args) if args.names or args.all else []
    if not schedules:
        raise RepoError("no schedules to delete: name them, or use --all")
    if not confirm(args, f"delete schedule(s) {', '.join(s['metadata']['name'] for s in schedules)}"):
        return 1
    for schedule in schedules:
        api.delete(SCHEDULE.resource, namespace(args), schedule["metadata"]["name"])
        print(f'Schedule deleted: {schedule["metadata"]["name"]}')
    return 0


def register(schedules: Group) -> None:
    p = leaf(schedules, "create", "create a schedule", schedule_create)
    p.add_argument("name", metavar="NAME")
    p.add_argument("--schedule", required=True, metavar="CRON",
                   help='a cron expression, e.g. "0 */6 * * *", or @every 6h')
    add_backup_flags(p)
    p.add_argument("--paused", action="store_true", help="create the schedule paused")
    p.add_argument("--skip-immediately", type=boolean, nargs="?", const=True, metavar="BOOL",
                   help="do not make a backup right away")
    p.add_argument("--use-owner-references-in-backup", action="store_true",
                   help="the schedule owns its backups (deleting it deletes them)")
    add_get(schedules, SCHEDULE, "list schedules")
    for name, paused in (("pause", True), ("unpause", False)):
        p = names_and_selector(leaf(schedules, name, f"{name} schedules", _set_paused(paused), with_output=False))
        p.add_argument("--all", action="store_true", help=f"{name} every schedule")
        if not paused:
            p.add_argument("--skip-immediately", type=boolean, nargs="?", const=True, metavar="BOOL",
                           help="skip the backup that would run at once")
        else:
            p.set_defaults(skip_immediately=None)
    p = names_and_selector(leaf(schedules, "delete", "delete schedules (their backups stay)", schedule_delete,
                                with_output=False))
    p.add_argument("--all", action="store_true", help="delete every schedule")
    p.add_argument("--confirm", action="store_true", help="do not ask for confirmation")
