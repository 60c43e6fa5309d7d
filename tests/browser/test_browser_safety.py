"""Data safety through the real server: history survives a refresh, a restart and a SIGKILL mid-batch."""

from __future__ import annotations

import signal
import sqlite3

import pytest

from tests.browser.browser_kit import StreamlitServer, app_text, goto, open_page, selected_value, settle

pytestmark = pytest.mark.browser


def _history_count(page) -> int:
    open_page(page, "Inference")
    page.locator('[data-testid="stButtonGroup"] button').filter(has_text="History").first.click()
    caption = page.get_by_text("record(s) shown").first
    caption.wait_for()
    settle(page)
    text = caption.inner_text()  # "N record(s) shown · M stored in …"
    return int(text.split("·")[1].split()[0])


def test_history_survives_server_kill_during_batch_and_restart(browser, demo_runs_root, tmp_path, artifacts_dir):
    data_dir = tmp_path / "data"
    log = artifacts_dir / "streamlit-safety-server.log"
    server = StreamlitServer(demo_runs_root, data_dir, log)
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(60_000)
    try:
        goto(page, server)
        open_page(page, "Inference")
        page.locator('[data-testid="stButtonGroup"] button').filter(has_text="Batch").first.click()
        settle(page)
        page.locator('[data-testid="stButton"] button').filter(has_text="Run batch").first.click()
        page.locator('[data-testid="stDataFrame"]').first.wait_for(timeout=180_000)
        settle(page)
        before = _history_count(page)
        assert before >= 1
        # Second batch, larger: kill the server while it generates (before its history write lands).
        open_page(page, "Inference")
        page.locator('[data-testid="stButtonGroup"] button').filter(has_text="Batch").first.click()
        settle(page)
        page.get_by_label("Number of examples", exact=True).fill("32")
        page.get_by_label("Number of examples", exact=True).press("Enter")
        settle(page)
        page.locator('[data-testid="stButton"] button').filter(has_text="Run batch").first.click()
        page.wait_for_function("""() => document.querySelector('[data-testid="stApp"]')
                                          .getAttribute('data-test-script-state') === 'running'""")
        server.process.send_signal(signal.SIGKILL)
        server.process.wait(timeout=30)
        server.stop()
    finally:
        context.close()

    with sqlite3.connect(data_dir / "history.sqlite") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    restarted = StreamlitServer(demo_runs_root, data_dir, artifacts_dir / "streamlit-safety-restarted.log")
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(60_000)
    try:
        goto(page, restarted)
        after = _history_count(page)
        assert after >= before, f"history lost records across the crash: {before} → {after}"
        assert "checkpoint-" in selected_value(page, "Record")
        assert "Traceback" not in app_text(page)
    finally:
        context.close()
        restarted.stop()
