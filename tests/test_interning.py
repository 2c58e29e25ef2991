"""Scan file names stay out of the interpreter's table of interned strings (issue 17).

``pathlib.Path`` interns every part of every path it parses (``sys.intern``, pathlib.py:71 in
Python 3.11). The bridge made a ``Path`` of each file event's name, so every file name alive (and
every one passing through) went into CPython's one table of interned strings, which churned with
each file and doubled once in an hour's run: a +0.9 MB step in the bridge's RSS at minute 45-50
(docs/performance.md, section 4). File names are plain ``str`` now from the file event to the push.

Two ways to see a name interned, both used here:

* a spy on ``sys.intern`` (what pathlib calls): catches every call, also for a ``Path`` that lives
  only a moment (interned strings are mortal: the table drops them when they die);
* ``sys.intern(fresh copy) is not fresh copy``: an equal string is in the table now, interned by
  anyone (also C code, which does not go through ``sys.intern``), while the bridge holds the name.

The names carry a token made at run time, so nothing else can have interned them.
"""

from __future__ import annotations

import os
import queue
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from scan_bridge.discovery import FolderTree, iter_newest, newest_files, newest_first
from scan_bridge.health_disk import probe_disk
from scan_bridge.scanfile import read_scan
from scan_bridge.service import Bridge
from scan_bridge.settings import BridgeSettings
from scan_bridge.simulate import write_scan
from scan_bridge.watcher import FileSeen

from .support import wait_for

pytestmark = pytest.mark.unit  # pure: a real inotify watch and real files, no member, no server

FILES = 60  # moved in one by one (file events)
FOLDER_FILES = 20  # moved in as a folder (a folder event: the bridge lists it)
_INTERN = sys.intern  # the real one: the spy below replaces sys.intern


def is_interned(name: str) -> bool:
    """True when a string equal to ``name`` is in CPython's table of interned strings right now.

    Interns a fresh copy as a side effect (harmless for a name nobody else uses): if an older equal
    string was there, ``sys.intern`` returns that one instead of the copy.
    """
    copy = "".join(list(name))
    assert copy == name and copy is not name
    return _INTERN(copy) is not copy


@pytest.fixture
def token() -> str:
    return uuid.uuid4().hex


@pytest.fixture
def interned_calls(monkeypatch: pytest.MonkeyPatch, token: str) -> Iterator[list[str]]:
    """Every string holding ``token`` that anything passes to ``sys.intern`` from now on."""
    calls: list[str] = []
    def spy(text: str) -> str:
        if token in text:
            calls.append(text)
        return _INTERN(text)

    monkeypatch.setattr(sys, "intern", spy)
    yield calls


def stage(folder: str, names: list[str], data: bytes) -> None:
    """Write scan files with ``str`` paths only (a ``Path`` here would intern the names itself)."""
    os.makedirs(folder, exist_ok=True)
    for name in names:
        with open(os.path.join(folder, name), "wb") as handle:
            handle.write(data)


def template(tmp_path: Path) -> bytes:
    return write_scan(tmp_path / "template" / "scan_000001_000000.arrow", 1, 100).read_bytes()


def test_the_detectors_see_a_name_that_a_path_interned(token: str, interned_calls: list[str]) -> None:
    """The two ways of telling work here (this Python's pathlib still interns): else the tests below prove nothing."""
    name = f"scan_000001_{token}.arrow"
    assert not is_interned(name)
    held = Path("/data", "x" + name)
    assert is_interned("x" + name)
    assert interned_calls == ["x" + name]
    del held


def test_discovery_and_the_reader_give_str_and_intern_no_file_name(
    tmp_path: Path, token: str, interned_calls: list[str]
) -> None:
    root = str(tmp_path / "watch")
    names = [f"scan_{i:06d}_{token}.arrow" for i in range(1, 31)]
    stage(os.path.join(root, "2026-12-02"), names, template(tmp_path))
    interned_calls.clear()  # (the template's own Path is not the code under test)

    newest = newest_files(root, 10, tree=FolderTree(root))
    everything = list(iter_newest(root, tree=FolderTree(root)))
    ordered = newest_first(everything)
    record = read_scan(newest[0], 1 << 30)
    newest_on_disk, complete = probe_disk(Path(root), grace_s=0.0)
    assert complete is not None and newest_on_disk is not None

    values = [*newest, *everything, *ordered, record.path, newest_on_disk.path, complete.path]
    assert {type(value) for value in values} == {str}
    assert interned_calls == [], f"file names went through sys.intern: {interned_calls[:3]}"
    assert [name for name in names if is_interned(name)] == []


@pytest.mark.parametrize("kind", ["native", "polling"])
def test_file_events_through_the_bridge_carry_str_and_intern_no_file_name(
    tmp_path: Path, token: str, interned_calls: list[str], kind: str
) -> None:
    """Files moved in one by one and as a folder, seen by the watcher, read by the bridge's loop
    (file events, the folder listing, the periodic rescan, the reading marker, its memory of files
    read): every path is a ``str``, and no file name is interned, neither on the way nor while the
    bridge remembers it."""
    watch = str(tmp_path / "watch")
    staging = os.path.join(watch, ".staging")  # hidden: not watched until moved in
    data = template(tmp_path)
    singles = [f"scan_{i:06d}_{token}.arrow" for i in range(1, FILES + 1)]
    in_folder = [f"scan_{i:06d}_{token}.arrow" for i in range(FILES + 1, FILES + FOLDER_FILES + 1)]
    stage(staging, singles, data)
    stage(os.path.join(staging, "moved-in"), in_folder, data)
    os.makedirs(os.path.join(watch, "2026-12-02"))
    bridge = Bridge(BridgeSettings(  # type: ignore[call-arg]
        watch_dir=Path(watch), state_dir=tmp_path / "state", observer=kind, poll_interval_s=0.1,
    ))
    bridge._open_guard()
    bridge._start_watcher(look_back=True)
    try:
        interned_calls.clear()
        for name in singles:
            os.rename(os.path.join(staging, name), os.path.join(watch, "2026-12-02", name))
        os.rename(os.path.join(staging, "moved-in"), os.path.join(watch, "moved-in"))
        bridge._rescan_due = 0.0  # the periodic rescan (newest_files) on the next tick, too
        expected = {os.path.join(watch, "2026-12-02", n) for n in singles}
        expected |= {os.path.join(watch, "moved-in", n) for n in in_folder}
        event_types: set[type] = set()

        def all_read() -> bool:
            pump(bridge, lambda message: event_types.add(type(message.path)) if isinstance(message, FileSeen) else None)
            return expected <= {os.fspath(path) for path in bridge._finished}  # (a Path fails below, clearly)

        wait_for(all_read, 30, f"the bridge ({kind} observer) to read all {len(expected)} files")
        assert event_types == {str}, f"a file event's path: {event_types}"
        held = [*bridge._finished, *bridge._keys, *bridge._pending, *bridge._rejected]
        assert {type(path) for path in held} == {str}
        assert interned_calls == [], f"file names went through sys.intern: {interned_calls[:3]}"
        assert [name for name in singles + in_folder if is_interned(name)] == [], "file names in the interned table"
    finally:
        if bridge._watcher is not None:
            bridge._watcher.stop()
        if bridge._guard is not None:
            bridge._guard.close()


def pump(bridge: Bridge, look: Callable[[object], None]) -> None:
    """One turn of the bridge's loop (run() without the cluster): the messages waiting, then the tick."""
    while True:
        try:
            message = bridge.queue.get_nowait()
        except queue.Empty:
            break
        look(message)
        bridge._handle(message)
    bridge._tick()
