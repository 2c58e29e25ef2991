"""Give freed heap memory back to the system, where the C library can (glibc's ``malloc_trim``).

The bridge reads a file, builds its document and frees both, several times a second, from more
than one thread (the main loop, the watcher's thread, the Hazelcast client's reactor). glibc keeps
what such a process frees in per-thread arenas and returns it only at the top of a heap, so the
resident size of a process whose live data is flat creeps up in steps of a few hundred KB to a MB
(issue 17: the traced Python heap of the bridge stayed at 34 MB while its RSS grew ~1-2 MB an
hour). ``malloc_trim(0)`` releases the free pages of every arena; it costs about a millisecond, so
the bridge calls it once a minute, beside the rescan. Elsewhere than glibc it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable

_trim: Callable[[int], int] | None
try:
    _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    _trim = _libc.malloc_trim
    _trim.argtypes = [ctypes.c_size_t]
    _trim.restype = ctypes.c_int
except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim this way
    _trim = None


def release_free_memory() -> bool:
    """Return freed heap pages to the system; True if the C library released any."""
    if _trim is None:
        return False
    return bool(_trim(0))
