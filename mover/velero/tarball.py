"""The resources tarball, ``backups/<name>/<name>.tar.gz``, read and written as Velero does.

Layout (Velero's output-file-format doc, format 1.1.0):

    metadata/version                                       "1.1.0\\n"
    resources/<resource>[.<group>]/namespaces/<ns>/<name>.json
    resources/<resource>[.<group>]/cluster/<name>.json
    resources/<resource>[.<group>]/<version>-preferredversion/{namespaces/<ns>,cluster}/<name>.json

Every item is written twice: without a version folder (older Velero reads that) and in its
preferred version's folder. Reading uses the folder without a version, which every format has.
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from mover.errors import IntegrityError, NotFound
from mover.golang import gojson

FORMAT_VERSION = "1.1.0"
VERSION_FILE = "metadata/version"
RESOURCES = "resources"
NAMESPACED = "namespaces"
CLUSTER = "cluster"
PREFERRED = "-preferredversion"


@dataclass(frozen=True, order=True)
class ResourceRef:
    """One backed-up object: its group-resource folder, namespace ("" if cluster-scoped), name."""

    resource: str  # "deployments.apps", "configmaps"
    namespace: str
    name: str

    def path(self, version_dir: str = "") -> str:
        parts = [RESOURCES, self.resource]
        if version_dir:
            parts.append(version_dir)
        parts += [NAMESPACED, self.namespace] if self.namespace else [CLUSTER]
        return "/".join(parts + [self.name + ".json"])


def parse_path(path: str) -> ResourceRef | None:
    """The object an unversioned item path names; None for anything else in the tarball."""
    parts = path.split("/")
    if len(parts) < 4 or parts[0] != RESOURCES or not parts[-1].endswith(".json"):
        return None
    name = parts[-1][: -len(".json")]
    if len(parts) == 4 and parts[2] == CLUSTER:
        return ResourceRef(parts[1], "", name)
    if len(parts) == 5 and parts[2] == NAMESPACED:
        return ResourceRef(parts[1], parts[3], name)
    return None


@dataclass(frozen=True)
class BackedUpItem:
    """An object as the API server returned it, and its (plural, lowercase) resource name,
    which only discovery knows: "Deployment" alone does not say "deployments"."""

    resource: str
    obj: dict[str, Any]

    @property
    def group(self) -> str:
        api_version = self.obj.get("apiVersion", "")
        return api_version.rpartition("/")[0]

    @property
    def version(self) -> str:
        return self.obj.get("apiVersion", "").rpartition("/")[2]

    @property
    def ref(self) -> ResourceRef:
        meta = self.obj.get("metadata") or {}
        folder = f"{self.resource}.{self.group}" if self.group else self.resource
        return ResourceRef(folder, meta.get("namespace") or "", meta["name"])

    @property
    def resource_list_key(self) -> str:
        """The key Velero's resource list files it under, e.g. "apps/v1/Deployment"."""
        return f"{self.obj['apiVersion']}/{self.obj['kind']}"


def resource_list(items: Iterable[BackedUpItem]) -> dict[str, list[str]]:
    """``<name>-resource-list.json.gz``: "ns/name" (or "name") per apiVersion/Kind, sorted."""
    out: dict[str, list[str]] = {}
    for item in items:
        ref = item.ref
        out.setdefault(item.resource_list_key, []).append(
            f"{ref.namespace}/{ref.name}" if ref.namespace else ref.name
        )
    return {k: sorted(v) for k, v in sorted(out.items())}


def _add(tar: tarfile.TarFile, path: str, data: bytes, mtime: float) -> None:
    info = tarfile.TarInfo(path)
    info.size, info.mode, info.mtime, info.type = len(data), 0o755, int(mtime), tarfile.REGTYPE
    tar.addfile(info, io.BytesIO(data))


def write_tarball(items: Iterable[BackedUpItem], mtime: float | None = None) -> bytes:
    """The gzipped tarball Velero uploads, with the version file first (as Velero writes it)."""
    when = time.time() if mtime is None else mtime
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        _add(tar, VERSION_FILE, f"{FORMAT_VERSION}\n".encode(), when)
        for item in items:
            data = gojson.dumps(item.obj).encode()
            _add(tar, item.ref.path(), data, when)
            _add(tar, item.ref.path(item.version + PREFERRED), data, when)
    return gzip.compress(raw.getvalue(), mtime=0)


class BackupContents:
    """The objects in one backup's tarball, indexed by resource, namespace and name."""

    def __init__(self, items: dict[ResourceRef, bytes], format_version: str, what: str) -> None:
        self._items = items
        self.format_version = format_version
        self.what = what

    @classmethod
    def from_bytes(cls, data: bytes, what: str) -> BackupContents:
        """Parse the gzipped tarball; `what` names it in errors."""
        items: dict[ResourceRef, bytes] = {}
        version = ""
        try:
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
                for member in tar:
                    if not member.isfile():
                        continue
                    ref = parse_path(member.name)
                    if ref is None and member.name != VERSION_FILE:
                        continue  # version folders and anything newer than this reader
                    reader = tar.extractfile(member)
                    assert reader is not None  # there is one for every regular file
                    content = reader.read()
                    if ref is None:
                        version = content.decode("utf-8", "replace").strip()
                    else:
                        items[ref] = content
        except (tarfile.TarError, OSError, EOFError) as e:
            raise IntegrityError(f"{what} is not a readable gzipped tarball ({e})") from None
        return cls(items, version, what)

    def refs(self) -> list[ResourceRef]:
        return sorted(self._items)

    def resources(self) -> list[str]:
        return sorted({r.resource for r in self._items})

    def namespaces(self, resource: str) -> list[str]:
        """Namespaces holding objects of `resource`; "" stands for cluster-scoped ones."""
        found = sorted({r.namespace for r in self._items if r.resource == resource})
        if not found:
            raise NotFound(f"no {resource} in {self.what}")
        return found

    def names(self, resource: str, namespace: str) -> list[str]:
        found = sorted(r.name for r in self._items
                       if r.resource == resource and r.namespace == namespace)
        if not found:
            where = f"namespace {namespace}" if namespace else "cluster scope"
            raise NotFound(f"no {resource} in {where} in {self.what}")
        return found

    def get(self, ref: ResourceRef) -> dict[str, Any]:
        """The object, parsed; NotFound names what is missing."""
        data = self._items.get(ref)
        if data is None:
            where = f"namespace {ref.namespace}" if ref.namespace else "cluster scope"
            raise NotFound(f"{ref.resource} {ref.name} in {where} is not in {self.what}")
        try:
            obj = json.loads(data)
        except ValueError as e:
            raise IntegrityError(f"{ref.path()} in {self.what} is not valid JSON ({e})") from None
        if not isinstance(obj, dict):
            raise IntegrityError(f"{ref.path()} in {self.what} is not a JSON object")
        return obj
