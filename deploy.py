#!/usr/bin/env python3
"""The operator's entry point: ``python deploy.py create|start|run|stop|status|health [--help]``.

Thin on purpose: everything lives in ``scan_bridge.control`` so it is tested with the package.
"""

import sys
from pathlib import Path

try:
    from scan_bridge.control import main
except ImportError:  # not installed: run from the checkout
    sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))
    from scan_bridge.control import main

if __name__ == "__main__":
    sys.exit(main())
