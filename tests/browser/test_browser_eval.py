"""End-to-end eval-set sweeps: the regression list, and one sweep through a real Ray head node."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser.browser_kit import (
    StreamlitServer,
    app_text,
    exception_texts,
    fresh_page,
    goto,
    open_page,
    settle,
    shot,
)

pytestmark = pytest.mark.browser


def _eval_mode(page) -> None:
    page.locator('[data-testid="stRadio"] label').filter(has_text="Eval set").first.click()
    settle(page)


def _run_sweep(page, timeout: float = 400_000) -> None:
    page.locator('[data-testid="stButton"] button').filter(has_text="Run eval set").first.click()
    page.get_by_text("Scores with 95% confidence intervals").first.wait_for(timeout=timeout)
    settle(page, timeout)


def test_eval_regression_list(page, server, artifacts_dir):
    goto(page, server)
    open_page(page, "Comparison")
    _eval_mode(page)
    _run_sweep(page)
    page.get_by_text("Regressions").first.scroll_into_view_if_needed()
    text = app_text(page)
    assert "Paired comparison" in text and " broke, " in text, text[-3000:]
    fixed_tab = page.locator('[role="tab"]').filter(has_text="Fixed (")
    count = int(fixed_tab.first.inner_text().split("(")[1].rstrip(")"))
    assert count > 0  # the demo's last checkpoint fixes what the first got wrong
    fixed_tab.first.click()
    settle(page)
    cards = page.locator('[role="tabpanel"]:visible').filter(has_text="reference:")
    assert cards.count() >= 1
    panel = cards.first.inner_text()
    assert "prompt:" in panel and "reference:" in panel
    assert page.locator('[role="tabpanel"]:visible .vlm-diff').count() >= 2  # both outputs diffed
    assert exception_texts(page) == []
    page.locator('[role="tabpanel"]:visible').first.scroll_into_view_if_needed()
    shot(page, artifacts_dir, "comparison-regressions")


@pytest.fixture()
def ray_head(tmp_path: Path) -> Iterator[str]:
    """A real Ray head node (2 CPUs, token auth on) for the duration of one test."""
    ray_bin = Path(sys.executable).with_name("ray")
    if not ray_bin.exists() or shutil.which(str(ray_bin)) is None:
        pytest.skip("ray is not installed (requirements-dev.txt pins it)")
    log = (tmp_path / "ray-head.log").open("w")
    temp_dir = tempfile.mkdtemp(prefix="vray-", dir="/tmp")  # Ray's socket paths must stay < 108 bytes
    head = subprocess.Popen([str(ray_bin), "start", "--head", "--block", "--num-cpus", "2", "--port", "0",
                             "--include-dashboard", "false", "--disable-usage-stats",
                             "--temp-dir", temp_dir], stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    deadline = time.monotonic() + 120
    address = None
    while time.monotonic() < deadline and address is None and head.poll() is None:
        text = (tmp_path / "ray-head.log").read_text()
        for line in text.splitlines():
            if "--address=" in line:
                address = line.split("--address=")[1].split()[0].strip("'\"")
        time.sleep(0.5)
    if address is None:
        if head.poll() is None:
            os.killpg(head.pid, signal.SIGTERM)
        pytest.fail("ray head did not start: " + (tmp_path / "ray-head.log").read_text()[-2000:])
    yield address
    os.killpg(head.pid, signal.SIGTERM)  # the head's own process group: only what this fixture started
    try:
        head.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(head.pid, signal.SIGKILL)
    log.close()
    shutil.rmtree(temp_dir, ignore_errors=True)


def test_eval_sweep_through_ray_shows_progress(browser, ray_head, demo_runs_root, tmp_path_factory, artifacts_dir):
    runs = tmp_path_factory.mktemp("ray-runs")
    shutil.copytree(demo_runs_root / "demo", runs / "demo", ignore=shutil.ignore_patterns("eval_results"))
    srv = StreamlitServer(runs, tmp_path_factory.mktemp("ray-data"), artifacts_dir / "streamlit-ray.log",
                          extra_env={"VLMLAB_RAY_ADDRESS": ray_head})
    try:
        with fresh_page(browser) as page:
            goto(page, srv)
            open_page(page, "Comparison")
            _eval_mode(page)
            page.locator('[data-testid="stButton"] button').filter(has_text="Run eval set").first.click()
            bar = page.locator('[data-testid="stProgress"]').filter(has_text="ray")
            bar.first.wait_for(timeout=180_000)
            page.locator('[data-testid="stProgress"]').filter(has_text="/").filter(
                has_text="checkpoint-").first.wait_for(timeout=240_000)
            shot(page, artifacts_dir, "comparison-ray-progress")
            page.get_by_text("Scores with 95% confidence intervals").first.wait_for(timeout=400_000)
            settle(page, 400_000)
            text = app_text(page)
            assert "failed" not in text and exception_texts(page) == []
            assert list((runs / "demo" / "eval_results").glob("demo-*/*.json"))  # keyed by content + settings
            shot(page, artifacts_dir, "comparison-ray-done")
    finally:
        srv.stop()
