"""Real-browser harness: `streamlit run Home.py` on a free loopback port, driven by Playwright.

(Helpers only; the pytest fixtures built on them are in ``conftest.py``.)
Playwright cannot download its own browser here, so it drives Debian's ``chromium``.
Every wait is on a readiness signal (the health endpoint, then the app's script state),
never a fixed sleep.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO_ROOT / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# The same flags the Dockerfile / Space uses, so uploads are tested the way they are served.
SERVER_FLAGS = ["--server.headless", "true", "--server.enableXsrfProtection", "false",
                "--server.enableCORS", "false", "--browser.gatherUsageStats", "false"]
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, process: subprocess.Popen, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"streamlit exited early with code {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"streamlit at {url} did not become healthy in {timeout:.0f} s")


class StreamlitServer:
    """A running ``streamlit run Home.py`` process with its own runs root and data dir."""

    def __init__(self, runs_root: Path | None, data_dir: Path | None, log_path: Path,
                 extra_env: dict[str, str] | None = None, cwd: Path = REPO_ROOT):
        """``runs_root``/``data_dir`` None: leave ``VLMLAB_*`` unset (the README's launch, from ``cwd``)."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.runs_root = Path(runs_root) if runs_root else cwd / "runs"
        self.data_dir = Path(data_dir) if data_dir else cwd / ".vlmlab"
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", **(extra_env or {})}
        if runs_root is not None:
            env["VLMLAB_RUNS_ROOT"] = str(runs_root)
        if data_dir is not None:
            env["VLMLAB_DATA_DIR"] = str(data_dir)
        self.log_path = log_path
        self._log = log_path.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "Home.py", "--server.port", str(self.port),
             "--server.address", "127.0.0.1", *SERVER_FLAGS],
            cwd=cwd, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        try:
            wait_healthy(self.url, self.process)
        except Exception:
            self.stop()
            raise

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self._log.close()


def wait_for_app(page, timeout: float = 90_000) -> None:
    """Wait until the app is connected and its script has finished running."""
    page.wait_for_selector('[data-testid="stApp"]', timeout=timeout)
    page.wait_for_function(
        """() => {
            const app = document.querySelector('[data-testid="stApp"]');
            return app && app.getAttribute('data-test-connection-state') === 'CONNECTED'
                && app.getAttribute('data-test-script-state') === 'notRunning';
        }""", timeout=timeout)


def goto(page, server: StreamlitServer, url_path: str = "") -> None:
    page.goto(f"{server.url}/{url_path}")
    wait_for_app(page)


def shot(page, artifacts: Path, name: str) -> Path:
    path = artifacts / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


# ----------------------------------------------------------------------------- interaction helpers
# A page switch or rerun first shows skeleton/stale placeholders while the script state may still
# read "notRunning" (the rerun has not started yet), so "settled" also requires that no skeleton
# or stale element is left; callers then wait for the element their action should produce.
_SETTLED_JS = """() => {
    const app = document.querySelector('[data-testid="stApp"]');
    return !!app && app.getAttribute('data-test-connection-state') === 'CONNECTED'
        && app.getAttribute('data-test-script-state') === 'notRunning'
        && document.querySelectorAll('[data-testid="stSkeleton"]').length === 0
        && document.querySelectorAll('[data-stale="true"]').length === 0;
}"""


def settle(page, timeout: float = 90_000) -> None:
    """Wait until the app is connected, idle and shows no placeholder or stale element."""
    page.wait_for_selector('[data-testid="stApp"]', timeout=timeout)
    page.wait_for_function(_SETTLED_JS, timeout=timeout, polling=100)


def open_page(page, title: str, timeout: float = 90_000) -> None:
    """Click a page in the sidebar navigation and wait for its title and a settled app."""
    page.locator('[data-testid="stSidebarNav"] a', has_text=title).first.click()
    page.wait_for_selector(f'h1:has-text("{title}")', timeout=timeout)
    settle(page, timeout)


def choose_select(page, label: str, option: str | re.Pattern[str], scope: str = "body") -> None:
    """Pick ``option`` (substring, or a pattern) in the Streamlit selectbox whose label is ``label``."""
    page.locator(scope).get_by_role("combobox", name=label, exact=True).first.click()
    page.locator('[role="option"]').filter(has_text=option).first.click()
    settle(page)


def checkpoint_option(name: str) -> re.Pattern[str]:
    """The sidebar's option for checkpoint ``name`` ("checkpoint-150", "checkpoint-150 ★ best"), never
    a longer name that starts alike ("checkpoint-1500")."""
    return re.compile(rf"^{re.escape(name)}(?!\d)")


def click_example(page, example_id: str) -> None:
    """Click an eval-set gallery example and wait for the picked image to be shown."""
    page.locator('[data-testid="stButton"] button').filter(has_text=example_id).first.click()
    page.get_by_text(f"Example {example_id}", exact=False).first.wait_for()
    settle(page)


def click_button(page, text: str) -> None:
    """Click the first Streamlit button whose text contains ``text``."""
    page.locator('[data-testid="stButton"] button').filter(has_text=text).first.click()


def selected_value(page, label: str, scope: str = "body") -> str:
    """The text a Streamlit selectbox currently shows."""
    return page.locator(scope).get_by_role("combobox", name=label, exact=True).first.input_value()


def app_text(page) -> str:
    """Visible text of the main area (not the sidebar)."""
    return page.locator('[data-testid="stMain"]').inner_text()


def exception_texts(page) -> list[str]:
    """Tracebacks Streamlit shows for uncaught exceptions (must be none)."""
    return [e.inner_text() for e in page.locator('[data-testid="stException"]').all()]


@contextmanager
def fresh_page(browser) -> Iterator[object]:
    """A page in a new browser context, i.e. a fresh Streamlit session, closed afterwards."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(60_000)
    try:
        yield page
    finally:
        context.close()
