"""What grew between two snapshots of bench/_memtrace.py: top allocation sites and object types.

    python bench/_memtrace_diff.py TRACE_DIR A B [--top 25] [--group lineno|traceback]
"""

from __future__ import annotations

import argparse
import collections
import tracemalloc
from pathlib import Path


def _types(path: Path) -> tuple[str, collections.Counter[str]]:
    lines = path.read_text().splitlines()
    counts: collections.Counter[str] = collections.Counter()
    for line in lines[1:]:
        count, name = line.split(" ", 1)
        counts[name] = int(count)
    return lines[0], counts


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("trace_dir", type=Path)
    parser.add_argument("a", type=int)
    parser.add_argument("b", type=int)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--group", default="traceback", choices=["lineno", "traceback", "filename"])
    args = parser.parse_args()
    head_a, types_a = _types(args.trace_dir / f"types-{args.a:04d}.txt")
    head_b, types_b = _types(args.trace_dir / f"types-{args.b:04d}.txt")
    print(f"A: {head_a}\nB: {head_b}\n\n# object types grown")
    grown = sorted(((types_b[t] - types_a.get(t, 0), t) for t in types_b), reverse=True)[: args.top]
    for delta, name in grown:
        print(f"{delta:+8d} {name}")
    a = tracemalloc.Snapshot.load(str(args.trace_dir / f"snap-{args.a:04d}.pickle"))
    b = tracemalloc.Snapshot.load(str(args.trace_dir / f"snap-{args.b:04d}.pickle"))
    stats = b.compare_to(a, args.group)
    total = sum(s.size_diff for s in stats)
    print(f"\n# allocation sites grown (total {total / 1024:+.1f} KiB)")
    for stat in stats[: args.top]:
        print(f"\n{stat.size_diff / 1024:+.1f} KiB {stat.count_diff:+d} blocks (now {stat.size / 1024:.1f} KiB)")
        for line in stat.traceback.format(limit=12):
            print(f"    {line}")


if __name__ == "__main__":
    main()
