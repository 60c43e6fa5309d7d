"""End-to-end: the four pages driven in headless Chromium against a real ``streamlit run Home.py``.

One server for the whole session (``server`` fixture); each test gets a fresh browser context,
i.e. a fresh Streamlit session. Screenshots land in ``test-artifacts/``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from bench.load_test import checkpoint_names
from tests.browser.browser_kit import (
    app_text,
    checkpoint_option,
    choose_select,
    click_example,
    exception_texts,
    goto,
    open_page,
    selected_value,
    settle,
    shot,
)

pytestmark = pytest.mark.browser

PAGES = ["Inference", "Comparison", "Timeline", "Attention"]


def first_example(runs_root: Path) -> dict:
    line = (runs_root / "demo" / "eval" / "demo.jsonl").read_text().splitlines()[0]
    return json.loads(line)


def segmented(page, option: str) -> None:
    page.locator('[data-testid="stButtonGroup"] button').filter(has_text=option).first.click()
    settle(page)


def sidebar_checkpoint(page) -> str:
    return selected_value(page, "Checkpoint", scope='[data-testid="stSidebar"]')


def test_every_page_opens(page, server, artifacts_dir):
    goto(page, server)
    settle(page)
    assert "VLM checkpoint lab" in app_text(page)
    assert selected_value(page, "Run", scope='[data-testid="stSidebar"]').startswith("demo")
    shot(page, artifacts_dir, "page-home")
    for title in PAGES:
        open_page(page, title)
        assert exception_texts(page) == [], f"{title}: {exception_texts(page)}"
        shot(page, artifacts_dir, f"page-{title.lower()}")


def test_inference_upload_generate_and_history_survives_refresh(page, server, artifacts_dir, demo_runs_root):
    first = checkpoint_names(demo_runs_root)[0]  # not the default (last) one
    goto(page, server)
    open_page(page, "Inference")
    choose_select(page, "Checkpoint", checkpoint_option(first), scope='[data-testid="stSidebar"]')
    assert checkpoint_option(first).match(sidebar_checkpoint(page)), sidebar_checkpoint(page)
    segmented(page, "Upload")
    image = demo_runs_root / "demo" / "eval" / "images" / "00000.png"
    page.set_input_files('[data-testid="stFileUploaderDropzoneInput"]', str(image))
    page.get_by_text("00000.png ·", exact=False).first.wait_for()  # decoded and shown
    settle(page)
    page.get_by_label("Prompt", exact=True).fill("what colour is the square ?")
    page.get_by_label("Prompt", exact=True).press("Control+Enter")
    settle(page)
    page.locator('[data-testid="stButton"] button').filter(has_text="Generate").first.click()
    page.get_by_text("Output tokens").first.wait_for(timeout=120_000)
    settle(page)
    text = app_text(page)
    assert f"Answer ({first})" in text, text[:2000]
    assert exception_texts(page) == []
    shot(page, artifacts_dir, "inference-generated")

    # A browser refresh drops session_state; the generation must still be in the history.
    page.reload()
    settle(page)
    open_page(page, "Inference")
    segmented(page, "History")
    page.get_by_text("record(s) shown").first.wait_for()
    assert " 0 stored" not in app_text(page)
    newest = selected_value(page, "Record")  # the newest record is preselected
    assert f"{first} ·" in newest and "what colour is the square ?" in newest, newest
    shot(page, artifacts_dir, "inference-history-after-refresh")


def test_comparison_two_checkpoints(page, server, artifacts_dir, demo_runs_root):
    example = first_example(demo_runs_root)
    goto(page, server)
    open_page(page, "Comparison")
    click_example(page, example["id"])
    run_button = page.locator('[data-testid="stButton"] button').filter(has_text="checkpoint(s)").first
    label = run_button.inner_text()
    assert label.startswith("Run ") and int(label.split()[1]) >= 2, label
    run_button.click()
    page.locator('[data-testid="stButton"] button').filter(has_text="All outputs cached").first.wait_for(
        timeout=180_000)
    settle(page)
    text = app_text(page)
    assert text.count("tokens out") >= 2, text[:3000]
    assert "reference" in text
    assert exception_texts(page) == []
    shot(page, artifacts_dir, "comparison-outputs")


CHECKPOINT_POINTS_JS = """() => {
    // Screen positions of the checkpoint markers (the trace named "checkpoints") of the first chart
    // trace that has them; each trace's <g> carries the class "trace<uid>".
    for (const gd of document.querySelectorAll('.js-plotly-plot')) {
        for (const trace of gd._fullData || []) {
            if (trace.name !== 'checkpoints') continue;
            const group = gd.querySelector('.trace' + trace.uid);
            if (!group) continue;
            const points = [...group.querySelectorAll('path.point')];
            if (points.length < 2) continue;
            return points.map((p, k) => {
                const r = p.getBoundingClientRect();
                return {x: r.x + r.width / 2, y: r.y + r.height / 2, name: trace.customdata[k][0]};
            });
        }
    }
    return [];
}"""


def test_timeline_click_checkpoint_opens_attention(page, server, artifacts_dir):
    goto(page, server)
    open_page(page, "Timeline")
    page.wait_for_selector(".js-plotly-plot .scatterlayer path.point")
    settle(page)
    shot(page, artifacts_dir, "timeline")
    page.locator(".js-plotly-plot").first.scroll_into_view_if_needed()
    points = page.evaluate(CHECKPOINT_POINTS_JS)
    assert len(points) >= 2, points
    target = points[1]  # not the last one: the sidebar already shows the last checkpoint
    selected = page.get_by_text(f"Selected: {target['name']}").first
    for attempt in range(3):  # a click that lands while Plotly is still re-laying out is dropped
        point = next(p for p in page.evaluate(CHECKPOINT_POINTS_JS) if p["name"] == target["name"])
        page.mouse.move(point["x"], point["y"])  # the exact centre (test_browser_timeline_clicks: 100 %)
        page.mouse.click(point["x"], point["y"])
        try:
            selected.wait_for(timeout=15_000)
            break
        except PlaywrightTimeout:
            if attempt == 2:
                raise
    settle(page)
    shot(page, artifacts_dir, "timeline-selected")
    page.locator('[data-testid="stButton"] button').filter(has_text="Open in Attention").first.click()
    page.wait_for_selector('h1:has-text("Attention")')
    settle(page)
    assert target["name"] in app_text(page)
    assert target["name"] in sidebar_checkpoint(page)
    assert exception_texts(page) == []
    shot(page, artifacts_dir, "timeline-opened-attention")


def test_attention_token_overlay(page, server, artifacts_dir, demo_runs_root):
    example = first_example(demo_runs_root)
    goto(page, server)
    open_page(page, "Attention")
    click_example(page, example["id"])
    page.locator('[data-testid="stButton"] button').filter(has_text="Generate and capture").first.click()
    page.get_by_text("Generated token").first.wait_for(timeout=120_000)
    settle(page)
    # Token buttons read "<index>: <token>"; other button groups (e.g. the image source) do not.
    tokens = page.locator('[data-testid="stButtonGroup"] button').filter(has_text=re.compile(r"^\s*\d+: "))
    tokens.first.wait_for()
    count = tokens.count()
    assert count >= 1
    index = 1 if count > 1 else 0
    label = tokens.nth(index).inner_text().strip()
    tokens.nth(index).click()
    caption = page.locator('[data-testid="stImage"]').filter(has_text=f"{label} — ").first
    caption.wait_for()
    settle(page)
    assert "colour bar" in caption.inner_text()
    overlay = caption.locator("img").first
    assert overlay.evaluate("img => img.complete && img.naturalWidth > 0")
    # the colour bar travels with the map: the picture is wider than the (square) demo image
    assert overlay.evaluate("img => img.naturalWidth > img.naturalHeight")
    # Plotly would swallow an unescaped "</s>"; the logit lens must show it as text
    lens = page.locator(".js-plotly-plot").filter(has_text="top-1 token per layer").first
    lens.scroll_into_view_if_needed()
    if "</s>" in " ".join(tokens.all_inner_texts()):
        assert "</s>" in lens.inner_text()
    assert exception_texts(page) == []
    shot(page, artifacts_dir, "attention-overlay")
