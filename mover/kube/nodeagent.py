"""`mover node-agent`: the PodVolumeBackup, PodVolumeRestore, DataUpload and DataDownload
controllers of one node, in one process (Velero's node-agent DaemonSet), moving the data of
pod volumes and CSI snapshots on that node."""

from __future__ import annotations

from dataclasses import dataclass, field

from mover.kube.controllers.datadownload import PREPARE_TIMEOUT, DataDownloadController
from mover.kube.controllers.dataupload import DataUploadController
from mover.kube.controllers.podvolumebackup import PodVolumeBackupController
from mover.kube.controllers.podvolumerestore import PodVolumeRestoreController
from mover.kube.datapath import Agent
from mover.kube.framework.client import Kube
from mover.kube.framework.controller import Manager
from mover.kube.framework.informer import WATCH_SECONDS
from mover.velero.nodeagentconfig import NodeAgentConfig


@dataclass
class NodeAgentOptions:
    node_name: str
    kubelet_root: str = "/var/lib/kubelet"
    namespace: str = "velero"
    concurrency: int = 1  # volumes moved at once (backups and restores together)
    resync: float = 60.0
    prepare_timeout: float = PREPARE_TIMEOUT  # seconds a data download's restore pod may take to run
    watch_seconds: int = WATCH_SECONDS
    config: NodeAgentConfig = field(default_factory=NodeAgentConfig)  # --node-agent-configmap


class NodeAgent:
    def __init__(self, kube: Kube, options: NodeAgentOptions) -> None:
        self.agent = Agent(options.node_name, options.kubelet_root, options.concurrency)
        self.manager = Manager(kube, options.namespace, resync=options.resync,
                               watch_seconds=options.watch_seconds)
        agent = self.agent
        self.manager.add(lambda ctx: PodVolumeBackupController(ctx, agent), workers=options.concurrency)
        self.manager.add(lambda ctx: PodVolumeRestoreController(ctx, agent), workers=options.concurrency)
        self.manager.add(lambda ctx: DataDownloadController(ctx, agent, prepare_timeout=options.prepare_timeout),
                         workers=options.concurrency)
        # Waiting for snapshots and exposer pods takes a worker only for a moment, moving data one slot.
        self.manager.add(lambda ctx: DataUploadController(ctx, agent, options.config),
                         workers=options.concurrency + 1)

    def start(self) -> NodeAgent:
        self.manager.start()
        return self

    def stop(self, grace: float = 25.0) -> None:
        """Stop taking work; running transfers stop at once (they run again, or are failed with
        the reason, when an agent starts next); wait up to ``grace`` seconds for them."""
        self.manager.stop(grace)
        self.agent.stores.close()

    def request_stop(self) -> None:
        self.manager.stop_event.set()

    def run(self, grace: float = 25.0) -> None:
        self.manager.start()
        try:
            self.manager.stop_event.wait()
        finally:
            self.stop(grace)
