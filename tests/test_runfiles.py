"""The daemon's run files: a private directory, no symlink followed, a kill by pidfile that checks identity.

Real processes throughout: a real bridge (``python -m scan_bridge.service``, connecting to nowhere,
which keeps it alive and trying), decoys whose command lines look like a bridge's, and planted
symlinks in the old ``/tmp`` location and the new one.
"""

from __future__ import annotations

import dataclasses
import os
import queue
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from scan_bridge import runfiles
from scan_bridge.bridge_process import BridgeProcess, Exited, Started
from scan_bridge.daemon_flow import bridge_command
from scan_bridge.runfiles import RUNTIME_DIR_ENV, UnsafeRunDir

from .support import wait_for

VICTIM_TEXT = "precious contents\n"


@pytest.fixture
def rundir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An explicit run-file directory, a private TMPDIR (the legacy location) and no other candidate."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    path = tmp_path / "run"
    monkeypatch.setenv(RUNTIME_DIR_ENV, str(path))
    return path


@pytest.fixture
def children() -> Iterator[list[subprocess.Popen[bytes]]]:
    made: list[subprocess.Popen[bytes]] = []
    yield made
    for child in made:
        if child.poll() is None:
            child.kill()
        child.wait(10)


def spawn(children: list[subprocess.Popen[bytes]], argv: list[str], **kwargs: object) -> subprocess.Popen[bytes]:
    child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kwargs)  # type: ignore[call-overload]
    children.append(child)
    return child


def alive(child: subprocess.Popen[bytes]) -> bool:
    return child.poll() is None


def bridge_env(tmp_path: Path) -> dict[str, str]:
    watch = tmp_path / "scans"
    watch.mkdir(exist_ok=True)
    # Port 1 on loopback refuses at once: the bridge stays up, trying to connect, as it would with a member down.
    return {**os.environ, "SCAN_BRIDGE_WATCH_DIR": str(watch), "SCAN_BRIDGE_HAZELCAST_MEMBERS": "127.0.0.1:1"}


# -- the directory ------------------------------------------------------------------------------------


def test_private_dir_is_created_0700_and_checked(tmp_path: Path) -> None:
    path = runfiles.private_dir(tmp_path / "a" / "b")
    assert (os.stat(path).st_mode & 0o777) == 0o700
    assert (os.stat(tmp_path / "a").st_mode & 0o077) == 0  # parents we create are private too


def test_open_foreign_or_symlinked_dirs_are_refused(tmp_path: Path) -> None:
    open_dir = tmp_path / "open"
    open_dir.mkdir(mode=0o755)
    os.chmod(open_dir, 0o755)
    with pytest.raises(UnsafeRunDir, match="mode 755"):
        runfiles.private_dir(open_dir)
    target = tmp_path / "elsewhere"
    target.mkdir(mode=0o700)
    (tmp_path / "link").symlink_to(target)
    with pytest.raises(UnsafeRunDir, match="not a directory"):
        runfiles.private_dir(tmp_path / "link")
    if os.getuid() == 0:  # root can make a directory someone else's
        foreign = tmp_path / "foreign"
        foreign.mkdir(mode=0o700)
        os.chown(foreign, 65534, 65534)
        with pytest.raises(UnsafeRunDir, match="belongs to uid 65534"):
            runfiles.private_dir(foreign)


