"""The objects, their resource versions and the change history watches read.

Stored objects are never mutated: every write stores a new dict, so history entries and
objects handed to watchers stay valid without copying under the lock.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import threading
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from . import crd, errors, kinds, names, patch, schema
from .discovery import Registry
from .errors import ApiError
from .resources import BUILTINS, CRDS, NAMESPACES, ResourceType, StoreKey
from .selectors import Selection

ObjectKey = tuple[str, str]  # (namespace, name); namespace "" for cluster-scoped objects
Obj = dict[str, Any]

BOOT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
PROTECTED_NAMESPACES = ("default", "kube-system", "kube-public")
_NAMESPACE_TYPE = next(rt for rt in BUILTINS if rt.store_key == NAMESPACES)
# Attempts at a free generated name before giving up, as the server's generateName retry does.
_GENERATE_ATTEMPTS = 8


@dataclass(frozen=True)
class Event:
    rv: int
    key: StoreKey
    type: str  # ADDED, MODIFIED or DELETED
    obj: Obj  # after the change; for DELETED the last state, carrying the deletion's resourceVersion
    prev: Obj | None  # before the change; None for ADDED


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _object_key(obj: Obj) -> ObjectKey:
    meta = obj["metadata"]
    return (meta.get("namespace", ""), meta["name"])


def _owner_uids(obj: Obj) -> set[str]:
    return {ref.get("uid") for ref in obj["metadata"].get("ownerReferences") or []}


def _without_metadata(obj: Obj) -> Obj:
    return {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata")}


def _same_content(a: Obj, b: Obj) -> bool:
    """Equal apart from resourceVersion and apiVersion: such a write changes nothing, as in etcd."""
    meta_a = {k: v for k, v in a["metadata"].items() if k != "resourceVersion"}
    meta_b = {k: v for k, v in b["metadata"].items() if k != "resourceVersion"}
    return meta_a == meta_b and _without_metadata(a) == _without_metadata(b)


class Store:
    """All objects of all resources. One lock guards everything; ``changed`` wakes watchers."""

    def __init__(self, registry: Registry, history_limit: int = 1000) -> None:
        self.registry = registry
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self._rv = 0
        self._objects: dict[StoreKey, dict[ObjectKey, Obj]] = {}
        self._history: deque[Event] = deque()
        self._history_limit = history_limit
        # The newest resourceVersion dropped from history, like etcd's compaction revision:
        # watches and list continuations from before it can no longer be served.
        self._compacted = 0
        for name in BOOT_NAMESPACES:
            self.create(_NAMESPACE_TYPE, None, {"metadata": {"name": name}})

    @property
    def resource_version(self) -> int:
        with self.lock:
            return self._rv

    def wake_watchers(self) -> None:
        with self.changed:
            self.changed.notify_all()

    # Reads

    def get(self, rt: ResourceType, namespace: str | None, name: str) -> Obj:
        with self.lock:
            return self._out(rt, self._find(rt, namespace, name))

    def list(self, rt: ResourceType, selection: Selection, limit: int = 0, continue_token: str | None = None,
             resource_version: str | None = None, resource_version_match: str | None = None) -> Obj:
        with self.lock:
            start: ObjectKey | None = None
            if continue_token:
                start, at = self._decode_continue(continue_token)
                objects = self._state_at(rt.store_key, at)
            elif resource_version_match == "Exact" and resource_version:
                at = self._parse_rv(resource_version)
                objects = self._state_at(rt.store_key, at)
            else:
                at = self._rv
                objects = self._objects.get(rt.store_key, {})
            matching = sorted((key, obj) for key, obj in objects.items() if selection.matches(obj))
        if start is not None:
            matching = [(key, obj) for key, obj in matching if key > start]
        metadata: Obj = {"resourceVersion": str(at)}
        if limit and len(matching) > limit:
            metadata["continue"] = self._encode_continue(matching[limit - 1][0], at)
            if not selection.filters:  # the server can only count what is left when nothing is filtered
                metadata["remainingItemCount"] = len(matching) - limit
            matching = matching[:limit]
        items = [self._out(rt, obj) for _, obj in matching]
        if not rt.custom:  # typed lists omit each item's apiVersion and kind; unstructured ones keep them
            for item in items:
                item.pop("apiVersion", None)
                item.pop("kind", None)
        return {"kind": f"{rt.kind}List", "apiVersion": rt.api_version, "metadata": metadata, "items": items}

    # Writes

    def create(self, rt: ResourceType, namespace: str | None, body: Any) -> Obj:
        obj = self._decode(rt, body)
        meta = obj["metadata"]
        self._place(rt, namespace, meta)
        with self.lock:
            if rt.namespaced:
                self._admit_namespace(rt, meta["namespace"], meta.get("name") or meta.get("generateName", ""))
            bucket = self._objects.get(rt.store_key, {})
            if not meta.get("name") and meta.get("generateName"):
                for _ in range(_GENERATE_ATTEMPTS):
                    meta["name"] = names.generate_name(meta["generateName"])
                    if (meta.get("namespace", ""), meta["name"]) not in bucket:
                        break
            for field in ("deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"):
                meta.pop(field, None)
            if rt.has_status and not rt.custom:
                obj["status"] = kinds.initial_status(rt.store_key)
            elif rt.has_status:
                obj.pop("status", None)
            obj = self._admit(rt, obj, None)
            meta = obj["metadata"]
            if meta.get("resourceVersion"):
                raise errors.internal("resourceVersion should not be set on objects to be created")
            if _object_key(obj) in bucket:
                raise errors.already_exists(rt, meta["name"])
            meta.update(uid=str(uuid.uuid4()), creationTimestamp=now(), generation=1)
            if rt.store_key == CRDS:
                crd.apply_defaults_and_status(obj, None, now())
            self._commit(rt.store_key, "ADDED", obj, None)
            return self._out(rt, obj)

    def replace(self, rt: ResourceType, namespace: str | None, name: str, body: Any,
                subresource: str | None = None) -> Obj:
        obj = self._decode(rt, body, name)
        self._place(rt, namespace, obj["metadata"])
        with self.lock:
            return self._out(rt, self._update(rt, self._find(rt, namespace, name), obj, subresource))

    def patch(self, rt: ResourceType, namespace: str | None, name: str, content_type: str, body: bytes,
              subresource: str | None = None) -> Obj:
        with self.lock:
            old = self._find(rt, namespace, name)
            patched = patch.apply(rt, self._out(rt, old), content_type, body)
            obj = self._decode(rt, patched, name)
            self._place(rt, namespace, obj["metadata"])
            return self._out(rt, self._update(rt, old, obj, subresource))

    def delete(self, rt: ResourceType, namespace: str | None, name: str, options: Obj) -> Obj:
        policy = _propagation_policy(options)
        with self.lock:
            obj = self._find(rt, namespace, name)
            preconditions = options.get("preconditions") or {}
            for field, label in (("uid", "UID"), ("resourceVersion", "ResourceVersion")):
                wanted, actual = preconditions.get(field), obj["metadata"].get(field)
                if wanted and wanted != actual:
                    raise errors.conflict(rt, name, f"Precondition failed: {label} in precondition: {wanted}, "
                                                    f"{label} in object meta: {actual}")
            if rt.store_key == NAMESPACES and name in PROTECTED_NAMESPACES:
                raise errors.forbidden(rt, name, "this namespace may not be deleted")
            result, gone = self._delete_object(rt.store_key, obj, policy)
            if gone and not rt.returns_deleted_object:
                return errors.success(rt, name, obj["metadata"]["uid"])
            return self._out(rt, result)

    def delete_collection(self, rt: ResourceType, selection: Selection, options: Obj) -> Obj:
        policy = _propagation_policy(options)
        with self.lock:
            doomed = sorted((k, o) for k, o in self._objects.get(rt.store_key, {}).items() if selection.matches(o))
            results = []
            for key, obj in doomed:
                current = self._objects.get(rt.store_key, {}).get(key)
                if current is not None:  # an earlier deletion may have cascaded to it
                    results.append(self._out(rt, self._delete_object(rt.store_key, current, policy)[0]))
            return {"kind": f"{rt.kind}List", "apiVersion": rt.api_version,
                    "metadata": {"resourceVersion": str(self._rv)}, "items": results}

    # Watch support

    def watch_start(self, rt: ResourceType, resource_version: str | None) -> tuple[list[Event], int]:
        """The events a new watch sends first, and the resourceVersion it continues after.

        Without a resourceVersion (or "0") it starts with an ADDED for every existing object;
        from N it replays every change after N, or fails with 410 if history no longer has them."""
        with self.lock:
            if resource_version in (None, "", "0"):
                objects = sorted(self._objects.get(rt.store_key, {}).items())
                initial = [Event(int(o["metadata"]["resourceVersion"]), rt.store_key, "ADDED", o, None)
                           for _, o in objects]
                return initial, self._rv
            at = self._parse_rv(resource_version)
            self._check_not_compacted(at)
            return [], at

    def wait_events(self, key: StoreKey, after: int, timeout: float) -> tuple[list[Event], int]:
        """Changes to ``key`` after resourceVersion ``after``, waiting up to ``timeout`` for one;
        also returns the resourceVersion the caller has now seen everything up to."""
        with self.changed:
            self._check_not_compacted(after)
            events = self._events_after(key, after)
            if not events and timeout > 0:
                self.changed.wait(timeout)
                self._check_not_compacted(after)
                events = self._events_after(key, after)
            return events, self._rv

    # Internals; all run with the lock held.

    def _events_after(self, key: StoreKey, after: int) -> list[Event]:
        events = []
        for event in reversed(self._history):
            if event.rv <= after:
                break
            if event.key == key:
                events.append(event)
        events.reverse()
        return events

    def _check_not_compacted(self, rv: int) -> None:
        if rv < self._compacted:
            raise errors.expired(f"too old resource version: {rv} ({self._compacted + 1})")

    def _parse_rv(self, value: str) -> int:
        try:
            rv = int(value)
        except ValueError:
            raise errors.bad_request(f'invalid resource version "{value}"') from None
        if rv > self._rv:
            raise ApiError(504, "Timeout", f"Too large resource version: {rv}, current: {self._rv}",
                           {"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
                            "retryAfterSeconds": 1})
        return rv

    def _state_at(self, key: StoreKey, rv: int) -> dict[ObjectKey, Obj]:
        """The objects of ``key`` as they were at ``rv``, by undoing the newer history."""
        self._check_not_compacted(rv)
        objects = dict(self._objects.get(key, {}))
        for event in reversed(self._history):
            if event.rv <= rv:
                break
            if event.key != key:
                continue
            if event.type == "ADDED":
                objects.pop(_object_key(event.obj), None)
            else:
                objects[_object_key(event.obj)] = event.prev  # type: ignore[assignment]
        return objects

    def _encode_continue(self, last: ObjectKey, rv: int) -> str:
        token = json.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": list(last)}).encode()
        return base64.urlsafe_b64encode(token).decode()

    def _decode_continue(self, token: str) -> tuple[ObjectKey, int]:
        try:
            decoded = json.loads(base64.urlsafe_b64decode(token.encode()))
            start, rv = (str(decoded["start"][0]), str(decoded["start"][1])), int(decoded["rv"])
        except (binascii.Error, ValueError, KeyError, IndexError, TypeError):
            raise errors.bad_request(f"continue key is not valid: {token}") from None
        if rv < self._compacted:
            raise errors.expired(
                "The provided continue parameter is too old to display a consistent list result. You can start a "
                "new list without the continue parameter.")
        return start, rv

    def _commit(self, key: StoreKey, kind: str, obj: Obj, prev: Obj | None) -> None:
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        bucket = self._objects.setdefault(key, {})
        if kind == "DELETED":
            del bucket[_object_key(obj)]
        else:
            bucket[_object_key(obj)] = obj
        self._history.append(Event(self._rv, key, kind, obj, prev))
        while len(self._history) > self._history_limit:
            self._compacted = self._history.popleft().rv
        if key == CRDS and kind != "DELETED":
            self.registry.set_crd(obj["metadata"]["name"], crd.served_types(obj))
        self.changed.notify_all()

    def _find(self, rt: ResourceType, namespace: str | None, name: str) -> Obj:
        obj = self._objects.get(rt.store_key, {}).get((namespace or "", name))
        if obj is None:
            raise errors.not_found(rt, name)
        return obj

    def _out(self, rt: ResourceType, obj: Obj) -> Obj:
        """A copy for the caller, in the requested version (conversion strategy None only relabels)."""
        out = copy.deepcopy(obj)
        out["apiVersion"] = rt.api_version
        out["kind"] = rt.kind
        return {"apiVersion": out.pop("apiVersion"), "kind": out.pop("kind"), **out}

    @staticmethod
    def _decode(rt: ResourceType, body: Any, url_name: str | None = None) -> Obj:
        """A private copy of a request body, checked against the URL it was sent to."""
        if not isinstance(body, dict):
            raise errors.bad_request(f"the body of the request is not a {rt.kind} object")
        obj = copy.deepcopy(body)
        if rt.custom and not obj.get("kind"):
            raise errors.bad_request(f"Object 'Kind' is missing in '{json.dumps(body)}'")
        if rt.custom and not obj.get("apiVersion"):
            raise errors.bad_request(f"Object 'apiVersion' is missing in '{json.dumps(body)}'")
        api_version = obj.setdefault("apiVersion", rt.api_version)
        if api_version != rt.api_version:
            raise errors.bad_request(f"the API version in the data ({api_version}) does not match the expected API "
                                     f"version ({rt.api_version})")
        kind = obj.setdefault("kind", rt.kind)
        if kind != rt.kind and not rt.custom:  # custom resources report it as Invalid, in _admit
            raise errors.bad_request(f'{kind} in version "{rt.version}" cannot be handled as a {rt.kind}: '
                                     f'no kind "{kind}" is registered for version "{api_version}"')
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise errors.bad_request("metadata must be an object")
        if url_name is not None and meta.get("name") != url_name:
            raise errors.bad_request(f"the name of the object ({meta.get('name', '')}) does not match the name on "
                                     f"the URL ({url_name})")
        return obj

    @staticmethod
    def _place(rt: ResourceType, namespace: str | None, meta: Obj) -> None:
        if rt.namespaced:
            if meta.get("namespace") and meta["namespace"] != namespace:
                raise errors.bad_request("the namespace of the provided object does not match the namespace sent "
                                         "on the request")
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)

    def _admit_namespace(self, rt: ResourceType, namespace: str, name: str) -> None:
        ns = self._objects.get(NAMESPACES, {}).get(("", namespace))
        if ns is None:
            raise errors.namespace_not_found(namespace)
        if ns["metadata"].get("deletionTimestamp"):
            why = f"unable to create new content in namespace {namespace} because it is being terminated"
            raise errors.forbidden(rt, name, why, [{"reason": "NamespaceTerminating", "field": "metadata.namespace",
                                                    "message": f"namespace {namespace} is being terminated"}])

    def _admit(self, rt: ResourceType, obj: Obj, old: Obj | None) -> Obj:
        """Kind-specific shaping and validation shared by create and update; raises 422."""
        meta = obj["metadata"]
        causes: list[schema.Cause] = []
        name = meta.get("name", "")
        if not name:
            causes.append(("metadata.name", "FieldValueRequired", "Required value: name or generateName is required"))
        else:
            causes += [("metadata.name", "FieldValueInvalid", p) for p in names.name_problems(rt.name_rule, name)]
        if rt.custom:
            if obj["kind"] != rt.kind:
                causes.append(("kind", "FieldValueInvalid", f'Invalid value: "{obj["kind"]}": must be {rt.kind}'))
            if rt.schema:
                obj = schema.prune(obj, rt.schema, root=True)
                schema.default(obj, rt.schema)
                causes += schema.validate(obj, rt.schema)
        if rt.store_key == CRDS:
            causes += crd.validate(obj)
        kinds.shape(rt.store_key, obj)
        if old is not None and old["metadata"].get("deletionTimestamp"):
            added = set(meta.get("finalizers") or []) - set(old["metadata"].get("finalizers") or [])
            if added:
                causes.append(("metadata.finalizers", "FieldValueForbidden",
                               "Forbidden: no new finalizers can be added if the object is being deleted, found new "
                               f"finalizers {sorted(added)}"))
        if causes:
            raise errors.invalid(rt, name, causes)
        return obj

    def _update(self, rt: ResourceType, old: Obj, obj: Obj, subresource: str | None) -> Obj:
        meta, old_meta = obj["metadata"], old["metadata"]
        name = old_meta["name"]
        if meta.get("resourceVersion") and meta["resourceVersion"] != old_meta["resourceVersion"]:
            raise errors.conflict(rt, name, errors.STALE_OBJECT)
        if subresource == "status":
            # Only status changes through /status; the rest of what was sent is ignored.
            new = copy.deepcopy(old)
            if "status" in obj:
                new["status"] = obj["status"]
            else:
                new.pop("status", None)
        else:
            new = obj
            if meta.get("uid") and meta["uid"] != old_meta["uid"]:
                raise errors.invalid(rt, name, [("metadata.uid", "FieldValueInvalid",
                                                 f'Invalid value: "{meta["uid"]}": field is immutable')])
            for field in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds",
                          "generation"):
                if field in old_meta:
                    meta[field] = old_meta[field]
                else:
                    meta.pop(field, None)
            if rt.has_status:  # the main resource cannot change status when /status exists
                if "status" in old:
                    new["status"] = copy.deepcopy(old["status"])
                else:
                    new.pop("status", None)
        new = self._admit(rt, new, old)
        new["apiVersion"], new["kind"] = rt.api_version, rt.kind
        # Defaults first: a write that only leaves out a defaulted field changes nothing.
        if rt.store_key == CRDS:
            crd.apply_defaults_and_status(new, old, now())
        # Any change outside metadata is a new generation, except through /status.
        if subresource != "status" and _without_metadata(new) != _without_metadata(old):
            new["metadata"]["generation"] = old_meta.get("generation", 0) + 1
        if _same_content(new, old):
            return old
        if new["metadata"].get("deletionTimestamp") and not new["metadata"].get("finalizers"):
            # The last finalizer is gone: the server deletes instead of writing, so watchers see only DELETED.
            if rt.store_key != NAMESPACES:
                return self._remove(rt.store_key, new, "Background", prev=old)
            self._commit(rt.store_key, "MODIFIED", new, old)
            self._finish_namespace(name)
            return new
        self._commit(rt.store_key, "MODIFIED", new, old)
        return new

    def _delete_object(self, key: StoreKey, obj: Obj, policy: str) -> tuple[Obj, bool]:
        """Delete now, or mark for deletion while finalizers remain; returns the object and whether it is gone."""
        if key == NAMESPACES:
            return self._terminate_namespace(obj)
        if obj["metadata"].get("finalizers"):
            if obj["metadata"].get("deletionTimestamp"):
                return obj, False
            marked = copy.deepcopy(obj)
            marked["metadata"].update(deletionTimestamp=now(), deletionGracePeriodSeconds=0)
            self._commit(key, "MODIFIED", marked, obj)
            return marked, False
        return self._remove(key, obj, policy), True

    def _remove(self, key: StoreKey, obj: Obj, policy: str, prev: Obj | None = None) -> Obj:
        """Delete ``obj`` now; ``prev`` is the stored version when ``obj`` is an unstored last update."""
        uid = obj["metadata"]["uid"]
        if key == CRDS:  # the CRD's instances go first, then it stops being served
            spec = obj["spec"]
            for instance in list(self._objects.get((spec["group"], spec["names"]["plural"]), {}).values()):
                self._commit((spec["group"], spec["names"]["plural"]), "DELETED", self._relabel(instance), instance)
        if policy == "Foreground":
            self._collect_dependents(uid, policy)
        dead = self._relabel(obj)
        self._commit(key, "DELETED", dead, prev or obj)
        if key == CRDS:
            self.registry.drop_crd(obj["metadata"]["name"])
        namespace = obj["metadata"].get("namespace")
        if namespace:
            self._finish_namespace(namespace)
        if policy == "Orphan":
            self._orphan_dependents(uid)
        elif policy != "Foreground":
            self._collect_dependents(uid, "Background")
        return dead

    @staticmethod
    def _relabel(obj: Obj) -> Obj:
        """A copy whose metadata may take a new resourceVersion without touching the stored object."""
        return {**obj, "metadata": dict(obj["metadata"])}

    def _all_objects(self) -> list[tuple[StoreKey, Obj]]:
        return [(key, obj) for key, bucket in self._objects.items() for obj in bucket.values()]

    def _collect_dependents(self, owner_uid: str, policy: str) -> None:
        """The garbage collector's part: a dependent whose owners are all gone is deleted;
        one that still has a live owner only loses the reference to the dead one."""
        live = {obj["metadata"]["uid"] for _, obj in self._all_objects()} - {owner_uid}
        for key, obj in self._all_objects():
            if owner_uid not in _owner_uids(obj) or obj["metadata"].get("deletionTimestamp"):
                continue
            current = self._objects.get(key, {}).get(_object_key(obj))
            if current is None:
                continue
            if _owner_uids(current) & live:
                self._drop_owner_references(key, current, lambda ref: ref.get("uid") in live)
            else:
                self._delete_object(key, current, policy)

    def _orphan_dependents(self, owner_uid: str) -> None:
        for key, obj in self._all_objects():
            if owner_uid in _owner_uids(obj):
                self._drop_owner_references(key, obj, lambda ref: ref.get("uid") != owner_uid)

    def _drop_owner_references(self, key: StoreKey, obj: Obj, keep: Any) -> None:
        updated = copy.deepcopy(obj)
        updated["metadata"]["ownerReferences"] = [r for r in obj["metadata"]["ownerReferences"] if keep(r)]
        self._commit(key, "MODIFIED", updated, obj)

    def _terminate_namespace(self, ns: Obj) -> tuple[Obj, bool]:
        """What the namespace controller does: mark it Terminating, delete its content, and
        remove it once empty (and free of metadata.finalizers)."""
        name = ns["metadata"]["name"]
        if not ns["metadata"].get("deletionTimestamp"):
            terminating = copy.deepcopy(ns)
            terminating["metadata"].update(deletionTimestamp=now(), deletionGracePeriodSeconds=0)
            terminating.setdefault("status", {})["phase"] = "Terminating"
            self._commit(NAMESPACES, "MODIFIED", terminating, ns)
            ns = terminating
        for key, obj in self._all_objects():
            current = self._objects.get(key, {}).get(_object_key(obj))
            if obj["metadata"].get("namespace") == name and current is not None:
                self._delete_object(key, current, "Background")
        gone = self._finish_namespace(name)
        return ns, gone

    def _finish_namespace(self, name: str) -> bool:
        ns = self._objects.get(NAMESPACES, {}).get(("", name))
        if ns is None:
            return True
        meta = ns["metadata"]
        if not meta.get("deletionTimestamp") or meta.get("finalizers"):
            return False
        if any(obj["metadata"].get("namespace") == name for _, obj in self._all_objects()):
            return False
        self._remove(NAMESPACES, ns, "Background")
        return True


def _propagation_policy(options: Obj) -> str:
    policy = options.get("propagationPolicy")
    if policy is None and options.get("orphanDependents") is not None:
        policy = "Orphan" if options["orphanDependents"] else "Background"
    policy = policy or "Background"
    if policy not in ("Foreground", "Background", "Orphan"):
        raise ApiError(422, "Invalid", f'DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Unsupported '
                                       f'value: "{policy}": supported values: "Foreground", "Background", "Orphan"',
                       {"group": "meta.k8s.io", "kind": "DeleteOptions",
                        "causes": [{"reason": "FieldValueNotSupported", "field": "propagationPolicy",
                                    "message": f'Unsupported value: "{policy}"'}]})
    return policy
