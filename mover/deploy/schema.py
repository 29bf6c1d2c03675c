"""Builders for structural OpenAPI v3 schemas, as controller-gen emits them from Go types.

Every node gets a type; a field Go declares as a pointer or slice with ``+nullable`` gets
``nullable: true``; ``x-kubernetes-preserve-unknown-fields`` appears only where Velero has a
RawExtension. Keeping the builders small lets crdtypes.py read like Velero's type files.
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]


def _with(schema: Schema, description: str, nullable: bool) -> Schema:
    if description:
        schema = {"description": description, **schema}
    if nullable:
        schema["nullable"] = True
    return schema


def string(description: str = "", *, nullable: bool = False, fmt: str = "") -> Schema:
    schema: Schema = {"type": "string"}
    if fmt:
        schema["format"] = fmt
    return _with(schema, description, nullable)


def enum(*values: str, description: str = "") -> Schema:
    return _with({"type": "string", "enum": list(values)}, description, False)


def boolean(description: str = "", *, nullable: bool = False) -> Schema:
    return _with({"type": "boolean"}, description, nullable)


def integer(description: str = "", *, int64: bool = False) -> Schema:
    schema: Schema = {"type": "integer"}
    if int64:
        schema["format"] = "int64"
    return _with(schema, description, False)


def time(description: str = "") -> Schema:
    """A metav1.Time pointer: RFC 3339, may be null."""
    return string(description, nullable=True, fmt="date-time")


def duration(description: str = "") -> Schema:
    """A metav1.Duration: Go's duration syntax, e.g. ``720h0m0s``."""
    return string(description)


def strings(description: str = "", *, nullable: bool = True) -> Schema:
    return _with({"type": "array", "items": {"type": "string"}}, description, nullable)


def string_map(description: str = "", *, nullable: bool = False) -> Schema:
    return _with({"type": "object", "additionalProperties": {"type": "string"}}, description, nullable)


def array(items: Schema, description: str = "", *, nullable: bool = False) -> Schema:
    return _with({"type": "array", "items": items}, description, nullable)


def obj(properties: dict[str, Schema], description: str = "", *, required: tuple[str, ...] = (),
        nullable: bool = False, atomic: bool = False) -> Schema:
    schema: Schema = {"type": "object", "properties": dict(sorted(properties.items()))}
    if required:
        schema["required"] = sorted(required)
    if atomic:
        schema["x-kubernetes-map-type"] = "atomic"
    return _with(schema, description, nullable)


def raw_extension(description: str = "") -> Schema:
    """A runtime.RawExtension: any embedded object, kept as sent."""
    return _with({"type": "object", "x-kubernetes-preserve-unknown-fields": True}, description, False)


# Kubernetes types Velero's types embed.

def label_selector(description: str = "", *, nullable: bool = True) -> Schema:
    requirement = obj({
        "key": string("the label key that the selector applies to"),
        "operator": string("In, NotIn, Exists or DoesNotExist"),
        "values": {**strings(nullable=False), "x-kubernetes-list-type": "atomic"},
    }, required=("key", "operator"))
    return obj({
        "matchExpressions": {**array(requirement), "x-kubernetes-list-type": "atomic"},
        "matchLabels": string_map("{key,value} pairs, each equivalent to an In requirement"),
    }, description, nullable=nullable, atomic=True)


def secret_key_selector(description: str = "", *, nullable: bool = False) -> Schema:
    return obj({
        "key": string("the key of the secret to select from"),
        "name": string("name of the secret"),
        "optional": boolean("whether the Secret or its key must be defined"),
    }, description, required=("key",), nullable=nullable, atomic=True)


def typed_local_object_reference(description: str = "") -> Schema:
    return obj({
        "apiGroup": string("the group of the referenced resource; empty for the core group"),
        "kind": string("the kind of the referenced resource"),
        "name": string("the name of the referenced resource"),
    }, description, required=("kind", "name"), nullable=True, atomic=True)


def object_reference(description: str = "") -> Schema:
    return obj({
        "apiVersion": string(), "fieldPath": string(), "kind": string(), "name": string(),
        "namespace": string(), "resourceVersion": string(), "uid": string(),
    }, description, atomic=True)
