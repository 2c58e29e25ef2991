"""The hostile scan files now live in the product (:mod:`scan_bridge.chaos.hostile`): the chaos harness writes them too."""

from scan_bridge.chaos.hostile import *  # noqa: F401,F403
from scan_bridge.chaos.hostile import _strings, _table, ipc_bytes, rejected_cases  # noqa: F401
