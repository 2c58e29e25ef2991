"""The long run of the reader fuzz (tests/fuzz.py): N mutated scans, each read in a child process.

    python bench/fuzz_reader.py --files 10000 --seed 1
    python bench/fuzz_reader.py --files 4500 --seed 1 --src /tmp/old/src   # another version of the reader

Prints one JSON summary (outcomes, signals that killed the reader, uncaught exception types, documents
with foreign bytes) and exits 1 if any file crashed the reader, escaped it with an exception or put
foreign bytes into its document. ``--keep DIR`` keeps every crashing or leaking file for a test fixture.
Results and the command: docs/reliability.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import fuzz  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--src", type=Path, help="put this source folder first on the child's PYTHONPATH")
    parser.add_argument("--keep", type=Path, help="copy crashing / leaking files here")
    args = parser.parse_args()
    env = dict(os.environ)
    if args.src is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(args.src.resolve()), env.get("PYTHONPATH", "")])
    results = fuzz.run(args.seed, args.files, env=env, keep_crashers=args.keep)
    summary = results.summary()
    summary["seed"] = args.seed
    summary["crashed_files"] = results.crashed[:20]
    summary["foreign_examples"] = results.foreign[:5]
    print(json.dumps(summary, indent=2, default=str))
    bad = results.outcomes["crash"] + results.outcomes["exception"] + len(results.foreign) + results.outcomes["no-reason"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
