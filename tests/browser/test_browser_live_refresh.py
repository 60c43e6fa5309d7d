"""Live refresh in a real browser: new checkpoints update the chart, the header counts and the sidebar."""

from __future__ import annotations

from pathlib import Path

from dashboard.runs.synthetic import write_run
from tests.browser.browser_kit import StreamlitServer, fresh_page, goto, open_page, selected_value, settle, shot

SIDEBAR = '[data-testid="stSidebar"]'


def test_live_refresh_updates_every_count(browser, artifacts_dir: Path, tmp_path: Path):
    run = write_run(tmp_path / "runs" / "alpha", n_steps=300, save_every=100, eval_every=100)
    server = StreamlitServer(tmp_path / "runs", tmp_path / "data", artifacts_dir / "streamlit-live.log")
    try:
        with fresh_page(browser) as page:
            goto(page, server)
            open_page(page, "Timeline")
            main = page.locator('[data-testid="stMain"]')
            assert "3 checkpoint(s)" in main.inner_text()
            assert "3 ckpt" in selected_value(page, "Run", scope=SIDEBAR)
            page.get_by_text("Best checkpoint, overlays, saved scores, range").click()
            settle(page)  # opening it reruns the controls: its widgets are drawn only while it is open
            every = page.get_by_label("Every (s)")
            every.fill("2")
            every.press("Enter")
            settle(page)
            page.get_by_text("Live: auto-refresh").click()
            settle(page)
            write_run(run, n_steps=400, save_every=100, eval_every=100)  # training went on
            # was: the chart updated, "3 checkpoint(s)" and the sidebar's "3 ckpt" stayed until a reload
            page.wait_for_function(
                """() => document.querySelector('[data-testid="stMain"]').innerText.includes('4 checkpoint(s)')""",
                timeout=60_000)
            page.wait_for_function(
                """() => [...document.querySelectorAll('[data-testid="stSidebar"] [data-testid="stSelectbox"]')]
                        .some(e => (e.querySelector('input') || {}).value?.includes('4 ckpt'))""", timeout=30_000)
            shot(page, artifacts_dir, "timeline-live-refreshed")
    finally:
        server.stop()
