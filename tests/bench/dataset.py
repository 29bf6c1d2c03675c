"""Reproducible benchmark data set for mover vs restic (issue 3).

    python -m tests.bench.dataset DIR [--scale 1.0] [--mutate | --reset]

Default scale (~1 GiB):

- ``small/dNN/eNN/fNNNNN.{bin,txt}``: 20,000 files of 1-16 KiB in 300 leaf directories (20 x 15),
  half random bytes, half text (word salad, compresses ~3x);
- ``big/random1.bin``, ``big/random2.bin``: 256 MiB of random bytes each;
- ``big/app.log``: 256 MiB of log lines (compresses ~6x, no repeated chunk).

``--mutate`` changes 1% of the small files (new content, same size), appends 1 MiB to
``random1.bin`` and rewrites 4 MiB in the middle of ``random2.bin``. ``--reset`` undoes exactly
that, so every bench round starts from the same bytes without regenerating 1 GiB.

Everything derives from a fixed seed: the random bytes are an AES-CTR keystream keyed by the file
name (fast, seekable), so the same scale gives byte-identical files on every machine.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
from dataclasses import dataclass
from pathlib import Path

SEED = 20240603
MiB = 1024 * 1024
KiB = 1024


@dataclass(frozen=True)
class Layout:
    scale: float

    @property
    def n_small(self) -> int:
        return max(10, round(20000 * self.scale))

    @property
    def n_top(self) -> int:
        return max(1, round(20 * min(self.scale, 1.0) ** 0.5))

    @property
    def n_sub(self) -> int:
        return max(1, round(15 * min(self.scale, 1.0) ** 0.5))

    @property
    def big_size(self) -> int:
        return max(MiB, round(256 * MiB * self.scale) // 4096 * 4096)

    @property
    def append_size(self) -> int:
        return max(4096, min(MiB, self.big_size // 16))

    @property
    def rewrite_size(self) -> int:
        return max(4096, min(4 * MiB, self.big_size // 4) // 4096 * 4096)

    def small_path(self, i: int) -> str:
        leaves = self.n_top * self.n_sub
        leaf = i % leaves
        ext = "bin" if i % 2 == 0 else "txt"
        return f"small/d{leaf // self.n_sub:02d}/e{leaf % self.n_sub:02d}/f{i:05d}.{ext}"

    def small_size(self, i: int) -> int:
        return random.Random(f"{SEED}/size/{i}").randint(1 * KiB, 16 * KiB)

    def mutated(self) -> list[int]:
        """Indexes of the small files the mutation changes: 1% of them."""
        return sorted(random.Random(f"{SEED}/mutate").sample(range(self.n_small), max(1, self.n_small // 100)))

    @property
    def total_bytes(self) -> int:
        return sum(self.small_size(i) for i in range(self.n_small)) + 3 * self.big_size


def keystream(name: str, offset: int, size: int) -> bytes:
    """Deterministic random bytes [offset, offset+size) of the stream named ``name``."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    key = hashlib.sha256(f"{SEED}/{name}".encode()).digest()
    block, skip = divmod(offset, 16)
    enc = Cipher(algorithms.AES(key), modes.CTR(block.to_bytes(16, "big"))).encryptor()
    return enc.update(bytes(skip + size))[skip:]


_VOCAB: list[str] | None = None
_CORPUS: bytes | None = None


def _corpus() -> bytes:
    """8 MiB of word salad that small text files are cut from."""
    global _VOCAB, _CORPUS
    if _CORPUS is None:
        rng = random.Random(f"{SEED}/corpus")
        letters = "etaoinshrdlucmfwypvbgkqjxz"
        weights = [26 - i for i in range(len(letters))]
        _VOCAB = ["".join(rng.choices(letters, weights, k=rng.randint(2, 10))) for _ in range(3000)]
        words = rng.choices(_VOCAB, k=1_500_000)
        lines = [" ".join(words[i:i + 12]) for i in range(0, len(words), 12)]
        _CORPUS = ("\n".join(lines) + "\n").encode()
    return _CORPUS


def small_content(layout: Layout, i: int, generation: int = 0) -> bytes:
    size = layout.small_size(i)
    name = f"small/{i}/{generation}"
    if i % 2 == 0:
        return keystream(name, 0, size)
    corpus = _corpus()
    off = random.Random(name).randrange(len(corpus) - size)
    return corpus[off:off + size]


