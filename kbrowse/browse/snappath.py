"""Paths inside a snapshot: absolute, '/'-separated, '/' for the root."""

from __future__ import annotations


def join(parent: str, name: str) -> str:
    return parent.rstrip("/") + "/" + name


def parts(path: str) -> list[str]:
    return [p for p in path.split("/") if p]


def basename(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]
