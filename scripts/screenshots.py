"""What the screenshot scripts share: a Prefect server with its UI on a private port, and headless Chromium.

Imported by ``scripts/screenshot-health-artifact`` and ``scripts/screenshot-flow-run`` (Python puts
a script's own folder first on ``sys.path``), so the way a server is started for a photograph, and
the Chromium flags that make a photograph come out at all, live in one place. Not part of the
package: nothing in production takes pictures.

Chromium: ``/usr/bin/chromium`` (Debian's ``chromium`` package; ``apt-get install -y chromium`` as
root). It is run with the flags that keep it from waiting on a network it cannot reach, in a
session of its own, driven over its DevTools protocol (:class:`Chromium`), and stopped with all
its helper processes afterwards.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))

from scan_bridge.localcluster import free_port  # noqa: E402  (after the path above)
from scan_bridge.parent_death import die_with_parent  # noqa: E402

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars",
]


def default_chromium() -> str:
    return shutil.which("chromium") or "/usr/bin/chromium"


def wait_http(url: str, timeout_s: float) -> None:
    """Until ``url`` answers 200, or TimeoutError after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=3) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} not answering within {timeout_s:g} s")
        time.sleep(0.5)


def own_session_dying_with(parent: int) -> None:
    """preexec_fn: a process group of its own (stopped as one), SIGTERMed if this script dies first,
    so a script killed by SIGKILL leaves nothing behind either."""
    die_with_parent(parent, signal.SIGTERM, exit_code=0)
    os.setsid()


