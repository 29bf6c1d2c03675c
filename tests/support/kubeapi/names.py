"""metadata.name rules per resource, and generateName."""

from __future__ import annotations

import random
import re

_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_RULES: dict[str, tuple[re.Pattern[str], int, str]] = {
    "subdomain": (
        re.compile(rf"^{_LABEL}(\.{_LABEL})*$"), 253,
        "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must "
        "start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
        r"'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
    ),
    "label": (
        re.compile(rf"^{_LABEL}$"), 63,
        "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and "
        "end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
        "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
    ),
    "dns1035": (
        re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$"), 63,
        "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic "
        "character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for "
        "validation is '[a-z]([-a-z0-9]*[a-z0-9])?')",
    ),
}

# The server keeps generated names within 63 characters: prefix (cut to 58) + 5 random characters.
_RANDOM_LENGTH = 5
_MAX_PREFIX = 63 - _RANDOM_LENGTH
# Same alphabet as k8s.io/apimachinery/pkg/util/rand: no vowels or easily confused characters.
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def name_problems(rule: str, name: str) -> list[str]:
    """Messages (without the field) for why ``name`` is not valid under ``rule``."""
    if rule == "path":
        if name in (".", ".."):
            return [f'Invalid value: "{name}": may not be \'{name}\'']
        return [f'Invalid value: "{name}": may not contain \'{c}\'' for c in "/%" if c in name]
    pattern, limit, explanation = _RULES[rule]
    problems = []
    if len(name) > limit:
        problems.append(f'Invalid value: "{name}": must be no more than {limit} characters')
    if not pattern.match(name):
        problems.append(f'Invalid value: "{name}": {explanation}')
    return problems


def generate_name(prefix: str) -> str:
    return prefix[:_MAX_PREFIX] + "".join(random.choice(_ALPHABET) for _ in range(_RANDOM_LENGTH))

