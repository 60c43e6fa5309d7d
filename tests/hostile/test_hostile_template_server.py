"""A real ``streamlit run`` server keeps answering while a hostile chat template renders in it.

The app (``template_app.py``) renders in the server process, as the Inference page does. While one
session renders, the test polls ``/_stcore/health`` (each answer within 1 s) and, for the stand-in
worker stuck in C, opens a second session whose page must finish within 1 s while the first is
still rendering. On main (6295f64) the ``tower`` case held the GIL for ~60 s: run against main's code, the
health endpoint did not answer within 1 s (and the session's own websocket hit its keepalive
timeout); ``freeze-in-c`` needs the worker pool, which main does not have.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from bench.load_test import run_in_thread
from bench.protocol_client import ProtocolSession, ScriptRun
from tests.browser.browser_kit import REPO_ROOT, SERVER_FLAGS, free_port, wait_healthy

ANSWER_WITHIN_S = 1.0
APP = Path(__file__).with_name("template_app.py")


@pytest.fixture(scope="module")
def app_server(tmp_path_factory: pytest.TempPathFactory):
    flags = tmp_path_factory.mktemp("cage-flags")
    log = tmp_path_factory.mktemp("cage-log") / "streamlit.log"
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "CAGE_APP_FLAGS": str(flags), "HF_HUB_OFFLINE": "1"}
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(APP), "--server.port", str(port),
             "--server.address", "127.0.0.1", *SERVER_FLAGS], cwd=REPO_ROOT, env=env, stdout=out,
            stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_healthy(url, process)
            yield url, flags
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


def open_page(url: str, case: str) -> ScriptRun:
    async def drive() -> ScriptRun:
        async with ProtocolSession(url, f"case={case}") as session:
            return await session.open()
    return run_in_thread(drive())  # Playwright's sync API may hold this thread's event loop


def health_seconds(url: str) -> float:
    started = time.monotonic()
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=ANSWER_WITHIN_S) as response:
            response.read()
            if response.status != 200:
                return float("inf")
    except OSError:
        return float("inf")
    return time.monotonic() - started


class PageInThread:
    """One session's page run in a thread (the hostile render); ``.run`` once it ended."""

    def __init__(self, url: str, case: str) -> None:
        self.run: ScriptRun | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._drive, args=(url, case), daemon=True)
        self.thread.start()

    def _drive(self, url: str, case: str) -> None:
        try:
            self.run = open_page(url, case)
        except BaseException as exc:  # re-raised by the test
            self.error = exc


def wait_for(path: Path, page: PageInThread, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert page.thread.is_alive() and time.monotonic() < deadline, f"the app never started {path.name}"
        time.sleep(0.02)


@pytest.mark.parametrize("case, expected", [("tower", "bits"), ("freeze-in-c", "longer than 5 s")])
def test_server_answers_while_a_hostile_template_renders(app_server, case, expected):
    url, flags = app_server
    assert "rendered: user: hello" in open_page(url, "normal").text()  # warm: the server and its workers
    hostile = PageInThread(url, case)
    wait_for(flags / f"{case}.started", hostile)
    health: list[float] = []
    other_page: ScriptRun | None = None
    hostile_alive_after_other = False
    while hostile.thread.is_alive() or len(health) < 3:
        health.append(health_seconds(url))
        if case == "freeze-in-c" and other_page is None:
            other_page = open_page(url, "normal")
            hostile_alive_after_other = hostile.thread.is_alive()
        time.sleep(0.05)
    hostile.thread.join(60)
    assert max(health) < ANSWER_WITHIN_S, f"health answers took up to {max(health):.1f} s: {health}"
    if hostile.error is not None:  # e.g. the websocket's keepalive timed out: the server stood still
        raise hostile.error
    assert hostile.run is not None and "refused:" in hostile.run.text() and expected in hostile.run.text(), \
        hostile.run and hostile.run.text()
    if case == "freeze-in-c":
        assert other_page is not None and "rendered: user: hello" in other_page.text(), other_page
        assert hostile_alive_after_other, "the second page did not run while the hostile render was in flight"
        assert other_page.seconds < ANSWER_WITHIN_S, f"another session's page took {other_page.seconds:.1f} s"
