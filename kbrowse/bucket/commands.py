"""``kbrowse --bsl B ...``: a Velero bucket with no cluster (backups, describe, logs, and the
resource and volume levels of ``ls``/``cat``/``cp``).

The volume level itself resolves to a snapshot :class:`~kbrowse.browse.pathspec.Target`, which the
repository commands in ``kbrowse.cli`` then list, print or restore as for ``-r REPO``.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime

import yaml

from kbrowse.browse.pathspec import Target
from kbrowse.bucket import printers as bucketfmt
from kbrowse.bucket.paths import CLUSTER, RESOURCES, VOLUMES, BackupPath, browsable, volume_parts
from mover.errors import NotFound, RepoError
from mover.ui.cliargs import UsageError, print_json
from mover.velero.bsl import BucketView
from mover.velero.objectstore import s3_options
from mover.velero.repopassword import standard_sources
from mover.velero.tarball import ResourceRef
from mover.view import SnapshotView


def open_bucket(args: argparse.Namespace) -> BucketView:
    options = None
    if args.bsl.startswith("s3:"):
        options = s3_options(credentials_file=args.credentials_file, ca_bundle=args.cacert,
                             insecure_tls=args.insecure_skip_tls_verify)
    flag = "--repo-password-file" if args.repo_password_file else "--password-file"
    passwords = standard_sources(args.repo_password_file or args.password_file, file_flag=flag,
                                 namespace=args.namespace, kubeconfig=args.kubeconfig,
                                 context=args.kubecontext)
    return BucketView.open(args.bsl, options, passwords, getattr(args, "cache_size", None))


# -- backups, describe, logs ---------------------------------------------------------------


def cmd_backups(args: argparse.Namespace, bucket: BucketView) -> int:
    listing = bucket.backups()
    for name, why in sorted(listing.unreadable.items()):
        sys.stderr.write(f"kbrowse: warning: skipping backup {name}: {why}\n")
    output = "json" if args.json else args.output
    if output == "table":
        sys.stdout.write(bucketfmt.backup_table(listing.items, datetime.now(UTC)))
        return 0
    doc = {"apiVersion": "velero.io/v1", "items": [b.raw for b in listing.items],
           "kind": "BackupList", "metadata": {}}
    if output == "json":
        print_json(doc)
    else:
        sys.stdout.write(yaml.safe_dump(doc, sort_keys=True))
    return 0


def cmd_describe(args: argparse.Namespace, bucket: BucketView) -> int:
    name = args.backup
    details = bucketfmt.BackupDetails(
        backup=bucket.backup(name), results=bucket.results(name),
        resource_list=bucket.resource_list(name), item_operations=bucket.item_operations(name),
        pod_volume_backups=bucket.pod_volume_backups(name),
        volume_infos=bucket.volume_infos(name), volumes=bucket.volumes(name),
        logs_hint=f"kbrowse --bsl {args.bsl} logs {name}")
    sys.stdout.write(bucketfmt.describe_backup(details))
    return 0


def cmd_logs(args: argparse.Namespace, bucket: BucketView) -> int:
    sys.stdout.write(bucket.log(args.backup))
    return 0


# -- backup paths ------------------------------------------------------------------------------


def volume_target(bucket: BucketView, p: BackupPath) -> tuple[SnapshotView, Target]:
    """The snapshot entry a ``BACKUP/volumes/NS/POD/VOLUME[:PATH]`` path names."""
    vol = bucket.find_volume(p.backup, *p.volume_key)
    view, snap, top = bucket.volume_root(p.backup, vol)
    if top.type != "dir":  # a block volume: the device's bytes, one file
        if p.inner != "/":
            raise NotFound(f"{p}: volume {vol.label} is a block device, read as one file: "
                           "give no path inside it")
        return view, Target(snap, "/" + top.name, top)
    return view, Target(snap, p.inner, view.lookup(snap, p.inner))


def children(bucket: BucketView, p: BackupPath) -> list[str]:
    """What ``ls`` shows at a level above the volume snapshots; [name] for one resource."""
    if not p.backup:
        return bucket.backup_names()
    bucket.backup(p.backup)  # NotFound for a backup that is not there
    if not p.area:
        return [RESOURCES, VOLUMES]
    if p.area == RESOURCES:
        contents = bucket.contents(p.backup)
        if not p.parts:
            return contents.resources()
        if len(p.parts) == 1:
            return [ns or CLUSTER for ns in contents.namespaces(p.parts[0])]
        names = contents.names(p.parts[0], p.namespace)
        if len(p.parts) == 2:
            return names
        contents.get(ResourceRef(p.parts[0], p.namespace, p.parts[2]))  # NotFound if missing
        return [p.parts[2]]
    level = [volume_parts(v) for v in browsable(bucket.volumes(p.backup))]
    level = [parts for parts in level if parts[: len(p.parts)] == p.parts]
    if p.parts and not level:
        raise NotFound(f"backup {p.backup} has no volumes under {'/'.join(p.parts)}")
    return sorted({parts[len(p.parts)] for parts in level})


def ls_level(args: argparse.Namespace, bucket: BucketView, p: BackupPath) -> int:
    leaf = p.area == RESOURCES and len(p.parts) == 3
    for name in children(bucket, p):
        if args.json:
            path = str(p) if leaf else "/".join(x for x in (str(p), name) if x)
            print_json({"name": name, "type": "object" if leaf else "dir", "path": path})
        else:
            sys.stdout.write(name + "\n")
    return 0


def _resource_refs(bucket: BucketView, p: BackupPath) -> list[ResourceRef]:
    """The objects at or below a resources level."""
    if p.area != RESOURCES:
        raise UsageError(f"{p or 'the bucket'} is not in a backup's resources/ or volumes/")
    bucket.backup(p.backup)
    refs = bucket.contents(p.backup).refs()
    want = (p.parts[0], p.namespace, *p.parts[2:]) if len(p.parts) > 1 else p.parts
    found = [r for r in refs if (r.resource, r.namespace, r.name)[: len(want)] == want]
    if not found:
        raise NotFound(f"nothing at {p} in the bucket")
    return found


def cat_resource(bucket: BucketView, p: BackupPath) -> int:
    if not (p.area == RESOURCES and len(p.parts) == 3):
        raise UsageError(f"{p or 'the bucket'} is a directory: cat takes "
                         "BACKUP/resources/RESOURCE/NAMESPACE/NAME or a volume file")
    ref = ResourceRef(p.parts[0], p.namespace, p.parts[2])
    sys.stdout.write(bucketfmt.to_yaml(bucket.contents(p.backup).get(ref)))
    return 0


def cp_resources(args: argparse.Namespace, bucket: BucketView, p: BackupPath) -> int:
    """Write each object below the level as YAML: one object to DEST (a directory or the new
    file), a level to DEST/<resource>/<namespace>/<name>.yaml below that level."""
    refs = _resource_refs(bucket, p)
    contents = bucket.contents(p.backup)
    depth = len(p.parts)
    written = 0
    for ref in refs:
        rel = [ref.resource, ref.namespace or CLUSTER, ref.name + ".yaml"][min(depth, 2):]
        dest = os.path.join(args.dest, *rel)
        if depth == 3 and not os.path.isdir(args.dest):
            dest = args.dest
        try:
            os.makedirs(os.path.dirname(dest) or ".", exist_ok=True)
            with open(dest, "w", encoding="utf-8") as f:
                f.write(bucketfmt.to_yaml(contents.get(ref)))
        except OSError as e:
            raise RepoError(f"cannot write {dest}: {e.strerror}") from None
        written += 1
    sys.stdout.write(f"wrote {written} object{'s' if written != 1 else ''} as YAML to {args.dest}\n")
    return 0
