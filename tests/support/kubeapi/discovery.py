"""Which resources are served (built-in and from CRDs), and the discovery documents describing them."""

from __future__ import annotations

import threading
from typing import Any

from .resources import BUILTINS, ResourceType, version_priority

VERSION_INFO = {
    "major": "1",
    "minor": "31",
    "gitVersion": "v1.31.0",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2024-08-13T00:00:00Z",
    "goVersion": "go1.22.5",
    "compiler": "gc",
    "platform": "linux/amd64",
}


class Registry:
    """The served resource types; CRD writes add and remove theirs while the server runs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._custom: dict[str, list[ResourceType]] = {}  # by CRD name

    def set_crd(self, crd_name: str, types: list[ResourceType]) -> None:
        with self._lock:
            self._custom[crd_name] = types

    def drop_crd(self, crd_name: str) -> None:
        with self._lock:
            self._custom.pop(crd_name, None)

    def all_types(self) -> list[ResourceType]:
        with self._lock:
            custom = [rt for types in self._custom.values() for rt in types]
        return list(BUILTINS) + custom

    def resolve(self, group: str, version: str, plural: str) -> ResourceType | None:
        for rt in self.all_types():
            if (rt.group, rt.version, rt.plural) == (group, version, plural):
                return rt
        return None

    def group_versions(self) -> dict[str, list[str]]:
        """Each group's served versions, most preferred first; built-in groups keep their order."""
        groups: dict[str, list[str]] = {}
        for rt in self.all_types():
            versions = groups.setdefault(rt.group, [])
            if rt.version not in versions:
                versions.append(rt.version)
        return {group: sorted(versions, key=version_priority) for group, versions in groups.items()}

    # Discovery documents, shaped as the server sends them.

    def api_versions(self, server_address: str) -> dict[str, Any]:
        return {
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
        }

    def api_group_list(self) -> dict[str, Any]:
        groups = [self._group(name, versions) for name, versions in self.group_versions().items() if name]
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}

    def api_group(self, name: str) -> dict[str, Any] | None:
        versions = self.group_versions().get(name) if name else None
        if not versions:
            return None
        return {"kind": "APIGroup", "apiVersion": "v1", **self._group(name, versions)}

    def api_resource_list(self, group: str, version: str) -> dict[str, Any] | None:
        types = sorted((rt for rt in self.all_types() if (rt.group, rt.version) == (group, version)),
                       key=lambda rt: rt.plural)
        if not types:
            return None
        resources: list[dict[str, Any]] = []
        for rt in types:
            entry: dict[str, Any] = {
                "name": rt.plural,
                "singularName": rt.singular_name,
                "namespaced": rt.namespaced,
                "kind": rt.kind,
                "verbs": list(rt.verbs),
            }
            if rt.short_names:
                entry["shortNames"] = list(rt.short_names)
            if rt.categories:
                entry["categories"] = list(rt.categories)
            resources.append(entry)
            if rt.has_status:
                resources.append({"name": f"{rt.plural}/status", "singularName": "", "namespaced": rt.namespaced,
                                  "kind": rt.kind, "verbs": ["get", "patch", "update"]})
        document: dict[str, Any] = {"kind": "APIResourceList"}
        if group:  # the real /api/v1 answer carries no apiVersion; group answers do
            document["apiVersion"] = "v1"
        document["groupVersion"] = types[0].api_version
        document["resources"] = resources
        return document

    @staticmethod
    def _group(name: str, versions: list[str]) -> dict[str, Any]:
        entries = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
        return {"name": name, "versions": entries, "preferredVersion": dict(entries[0])}
