"""``deploy.py start``'s launcher: one stop signal ends the worker within a bound, whatever the worker does.

Real processes: a launcher (``run_until_stopped``) in a session of its own, running a stand-in
worker that either stops on SIGINT like a healthy Prefect worker or ignores it like a hung one.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path


from scan_bridge.worker_launcher import prefect_worker_argv

from .e2e_support import gone_or_zombie
from .support import wait_for

#: The stand-in worker: says it is ready (its pid and process group), then sleeps; "stubborn"
#: ignores SIGINT and SIGTERM, "polite" exits 0 on either, "counting" records each SIGINT it gets.
WORKER = textwrap.dedent(
    """
    import os, signal, sys, time
    mode, out = sys.argv[1], sys.argv[2]
    def polite(signum, frame):
        sys.exit(0)
    def counting(signum, frame):
        with open(out + ".signals", "a") as f:
            f.write(f"{signum}\\n")
        if signum == signal.SIGTERM:
            sys.exit(0)
    handler = {"stubborn": signal.SIG_IGN, "polite": polite, "counting": counting}[mode]
    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    with open(out + ".tmp", "w") as f:
        f.write(f"{os.getpid()} {os.getpgid(0)}")
    os.replace(out + ".tmp", out)
    while True:
        time.sleep(1)
    """
)

LAUNCHER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from scan_bridge.worker_launcher import run_until_stopped
    argv = [sys.executable, "-X", "faulthandler", "-c", sys.argv[1], sys.argv[2], sys.argv[3]]
    sys.exit(run_until_stopped(argv, dict(__import__("os").environ), Path.cwd(), grace_s=float(sys.argv[4])))
    """
)


def launch(tmp_path: Path, mode: str, grace_s: float) -> tuple[subprocess.Popen[str], int, int]:
    """The launcher in its own session (as a terminal would have it), once its worker is ready."""
    ready = tmp_path / f"{mode}.ready"
    launcher = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, WORKER, mode, str(ready), str(grace_s)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    text = wait_for(lambda: ready.is_file() and ready.read_text(), 30, f"the {mode} worker to be ready")
    pid, pgid = (int(x) for x in text.split())
    return launcher, pid, pgid


def finish(launcher: subprocess.Popen[str], within: float) -> tuple[int, str]:
    try:
        _out, err = launcher.communicate(timeout=within)
    except subprocess.TimeoutExpired:
        launcher.kill()
        _out, err = launcher.communicate()
        raise AssertionError(f"the launcher did not end within {within} s of the stop signal:\n{err}") from None
    return launcher.returncode, err


def test_a_worker_that_ignores_the_stop_signal_is_aborted_with_its_stacks_after_the_grace(tmp_path: Path) -> None:
    launcher, worker_pid, _pgid = launch(tmp_path, "stubborn", grace_s=1.0)
    launcher.send_signal(signal.SIGINT)
    code, err = finish(launcher, within=60)
    assert code == 0, err
    assert f"the worker (pid {worker_pid}) was still running 1 s after the stop signal; ending it with SIGABRT" in err, err
    # faulthandler wrote where the worker was stuck before it died: the next person sees the hang.
    assert "Fatal Python error: Aborted" in err and "most recent call first" in err, err
    assert gone_or_zombie(worker_pid)


def test_a_worker_that_stops_gracefully_is_not_aborted(tmp_path: Path) -> None:
    launcher, worker_pid, _pgid = launch(tmp_path, "polite", grace_s=30.0)
    launcher.send_signal(signal.SIGTERM)
    code, err = finish(launcher, within=25)  # well inside the grace: the worker's own stop was awaited
    assert code == 0, err
    assert "SIGABRT" not in err, err
    assert gone_or_zombie(worker_pid)


def test_ctrl_c_in_a_terminal_reaches_the_worker_once(tmp_path: Path) -> None:
    """A terminal's Ctrl+C signals the foreground process group; a second SIGINT is Prefect's SIGKILL."""
    launcher, worker_pid, worker_pgid = launch(tmp_path, "counting", grace_s=30.0)
    assert worker_pgid != os.getpgid(launcher.pid), "the worker shares the launcher's process group"
    os.killpg(os.getpgid(launcher.pid), signal.SIGINT)  # what the terminal does
    signals = tmp_path / "counting.ready.signals"
    wait_for(lambda: signals.is_file() and signals.read_text(), 30, "the worker to get the SIGINT")
    launcher.send_signal(signal.SIGHUP)  # the terminal closes: passed on as SIGTERM, the worker ends
    code, err = finish(launcher, within=25)
    assert code == 0, err
    assert signals.read_text().split() == [str(int(signal.SIGINT)), str(int(signal.SIGTERM))], signals.read_text()
    assert gone_or_zombie(worker_pid)


def test_a_worker_that_fails_on_its_own_keeps_its_exit_status(tmp_path: Path) -> None:
    from scan_bridge.worker_launcher import run_until_stopped

    assert run_until_stopped([sys.executable, "-c", "raise SystemExit(7)"], dict(os.environ), tmp_path) == 7


def test_the_worker_runs_with_faulthandler_on() -> None:
    argv = prefect_worker_argv("dolphin-daemon-pool", "w1")
    assert argv[:3] == [sys.executable, "-X", "faulthandler"]
    assert argv[3:] == ["-m", "prefect", "worker", "start", "--pool", "dolphin-daemon-pool", "--name", "w1"]

