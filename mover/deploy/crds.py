"""The CustomResourceDefinitions: built from crdtypes.py, stored as YAML in crds/ (what
``kubectl apply -f mover/deploy/crds/`` and ``mover install`` use).

Regenerate the files after changing a type: ``python -m mover.deploy.crds`` (it also writes the
Helm chart's copies, in a checkout); a test fails when they are out of date, as ``make verify``
does for controller-gen output.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from mover.deploy.crdtypes import ALL_KINDS, GROUP, Column, Kind
from mover.deploy.schema import obj, string

CRD_DIR = Path(__file__).with_name("crds")
CHART_CRD_DIR = Path(__file__).parents[2] / "deploy" / "helm" / "kbrowse-mover" / "crds"
# Every object `mover install` creates carries this label, as Velero's do, so
# `kubectl delete -l component=velero` (and `velero uninstall`) find them.
LABELS = {"component": "velero"}


def _column(column: Column) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    if column.description:
        doc["description"] = column.description
    if column.format:
        doc["format"] = column.format
    doc |= {"jsonPath": column.json_path, "name": column.name}
    if column.priority:
        doc["priority"] = column.priority
    doc["type"] = column.type
    return doc


def crd_document(kind: Kind) -> dict[str, Any]:
    root = obj({
        "apiVersion": string("the versioned schema of this representation of an object"),
        "kind": string("the REST resource this object represents"),
        "metadata": {"type": "object"},
        "spec": kind.spec,
        "status": kind.status,
    }, kind.description)
    version: dict[str, Any] = {}
    if kind.columns:
        version["additionalPrinterColumns"] = [_column(c) for c in kind.columns]
    version |= {
        "name": kind.version,
        "schema": {"openAPIV3Schema": root},
        "served": True,
        "storage": True,
        "subresources": {"status": {}},
    }
    names: dict[str, Any] = {"kind": kind.kind, "listKind": f"{kind.kind}List", "plural": kind.plural}
    if kind.short_names:
        names["shortNames"] = list(kind.short_names)
    names["singular"] = kind.kind.lower()
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": kind.crd_name, "labels": dict(LABELS)},
        "spec": {"group": GROUP, "names": names, "scope": "Namespaced", "versions": [version]},
    }


def file_name(kind: Kind) -> str:
    return f"{GROUP}_{kind.plural}.yaml"  # controller-gen's naming, as in Velero's config/crd


def render(document: dict[str, Any]) -> str:
    return "---\n" + yaml.safe_dump(document, sort_keys=False, width=100)


def generate() -> dict[str, str]:
    """File name -> YAML text, for every kind."""
    return {file_name(kind): render(crd_document(kind)) for kind in ALL_KINDS}


def load() -> list[dict[str, Any]]:
    """The CRDs as shipped, in ALL_KINDS order."""
    return [yaml.safe_load((CRD_DIR / file_name(kind)).read_text()) for kind in ALL_KINDS]


def write() -> list[Path]:
    CRD_DIR.mkdir(exist_ok=True)
    # Helm installs a chart's crds/ as they are: the chart keeps copies (absent from a package).
    targets = [CRD_DIR] + ([CHART_CRD_DIR] if CHART_CRD_DIR.is_dir() else [])
    paths = []
    for name, text in generate().items():
        for target in targets:
            path = target / name
            path.write_text(text)
            paths.append(path)
    return paths


if __name__ == "__main__":
    for written in write():
        print(written)
