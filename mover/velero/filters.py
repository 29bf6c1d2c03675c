"""Velero's object filters: include/exclude lists with ``*`` globs, and label selectors.

Excludes win over includes; an empty include list (or one holding ``*``) includes everything,
as Velero's ``collections.IncludesExcludes``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from mover.velero import labels as velero_labels


@dataclass(frozen=True)
class IncludesExcludes:
    includes: tuple[str, ...] = ()
    excludes: tuple[str, ...] = ()

    @classmethod
    def of(cls, includes: Iterable[str] | None, excludes: Iterable[str] | None) -> IncludesExcludes:
        return cls(tuple(includes or ()), tuple(excludes or ()))

    @property
    def includes_all(self) -> bool:
        return not self.includes or "*" in self.includes

    def should_include(self, value: str) -> bool:
        if any(fnmatchcase(value, pattern) for pattern in self.excludes):
            return False
        return self.includes_all or any(fnmatchcase(value, pattern) for pattern in self.includes)

    def overlap(self) -> list[str]:
        """Items both included and excluded: Velero refuses such a spec."""
        return sorted(set(self.includes) & set(self.excludes))


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A metav1.LabelSelector: every matchLabels pair and every matchExpressions requirement."""
    if not selector:
        return True
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for requirement in selector.get("matchExpressions") or []:
        key, op, values = requirement["key"], requirement["operator"], requirement.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def labels_match(selector: Mapping[str, Any] | None, or_selectors: list[dict[str, Any]],
                 labels: Mapping[str, str]) -> bool:
    """labelSelector, or any one of orLabelSelectors (Velero allows only one of the two)."""
    if or_selectors:
        return any(selector_matches(s, labels) for s in or_selectors)
    return selector_matches(selector, labels)


def selector_problems(selector: Mapping[str, Any] | None) -> list[str]:
    problems = []
    for requirement in (selector or {}).get("matchExpressions") or []:
        op, values = requirement.get("operator"), requirement.get("values") or []
        if op not in ("In", "NotIn", "Exists", "DoesNotExist"):
            problems.append(f"invalid label selector operator {op!r}")
        elif op in ("In", "NotIn") and not values:
            problems.append(f"label selector operator {op} needs values")
        elif op in ("Exists", "DoesNotExist") and values:
            problems.append(f"label selector operator {op} takes no values")
    return problems


def excluded_by_label(obj: Mapping[str, Any]) -> bool:
    return ((obj.get("metadata") or {}).get("labels") or {}).get(velero_labels.EXCLUDE_FROM_BACKUP) == "true"


_SET_OPERATORS = {"in": "In", "notin": "NotIn"}


def parse_selector(text: str) -> dict[str, Any]:
    """kubectl's selector syntax (``a=b,c!=d,e in (x,y),f,!g``) as a metav1.LabelSelector,
    as metav1.ParseToLabelSelector builds it: equality in matchLabels, the rest as expressions."""
    selector: dict[str, Any] = {}
    for term in _split_terms(text):
        term = term.strip()
        words = term.replace("(", " ( ").split()
        if len(words) >= 2 and words[1].lower() in _SET_OPERATORS:
            values = term[term.index("(") + 1:term.rindex(")")] if "(" in term and term.endswith(")") else None
            if values is None:
                raise ValueError(f"invalid selector term {term!r}: expected key {words[1]} (v1,v2)")
            selector.setdefault("matchExpressions", []).append(
                {"key": words[0], "operator": _SET_OPERATORS[words[1].lower()],
                 "values": [v.strip() for v in values.split(",") if v.strip()]})
        elif "!=" in term:
            key, value = (p.strip() for p in term.split("!=", 1))
            selector.setdefault("matchExpressions", []).append({"key": key, "operator": "NotIn", "values": [value]})
        elif "=" in term:
            key, value = (p.strip() for p in term.replace("==", "=").split("=", 1))
            selector.setdefault("matchLabels", {})[key] = value
        elif term.startswith("!"):
            selector.setdefault("matchExpressions", []).append({"key": term[1:].strip(), "operator": "DoesNotExist"})
        elif term:
            selector.setdefault("matchExpressions", []).append({"key": term, "operator": "Exists"})
    return selector


def _split_terms(text: str) -> list[str]:
    """Split on commas outside parentheses."""
    terms, depth, current = [], 0, ""
    for c in text:
        depth += (c == "(") - (c == ")")
        if c == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += c
    return [t for t in terms + [current] if t.strip()]
