"""`mover install`: put the CRDs, RBAC, the repository password, the server and (optionally)
a default storage location and the node agent into a cluster, or print them.

Flags follow `velero install` where they exist there.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mover.deploy.manifests import PULL_POLICIES, InstallOptions, Resources, create_only, render, to_yaml
from mover.errors import RepoError
from mover.ui.cliargs import add_kube_options, key_values


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("install", help="install the mover server (Velero's API) into a cluster",
                       description="Create or update the velero.io CRDs, RBAC, the repository password, the "
                                   "server Deployment and, when asked, a default backup storage location and "
                                   "the node-agent DaemonSet.")
    add_kube_options(p)
    p.add_argument("-n", "--namespace", default="velero", help="namespace to install into (default: velero)")
    p.add_argument("--image", default=InstallOptions.image,
                   help=f"container image of the mover (default {InstallOptions.image})")
    p.add_argument("--image-pull-policy", choices=PULL_POLICIES, default="IfNotPresent",
                   help="when the kubelet pulls the image (default IfNotPresent)")
    p.add_argument("--provider", choices=("aws", "local"), help="create the default backup storage location "
                   "with this provider (aws: S3 and S3-compatible; local: a directory)")
    p.add_argument("--bucket", help="bucket (for local: directory) of the default location")
    p.add_argument("--prefix", default="", help="prefix inside the bucket")
    p.add_argument("--backup-location-config", type=key_values, default={}, metavar="KEY=VALUE,...",
                   help="provider config, e.g. region=us-east-1,s3Url=http://minio:9000,s3ForcePathStyle=true")
    p.add_argument("--secret-file", type=Path, help="credentials file (AWS/Velero format) for the location")
    p.add_argument("--use-volume-snapshots", action="store_true",
                   help="also create the default volume snapshot location with --provider")
    p.add_argument("--snapshot-location-config", type=key_values, default={}, metavar="KEY=VALUE,...",
                   help="provider config of the volume snapshot location, e.g. region=us-east-1")
    p.add_argument("--default-snapshot-move-data", action="store_true",
                   help="move the data of CSI snapshots into the storage location unless a backup says not to")
    p.add_argument("--use-node-agent", action="store_true", help="also deploy the node-agent DaemonSet")
    p.add_argument("--kubelet-root", default=InstallOptions.kubelet_root, metavar="DIR",
                   help="the kubelet's directory on the nodes (default /var/lib/kubelet; k0s: "
                        "/var/lib/k0s/kubelet, RancherOS: /opt/rke/var/lib/kubelet, TKGI: /var/vcap/data/kubelet)")
    p.add_argument("--node-agent-node-selector", type=key_values, default={}, metavar="KEY=VALUE,...",
                   help="run the node agent only on nodes with these labels")
    p.add_argument("--node-agent-tolerations", type=tolerations, default=[], metavar="KEY[=VALUE][:EFFECT],...",
                   help="taints the node agent tolerates, e.g. node-role.kubernetes.io/control-plane:NoSchedule")
    p.add_argument("--node-agent-configmap", default="", metavar="NAME",
                   help="the node agent's config map (Velero's format), passed to `mover node-agent`")
    p.add_argument("--node-agent-config-file", type=Path, metavar="FILE",
                   help="JSON to create --node-agent-configmap with (default: the config map exists already)")
    p.add_argument("--node-agent-arg", action="append", default=[], metavar="ARG", dest="node_agent_args",
                   help="an extra argument for `mover node-agent`, e.g. --node-agent-arg=--concurrency=4 "
                        "(repeatable)")
    for part, name, defaults in (("velero", "the server", InstallOptions().server_resources),
                                 ("node-agent", "the node agent", InstallOptions().node_agent_resources)):
        for field, what in (("cpu_request", "CPU request"), ("memory_request", "memory request"),
                            ("cpu_limit", "CPU limit"), ("memory_limit", "memory limit")):
            flag = f"--{part}-pod-{field.replace('memory', 'mem').replace('_', '-')}"
            default = getattr(defaults, field)
            p.add_argument(flag, default=default, metavar="QUANTITY",
                           help=f"{what} of {name} (default {default}; 0 for none)" if default else
                           f"{what} of {name} (default: none)")
    p.add_argument("--repository-password-file", type=Path,
                   help="repository password to install (default: a new random one); give the old "
                        "cluster's password to read its repositories from a new cluster")
    p.add_argument("--dry-run", action="store_true",
                   help="print the manifests instead of applying them: exactly what install applies, but for "
                        "the repository password, new each run unless --repository-password-file gives it")
    p.add_argument("-o", "--output", choices=("yaml", "json"),
                   help="print the manifests in this format instead of applying them")
    p.set_defaults(handler=run)


_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")


def tolerations(text: str) -> list[dict[str, str]]:
    """An argparse type for ``key[=value][:effect],...``, kubectl taint's spelling: without a
    value the key's taint is tolerated whatever its value; without an effect, every effect."""
    out = []
    for item in filter(None, text.split(",")):
        spec, _, effect = item.partition(":")
        key, has_value, value = spec.partition("=")
        if not key.strip() or (effect and effect not in _EFFECTS):
            raise argparse.ArgumentTypeError(
                f"expected key[=value][:effect] with effect one of {', '.join(_EFFECTS)}, got {item!r}")
        toleration = {"key": key.strip(), "operator": "Equal" if has_value else "Exists"}
        if has_value:
            toleration["value"] = value.strip()
        if effect:
            toleration["effect"] = effect
        out.append(toleration)
    return out


