"""The mover's image for tests: built by scripts/image when the sources changed, run with podman.

The image is tagged by a digest of what the build copies (Containerfile, pyproject.toml,
README.md, mover/, kbrowse/), so a test never runs yesterday's code and an unchanged tree
builds nothing. Test workers share one build through a lock. Builds and runs happen as root
on the host network, which is how the tests reach the API double and SeaweedFS on loopback.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import resource
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path("/var/cache/kbrowse-image")
BUILD_INPUTS = ("Containerfile", "pyproject.toml", "README.md", "mover", "kbrowse")
BUILD_TIMEOUT = 900  # the first build on a machine runs debootstrap: minutes
# What means "podman cannot run containers here", as opposed to a broken build.
_CANNOT_RUN = ("OCI runtime", "runc create failed", "crun:", "cannot clone", "newuidmap",
               "permission denied while trying to connect")


def source_digest() -> str:
    """A digest of the files the image is built from, as .containerignore lets them in."""
    h = hashlib.sha256()
    for name in BUILD_INPUTS:
        top = ROOT / name
        files = [top] if top.is_file() else sorted(p for p in top.rglob("*")
                                                   if p.is_file() and "__pycache__" not in p.parts)
        for path in files:
            h.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def _limits() -> list[str]:
    """podman 4.3 gives root's containers more open files and processes than some hosts allow
    (root without CAP_SYS_RESOURCE, a small pid_max), and then cannot start them."""
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nproc = resource.getrlimit(resource.RLIMIT_NPROC)[1]
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    if nproc == resource.RLIM_INFINITY or nproc > pid_max:
        nproc = pid_max
    return ["--ulimit", f"nofile={nofile}:{nofile}", "--ulimit", f"nproc={nproc}:{nproc}"]


class Podman:
    """podman with the runtime and limits scripts/image uses (runc copes with hosts whose
    cgroups mix v1 and v2, where crun refuses to start)."""

    def __init__(self, image: str) -> None:
        self.image = image
        self.base = ["podman", "--runtime", "runc"]

    def __call__(self, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([*self.base, *args], capture_output=True, text=True, timeout=timeout, check=False)
        if check and done.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)} exited {done.returncode}:\n{done.stderr[-3000:]}")
        return done

    def run_args(self, *options: str) -> list[str]:
        """``podman run`` options every test container gets, then ``options``."""
        return ["run", "--network", "host", *_limits(), *options]

    def run(self, *args: str, options: tuple[str, ...] = (), timeout: float = 120,
            check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run the image to completion: ``args`` go to its entry point (``mover``)."""
        return self(*self.run_args("--rm", *options), self.image, *args, timeout=timeout, check=check)

    def start(self, *args: str, options: tuple[str, ...] = ()) -> Container:
        """Start the image in the background; the caller removes the container."""
        return Container(self, self(*self.run_args("--detach", *options), self.image, *args).stdout.strip())


class Container:
    def __init__(self, podman: Podman, cid: str) -> None:
        self.podman = podman
        self.id = cid

    def state(self) -> tuple[str, int]:
        out = self.podman("inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", self.id).stdout.split()
        return out[0], int(out[1])

    def wait(self, timeout: float) -> int:
        return int(self.podman("wait", self.id, timeout=timeout).stdout.strip())

    def stop(self, grace: int) -> int:
        """SIGTERM, then SIGKILL after ``grace`` seconds; the exit code."""
        self.podman("stop", "--time", str(grace), self.id, timeout=grace + 60)
        return self.state()[1]

    def logs(self) -> str:
        done = self.podman("logs", self.id)
        return done.stdout + done.stderr

    def remove(self) -> None:
        self.podman("rm", "--force", self.id, check=False)


def _cannot_run(text: str) -> str | None:
    for line in text.splitlines():
        if any(marker in line for marker in _CANNOT_RUN):
            return line.strip()
    return None


def _remove_stale(podman: Podman) -> None:
    """Untag the test images of earlier trees (an hour old: no session runs that long), so
    that a machine running the tests for every change keeps its disk."""
    listed = podman("images", "--filter", "reference=localhost/kbrowse/mover:test-*", "--filter", "until=1h",
                    "--format", "{{.Repository}}:{{.Tag}}", check=False).stdout.split()
    stale = [ref for ref in listed if ref.rpartition(":")[2].startswith("test-") and ref != podman.image]
    if stale:
        podman("rmi", *stale, check=False)  # one still in use stays


def build_image() -> Podman:
    """The image of this tree, built if missing: skips where podman cannot run containers,
    fails where the build itself is broken."""
    if shutil.which("podman") is None or shutil.which("runc") is None:
        pytest.skip("podman and runc are not installed (scripts/install --test installs them)")
    if os.geteuid() != 0:
        pytest.skip("the container tests run podman as root (host network, the Debian base from debootstrap)")
    podman = Podman(f"localhost/kbrowse/mover:test-{source_digest()}")
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / "build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build for all test workers
        if podman("image", "exists", podman.image, check=False).returncode != 0:
            built = subprocess.run(["bash", str(ROOT / "scripts" / "image"), "--tag", podman.image],
                                   capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False, cwd=ROOT)
            if built.returncode != 0:
                reason = _cannot_run(built.stderr)
                if reason:
                    pytest.skip(f"podman cannot run containers here: {reason}")
                pytest.fail(f"scripts/image failed:\n{built.stderr[-4000:]}")
            _remove_stale(podman)
    probe = podman.run("--version", check=False)
    if probe.returncode != 0:
        reason = _cannot_run(probe.stderr)
        if reason:
            pytest.skip(f"podman cannot run containers here: {reason}")
        pytest.fail(f"the image does not run `mover --version`:\n{probe.stderr[-3000:]}")
    return podman
