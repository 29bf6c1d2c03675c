"""`mover install`: put the CRDs, RBAC, the repository password, the server and (optionally)
a default storage location and the node agent into a cluster, or print them.

Flags follow `velero install` where they exist there.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mover.ui.cliargs import add_kube_options, key_values
from mover.deploy.manifests import InstallOptions, create_only, render, to_yaml
from mover.errors import RepoError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("install", help="install the mover server (Velero's API) into a cluster",
                       description="Create or update the velero.io CRDs, RBAC, the repository password, the "
                                   "server Deployment and, when asked, a default backup storage location and "
                                   "the node-agent DaemonSet.")
    add_kube_options(p)
    p.add_argument("-n", "--namespace", default="velero", help="namespace to install into (default: velero)")
    p.add_argument("--image", default=InstallOptions.image, help="container image of the mover")
    p.add_argument("--provider", choices=("aws", "local"), help="create the default backup storage location "
                   "with this provider (aws: S3 and S3-compatible; local: a directory)")
    p.add_argument("--bucket", help="bucket (for local: directory) of the default location")
    p.add_argument("--prefix", default="", help="prefix inside the bucket")
    p.add_argument("--backup-location-config", type=key_values, default={}, metavar="KEY=VALUE,...",
                   help="provider config, e.g. region=us-east-1,s3Url=http://minio:9000,s3ForcePathStyle=true")
    p.add_argument("--secret-file", type=Path, help="credentials file (AWS/Velero format) for the location")
    p.add_argument("--use-node-agent", action="store_true", help="also deploy the node-agent DaemonSet")
    p.add_argument("--repository-password-file", type=Path,
                   help="repository password to install (default: a new random one); give the old "
                        "cluster's password to read its repositories from a new cluster")
    p.add_argument("--dry-run", action="store_true", help="print the manifests instead of applying them")
    p.add_argument("-o", "--output", choices=("yaml", "json"),
                   help="print the manifests in this format instead of applying them")
    p.set_defaults(handler=run)


def options(args: argparse.Namespace) -> InstallOptions:
    if args.provider and not args.bucket:
        raise RepoError("--provider needs --bucket")
    o = InstallOptions(namespace=args.namespace, image=args.image, provider=args.provider or "",
                       bucket=args.bucket or "", prefix=args.prefix, location_config=args.backup_location_config,
                       use_node_agent=args.use_node_agent)
    try:
        if args.secret_file:
            o.credentials_file_text = args.secret_file.read_text()
        if args.repository_password_file:
            o.repository_password = args.repository_password_file.read_text().strip()
    except OSError as exc:
        raise RepoError(f"cannot read {exc.filename}: {exc.strerror}") from None
    return o


def run(args: argparse.Namespace) -> int:
    docs = render(options(args))
    if args.dry_run or args.output:
        if args.output == "json":
            json.dump({"apiVersion": "v1", "kind": "List", "items": docs}, sys.stdout, indent=2)
            sys.stdout.write("\n")
        else:
            sys.stdout.write(to_yaml(docs))
        return 0
    # The Kubernetes client takes most of a second to import: only commands that talk to a cluster pay.
    from mover.deploy.apply import apply
    from mover.kube.framework.client import Kube, KubeError, load_api_client

    try:
        kube = Kube(load_api_client(args.kubeconfig, args.context))
        apply(kube, docs, create_only=create_only,
              report=lambda action, doc: print(f"{doc['kind']}/{doc['metadata']['name']}: {action}"))
    except KubeError as exc:
        raise RepoError(f"install failed: {exc.message}") from None
    print(f"mover is installed in namespace {args.namespace}. Check it with: "
          f"kubectl -n {args.namespace} get deployment/velero")
    return 0