class PrefectUI:
    """``prefect server start`` with its UI on a free loopback port, its own PREFECT_HOME under ``work``.

    :attr:`env` is the environment for anything that should talk to it (deploy.py, a worker, a
    launcher). The server runs in a process group of its own, stopped as one on exit, and dies with
    this script unless ``die_with_us`` is false (``--keep-server``: it is to outlive the script).
    """

    def __init__(self, work: Path, start_timeout_s: float = 180, die_with_us: bool = True) -> None:
        self.work = work
        self.port = free_port()
        self.ui = f"http://127.0.0.1:{self.port}"
        self.api = f"{self.ui}/api"
        self.start_timeout_s = start_timeout_s
        self.env = {**os.environ, "PREFECT_HOME": str(work / "home"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                    "PREFECT_API_URL": self.api, "PREFECT_UI_API_URL": self.api}  # the UI asks here, not :4200
        self.die_with_us = die_with_us
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> PrefectUI:
        log = open(self.work / "prefect-server.log", "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(self.port)],
            env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            preexec_fn=(lambda parent=os.getpid(): own_session_dying_with(parent)) if self.die_with_us else os.setsid,
        )
        log.close()
        try:
            wait_http(f"{self.api}/health", self.start_timeout_s)
            wait_http(f"{self.ui}/", 30)  # the UI (a deep link answers 404 unless asked for HTML)
        except BaseException:
            self.stop()
            raise
        return self

    def use_here(self) -> None:
        """Point this process's Prefect client at the server (before ``import prefect``'s first use)."""
        os.environ.update({key: self.env[key] for key in ("PREFECT_API_URL", "PREFECT_HOME",
                                                           "PREFECT_SERVER_ANALYTICS_ENABLED")})

    def detach(self) -> None:
        """Leave the server running after this script (``--keep-server``)."""
        print(f"server left running on {self.ui} (pid {self.proc.pid}, its own process group); "
              f"PREFECT_HOME {self.env['PREFECT_HOME']}")
        self.proc = None

    def stop(self) -> None:
        if self.proc is None:
            return
        stop_group(self.proc, 20)
        self.proc = None

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()


def stop_group(proc: subprocess.Popen[bytes], grace_s: float) -> None:
    """SIGTERM the process group ``proc`` leads, SIGKILL it after ``grace_s``; then nothing of it is left."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(grace_s)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # stragglers of the group, even when its leader has exited
    except ProcessLookupError:
        pass
    proc.wait()


#: Device pixels per CSS pixel in every photograph: sharp on a high-density screen, readable scaled down.
SCALE = 1.5
#: Below the last thing a photograph must show, down to the crop (CSS pixels): a log row's second line.
MARGIN = 40
_BOTTOMS = """(texts) => texts.map((text) => {
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  let bottom = null;
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    if (!node.textContent.includes(text)) continue;
    const box = node.parentElement.getBoundingClientRect();
    if (box.height > 0) bottom = Math.max(bottom ?? 0, box.bottom + window.scrollY);
  }
  return bottom;
})"""


class Chromium:
    """Headless Chromium driven over the DevTools protocol (one page, on a free loopback port).

    Why not ``chromium --screenshot``: it photographs when a virtual-time budget runs out, whatever
    the page is doing then, and virtual time confuses the flow run page's timeline: two of eight
    such photographs showed its time labels garbled. Here a photograph is taken once the page shows
    the texts it must show, in real time, and kept only when the next one, 0.4 s later, is
    identical: the page held still. The protocol also crops (below the last of those texts).

    A running flow run's page never holds still (its timeline follows the clock). Its timeline
    draws garbled time labels for about a second after its data arrives, while it fits itself to
    the run, and again for a second or two whenever a running run's age crosses a label step (10 s
    to 15 s apart, ...): Prefect's UI, not ours, and nothing the page exposes tells us when. For such
    a page ``settle_s`` photographs that long after the texts show, which avoids the first; the
    second is rare, and the only check is looking at the picture.
    """

    def __init__(self, executable: str, work: Path) -> None:
        self.executable = executable
        self.work = work
        self.proc: subprocess.Popen[bytes] | None = None
        self._ws = None
        self._id = 0

    def __enter__(self) -> Chromium:
        from websockets.sync.client import connect  # a dependency of Prefect's

        port = free_port()
        with open(self.work / "chromium.log", "wb") as log:
            self.proc = subprocess.Popen(
                [self.executable, *CHROMIUM_FLAGS, f"--user-data-dir={self.work / 'chromium'}",
                 f"--remote-debugging-port={port}", "about:blank"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                preexec_fn=lambda parent=os.getpid(): own_session_dying_with(parent),
            )
        try:
            wait_http(f"http://127.0.0.1:{port}/json/version", 60)
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as response:
                page = next(t for t in json.load(response) if t["type"] == "page")
            self._ws = connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=10)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def call(self, method: str, **params: object) -> dict:
        """One DevTools command and its result (events in between are ignored)."""
        self._id += 1
        self._ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            message = json.loads(self._ws.recv(timeout=60))
            if message.get("id") == self._id:
                if "error" in message:
                    raise RuntimeError(f"chromium: {method}: {message['error']}")
                return message["result"]

    def evaluate(self, expression: str) -> object:
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")

    def shoot(self, page: str, out: Path, width: int, height: int | None = None, texts: Sequence[str] = (),
              settle_s: float | None = None, timeout_s: float = 60) -> None:
        """Photograph ``page``, ``width`` CSS pixels wide, into ``out``, once every one of ``texts`` shows.

        ``height``: the window's height, all of it photographed; None: a tall window, cropped
        :data:`MARGIN` below the lowest of ``texts`` (so every one of them is in the picture).
        ``settle_s``: None, once the page holds still; else that long after the texts show, for a
        page that never holds still.
        """
        if height is None and not texts:
            raise ValueError("a height, or texts to crop below")
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height or 4000,
                  deviceScaleFactor=SCALE, mobile=False)
        self.call("Page.navigate", url=page)
        deadline = time.monotonic() + timeout_s
        probe = f"document.readyState === 'complete' ? ({_BOTTOMS})({json.dumps(list(texts))}) : null"
        while True:
            bottoms = self.evaluate(probe)
            if bottoms is not None and None not in bottoms:
                break
            if time.monotonic() > deadline:
                missing = [t for t, b in zip(texts, bottoms or [None] * len(texts)) if b is None]
                raise RuntimeError(f"{page} did not show {missing or 'itself'} within {timeout_s:g} s")
            time.sleep(0.5)
        clip_height = height or max(bottoms) + MARGIN
        clip = {"x": 0, "y": 0, "width": width, "height": clip_height, "scale": 1}
        if settle_s is not None:
            time.sleep(settle_s)  # nothing to wait on: see the class's docstring
            shot = self._capture(clip)
        else:
            shot = self._still(clip, page, deadline)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(base64.b64decode(shot))
        print(f"{page}\n-> {out} ({width}x{clip_height:.0f} CSS pixels at {SCALE}x)")

    def _capture(self, clip: dict) -> str:
        return self.call("Page.captureScreenshot", format="png", clip=clip)["data"]

    def _still(self, clip: dict, page: str, deadline: float) -> str:
        """A photograph identical to the one 0.4 s before it."""
        previous = self._capture(clip)
        while True:
            time.sleep(0.4)
            shot = self._capture(clip)
            if shot == previous:
                return shot
            if time.monotonic() > deadline:
                raise RuntimeError(f"{page} did not hold still for 0.4 s before the deadline")
            previous = shot

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if self._ws is not None:
            self._ws.close()
            self._ws = None
        if self.proc is not None:
            stop_group(self.proc, 10)  # its zygote and renderers too
            self.proc = None
