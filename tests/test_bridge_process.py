"""The child process against real processes: output, exits, kills, stops, and a parent that dies."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from scan_bridge.bridge_process import BridgeProcess, Exited, Line, Message, ProcessOps, Spawner, Started
from scan_bridge.runfiles import read_pidfile

DEADLINE_S = 10.0
SRC = str(Path(__file__).resolve().parents[1] / "src")


def script(tmp_path: Path, body: str, name: str = "child.py") -> list[str]:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return [sys.executable, str(path)]


def collect(
    events: queue.Queue[Message], until: Callable[[Message], bool], timeout: float = DEADLINE_S
) -> list[Message]:
    """Messages up to and including the first that satisfies ``until``; fails at the deadline."""
    deadline = time.monotonic() + timeout
    seen: list[Message] = []
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            pytest.fail(f"no matching message within {timeout}s; got {seen[-5:]}")
        try:
            message = events.get(timeout=remaining)
        except queue.Empty:
            continue
        seen.append(message)
        if until(message):
            return seen


def is_exited(message: Message) -> bool:
    return isinstance(message, Exited)


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_gone(pid: int, timeout: float = DEADLINE_S) -> float:
    start = time.monotonic()
    while not gone(pid):
        if time.monotonic() - start > timeout:
            pytest.fail(f"pid {pid} still alive after {timeout}s")
        time.sleep(0.02)
    return time.monotonic() - start


@pytest.fixture
def processes() -> Iterator[list[BridgeProcess]]:
    """Every BridgeProcess a test makes is killed at the end, whatever happened."""
    made: list[BridgeProcess] = []
    yield made
    for proc in made:
        proc.kill()
        proc.wait(5)


def launch(processes: list[BridgeProcess], argv: list[str], **kwargs: object) -> BridgeProcess:
    proc = BridgeProcess(argv, **kwargs)  # type: ignore[arg-type]
    processes.append(proc)
    proc.start()
    return proc


def test_lines_from_both_streams_then_exit(tmp_path: Path, processes: list[BridgeProcess]) -> None:
    argv = script(
        tmp_path,
        """
        import sys
        print("hello out")
        print("hello err", file=sys.stderr)
        sys.stdout.buffer.write(b"bad \\xff\\xfe bytes\\r\\n")
        sys.exit(3)
        """,
    )
    proc = launch(processes, argv)
    messages = collect(proc.events, is_exited)
    assert isinstance(messages[0], Started) and messages[0].pid == proc.pid
    lines = [m for m in messages if isinstance(m, Line)]
    assert Line("stdout", "hello out", proc.pid) in lines
    assert Line("stderr", "hello err", proc.pid) in lines
    assert Line("stdout", "bad \ufffd\ufffd bytes", proc.pid) in lines
    assert messages[-1] == Exited(proc.pid, 3)
    assert not proc.is_running() and proc.returncode == 3


def test_exited_comes_after_the_last_line(tmp_path: Path, processes: list[BridgeProcess]) -> None:
    argv = script(
        tmp_path,
        """
        import sys
        for i in range(2000):
            print(f"out {i}")
            print(f"err {i}", file=sys.stderr)
        print("last")
        """,
    )
    proc = launch(processes, argv)
    messages = collect(proc.events, is_exited)
    lines = [m for m in messages if isinstance(m, Line)]
    assert len(lines) == 4001
    assert [m.text for m in lines if m.stream == "stdout"][-1] == "last"
    assert messages[-1] == Exited(proc.pid, 0)
    assert proc.last_lines()[-1].text in {"last", "err 1999"}
    assert len(proc.last_lines()) == 50


def test_a_fast_writer_is_never_stalled(tmp_path: Path, processes: list[BridgeProcess]) -> None:
    """1 MB on each stream without a pause: far beyond a 64 KB pipe; it must finish."""
    argv = script(
        tmp_path,
        """
        import sys
        line = b"x" * 1023 + b"\\n"
        for _ in range(1024):
            sys.stdout.buffer.write(line)
            sys.stderr.buffer.write(line)
        sys.stdout.flush()
        """,
    )
    proc = launch(processes, argv)
    messages = collect(proc.events, is_exited, timeout=30)
    assert messages[-1] == Exited(proc.pid, 0)
    assert sum(1 for m in messages if isinstance(m, Line)) == 2048


def test_exit_is_noticed_at_once(tmp_path: Path, processes: list[BridgeProcess]) -> None:
    argv = script(
        tmp_path,
        """
        import sys, time
        print(repr(time.time()), flush=True)
        sys.exit(7)
        """,
    )
    proc = launch(processes, argv)
    messages = collect(proc.events, is_exited)
    exited_seen_at = time.time()
    exit_time = float([m for m in messages if isinstance(m, Line)][-1].text)
    assert messages[-1] == Exited(proc.pid, 7)
    assert exited_seen_at - exit_time < 1.0


def test_kill_9_of_the_child_is_noticed_at_once(tmp_path: Path, processes: list[BridgeProcess]) -> None:
    argv = script(tmp_path, "import time\nprint('ready', flush=True)\ntime.sleep(600)\n")
    proc = launch(processes, argv)
    collect(proc.events, lambda m: isinstance(m, Line) and m.text == "ready")
    assert proc.is_running()
    assert proc.pid is not None
    killed_at = time.monotonic()
    os.kill(proc.pid, signal.SIGKILL)
    messages = collect(proc.events, is_exited)
    assert time.monotonic() - killed_at < 1.0
    assert messages[-1] == Exited(proc.pid, -signal.SIGKILL)
    assert gone(proc.pid)  # reaped, not a zombie


def test_stop_of_a_polite_child(tmp_path: Path, processes: list[BridgeProcess]) -> None:
    argv = script(tmp_path, "import time\nprint('ready', flush=True)\ntime.sleep(600)\n")
    proc = launch(processes, argv)
    collect(proc.events, lambda m: isinstance(m, Line))
    start = time.monotonic()
    assert proc.stop(grace_s=5.0) == -signal.SIGTERM
    assert time.monotonic() - start < 2.0
    assert collect(proc.events, is_exited)[-1] == Exited(proc.pid, -signal.SIGTERM)  # type: ignore[arg-type]
    assert proc.stop(grace_s=5.0) == -signal.SIGTERM  # again: a no-op


def test_stop_escalates_to_sigkill(tmp_path: Path, processes: list[BridgeProcess]) -> None:
    argv = script(
        tmp_path,
        """
        import signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("ready", flush=True)
        time.sleep(600)
        """,
    )

    class Recording(ProcessOps):
        def __init__(self) -> None:
            self.sent: list[int] = []

        def send_signal(self, proc: subprocess.Popen[bytes], sig: int) -> None:
            self.sent.append(sig)
            super().send_signal(proc, sig)

    ops = Recording()
    proc = launch(processes, argv, ops=ops)
    collect(proc.events, lambda m: isinstance(m, Line) and m.text == "ready")
    grace = 1.0
    start = time.monotonic()
    assert proc.stop(grace_s=grace) == -signal.SIGKILL
    elapsed = time.monotonic() - start
    assert grace <= elapsed < grace + 2.0
    assert ops.sent == [signal.SIGTERM, signal.SIGKILL]


def test_pidfile_written_and_removed(tmp_path: Path, processes: list[BridgeProcess]) -> None:
    pidfile = tmp_path / "run" / "bridge.pid"
    argv = script(tmp_path, "import time\nprint('ready', flush=True)\ntime.sleep(600)\n")
    proc = launch(processes, argv, pidfile=pidfile)
    collect(proc.events, lambda m: isinstance(m, Line))
    recorded = read_pidfile(pidfile)
    assert (recorded.pid, recorded.cmdline) == (proc.pid, tuple(argv))
    assert recorded.start_time == psutil.Process(proc.pid).create_time()
    assert (pidfile.parent.stat().st_mode & 0o777) == 0o700
    proc.stop(grace_s=5.0)
    collect(proc.events, is_exited)
    assert not pidfile.exists()


def test_env_and_unbuffered(tmp_path: Path, processes: list[BridgeProcess]) -> None:
    argv = script(tmp_path, "import os\nprint(os.environ.get('MARK'), os.environ.get('PYTHONUNBUFFERED'))\n")
    proc = launch(processes, argv, env={**os.environ, "MARK": "yes"})
    lines = [m.text for m in collect(proc.events, is_exited) if isinstance(m, Line)]
    assert lines == ["yes 1"]


def test_missing_program_raises(processes: list[BridgeProcess]) -> None:
    with pytest.raises(FileNotFoundError):
        launch(processes, ["/nonexistent/bridge"])


def test_child_outlives_the_thread_that_asked_for_it(tmp_path: Path, processes: list[BridgeProcess]) -> None:
    """PR_SET_PDEATHSIG follows the forking *thread*: our spawner thread forks, not the caller."""
    argv = script(tmp_path, "import time\nprint('ready', flush=True)\ntime.sleep(600)\n")
    started: list[BridgeProcess] = []
    worker = threading.Thread(target=lambda: started.append(launch(processes, argv)))
    worker.start()
    worker.join()
    proc = started[0]
    collect(proc.events, lambda m: isinstance(m, Line) and m.text == "ready")
    observe_until = time.monotonic() + 0.5  # the signal would have come at the thread's exit
    while time.monotonic() < observe_until:
        assert proc.is_running()
        time.sleep(0.05)


def test_spawner_survives_a_failed_spawn() -> None:
    spawner = Spawner(name="test-spawner")
    try:
        with pytest.raises(FileNotFoundError):
            spawner.spawn(["/nonexistent/program"])
        popen = spawner.spawn([sys.executable, "-c", "pass"])
        assert popen.wait(DEADLINE_S) == 0
    finally:
        spawner.close()
    assert not spawner.alive


def test_child_dies_with_a_sigkilled_parent(tmp_path: Path) -> None:
    child = "import time\ntime.sleep(600)\n"
    parent = script(
        tmp_path,
        f"""
        import sys, time
        sys.path.insert(0, {SRC!r})
        from scan_bridge.bridge_process import BridgeProcess
        proc = BridgeProcess([sys.executable, "-c", {child!r}])
        print(proc.start(), flush=True)
        time.sleep(600)
        """,
        name="parent.py",
    )
    parent_proc = subprocess.Popen(parent, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    child_pid: int | None = None
    try:
        assert parent_proc.stdout is not None
        line = parent_proc.stdout.readline()
        child_pid = int(line)
        assert psutil.Process(child_pid).ppid() == parent_proc.pid
        assert not gone(child_pid)
        parent_proc.kill()
        parent_proc.wait(DEADLINE_S)
        assert wait_gone(child_pid, timeout=5.0) < 5.0
    finally:
        parent_proc.kill()
        parent_proc.wait()
        if child_pid is not None and not gone(child_pid):
            os.kill(child_pid, signal.SIGKILL)
