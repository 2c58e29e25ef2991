"""Children that die with their parent: Linux's parent-death signal (``PR_SET_PDEATHSIG``), in one place.

Used as (part of) a ``preexec_fn``, run in the child between fork and exec: the bridge under the
daemon (:mod:`.bridge_process`), the Hazelcast members of :mod:`.localcluster`, the processes of
:mod:`.local`, and the test and bench plumbing. Caveat (Linux semantics): the signal fires when the
*thread* that forked the child exits, so fork from a thread that outlives the child.
"""

from __future__ import annotations

import ctypes
import os
import signal
from typing import Any

_PR_SET_PDEATHSIG = 1

try:  # resolved here, in the parent: the child between fork and exec should do as little as possible
    _prctl: Any = ctypes.CDLL(None, use_errno=True).prctl
    _prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    _prctl.restype = ctypes.c_int
except (OSError, AttributeError):  # not Linux: the callers' own stop paths are all there is
    _prctl = None

#: Whether this system has the parent-death signal at all.
AVAILABLE = _prctl is not None


def die_with_parent(parent_pid: int | None = None, sig: int = signal.SIGKILL, exit_code: int = 1) -> None:
    """In the child: get ``sig`` when the parent dies; exit at once (``exit_code``) if it already has.

    ``parent_pid`` is the parent's pid read *before* the fork; without it the race between fork and
    ``prctl`` is not checked.
    """
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
    if parent_pid is not None and os.getppid() != parent_pid:  # the parent died between fork and prctl
        os._exit(exit_code)
