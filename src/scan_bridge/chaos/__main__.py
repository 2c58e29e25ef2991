"""``python -m scan_bridge.chaos``: see :mod:`scan_bridge.chaos`."""

import sys

from .cli import main

sys.exit(main())
