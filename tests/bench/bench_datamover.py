"""One large volume through the whole CSI snapshot data movement path vs a plain `mover backup`
of the same directory: what the orchestration costs, in seconds.

    python -m tests.bench.bench_datamover [--scale 2.3] [--rounds 2]

The volume is ``tests/bench/dataset.py`` (scale 2.3 is about 2.1 GiB: small random and text
files, two large random files, a compressible log). Both sides write to one SeaweedFS on
loopback. The data movement side runs `mover server` and `mover node-agent` as processes, as
deployed, against the Kubernetes API double; tests/support/csi.py plays the snapshot
controller, provisioner, scheduler and kubelet (snapshots share the volume's files, as
copy-on-write storage does, so no copy is timed). Its wall time runs from creating the Backup
to the Backup Completed: snapshot, exposure, upload, cleanup, the backup's own upload. The plain
side is `mover backup .` from inside the directory into a fresh repository. Every round gets a
fresh namespace (a fresh repository: first backups both). CPU times: the plain child's from
``os.wait4``; for data movement, the server's and the agent's, which include their start and
idle polling. Not collected by pytest (no ``test_`` prefix).
"""

from __future__ import annotations

import argparse
import base64
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from mover.kube.framework.client import Kube  # noqa: E402
from mover.kube.resources import BACKUPS, NAMESPACES, SECRETS  # noqa: E402
from tests.bench import dataset  # noqa: E402
from tests.bench.bench import drop_caches  # noqa: E402
from tests.support.csi import NODE, Cluster, install_snapshot_crds, snapshot_classes  # noqa: E402
from tests.support.kubeapi.fixtures import write_kubeconfig  # noqa: E402
from tests.support.kubeapi.server import KubeApiServer  # noqa: E402
from tests.support.s3server import S3Server  # noqa: E402
from tests.support.velero_env import (  # noqa: E402
    NS,
    credentials_secret,
    install,
    phase,
    s3_location,
    velero_object,
    wait_for,
)

MiB = 1 << 20
PASSWORD = "bench-password"


def child_cpu(proc: subprocess.Popen) -> float:
    """Wait for ``proc``; its user+sys seconds."""
    _, _, usage = os.wait4(proc.pid, 0)
    proc.returncode = 0
    return usage.ru_utime + usage.ru_stime


def plain_backup(env: dict[str, str], repo: str, src: Path) -> tuple[float, float]:
    subprocess.run([sys.executable, "-m", "mover.cli", "-r", repo, "init"], env=env, check=True,
                   capture_output=True)
    drop_caches()
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "mover.cli", "-r", repo, "backup", "--json", "."], cwd=src,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    cpu = child_cpu(proc)
    return time.perf_counter() - start, cpu


def data_movement(kube: Kube, cluster: Cluster, env: dict[str, str], kubeconfig: Path, src: Path,
                  round_no: int, log: Path) -> tuple[float, float]:
    ns = f"vol{round_no}"
    kube.create(NAMESPACES, None, {"metadata": {"name": ns}})
    data = cluster.claim(ns, "data", "fast")
    data.rmdir()
    data.symlink_to(src)
    procs = [subprocess.Popen([sys.executable, "-m", "mover.cli", *args, "--kubeconfig", str(kubeconfig),
                               "--namespace", NS, "--log-level", "info"],
                              env=env, stdout=log.open("a"), stderr=subprocess.STDOUT)
             for args in (["server"], ["node-agent", "--node-name", NODE, "--kubelet-root", str(cluster.kubelet)])]
    try:
        # Both started and watching: their start-up is not the orchestration's cost.
        wait_for(lambda: log.read_text(), lambda text: "starting the server" in text and "starting the node agent" in text,
                 120, "the server and the node agent to start")
        time.sleep(2)
        drop_caches()
        start = time.perf_counter()
        kube.create(BACKUPS, NS, velero_object("Backup", f"b{round_no}", {
            "includedNamespaces": [ns], "snapshotMoveData": True}))
        done = wait_for(lambda: kube.get(BACKUPS, NS, f"b{round_no}"),
                        lambda b: phase(b) in ("Completed", "PartiallyFailed", "Failed", "FailedValidation"), 1800, "the backup")
        wall = time.perf_counter() - start
        if phase(done) != "Completed":
            raise SystemExit(f"backup b{round_no} ended {phase(done)}: {done['status']} (log: {log})")
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
    return wall, sum(child_cpu(p) for p in procs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scale", type=float, default=2.3, help="data set size (2.3: ~2.1 GiB)")
    ap.add_argument("--rounds", type=int, default=2, help="rounds; the table shows medians")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-datamover-", dir=os.environ.get("TMPDIR", "/var/tmp")))
    s3 = S3Server(work / "seaweedfs")
    api = KubeApiServer()
    try:
        (work / "seaweedfs").mkdir(exist_ok=True)
        src = work / "src"
        print(f"generating ~{dataset.Layout(args.scale).total_bytes / MiB:.0f} MiB in {src} ...", flush=True)
        dataset.generate(src, args.scale)
        s3.start()
        api.start()
        kubeconfig = write_kubeconfig(work / "kubeconfig", api.url)
        from kubernetes import config

        kube = Kube(config.new_client_from_config(config_file=str(kubeconfig)))
        install(kube)
        install_snapshot_crds(kube)
        snapshot_classes(kube)
        bucket, plain_bucket = s3.make_bucket(), s3.make_bucket()  # a location holds only Velero's folders
        s3_location(kube, s3, bucket, credential=credentials_secret(kube, s3))
        kube.create(SECRETS, NS, {"metadata": {"name": "velero-repo-credentials"}, "data": {
            "repository-password": base64.b64encode(PASSWORD.encode()).decode()}})
        cluster = Cluster(kube, work / "cluster", copy=False).start()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RESTIC_", "AWS_"))}
        env.update(s3.env(), RESTIC_PASSWORD=PASSWORD, AWS_EC2_METADATA_DISABLED="true",
                   PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""))
        results: dict[str, list[tuple[float, float]]] = {"plain": [], "datamover": []}
        for rnd in range(args.rounds):
            order = ("plain", "datamover") if rnd % 2 == 0 else ("datamover", "plain")
            for side in order:
                if side == "plain":
                    got = plain_backup(env, f"s3:{s3.endpoint_url}/{plain_bucket}/plain/{rnd}", src)
                else:
                    got = data_movement(kube, cluster, env, kubeconfig, src, rnd, work / "processes.log")
                results[side].append(got)
                print(f"  round {rnd + 1} {side:<10} wall {got[0]:7.2f}s  cpu {got[1]:7.2f}s", flush=True)
        cluster.stop()
        size = sum(f.stat().st_size for f in src.rglob("*") if f.is_file() and not f.is_symlink())
        print(f"\none volume of {size / MiB:.0f} MiB, {args.rounds} rounds, medians; load {os.getloadavg()[0]:.2f}")
        print(f"{'path':<38} {'wall s':>8} {'CPU s':>8}")
        med = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for k, v in results.items()}
        print(f"{'mover backup . (plain)':<38} {med['plain'][0]:8.2f} {med['plain'][1]:8.2f}")
        print(f"{'Backup with snapshotMoveData':<38} {med['datamover'][0]:8.2f} {med['datamover'][1]:8.2f}")
        print(f"{'orchestration overhead':<38} {med['datamover'][0] - med['plain'][0]:8.2f}")
        print(f"(bench process: {resource.getrusage(resource.RUSAGE_SELF).ru_utime:.1f}s user, API double and actors)")
    finally:
        api.stop()
        s3.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
