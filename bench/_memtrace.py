"""Run a module under tracemalloc and write what grew, for diagnosis (bench_memory.py --trace).

    python bench/_memtrace.py OUT_DIR EVERY_S scan_bridge.daemon_flow

Starts ``tracemalloc`` (``MEMTRACE_FRAMES`` frames, default 10), runs the module as ``__main__``,
and from a daemon thread every ``EVERY_S`` seconds dumps a snapshot to ``OUT_DIR/snap-NNNN.pickle``
(compare any two offline with ``bench/_memtrace_diff.py``) and the live-object counts by type
(``gc``), the thread count and the process's RSS to ``OUT_DIR/types-NNNN.txt``. Not used for the
figures: tracing slows the process down (the daemon's start-up takes minutes) and costs memory of
its own. The RSS growing while the traced heap does not points at memory freed but kept by the
allocator (issue 17: a transient peak that grew with the folder).
"""

from __future__ import annotations

import collections
import gc
import os
import runpy
import sys
import threading
import time
import tracemalloc
from pathlib import Path


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def _types() -> collections.Counter[str]:
    return collections.Counter(type(o).__qualname__ for o in gc.get_objects())


def _watch(out: Path, every_s: float) -> None:
    out.mkdir(parents=True, exist_ok=True)
    keep = [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, __file__)]
    n = 0
    while True:
        time.sleep(every_s)
        n += 1
        snap = tracemalloc.take_snapshot().filter_traces(keep)
        snap.dump(str(out / f"snap-{n:04d}.pickle"))
        types = _types()
        current, _ = tracemalloc.get_traced_memory()
        with open(out / f"types-{n:04d}.txt", "w") as f:
            f.write(f"t={n * every_s:.0f}s rss {_rss_mb():.1f} MB traced {current / 2**20:.1f} MB threads {threading.active_count()}\n")
            for name, count in types.most_common():
                f.write(f"{count} {name}\n")
        del snap


def main() -> None:
    out, every_s, module = Path(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
    tracemalloc.start(int(os.environ.get("MEMTRACE_FRAMES", "10")))
    threading.Thread(target=_watch, args=(out, every_s), daemon=True, name="memtrace").start()
    sys.argv = [module, *sys.argv[4:]]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
