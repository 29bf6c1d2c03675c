"""Irreducible polynomials over GF(2) for the repository config's ``chunker_polynomial``.

restic refuses a config whose polynomial is reducible, so a new repository needs a random
irreducible polynomial of degree 53, picked the way restic's chunker package does.
"""

from __future__ import annotations

import secrets


def _deg(p: int) -> int:
    return p.bit_length() - 1


def _mod(a: int, m: int) -> int:
    dm = _deg(m)
    while a and _deg(a) >= dm:
        a ^= m << (_deg(a) - dm)
    return a


def _mulmod(a: int, b: int, m: int) -> int:
    result = 0
    while b:
        if b & 1:
            result ^= a
        b >>= 1
        a = _mod(a << 1, m)
    return _mod(result, m)


def _gcd(a: int, b: int) -> int:
    while b:
        a, b = b, _mod(a, b)
    return a


def is_irreducible(f: int) -> bool:
    """Ben-Or's test: f has no factor of degree <= deg(f)/2."""
    if _deg(f) < 1:
        return False
    x = 0b10
    h = x
    for _ in range(_deg(f) // 2):
        h = _mulmod(h, h, f)  # x^(2^i) mod f
        if _gcd(h ^ x, f) != 1:
            return False
    return True


def random_polynomial() -> int:
    """A random irreducible polynomial of degree 53 (bits 53 and 0 set), as restic picks one."""
    while True:
        f = (secrets.randbits(64) & ((1 << 54) - 1)) | (1 << 53) | 1
        if is_irreducible(f):
            return f
