"""`mover node-agent`: move the volume data of pods on one node until SIGTERM or SIGINT.

Flags follow Velero's node agent where it has them; ``--node-name`` defaults to
``$NODE_NAME``, which the DaemonSet sets from the downward API.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
from typing import TYPE_CHECKING

from mover.errors import RepoError
from mover.kube.servercmd import _LEVELS, _duration, configure_logging, connect
from mover.ui.cliargs import add_kube_options
from mover.velero.nodeagentconfig import NodeAgentConfig, parse_config

if TYPE_CHECKING:
    from mover.kube.framework.client import Kube


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"invalid concurrency {text!r}: give a whole number of at least 1")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("node-agent", help="run the node agent: back up and restore the volumes of pods on "
                                          "this node (PodVolumeBackups, PodVolumeRestores, DataUploads, "
                                          "DataDownloads)",
                       description="Watch PodVolumeBackups, PodVolumeRestores, DataUploads and DataDownloads "
                                   "in one namespace and move the data of the pod volumes and CSI snapshots "
                                   "on this node.")
    add_kube_options(p)
    p.add_argument("--node-name", default=os.environ.get("NODE_NAME") or "", metavar="NODE",
                   help="the node this agent serves (default: $NODE_NAME)")
    p.add_argument("--kubelet-root", default="/var/lib/kubelet", metavar="DIR",
                   help="the kubelet's directory as this agent sees it; pod volumes are under "
                        "DIR/pods/<pod-uid>/volumes (default /var/lib/kubelet)")
    p.add_argument("-n", "--namespace", default=os.environ.get("VELERO_NAMESPACE") or "velero",
                   help="namespace of the velero.io objects (default: $VELERO_NAMESPACE or velero)")
    p.add_argument("--concurrency", type=_positive, default=1, metavar="N",
                   help="volumes backed up or restored at once (default 1)")
    p.add_argument("--resync-period", type=_duration, default=_duration("1m"), metavar="DURATION",
                   help="how often every object is looked at again (default 1m)")
    p.add_argument("--data-mover-prepare-timeout", type=_duration, default=_duration("30m"), metavar="DURATION",
                   help="how long a data download's restore pod may take to run before the download fails "
                        "(default 30m)")
    p.add_argument("--node-agent-configmap", default="", metavar="NAME",
                   help="the node agent's config map in its namespace (Velero's format: backup-PVC "
                        "settings per storage class, which shape the claims of CSI snapshot data "
                        "movement); read at start")
    p.add_argument("--log-level", choices=tuple(_LEVELS), default="info")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from mover.kube.nodeagent import NodeAgent, NodeAgentOptions

    if not args.node_name:
        raise RepoError("no node name: give --node-name NODE (or set $NODE_NAME, as the DaemonSet does)")
    if not os.path.isdir(os.path.join(args.kubelet_root, "pods")):
        raise RepoError(f"{os.path.join(args.kubelet_root, 'pods')} is not a directory: give the kubelet's "
                        "directory with --kubelet-root")
    configure_logging(args.log_level)
    kube = connect(args)
    config = _read_config(kube, args.namespace, args.node_agent_configmap) if args.node_agent_configmap \
        else NodeAgentConfig()
    options = NodeAgentOptions(node_name=args.node_name, kubelet_root=args.kubelet_root,
                               namespace=args.namespace, concurrency=args.concurrency,
                               resync=args.resync_period.total_seconds(), config=config,
                               prepare_timeout=args.data_mover_prepare_timeout.total_seconds())
    agent = NodeAgent(kube, options)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: agent.request_stop())
    log = logging.getLogger("mover.kube")
    log.info("starting the node agent for node %s in namespace %s", args.node_name, args.namespace)
    agent.run()
    log.info("node agent stopped")
    return 0


def _read_config(kube: Kube, namespace: str, name: str) -> NodeAgentConfig:
    from mover.kube.framework.client import KubeError
    from mover.kube.resources import CONFIGMAPS

    where = f"config map {namespace}/{name}"
    try:
        cm = kube.get_or_none(CONFIGMAPS, namespace, name)
    except KubeError as exc:
        raise RepoError(f"cannot read {where}: {exc.message}") from None
    if cm is None:
        raise RepoError(f"{where} (--node-agent-configmap) does not exist: create it or leave the flag out")
    config = parse_config(cm.get("data"), where)
    logging.getLogger("mover.kube").info("node agent config %s: backup PVC settings for %s", where,
                                         ", ".join(sorted(config.backup_pvc)) or "no storage class")
    return config
