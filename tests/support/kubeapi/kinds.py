"""What the server's registry strategies do to particular built-in kinds on every write."""

from __future__ import annotations

import base64
import binascii
import copy
from typing import Any

from . import errors
from .resources import NAMESPACES, StoreKey

SECRETS: StoreKey = ("", "secrets")

# A new object's status for kinds with a status subresource; the server replaces what the client sent.
_INITIAL_STATUS: dict[StoreKey, dict[str, Any]] = {
    ("", "pods"): {"phase": "Pending"},
    NAMESPACES: {"phase": "Active"},
}


def initial_status(key: StoreKey) -> dict[str, Any]:
    return copy.deepcopy(_INITIAL_STATUS.get(key, {}))


def shape(key: StoreKey, obj: dict[str, Any]) -> None:
    """Apply the kind's server-side defaults and conversions to ``obj`` in place."""
    if key == NAMESPACES:
        name = obj["metadata"].get("name")
        if name:  # the name label every namespace carries (NamespaceDefaultLabelName)
            obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = name
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
    elif key == SECRETS:
        # stringData is write-only: folded into base64 data, never stored or returned.
        data = obj.get("data") or {}
        for field, value in data.items():
            try:
                base64.b64decode(value, validate=True)
            except (binascii.Error, TypeError, ValueError):
                raise errors.bad_request(f"Secret in version \"v1\" cannot be handled as a Secret: illegal base64 "
                                         f"data in data.{field}") from None
        for field, value in (obj.pop("stringData", None) or {}).items():
            data[field] = base64.b64encode(str(value).encode()).decode()
        if data:
            obj["data"] = data
        obj.setdefault("type", "Opaque")
