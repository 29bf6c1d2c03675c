"""Errors of the repository layer.

Every error carries a message meant for an operator: what went wrong, where, and (when we
know it) what to do. The CLIs print ``str(err)`` and exit non-zero; no traceback.
"""

from __future__ import annotations


class RepoError(Exception):
    """Base class of every error the repository layer raises on purpose."""

    exit_code = 1


class NotFound(RepoError):
    """A file, blob, snapshot or path that does not exist."""


class NotARepository(RepoError):
    """The location exists (or not) but holds no repository."""


class WrongPassword(RepoError):
    """No key file opens with the given password."""


class IntegrityError(RepoError):
    """Stored bytes fail their MAC, hash or structure check: damaged data, never returned."""


class LockedError(RepoError):
    """Another process holds a conflicting lock."""


class BackendError(RepoError):
    """The storage itself failed (I/O, network, permissions)."""
