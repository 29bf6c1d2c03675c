"""In a real terminal: `kbrowse --kubecontext NAME` in tmux opens on the cluster's backups."""

from __future__ import annotations

import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from mover.kube.framework.client import Kube
from mover.kube.resources import BACKUPS
from tests.support.kubeapi.fixtures import CONTEXT, KubeApi
from tests.support.velero_env import NS, velero_object
from tests.tui.test_tui_tmux import _wait_for

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


def test_kubecontext_opens_on_the_clusters_backups(kube: Kube, kube_api: KubeApi) -> None:
    for name, phase in (("nightly-20261201020000", "Completed"), ("before-upgrade", "PartiallyFailed")):
        kube.create(BACKUPS, NS, velero_object("Backup", name, {"includedNamespaces": ["shop"],
                                                                "storageLocation": "default"}))
        kube.patch(BACKUPS, NS, name, {"status": {"phase": phase, "startTimestamp": "2026-12-01T02:00:00Z",
                                                  "warnings": 2}}, subresource="status")
    kbrowse = str(Path(sys.executable).with_name("kbrowse"))
    session = f"kb-{uuid.uuid4().hex[:8]}"
    cmd = (f"env -u COLUMNS -u LINES -u KUBECONFIG {kbrowse} --kubecontext {CONTEXT} "
           f"--kubeconfig {kube_api.kubeconfig_path}; echo EXITED rc=$?; sleep 60")
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "160", "-y", "40", cmd], check=True)
    try:
        screen = _wait_for(session, "2 backups in")
        assert "nightly-20261201020000" in screen and "PartiallyFailed" in screen and "1 Backups" in screen, screen
        assert f"{CONTEXT} · namespace velero" in screen
        kube.create(BACKUPS, NS, velero_object("Backup", "made-meanwhile", {"includedNamespaces": ["shop"]}))
        screen = _wait_for(session, "made-meanwhile")  # the watch brings it in, no key pressed
        subprocess.run(["tmux", "send-keys", "-t", session, "Down"], check=True)  # the table has the focus
        _wait_for(session, "Describe made-meanwhile")
        subprocess.run(["tmux", "send-keys", "-t", session, "q"], check=True)
        _wait_for(session, "EXITED rc=0")
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True, check=False)
