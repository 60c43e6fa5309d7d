"""The first launch in a real browser: the demo trains while the app is open; a checkpoint appears and gets
a score on the Timeline without a reload (issue 32)."""

from __future__ import annotations

from pathlib import Path

from tests.browser.browser_kit import StreamlitServer, fresh_page, goto, open_page, shot

SIDEBAR_RUN_JS = """() => [...document.querySelectorAll('[data-testid="stSidebar"] [data-testid="stSelectbox"]')]
    .some(e => /demo.*1 ckpt/.test((e.querySelector('input') || {}).value || ''))"""
SCORE_LINE_JS = """() => [...document.querySelectorAll('[data-testid="stMain"] svg text')]
    .some(t => t.textContent.includes('saved score'))"""
BUILD_S = 1800 * 1000  # the test preset trains ≈ 1 min on a quiet 2-core machine; far longer on a busy one


def test_demo_trains_while_the_app_is_open_and_its_checkpoints_get_scores(browser, artifacts_dir: Path,
                                                                         tmp_path: Path):
    root = tmp_path / "runs"
    root.mkdir()
    server = StreamlitServer(root, tmp_path / "data", artifacts_dir / "streamlit-live-demo.log",
                             extra_env={"VLMLAB_DEMO_AUTOBUILD": "1", "VLMLAB_DEMO_PRESET": "test",
                                        "VLMLAB_MEMORY_BUDGET": "1GB"})
    try:
        with fresh_page(browser) as page:
            goto(page, server)  # the first view starts the build: nobody presses anything
            page.get_by_text("Building the demo run").first.wait_for(timeout=120_000)
            shot(page, artifacts_dir, "live-demo-building")
            page.wait_for_function(SIDEBAR_RUN_JS, timeout=BUILD_S, polling=500)  # its first checkpoint, no reload
            open_page(page, "Timeline")
            main = page.locator('[data-testid="stMain"]')
            main.get_by_text("Live scoring:").first.wait_for(timeout=60_000)
            page.wait_for_function(SCORE_LINE_JS, timeout=BUILD_S, polling=1000)  # its score, still no reload
            shot(page, artifacts_dir, "live-demo-scored")
            assert "Traceback" not in main.inner_text()
        assert server.log_path.read_text(encoding="utf-8").count("demo build started into") == 1
    finally:
        server.stop()
    assert any(p.is_file() for p in (root / "demo" / "eval_results").glob("*/*.json"))
