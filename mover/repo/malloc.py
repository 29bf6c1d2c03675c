"""glibc malloc settings for the data path, applied when this module is first imported.

They must be in place before any second thread allocates: a thread that allocated before
M_ARENA_MAX was set keeps an arena of its own, and the workers started later spread over those
arenas (a first backup's peak RSS went from 170 to 220 MiB when the command lines began starting
threads before they imported the repository code). So both :mod:`mover.repo.repository` and
:mod:`mover.repo.open`, which the command lines import before they start any thread, import it.
"""

from __future__ import annotations

import os


def _tune() -> None:
    """Keep glibc from handing freed MiB-sized buffers back to the kernel after every blob.

    By default glibc trims the heap (and munmaps big chunks) as soon as a buffer is freed, so the
    next blob's buffer is page-faulted and zeroed again: that halved AES and zstd throughput here
    (cryptography's ``update`` went from 5.4 to 1.1 GB/s). A fixed 32 MiB mmap threshold and a
    64 MiB trim threshold keep a working set of buffers in the process instead, and one arena
    for all threads keeps that working set from being multiplied by the thread count (peak RSS
    of a 1 GiB backup: 300 MiB with an arena per thread, 190 MiB with one; the threads allocate
    big buffers while holding the GIL anyway, so they hardly contend for the arena's lock).
    """
    if os.environ.get("MOVER_NO_MALLOPT"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-1, 64 << 20)  # M_TRIM_THRESHOLD
        libc.mallopt(-3, 32 << 20)  # M_MMAP_THRESHOLD (the largest glibc accepts on 64-bit)
        libc.mallopt(-8, 1)  # M_ARENA_MAX
    except (OSError, AttributeError):  # not glibc: nothing to tune
        pass


def map_large_buffers() -> None:
    """From now on take buffers of 4 MiB and more (a backup's file reads and packs) straight
    from mmap, so each goes back to the kernel when freed; blob-sized ones (~1 MiB) stay in the
    heap, where the fixed threshold above keeps them from being faulted in again. In one arena
    a backup's big buffers fragmented the heap: peak RSS of the bench's first backup was
    162-168 MiB with the 32 MiB threshold, 127-139 MiB with this, for the same CPU time."""
    if os.environ.get("MOVER_NO_MALLOPT"):
        return
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").mallopt(-3, 4 << 20)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):  # not glibc: nothing to tune
        pass


_tune()
