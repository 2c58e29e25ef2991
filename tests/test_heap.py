"""heap.release_free_memory: freed heap pages go back to the system (issue 17).

Run in a fresh interpreter so that pytest's own heap does not blur the figures. The freed block is
pinned under a live allocation made after it, so glibc cannot give it back by moving the top of the
heap: only ``malloc_trim`` returns it, which is the bridge's case (a long-lived object allocated
after a burst of reads keeps the burst's memory resident).
"""

from __future__ import annotations

import json
import subprocess
import sys

_PROBE = r"""
import json
from scan_bridge.heap import release_free_memory

def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20

burst = [bytes(2048) for _ in range(40_000)]  # ~80 MB in chunks glibc serves from the heap, not mmap
pin = [bytes(2048) for _ in range(8)]  # allocated after the burst: the heap's top cannot move below it
del burst
before = rss_mb()
released = release_free_memory()
after = rss_mb()
print(json.dumps({"before": before, "after": after, "released": released}))
"""


def test_freed_memory_under_a_live_allocation_goes_back_to_the_system() -> None:
    out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=60, check=True)
    figures = json.loads(out.stdout)
    assert figures["released"] is True, figures
    assert figures["before"] - figures["after"] > 40, f"RSS fell only from {figures['before']:.1f} to {figures['after']:.1f} MB"
