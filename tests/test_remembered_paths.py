"""The bridge remembers the files it has read within a bound set by retention, not 200,000 (issue 17)."""

from __future__ import annotations

from pathlib import Path

from scan_bridge.service import RESCAN_FILES, Bridge, remembered_paths
from scan_bridge.settings import BridgeSettings


def test_the_bound_covers_the_reconcile_and_the_rescan() -> None:
    assert remembered_paths(1000) == 2000
    assert remembered_paths(1) == 2 * RESCAN_FILES


def test_the_bridge_forgets_the_oldest_beyond_the_bound(tmp_path: Path) -> None:
    bridge = Bridge(BridgeSettings(watch_dir=tmp_path, retention=60))
    paths = [str(tmp_path / f"scan_{i:06d}.arrow") for i in range(500)]  # str, as the bridge carries them
    for path in paths:
        bridge._remember(path)
    assert list(bridge._finished) == paths[380:]
    bridge._remember(paths[385])  # read again (rewritten): now the newest, so the last to be forgotten
    bridge._remember(paths[100])  # long forgotten, read again
    assert len(bridge._finished) == remembered_paths(60) == 120
    assert list(bridge._finished) == paths[381:385] + paths[386:] + [paths[385], paths[100]]


pytestmark = __import__("pytest").mark.unit  # pure: see pyproject.toml markers
