"""`kbrowse repo get`, as `velero repo get`: the repositories of volume data (BackupRepositories)."""

from __future__ import annotations

from kbrowse.cluster.kinds import REPOSITORY, Group, add_get


def register(repositories: Group) -> None:
    add_get(repositories, REPOSITORY, "list backup repositories")