_LEVELS = ["INFO"] * 14 + ["DEBUG"] * 4 + ["WARN"] * 2 + ["ERROR"]
_PATHS = ["/api/v1/pods", "/api/v1/namespaces/default/pods", "/apis/velero.io/v1/backups",
          "/healthz", "/metrics", "/api/v1/nodes", "/apis/apps/v1/deployments", "/readyz"]
_MSGS = ["request served", "cache miss, fetching from upstream", "lease renewed",
         "reconcile finished", "watch restarted after timeout", "slow request", "retrying call"]


def write_log(path: Path, size: int) -> None:
    """Realistic, compressible, never-repeating log lines (so no chunk dedups by accident)."""
    rng = random.Random(f"{SEED}/log")
    t = 1_700_000_000_000
    written = 0
    with open(path, "wb") as f:
        while written < size:
            lines = []
            for _ in range(4096):
                t += rng.randint(1, 900)
                lines.append(
                    f"2023-11-14T{(t // 3_600_000) % 24:02d}:{(t // 60_000) % 60:02d}:"
                    f"{(t // 1000) % 60:02d}.{t % 1000:03d}Z {rng.choice(_LEVELS):<5} "
                    f"apiserver[{rng.randint(1000, 1100)}]: {rng.choice(_MSGS)} "
                    f"path={rng.choice(_PATHS)} status={rng.choice((200, 200, 200, 201, 404, 500))} "
                    f"took={rng.randint(1, 4000)}us req={rng.getrandbits(64):016x}\n")
            block = "".join(lines).encode()[:size - written]
            f.write(block)
            written += len(block)


def _write(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


def write_random(path: Path, name: str, size: int) -> None:
    with open(path, "wb") as f:
        for off in range(0, size, 16 * MiB):
            f.write(keystream(name, off, min(16 * MiB, size - off)))


def generate(root: Path, scale: float = 1.0) -> Layout:
    lay = Layout(scale)
    for t in range(lay.n_top):
        for s in range(lay.n_sub):
            (root / f"small/d{t:02d}/e{s:02d}").mkdir(parents=True, exist_ok=True)
    for i in range(lay.n_small):
        _write(root / lay.small_path(i), small_content(lay, i))
    (root / "big").mkdir(parents=True, exist_ok=True)
    write_random(root / "big/random1.bin", "random1", lay.big_size)
    write_random(root / "big/random2.bin", "random2", lay.big_size)
    write_log(root / "big/app.log", lay.big_size)
    return lay


def mutate(root: Path, scale: float = 1.0) -> None:
    lay = Layout(scale)
    for i in lay.mutated():
        _write(root / lay.small_path(i), small_content(lay, i, generation=1))
    with open(root / "big/random1.bin", "ab") as f:
        f.write(keystream("random1-append", 0, lay.append_size))
    mid = lay.big_size // 2 // 4096 * 4096
    with open(root / "big/random2.bin", "r+b") as f:
        f.seek(mid)
        f.write(keystream("random2-rewrite", 0, lay.rewrite_size))


def reset(root: Path, scale: float = 1.0) -> None:
    """Undo :func:`mutate`: the bytes are those :func:`generate` wrote."""
    lay = Layout(scale)
    for i in lay.mutated():
        _write(root / lay.small_path(i), small_content(lay, i))
    os.truncate(root / "big/random1.bin", lay.big_size)
    mid = lay.big_size // 2 // 4096 * 4096
    with open(root / "big/random2.bin", "r+b") as f:
        f.seek(mid)
        f.write(keystream("random2", mid, lay.rewrite_size))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dir", type=Path)
    ap.add_argument("--scale", type=float, default=1.0, help="1.0 is about 1 GiB (default)")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--mutate", action="store_true", help="apply the mutation step")
    g.add_argument("--reset", action="store_true", help="undo the mutation step")
    args = ap.parse_args()
    if args.mutate:
        mutate(args.dir, args.scale)
    elif args.reset:
        reset(args.dir, args.scale)
    else:
        lay = generate(args.dir, args.scale)
        print(f"{args.dir}: {lay.n_small} small files, 3 x {lay.big_size / MiB:.0f} MiB, "
              f"{lay.total_bytes / MiB:.0f} MiB in all")


if __name__ == "__main__":
    main()
