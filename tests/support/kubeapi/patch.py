"""PATCH bodies: JSON merge patch (RFC 7386), JSON patch (RFC 6902) and strategic merge patch.

Simplification: strategic merge patch is applied as a JSON merge patch, so lists are
replaced instead of merged by key (e.g. containers by name, finalizers as a set) and
``$patch``/``$retainKeys`` directives are not understood. As on a real server, custom
resources refuse it with 415. Server-side apply (application/apply-patch+yaml) is not
implemented and answers 415.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonpatch

from .errors import ApiError, bad_request, unsupported_media_type
from .resources import ResourceType

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def apply(rt: ResourceType, current: dict[str, Any], content_type: str, body: bytes) -> dict[str, Any]:
    """The object ``current`` becomes under the patch; ``current`` is left untouched."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    accepted = [JSON_PATCH, MERGE_PATCH] + ([] if rt.custom else [STRATEGIC_MERGE_PATCH])
    if media_type not in accepted:
        raise unsupported_media_type(media_type, accepted)
    try:
        patch = json.loads(body or b"null")
    except ValueError as exc:
        raise bad_request(f"error decoding patch: {exc}") from exc
    if media_type == JSON_PATCH:
        if not isinstance(patch, list):
            raise bad_request(f"json: cannot unmarshal {_go_type(patch)} into Go value of type jsonpatch.Patch")
        try:
            result = jsonpatch.apply_patch(current, patch, in_place=False)
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, TypeError, KeyError) as exc:
            raise ApiError(422, "Invalid", "the server rejected our request due to an error in our request",
                           {"causes": [{"message": str(exc)}]}) from exc
    else:
        if not isinstance(patch, dict):  # e.g. a JSON patch list sent with a merge-patch content type
            message = (f"couldn't get version/kind; json parse error: json: cannot unmarshal {_go_type(patch)} into "
                       'Go value of type struct { APIVersion string "json:\\"apiVersion,omitempty\\""; Kind string '
                       '"json:\\"kind,omitempty\\"" }')
            raise ApiError(422, "Invalid", f'{rt.qualified_kind} "" is invalid: patch: Invalid value: '
                                           f'"{body.decode(errors="replace")}": {message}',
                           {"kind": rt.kind, "causes": [{"reason": "FieldValueInvalid", "field": "patch",
                                                         "message": message}]})
        result = merge_patch(current, patch)
    if not isinstance(result, dict):
        raise bad_request("the patched document is not a JSON object")
    return result


def _go_type(value: Any) -> str:
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "bool"
    if value is None:
        return "null"
    return "number"
