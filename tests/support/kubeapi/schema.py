"""What the server does to a custom resource with its CRD version's structural schema:
prune unknown fields, apply defaults, and check types, ``required`` and ``enum``.

Other OpenAPI keywords (patterns, formats, bounds, CEL rules) are not checked.
"""

from __future__ import annotations

import copy
from typing import Any

Schema = dict[str, Any]
Cause = tuple[str, str, str]  # (field, reason, message) as errors.invalid takes them

_TYPE_NAMES = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "object"}


def prune(value: Any, schema: Schema, *, root: bool = False) -> Any:
    """Drop fields the schema does not know, as the server does silently on every write."""
    if isinstance(value, dict):
        keep_meta = root or schema.get("x-kubernetes-embedded-resource")
        preserve = schema.get("x-kubernetes-preserve-unknown-fields") is True
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        out = {}
        for key, item in value.items():
            if keep_meta and key in ("apiVersion", "kind", "metadata"):
                out[key] = item
            elif key in properties:
                out[key] = prune(item, properties[key])
            elif isinstance(extra, dict):
                out[key] = prune(item, extra)
            elif preserve or extra is True:
                out[key] = item
        return out
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [prune(item, schema["items"]) for item in value]
    return value


def default(value: Any, schema: Schema) -> Any:
    """Fill in ``default`` for absent properties of objects that are present."""
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        for key, sub in properties.items():
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
            if key in value:
                value[key] = default(value[key], sub)
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for key in value.keys() - properties.keys():
                value[key] = default(value[key], extra)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [default(item, schema["items"]) for item in value]
    return value


def validate(value: Any, schema: Schema, path: str = "") -> list[Cause]:
    causes: list[Cause] = []
    _validate(value, schema, path, causes, root=True)
    return causes


def _type_ok(value: Any, wanted: str) -> bool:
    if wanted == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if wanted == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return _TYPE_NAMES.get(type(value)) == wanted


def _validate(value: Any, schema: Schema, path: str, causes: list[Cause], root: bool = False) -> None:
    wanted = schema.get("type")
    if value is None and not root:
        if wanted and not schema.get("nullable"):
            causes.append((path, "FieldValueInvalid",
                           f'Invalid value: "null": {path} in body must be of type {wanted}: "null"'))
        return
    if wanted and not schema.get("x-kubernetes-int-or-string") and not _type_ok(value, wanted):
        got = _TYPE_NAMES.get(type(value), type(value).__name__)
        causes.append((path, "FieldValueTypeInvalid",
                       f'Invalid value: "{got}": {path} in body must be of type {wanted}: "{got}"'))
        return
    if "enum" in schema and value not in schema["enum"]:
        supported = ", ".join(f'"{item}"' for item in schema["enum"])
        causes.append((path, "FieldValueNotSupported", f'Unsupported value: "{value}": supported values: {supported}'))
    if isinstance(value, dict):
        for key in schema.get("required", []):
            if key not in value:
                causes.append((_join(path, key), "FieldValueRequired", "Required value"))
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            if root and key in ("apiVersion", "kind", "metadata"):
                continue
            sub = properties.get(key, extra if isinstance(extra, dict) else None)
            if sub is not None:
                _validate(item, sub, _join(path, key), causes)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            _validate(item, schema["items"], f"{path}[{index}]", causes)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key
