"""Browser: the Attention page's researcher tools — heads grid, spatial logit lens, rollout, pointing split.

Screenshots land in ``test-artifacts/attention-*.png``.
"""

from __future__ import annotations

import json

import pytest

from tests.browser.browser_kit import app_text, click_button, exception_texts, goto, open_page, settle, shot
from tests.browser.test_browser_pages import click_example, first_example

pytestmark = pytest.mark.browser


def _capture(page, server, demo_runs_root) -> None:
    goto(page, server)
    open_page(page, "Attention")
    click_example(page, first_example(demo_runs_root)["id"])
    click_button(page, "Generate and capture")
    page.get_by_text("Generated token").first.wait_for(timeout=120_000)
    settle(page)


def test_heads_grid_and_spatial_lens(page, server, artifacts_dir, demo_runs_root):
    _capture(page, server, demo_runs_root)
    heads = page.locator('[data-testid="stImage"]').filter(has_text="head 0 ·")
    heads.first.wait_for()
    assert page.locator('[data-testid="stImage"]').filter(has_text="head 3 ·").count() == 1
    assert "One colour scale for all heads" in app_text(page)
    heads.first.scroll_into_view_if_needed()
    shot(page, artifacts_dir, "attention-heads-grid")
    lens = page.locator('[data-testid="stPlotlyChart"]').filter(has_text="top-1 token per patch")
    lens.first.wait_for()
    lens.first.scroll_into_view_if_needed()
    shot(page, artifacts_dir, "attention-spatial-lens")
    vision = json.loads(next((demo_runs_root / "demo").glob("checkpoint-*/config.json")).read_text())["vision_config"]
    patches = (vision["image_size"] // vision["patch_size"]) ** 2
    assert lens.first.locator("g.textpoint").count() == patches  # one token label per image patch
    assert exception_texts(page) == []


def test_rollout_option_and_pointing_split(page, server, artifacts_dir, demo_runs_root):
    _capture(page, server, demo_runs_root)
    page.get_by_text("attention rollout", exact=True).first.click()
    settle(page)
    caption = page.locator('[data-testid="stImage"]').filter(has_text="rollout through layers")
    caption.first.wait_for(timeout=60_000)
    assert caption.first.locator("img").first.evaluate("img => img.complete && img.naturalWidth > 0")
    shot(page, artifacts_dir, "attention-rollout")
    number = page.get_by_label("Examples per checkpoint")
    number.fill("4")
    number.press("Enter")
    settle(page)
    click_button(page, "Score every checkpoint")
    heading = page.get_by_text("Pointing by answer correctness").first
    heading.wait_for(timeout=300_000)
    settle(page)
    heading.scroll_into_view_if_needed()
    assert exception_texts(page) == []
    shot(page, artifacts_dir, "attention-pointing-split")
