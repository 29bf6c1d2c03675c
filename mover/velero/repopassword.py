"""Where the password of Velero's repositories comes from, and opening a repository with it.

Velero keeps one password for all its repositories in the secret ``velero-repo-credentials``
(``velero-restic-credentials`` before 1.10), key ``repository-password``, in its namespace; when
the secret is missing it creates it with the static value ``static-passw0rd``. Sources are tried
in order until one opens the repository; when none does, one line says which were tried.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from mover.errors import RepoError, WrongPassword
from mover.repo.backend.base import Backend
from mover.repo.repository import Repository
from mover.ui.cliargs import read_password_file

T = TypeVar("T")
DEFAULT_PASSWORD = "static-passw0rd"
SECRET_KEY = "repository-password"
SECRET_NAMES = ("velero-repo-credentials", "velero-restic-credentials")  # current, before 1.10


class Unavailable(Exception):
    """A source has no password to offer (no cluster, no secret); the reason is the message."""


@dataclass(frozen=True)
class PasswordSource:
    label: str  # for messages: "--repo-password-file /x", "Velero's default password", ...
    fetch: Callable[[], str]  # raises Unavailable


def fixed(label: str, password: str) -> PasswordSource:
    return PasswordSource(label, lambda: password)


def default_password() -> PasswordSource:
    return fixed(f"Velero's default password {DEFAULT_PASSWORD}", DEFAULT_PASSWORD)


def kube_secret(namespace: str, kubeconfig: str | None = None, context: str | None = None,
                timeout: float = 3.0) -> PasswordSource:
    """The password in Velero's secret, read through the kubeconfig's cluster.

    The cluster is asked only when the source is tried; a missing kubeconfig, an unreachable
    or refusing cluster, or a missing secret make the source unavailable.
    """
    label = f"secret {SECRET_NAMES[0]} in namespace {namespace}"

    def fetch() -> str:
        path = kubeconfig or os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
        if not any(os.path.isfile(p) for p in path.split(os.pathsep)):
            raise Unavailable("no kubeconfig")  # and no need to import the client
        from kubernetes import (  # slow to import; only when a cluster is asked
            client,
            config,
        )
        from kubernetes.client.rest import ApiException
        from urllib3.exceptions import HTTPError

        cfg = client.Configuration()
        try:
            config.load_kube_config(config_file=path, context=context, client_configuration=cfg)
        except Exception:  # kubeconfig parsing raises many types; all mean "none"
            raise Unavailable("no usable kubeconfig") from None
        cfg.retries = 0  # one try: an unreachable cluster fails within `timeout`
        with client.ApiClient(cfg) as api:
            core = client.CoreV1Api(api)
            for name in SECRET_NAMES:
                try:
                    secret = core.read_namespaced_secret(name, namespace, _request_timeout=timeout)
                except ApiException as e:
                    if e.status == 404:
                        continue
                    raise Unavailable(f"cluster answered HTTP {e.status}") from None
                except (HTTPError, OSError):
                    raise Unavailable("no cluster reachable") from None
                value = (secret.data or {}).get(SECRET_KEY)
                if value:
                    # Velero hands it to restic as a password file, which restic trims.
                    return base64.b64decode(value).decode("utf-8").strip()
            raise Unavailable("not found")

    return PasswordSource(label, fetch)


def standard_sources(password_file: str | None = None, *, file_flag: str = "--repo-password-file",
                     namespace: str = "velero", kubeconfig: str | None = None,
                     context: str | None = None) -> list[PasswordSource]:
    """kbrowse's order. A password the operator gave (`password_file`, else
    $RESTIC_PASSWORD_FILE, else $RESTIC_PASSWORD) is the only one tried: a wrong one should
    say so, not be papered over. Otherwise Velero's secret, then Velero's default."""
    path = password_file or os.environ.get("RESTIC_PASSWORD_FILE")
    if path:
        label = f"{file_flag if password_file else '$RESTIC_PASSWORD_FILE'} {path}"
        return [PasswordSource(label, lambda: read_password_file(path))]
    if os.environ.get("RESTIC_PASSWORD"):
        return [fixed("$RESTIC_PASSWORD", os.environ["RESTIC_PASSWORD"])]
    return [kube_secret(namespace, kubeconfig, context), default_password()]


def open_repository(backend: Backend, sources: Sequence[PasswordSource]) -> tuple[Repository, int]:
    """Open the restic repository with the first source whose password works (see
    :func:`open_with_password`)."""
    return open_with_password(backend.location(), sources, lambda pw: Repository.open(backend, pw))


def open_with_password(location: str, sources: Sequence[PasswordSource],
                       open_with: Callable[[str], T]) -> tuple[T, int]:
    """``open_with(password)`` for the first source whose password works, restic's format or
    kopia's.

    Returns what it opened and the index of that source. Errors other than a wrong password
    (no repository there, storage down) are raised at once: another password would not help.
    """
    tried = []
    for i, source in enumerate(sources):
        try:
            password = source.fetch()
        except Unavailable as e:
            tried.append(f"{source.label} ({e})")
            continue
        try:
            return open_with(password), i
        except WrongPassword:
            tried.append(f"{source.label} (wrong)")
    if not tried:
        raise RepoError(f"no password source for repository {location}")
    raise WrongPassword(f"no password opens repository {location}; tried: "
                        f"{'; '.join(tried)}")