def _resources(args: argparse.Namespace, part: str) -> Resources:
    return Resources(*(getattr(args, f"{part}_pod_{field}") for field in
                       ("cpu_request", "mem_request", "cpu_limit", "mem_limit")))


def options(args: argparse.Namespace) -> InstallOptions:
    if args.provider and not args.bucket:
        raise RepoError("--provider needs --bucket")
    if not args.kubelet_root.startswith("/"):
        raise RepoError(f"--kubelet-root {args.kubelet_root}: give the kubelet's absolute path on the nodes")
    if args.node_agent_config_file and not args.node_agent_configmap:
        raise RepoError("--node-agent-config-file needs --node-agent-configmap NAME, the config map to create")
    o = InstallOptions(namespace=args.namespace, image=args.image, image_pull_policy=args.image_pull_policy,
                       provider=args.provider or "", bucket=args.bucket or "", prefix=args.prefix,
                       location_config=args.backup_location_config, use_node_agent=args.use_node_agent,
                       use_volume_snapshots=args.use_volume_snapshots,
                       snapshot_location_config=args.snapshot_location_config,
                       default_snapshot_move_data=args.default_snapshot_move_data,
                       server_resources=_resources(args, "velero"),
                       node_agent_resources=_resources(args, "node_agent"),
                       node_agent_node_selector=args.node_agent_node_selector,
                       node_agent_tolerations=args.node_agent_tolerations, kubelet_root=args.kubelet_root,
                       node_agent_configmap=args.node_agent_configmap, node_agent_args=args.node_agent_args)
    try:
        if args.secret_file:
            o.credentials_file_text = args.secret_file.read_text()
        if args.repository_password_file:
            o.repository_password = args.repository_password_file.read_text().strip()
        if args.node_agent_config_file:
            o.node_agent_config = args.node_agent_config_file.read_text()
    except OSError as exc:
        raise RepoError(f"cannot read {exc.filename}: {exc.strerror}") from None
    if o.node_agent_config:
        try:
            json.loads(o.node_agent_config)
        except ValueError as exc:
            raise RepoError(f"{args.node_agent_config_file} is not JSON ({exc}); the node agent's config "
                            "map holds Velero's JSON format") from None
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
