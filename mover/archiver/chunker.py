"""Content-defined chunking of a byte stream: 512 KiB min, 1 MiB average, 8 MiB max.

The cut points come from FastCDC's Cython implementation (package ``fastcdc``), measured at
~3.3 GB/s on this machine against ~2.5 GB/s for pith-cdc (Rust, ctypes); tilecdc cannot do a
1 MiB average. restic uses a Rabin chunker; cut points only matter for deduplication against
data restic itself chunked, never for reading or restoring.
"""

from __future__ import annotations

MIN_SIZE = 512 * 1024
AVG_SIZE = 1024 * 1024
MAX_SIZE = 8 * 1024 * 1024
READ_SIZE = 4 * 1024 * 1024  # per read; a chunk is a view of it (no copy) until it is packed


def chunk_buffer(buf: bytes | memoryview, final: bool) -> tuple[list[memoryview], int]:
    """Cut ``buf`` into chunks. Returns (chunks, bytes consumed).

    Unless ``final``, the last chunk is held back (its end was forced by the buffer end, not by
    the content), so the caller prepends the unconsumed tail to the next read.
    """
    view = memoryview(buf)
    if final and view.nbytes <= MIN_SIZE:  # one chunk, whatever the content: skip the scan
        return ([view] if view.nbytes else []), view.nbytes
    from fastcdc.fastcdc_cy import fastcdc_cy  # here, not at import: it pulls in click (~30 ms)
    chunks = [view[c.offset:c.offset + c.length]
              for c in fastcdc_cy(view, MIN_SIZE, AVG_SIZE, MAX_SIZE, fat=False)]
    if not final and chunks and chunks[-1].nbytes < MAX_SIZE:
        chunks.pop()
    consumed = sum(c.nbytes for c in chunks)
    return chunks, consumed
