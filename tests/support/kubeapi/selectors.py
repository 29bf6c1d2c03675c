"""labelSelector and fieldSelector parsing and matching, following the server's grammar."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .errors import bad_request
from .resources import ResourceType

_NAME = r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_KEY = re.compile(rf"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?{_NAME}$")
_VALUE = re.compile(rf"^({_NAME})?$")
_OPERATORS = ("!=", "==", "=", "!", "(", ")", ",", "<", ">")
_SPECIAL = set("!=(),<> \t\n")


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "exists", "!", "=", "!=", "in", "notin", ">", "<"
    values: tuple[str, ...] = ()

    def matches(self, labels: dict[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.op == "exists":
            return present
        if self.op == "!":
            return not present
        if self.op in ("=", "in"):
            return present and value in self.values
        if self.op in ("!=", "notin"):
            return not present or value not in self.values
        try:  # ">" and "<" compare integers; a non-integer label matches neither
            number, bound = int(value or ""), int(self.values[0])
        except ValueError:
            return False
        return present and (number > bound if self.op == ">" else number < bound)


def _lex(text: str) -> list[str]:
    tokens: list[str] = []
    i = 0
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        for op in _OPERATORS:
            if text.startswith(op, i):
                tokens.append(op)
                i += len(op)
                break
        else:
            start = i
            while i < len(text) and text[i] not in _SPECIAL:
                i += 1
            tokens.append(text[start:i])
    return tokens


def parse_labels(text: str | None) -> list[Requirement]:
    tokens = _lex(text or "")
    requirements: list[Requirement] = []
    pos = 0

    def peek() -> str | None:
        return tokens[pos] if pos < len(tokens) else None

    def take() -> str:
        nonlocal pos
        if pos >= len(tokens):
            raise bad_request(f"unable to parse requirement: found '', expected: identifier in {text!r}")
        pos += 1
        return tokens[pos - 1]

    def identifier(what: str) -> str:
        token = take()
        if token in _OPERATORS:
            raise bad_request(f"unable to parse requirement: found '{token}', expected: {what}")
        return token

    while pos < len(tokens):
        if peek() == "!":
            take()
            requirements.append(_checked(identifier("identifier"), "!", ()))
        else:
            key = identifier("identifier")
            op = peek()
            if op in (None, ","):
                requirements.append(_checked(key, "exists", ()))
            elif op in ("=", "==", "!="):
                take()
                value = "" if peek() in (None, ",") else identifier("value")
                requirements.append(_checked(key, "!=" if op == "!=" else "=", (value,)))
            elif op in (">", "<"):
                take()
                value = identifier("integer value")
                if not value.lstrip("-").isdigit():
                    raise bad_request("unable to parse requirement: for 'Gt', 'Lt' operators, the value must be "
                                      f"an integer: {value}")
                requirements.append(_checked(key, op, (value,)))
            elif op in ("in", "notin"):
                take()
                if take() != "(":
                    raise bad_request(f"unable to parse requirement: found '{tokens[pos - 1]}', expected: '('")
                values: list[str] = []
                while peek() != ")":
                    values.append(identifier("value"))
                    if peek() == ",":
                        take()
                take()
                if not values:
                    raise bad_request("unable to parse requirement: values: Invalid value: []: for 'in', 'notin' "
                                      "operators, values set can't be empty")
                requirements.append(_checked(key, op, tuple(values)))
            else:
                raise bad_request(f"unable to parse requirement: found '{op}', expected: in, notin, =, ==, !=, gt, lt")
        if pos < len(tokens):
            if take() != ",":
                raise bad_request(f"found '{tokens[pos - 1]}', expected: ',' or 'end of string'")
    return requirements


def _checked(key: str, op: str, values: tuple[str, ...]) -> Requirement:
    if not _KEY.match(key) or len(key.rsplit("/", 1)[-1]) > 63:
        raise bad_request(f"unable to parse requirement: key: Invalid value: {key!r}: name part must consist of "
                          "alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric "
                          "character")
    for value in values:
        if op in (">", "<"):
            continue
        if len(value) > 63 or not _VALUE.match(value):
            raise bad_request(f"unable to parse requirement: values[0][{key}]: Invalid value: {value!r}: a valid label "
                              "must be an empty string or consist of alphanumeric characters, '-', '_' or '.'")
    return Requirement(key, op, values)


# Fields whose Go zero value the server compares against when the JSON omits them.
_ZERO_VALUES = {"spec.unschedulable": "false", "spec.hostNetwork": "false",
                "status.replicas": "0", "status.successful": "0"}


def _split_unescaped(text: str, sep: str) -> list[str]:
    parts, current, escaped = [], "", False
    for char in text:
        if escaped:
            current += "\\" + char
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == sep:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return parts


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", r"\1", value)


def parse_fields(text: str | None, rt: ResourceType) -> list[tuple[str, str, str]]:
    """(field, op, value) terms; op is "=" or "!="."""
    terms: list[tuple[str, str, str]] = []
    for term in _split_unescaped(text or "", ","):
        if not term:
            continue
        for op in ("!=", "==", "="):
            if op in term:
                field, value = term.split(op, 1)
                break
        else:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{term}'")
        if field not in rt.selectable_fields:
            if rt.custom:
                raise bad_request(f'"{field}" is not a known field selector: only "metadata.name", '
                                  '"metadata.namespace"')
            raise bad_request(f"field label not supported: {field}")
        terms.append((field, "!=" if op == "!=" else "=", _unescape(value)))
    return terms


def _field_value(obj: dict[str, Any], field: str) -> str:
    value: Any = obj
    for part in field.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if value is None:
        return _ZERO_VALUES.get(field, "")
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class Selection:
    """The objects a list or watch asks for: a namespace (or all) and both selectors."""

    def __init__(self, rt: ResourceType, namespace: str | None, label_selector: str | None,
                 field_selector: str | None) -> None:
        self.namespace = namespace
        self.labels = parse_labels(label_selector)
        self.fields = parse_fields(field_selector, rt)

    @property
    def filters(self) -> bool:
        return bool(self.labels or self.fields)

    def matches(self, obj: dict[str, Any]) -> bool:
        meta = obj.get("metadata") or {}
        if self.namespace is not None and meta.get("namespace") != self.namespace:
            return False
        labels = meta.get("labels") or {}
        if not all(req.matches(labels) for req in self.labels):
            return False
        return all((_field_value(obj, field) == value) == (op == "=") for field, op, value in self.fields)

