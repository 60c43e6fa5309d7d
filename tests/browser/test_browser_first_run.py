"""The README's launch in a real browser: repo root, no VLMLAB_* variables, demo in ./runs/demo."""

from __future__ import annotations

from pathlib import Path

from tests.browser.browser_kit import (
    StreamlitServer,
    app_text,
    exception_texts,
    fresh_page,
    goto,
    selected_value,
    settle,
    shot,
)


def test_readme_launch_opens_home_on_the_demo_run(readme_clone: Path, browser, artifacts_dir: Path):
    server = StreamlitServer(None, None, artifacts_dir / "streamlit-first-run.log", cwd=readme_clone)
    try:
        with fresh_page(browser) as page:
            goto(page, server)
            page.wait_for_selector('h3:has-text("Run demo")')
            page.wait_for_selector('[data-testid="stDataFrame"]')
            settle(page)
            shot(page, artifacts_dir, "first-run-home")
            text = app_text(page)
            assert "Cannot open this run" not in text and "not found" not in text, text[:500]
            assert exception_texts(page) == []
            assert page.locator('[data-testid="stAlertContentError"]').count() == 0
            assert "demo" in selected_value(page, "Run", '[data-testid="stSidebar"]')
    finally:
        server.stop()
