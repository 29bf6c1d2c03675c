"""Go encoding/json and strconv behaviour that restic's files depend on.

restic writes its JSON with Go's encoder; matching it lets trees we write be byte-identical to
restic's (so blobs deduplicate across both tools), and lets us read names restic quoted.
"""

from __future__ import annotations

import base64
import json
import re

import msgspec

_GO_HTML = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026",
                          "\u2028": "\\u2028", "\u2029": "\\u2029"})
# Python writes \b and \f; Go (1.19, restic 0.14's toolchain) writes \u0008 and \u000c. Only an
# odd run of backslashes before the letter is an escape, an even run is literal backslashes.
_PY_SHORT_ESCAPES = re.compile(r"(?<!\\)((?:\\\\)*)\\([bf])")


def dumps(obj: object) -> str:
    """Compact JSON the way Go's json.Marshal writes it (for the types restic uses)."""
    s = json.dumps(obj, ensure_ascii=False, separators=(",", ":")).translate(_GO_HTML)
    if "\\b" in s or "\\f" in s:
        s = _PY_SHORT_ESCAPES.sub(lambda m: m.group(1) + ("\\u0008" if m.group(2) == "b" else "\\u000c"), s)
    return s


# msgspec's C encoder writes what json.dumps does (for strings, integers, lists, dicts and
# None) but for the characters Go escapes and \b, \f: the same rules, on bytes
_GO_HTML_BYTES = tuple((chr(c).encode(), esc.encode()) for c, esc in _GO_HTML.items())
_SHORT_ESCAPES_BYTES = re.compile(_PY_SHORT_ESCAPES.pattern.encode())


def dumps_bytes(obj: object) -> bytes:
    """:func:`dumps` encoded to UTF-8 (for the types above), from msgspec's encoder: a tree's
    nodes are a few hundred thousand values a backup, and json.dumps was half of what
    encoding a tree cost."""
    b = msgspec.json.encode(obj)
    for ch, esc in _GO_HTML_BYTES:
        if ch in b:
            b = b.replace(ch, esc)
    if b"\\b" in b or b"\\f" in b:
        b = _SHORT_ESCAPES_BYTES.sub(lambda m: m.group(1) + (b"\\u0008" if m.group(2) == b"b" else b"\\u000c"), b)
    return b


# Go's base64.StdEncoding, which json.Unmarshal uses for []byte: whole quanta of 4, padding only
# in the last one. Python's decoder (even in strict mode) also takes "==" after a full quantum.
_B64 = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")


def b64decode(text: str) -> bytes:
    """A []byte field as Go decodes it; ValueError says where, in Go's words, when it does not."""
    end = _B64.match(text).end()  # type: ignore[union-attr]  # the pattern matches ""
    if end != len(text):
        raise ValueError(f"illegal base64 data at input byte {end}")
    return base64.b64decode(text)


_SIMPLE_ESCAPES = {7: "\\a", 8: "\\b", 12: "\\f", 10: "\\n", 13: "\\r", 9: "\\t", 11: "\\v"}


def go_quote(name: str) -> str:
    """strconv.Quote without the outer quotes, for a name held as str with surrogateescape.

    Non-UTF-8 bytes (surrogates here) become ``\\xHH``; unprintable runes get Go escapes.
    """
    if name.isprintable() and '"' not in name and "\\" not in name and not _has_surrogates(name):
        return name
    out: list[str] = []
    for part in _split_surrogates(name):
        if isinstance(part, bytes):
            out.extend(f"\\x{b:02x}" for b in part)
            continue
        for ch in part:
            c = ord(ch)
            if ch in '"\\':
                out.append("\\" + ch)
            elif ch.isprintable():
                out.append(ch)
            elif c in _SIMPLE_ESCAPES:
                out.append(_SIMPLE_ESCAPES[c])
            elif c < 0x20 or c == 0x7F:
                out.append(f"\\x{c:02x}")
            elif c < 0x10000:
                out.append(f"\\u{c:04x}")
            else:
                out.append(f"\\U{c:08x}")
    return "".join(out)


_UNQUOTE = re.compile(r"\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[0-7]{3}|[abfnrtv\\\"'])")
_UNQUOTE_SIMPLE = {"a": 7, "b": 8, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11, "\\": 92, '"': 34, "'": 39}


def go_unquote(quoted: str) -> str:
    """Inverse of :func:`go_quote`; returns a str with surrogateescape for non-UTF-8 bytes.

    A name that is not valid Go-quoted text (restic would reject it) is returned unchanged, so
    a damaged name is still shown rather than hiding the whole directory.
    """
    if "\\" not in quoted:
        return quoted
    buf = bytearray()
    pos = 0
    for m in _UNQUOTE.finditer(quoted):
        if m.start() != pos:
            chunk = quoted[pos:m.start()]
            if "\\" in chunk:
                return quoted
            buf += chunk.encode("utf-8", "surrogateescape")
        esc = m.group(1)
        if esc[0] == "x":
            buf.append(int(esc[1:], 16))
        elif esc[0] in "uU":
            buf += chr(int(esc[1:], 16)).encode("utf-8", "surrogatepass")
        elif esc[0] in "01234567":
            buf.append(int(esc, 8) & 0xFF)
        else:
            buf.append(_UNQUOTE_SIMPLE[esc])
        pos = m.end()
    tail = quoted[pos:]
    if "\\" in tail:
        return quoted
    buf += tail.encode("utf-8", "surrogateescape")
    return bytes(buf).decode("utf-8", "surrogateescape")


def _has_surrogates(s: str) -> bool:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _split_surrogates(s: str) -> list[str | bytes]:
    """Split into runs of valid text and runs of raw bytes (surrogateescape'd)."""
    parts: list[str | bytes] = []
    for run in re.split(r"([\udc80-\udcff]+)", s):
        if not run:
            continue
        if "\udc80" <= run[0] <= "\udcff":
            parts.append(run.encode("utf-8", "surrogateescape"))
        else:
            parts.append(run)
    return parts
