"""Which objects a backup holds: Velero's item collector.

Every served resource that can be listed is considered, in its preferred version. Namespaced
objects come from the included namespaces; cluster-scoped ones when the spec asks for them
(``includeClusterResources: true``, or left unset on a backup of every namespace), and always
when related to an included item (a claim's volume, a custom resource's definition). Objects
must match the label selector(s) and not carry ``velero.io/exclude-from-backup=true``. The
namespace object of every namespace with backed-up content is included too.
"""

from __future__ import annotations

from collections.abc import Callable

from mover.kube.framework.client import Kube, KubeError, Obj, Resource
from mover.kube.items.actions import ActionContext, Item, ItemAction
from mover.kube.oplog import OperationLog
from mover.kube.resources import ResourceIndex
from mover.velero.filters import IncludesExcludes, excluded_by_label, labels_match
from mover.velero.objects import Backup, BackupSpec
from mover.velero.tarball import ResourceRef

NAMESPACES = "namespaces"


def uses_scoped_filters(spec: BackupSpec) -> bool:
    """The newer cluster-/namespace-scoped resource lists, rather than the old ones."""
    return bool(spec.included_cluster_scoped_resources or spec.excluded_cluster_scoped_resources
                or spec.included_namespace_scoped_resources or spec.excluded_namespace_scoped_resources)


class ResourceFilter:
    """Whether a resource's objects are backed up, from the old-style lists
    (included/excludedResources + includeClusterResources) or the scoped ones."""

    def __init__(self, spec: BackupSpec, index: ResourceIndex, all_namespaces: bool) -> None:
        def q(names: list[str]) -> list[str]:
            return [index.qualified(n) for n in names]

        self.scoped = uses_scoped_filters(spec)
        self.resources = IncludesExcludes.of(q(spec.included_resources), q(spec.excluded_resources))
        self.cluster = IncludesExcludes.of(q(spec.included_cluster_scoped_resources),
                                           q(spec.excluded_cluster_scoped_resources))
        self.namespaced = IncludesExcludes.of(q(spec.included_namespace_scoped_resources),
                                              q(spec.excluded_namespace_scoped_resources))
        self.include_cluster = spec.include_cluster_resources
        self.all_namespaces = all_namespaces

    def listed(self, res: Resource) -> bool:
        """Whether to list every object of ``res`` (not just related ones)."""
        if self.scoped:
            if res.namespaced:
                return self.namespaced.should_include(res.qualified)
            # The scoped cluster list includes nothing unless asked: only related items.
            return bool(self.cluster.includes) and self.cluster.should_include(res.qualified)
        if not res.namespaced and (self.include_cluster is False
                                   or (self.include_cluster is None and not self.all_namespaces)):
            return False
        return self.resources.should_include(res.qualified)

    def related_allowed(self, res: Resource) -> bool:
        """Whether an item related to an included one may be added."""
        if res.namespaced:
            return self.namespaced.should_include(res.qualified) if self.scoped \
                else self.resources.should_include(res.qualified)
        if self.scoped:
            return not any(p in self.cluster.excludes for p in ("*", res.qualified))
        return self.include_cluster is not False and not any(
            p in self.resources.excludes for p in ("*", res.qualified))


class Collector:
    def __init__(self, kube: Kube, index: ResourceIndex, backup: Backup, log: OperationLog,
                 actions: list[ItemAction]) -> None:
        self.kube = kube
        self.index = index
        self.spec = backup.spec
        self.log = log
        self.actions = actions
        self._listed: dict[str, list[Obj]] = {}
        self._ctx = ActionContext(backup, log, self.list_all)

    def list_all(self, qualified: str) -> list[Obj]:
        if qualified not in self._listed:
            res = self.index.resolve(qualified)
            self._listed[qualified] = self.kube.list(res)["items"] if res else []
        return self._listed[qualified]

    def collect(self, progress: Callable[[int], None] = lambda n: None) -> list[Item]:
        """The items, each once; ``progress(n)`` hears the running count as they are found."""
        ns_filter = IncludesExcludes.of(self.spec.included_namespaces, self.spec.excluded_namespaces)
        all_namespaces = ns_filter.includes_all and not ns_filter.excludes
        namespaces = {n["metadata"]["name"]: n for n in self.list_all(NAMESPACES)}
        active = sorted(name for name in namespaces if ns_filter.should_include(name))
        for wanted in ns_filter.includes:
            if not any(c in wanted for c in "*?[") and wanted not in namespaces:
                self.log.error(f"namespace {wanted} is included in the backup but does not exist")
        self.log.info(f"Including namespaces: {', '.join(ns_filter.includes) or '*'}")
        self.log.info(f"Excluding namespaces: {', '.join(ns_filter.excludes) or '<none>'}")

        rf = ResourceFilter(self.spec, self.index, all_namespaces)
        items: dict[ResourceRef, Item] = {}
        for res in sorted(self.index.resources, key=lambda r: r.qualified):
            if res.qualified == NAMESPACES or "list" not in res.verbs or not rf.listed(res):
                continue
            for obj in self._list(res, None if all_namespaces or not res.namespaced else active):
                if self._labels_match(obj) and not excluded_by_label(obj):
                    item = Item(res, obj)
                    items[item.key] = item
            progress(len(items))

        self._add_related(items, rf)
        used = {key.namespace for key in items if key.namespace}
        selector = self.spec.label_selector or self.spec.or_label_selectors
        namespace_resource = self.index.resolve(NAMESPACES)
        # A namespace's object goes with its content whatever the resource filters say, unless
        # namespaces are excluded outright (Velero issue 6302).
        if namespace_resource is not None and rf.related_allowed(namespace_resource):
            for name in active:
                ns = namespaces[name]
                if not excluded_by_label(ns) and (not selector or name in used or self._labels_match(ns)):
                    item = Item(namespace_resource, ns)
                    items[item.key] = item
        progress(len(items))
        return [items[key] for key in sorted(items)]

    def _labels_match(self, obj: Obj) -> bool:
        return labels_match(self.spec.label_selector, self.spec.or_label_selectors,
                            obj["metadata"].get("labels") or {})

    def _list(self, res: Resource, namespaces: list[str] | None) -> list[Obj]:
        try:
            if namespaces is None:
                return self.list_all(res.qualified)
            return [obj for ns in namespaces for obj in self.kube.list(res, ns)["items"]]
        except KubeError as exc:
            self.log.error(f"listing {res.qualified}: {exc.message}", cluster=not res.namespaced)
            return []

    def _add_related(self, items: dict[ResourceRef, Item], rf: ResourceFilter) -> None:
        pending = list(items.values())
        while pending:
            item = pending.pop()
            for action in self.actions:
                if not action.applies_to(item.resource):
                    continue
                for key in action.execute(item, self._ctx):
                    if key in items:
                        continue
                    related = self._fetch(key, rf)
                    if related is not None:
                        items[key] = related
                        pending.append(related)

    def _fetch(self, key: ResourceRef, rf: ResourceFilter) -> Item | None:
        res = self.index.resolve(key.resource)
        if res is None or not rf.related_allowed(res):
            return None
        try:
            obj = self.kube.get(res, key.namespace or None, key.name)
        except KubeError as exc:
            if not exc.not_found:
                self.log.error(f"getting {key.resource} {key.name}: {exc.message}", namespace=key.namespace or None,
                               cluster=not key.namespace)
            return None
        obj.setdefault("apiVersion", res.api_version)
        obj.setdefault("kind", res.kind)
        return None if excluded_by_label(obj) else Item(res, obj)