def test_a_squatted_candidate_is_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Someone created the shared-tmp candidate first (or pointed it elsewhere): the next candidate is used."""
    monkeypatch.delenv(RUNTIME_DIR_ENV, raising=False)
    runtime = tmp_path / "xdg"
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    (runtime / "scan-bridge").symlink_to(tmp_path)  # planted
    assert runfiles.runtime_dir() == tmp_path / "state" / "scan-bridge" / "run"
    assert (runtime / "scan-bridge").is_symlink()


def test_run_ids_cannot_leave_the_directory(rundir: Path) -> None:
    for bad in ("../x", "a/b", "", ".hidden", "x\ny"):
        with pytest.raises(ValueError):
            runfiles.pidfile_name(bad)
    assert runfiles.kill_bridge_by_pidfile("../../etc/passwd") is None


# -- writing: no symlink is followed -----------------------------------------------------------------


def test_planted_symlinks_old_and_new_location_are_never_followed(
    rundir: Path, tmp_path: Path, children: list[subprocess.Popen[bytes]]
) -> None:
    run_id = str(uuid.uuid4())
    victim_old, victim_new = tmp_path / "victim-old", tmp_path / "victim-new"
    for victim in (victim_old, victim_new):
        victim.write_text(VICTIM_TEXT)
    legacy = Path(tempfile.gettempdir()) / f"scan-bridge-{run_id}.pid"
    legacy.symlink_to(victim_old)  # where the pidfile used to be written
    path = runfiles.pidfile_for(run_id)
    assert path.parent == rundir and (os.stat(rundir).st_mode & 0o777) == 0o700
    path.symlink_to(victim_new)  # even inside the private directory

    proc = BridgeProcess([sys.executable, "-c", "import time; time.sleep(600)"], pidfile=path)
    try:
        proc.start()
        assert isinstance(proc.events.get(timeout=10), Started)
        assert victim_old.read_text() == VICTIM_TEXT and victim_new.read_text() == VICTIM_TEXT
        assert not path.is_symlink() and (os.stat(path).st_mode & 0o777) == 0o600
        assert runfiles.read_pidfile(path).pid == proc.pid
        assert legacy.is_symlink()  # not ours to touch: neither written nor removed
        runfiles.clean_stale()
        assert legacy.is_symlink() and victim_old.read_text() == VICTIM_TEXT
    finally:
        proc.kill()
        proc.wait(10)
    assert proc.wait_exited_message(10)
    assert not path.exists()  # removed by the waiter once the child is gone


def test_reading_refuses_a_symlinked_pidfile(rundir: Path, tmp_path: Path, children: list[subprocess.Popen[bytes]]) -> None:
    """A symlink to a real pidfile of a live process is still not obeyed."""
    target = spawn(children, [sys.executable, "-c", "import time; time.sleep(600)"])
    real = tmp_path / "real.pid"
    runfiles.private_dir(rundir)
    runfiles.write_pidfile(rundir / "real.pid", runfiles.identify(target.pid, target.args))
    os.replace(rundir / "real.pid", real)
    link = rundir / runfiles.pidfile_name("linked")
    link.symlink_to(real)
    assert runfiles.kill_bridge_by_pidfile("linked") is None
    assert alive(target)


# -- the kill: identity, not a substring ---------------------------------------------------------------


def test_decoys_are_never_killed(rundir: Path, tmp_path: Path, children: list[subprocess.Popen[bytes]]) -> None:
    """A look-alike command line, a reused pid (other start time), an old-style bare pid: none is signalled."""
    runfiles.private_dir(rundir)
    # A process whose argv merely contains scan_bridge.service (as `journalctl -u scan_bridge.service` did).
    decoy = spawn(children, [sys.executable, "-c", "import time; time.sleep(600)", "-u", "scan_bridge.service"])
    wait_for(lambda: "scan_bridge.service" in psutil.Process(decoy.pid).cmdline(), 10, "the decoy's exec")
    real = runfiles.identify(decoy.pid)

    cases = {
        # the bridge's command recorded, the decoy's pid: the command differs
        "other-command": dataclasses.replace(real, cmdline=tuple(bridge_command())),
        # the decoy's exact command, but another start time: the pid was reused
        "reused-pid": dataclasses.replace(real, start_time=real.start_time - 3600),
        # another boot
        "other-boot": dataclasses.replace(real, boot_id="00000000-0000-0000-0000-000000000000"),
    }
    for run_id, identity in cases.items():
        runfiles.write_pidfile(rundir / runfiles.pidfile_name(run_id), identity)
        assert runfiles.kill_bridge_by_pidfile(run_id) is None, run_id
        assert alive(decoy), run_id
        assert not (rundir / runfiles.pidfile_name(run_id)).exists(), f"{run_id}: a stale pidfile stays"
    # The old format: a bare pid (what earlier versions wrote) is not an identity.
    (rundir / runfiles.pidfile_name("bare")).write_text(f"{decoy.pid}\n")
    assert runfiles.kill_bridge_by_pidfile("bare") is None
    assert alive(decoy)
    # The same record, exact: this one is the process, and it goes.
    runfiles.write_pidfile(rundir / runfiles.pidfile_name("exact"), real)
    assert runfiles.kill_bridge_by_pidfile("exact") == decoy.pid
    assert decoy.wait(10) == -signal.SIGKILL


def test_the_real_bridge_is_killed_by_its_pidfile(rundir: Path, tmp_path: Path) -> None:
    """The daemon's way: BridgeProcess writes the pidfile of a real bridge; the hook's function kills it."""
    run_id = str(uuid.uuid4())
    events: queue.Queue[object] = queue.Queue()
    proc = BridgeProcess(bridge_command(), env=bridge_env(tmp_path), events=events, pidfile=runfiles.pidfile_for(run_id))  # type: ignore[arg-type]
    try:
        pid = proc.start()
        # Until exec, /proc shows the parent's command line; wait for the bridge's own.
        wait_for(lambda: psutil.Process(pid).cmdline() == list(bridge_command()), 20, "the bridge's exec")
        assert runfiles.kill_bridge_by_pidfile(run_id) == pid
        assert proc.wait(10) == -signal.SIGKILL
    finally:
        proc.kill()
        proc.wait(10)
    message = wait_for(lambda: next((m for m in list(events.queue) if isinstance(m, Exited)), None), 10, "Exited")
    assert message.returncode == -signal.SIGKILL
    assert runfiles.find_pidfile(run_id) is None


def test_stop_force_finds_the_pidfile_without_the_writers_environment(
    rundir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, children: list[subprocess.Popen[bytes]]
) -> None:
    """Written under XDG_RUNTIME_DIR by a worker that has it; read by a shell that sets the explicit variable."""
    monkeypatch.delenv(RUNTIME_DIR_ENV)
    runtime = tmp_path / "xdg"
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    target = spawn(children, [sys.executable, "-c", "import time; time.sleep(600)"])
    wait_for(lambda: psutil.Process(target.pid).cmdline() == list(target.args), 10, "exec")
    runfiles.write_pidfile(runfiles.pidfile_for("w"), runfiles.identify(target.pid, target.args))
    monkeypatch.setenv(RUNTIME_DIR_ENV, str(rundir))
    assert runfiles.kill_bridge_by_pidfile("w") == target.pid
    assert target.wait(10) == -signal.SIGKILL


# -- stale files -------------------------------------------------------------------------------------------


def test_stale_pidfiles_are_cleaned_live_ones_kept(rundir: Path, children: list[subprocess.Popen[bytes]]) -> None:
    runfiles.private_dir(rundir)
    live = spawn(children, [sys.executable, "-c", "import time; time.sleep(600)"])
    wait_for(lambda: psutil.Process(live.pid).cmdline() == list(live.args), 10, "exec")
    dead = spawn(children, [sys.executable, "-c", "pass"])
    dead_identity = runfiles.identify(dead.pid, dead.args)
    dead.wait(10)
    runfiles.write_pidfile(rundir / runfiles.pidfile_name("live"), runfiles.identify(live.pid, live.args))
    runfiles.write_pidfile(rundir / runfiles.pidfile_name("dead"), dead_identity)
    legacy_dir = Path(tempfile.gettempdir())
    (legacy_dir / "scan-bridge-old.pid").write_text(f"{dead.pid}\n")
    (legacy_dir / "scan-bridge-running.pid").write_text(f"{live.pid}\n")
    (legacy_dir / "unrelated.pid").write_text("1\n")

    removed = runfiles.clean_stale()
    assert sorted(p.name for p in removed) == ["bridge-dead.pid", "scan-bridge-old.pid"]
    assert (rundir / "bridge-live.pid").exists()
    assert (legacy_dir / "scan-bridge-running.pid").exists() and (legacy_dir / "unrelated.pid").exists()
    assert alive(live)
