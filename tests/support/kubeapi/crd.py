"""CustomResourceDefinition semantics: validation, defaulting, the status the apiextensions
controllers would set, and the resources a CRD serves."""

from __future__ import annotations

from typing import Any

from .resources import ResourceType
from .schema import Cause


def validate(crd: dict[str, Any]) -> list[Cause]:
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    versions = spec.get("versions") or []
    causes: list[Cause] = []
    for field, value in (("spec.group", spec.get("group")), ("spec.names.plural", names.get("plural")),
                         ("spec.names.kind", names.get("kind"))):
        if not value:
            causes.append((field, "FieldValueRequired", "Required value"))
    scope = spec.get("scope")
    if scope not in ("Namespaced", "Cluster"):
        causes.append(("spec.scope", "FieldValueNotSupported",
                       f'Unsupported value: "{scope or ""}": supported values: "Cluster", "Namespaced"'))
    name = crd["metadata"].get("name", "")
    if spec.get("group") and names.get("plural") and name != f"{names['plural']}.{spec['group']}":
        causes.append(("metadata.name", "FieldValueInvalid",
                       f'Invalid value: "{name}": must be spec.names.plural+"."+spec.group'))
    if not versions:
        causes.append(("spec.versions", "FieldValueRequired", "Required value"))
    elif sum(1 for v in versions if v.get("storage")) != 1:
        causes.append(("spec.versions", "FieldValueInvalid",
                       "Invalid value: must have exactly one version marked as storage version"))
    for index, version in enumerate(versions):
        if not (version.get("schema") or {}).get("openAPIV3Schema"):
            causes.append((f"spec.versions[{index}].schema.openAPIV3Schema", "FieldValueRequired",
                           "Required value: schemas are required"))
    return causes


def apply_defaults_and_status(crd: dict[str, Any], old: dict[str, Any] | None, now: str) -> None:
    """Default the names and conversion, and set the status the naming and establishing
    controllers would reach: names accepted, Established=True, stored versions recorded."""
    spec = crd["spec"]
    names = spec["names"]
    names.setdefault("singular", names["kind"].lower())
    names.setdefault("listKind", names["kind"] + "List")
    spec.setdefault("conversion", {"strategy": "None"})
    old_status = (old or {}).get("status") or {}
    old_times = {c.get("type"): c.get("lastTransitionTime") for c in old_status.get("conditions") or []}
    stored = list(old_status.get("storedVersions") or [])
    storage = next(v["name"] for v in spec["versions"] if v.get("storage"))
    if storage not in stored:
        stored.append(storage)

    def condition(kind: str, reason: str, message: str) -> dict[str, str]:
        return {"type": kind, "status": "True", "lastTransitionTime": old_times.get(kind) or now,
                "reason": reason, "message": message}

    crd["status"] = {
        "conditions": [
            condition("NamesAccepted", "NoConflicts", "no conflicts found"),
            condition("Established", "InitialNamesAccepted", "the initial names have been accepted"),
        ],
        "acceptedNames": dict(names),
        "storedVersions": stored,
    }


def served_types(crd: dict[str, Any]) -> list[ResourceType]:
    spec = crd["spec"]
    names = spec["names"]
    return [
        ResourceType(
            group=spec["group"],
            version=version["name"],
            plural=names["plural"],
            kind=names["kind"],
            namespaced=spec["scope"] == "Namespaced",
            singular=names.get("singular", ""),
            short_names=tuple(names.get("shortNames") or ()),
            categories=tuple(names.get("categories") or ()),
            has_status="status" in (version.get("subresources") or {}),
            custom=True,
            returns_deleted_object=True,
            schema=(version.get("schema") or {}).get("openAPIV3Schema"),
        )
        for version in spec["versions"]
        if version.get("served")
    ]
