"""`kbrowse backup-location get`, as `velero backup-location get`."""

from __future__ import annotations

import argparse

from kbrowse.cluster.kinds import LOCATION, Group, Obj, add_get


def _default_only(args: argparse.Namespace, loc: Obj) -> bool:
    return not args.default or bool((loc.get("spec") or {}).get("default"))


def register(locations: Group) -> None:
    p = add_get(locations, LOCATION, "list backup storage locations", keep=_default_only)
    p.add_argument("--default", action="store_true", help="only the default location")
