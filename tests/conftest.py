"""Shared fixtures. Helpers live in tests/support/ (treekit, restic_cli, s3server, kubeapi, ...)."""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.restic_cli import Restic
from tests.support.s3server import s3_bucket, s3_server  # noqa: F401  (fixtures, imported only here)
from tests.support.treekit import make_full_tree

RESTIC_TEST_PASSWORD = "kbrowse-test-password"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Modules holding a `slow` test run first, that test first in its module: with xdist's
    work stealing (addopts) the other worker takes the short tests meanwhile, instead of the
    suite ending on one worker running a minutes-long test alone. Modules stay whole, so their
    module-scoped fixtures are built once."""
    slow = list(dict.fromkeys(item.path for item in items if item.get_closest_marker("slow")))
    items.sort(key=lambda item: (slow.index(item.path) if item.path in slow else len(slow),
                                 item.get_closest_marker("slow") is None))


@pytest.fixture
def full_tree(tmp_path: Path) -> tuple[Path, dict]:
    """A fresh tree with every kind of entry restic records, and its description."""
    root = tmp_path / "full-tree"
    return root, make_full_tree(root)


@pytest.fixture(scope="session")
def restic_bin() -> str:
    path = shutil.which("restic")
    if path is None:
        pytest.skip("the restic binary is not on PATH (Debian package `restic`, 0.14)")
    return path


@pytest.fixture
def restic_repo(tmp_path: Path, restic_bin: str) -> Callable[..., Restic]:
    """Factory: `restic_repo(version=2, password=...)` inits a new local repository."""
    counter = itertools.count()

    def make(version: int = 2, password: str = RESTIC_TEST_PASSWORD) -> Restic:
        repo = Restic(str(tmp_path / f"restic-repo-{next(counter)}"), password, binary=restic_bin)
        repo.init(version=version)
        return repo

    return make
