"""Screens that read at a glance (issue 37): every page, in its main states, at 1400×900 and 1920×1080.

On each state the test fails when
- a metric value or label, a button label or a selectbox value is cut off (``scrollWidth > clientWidth``
  on an element that clips its overflow: Streamlit's ellipsis),
- the element a click produced (the Timeline's "Selected: …" panel, the answer and its timings, the
  capture's output) lies outside the viewport,
- a chart's legend overlaps an axis title (bounding boxes of ``.legend`` and ``.xtitle``/``.ytitle`` in
  the Plotly SVG).
The Attention page's states include the map check (*Check this map*: deletion and insertion curves, verdict).
Screenshots of every state at both sizes go to ``test-artifacts/layout-<width>-<state>.png``.

Fails on today's main: at 1400 px the Inference timings read "11…", the gallery buttons "0‥", the
sidebar checkpoint "checkpoint-600 (step 6…"; the Timeline's selection panel appears above the chart,
out of view after a marker click; the pointing chart's legend sits on its "step" title.
"""

from __future__ import annotations

import json
from contextlib import suppress
from pathlib import Path

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.browser.browser_kit import click_example, exception_texts, goto, open_page, settle, shot

pytestmark = pytest.mark.browser

SIZES = [(1400, 900), (1920, 1080)]

# Text elements that must never be cut: metric values and labels, button labels, selectbox values.
TEXT_SELECTORS = ['[data-testid="stMetricValue"]', '[data-testid="stMetricLabel"]', '[data-testid="stButton"] button',
                  '[data-testid="stDownloadButton"] button', '[data-testid="stSelectbox"]']
TRUNCATED_JS = """(selectors) => {
    const out = [];
    for (const selector of selectors) {
        for (const root of document.querySelectorAll(selector)) {
            for (const el of [root, ...root.querySelectorAll('*')]) {
                if (!el.clientWidth || !el.getClientRects().length) continue;  // hidden (closed expander…)
                const style = getComputedStyle(el);
                const clips = el.tagName === 'INPUT' || ['hidden', 'clip'].includes(style.overflowX);
                if (clips && el.scrollWidth > el.clientWidth + 1) {
                    out.push(`${selector}: "${(el.value || root.innerText || '').trim().slice(0, 60)}" `
                             + `needs ${el.scrollWidth} px, has ${el.clientWidth}`);
                    break;
                }
            }
        }
    }
    return out;
}"""
LEGEND_JS = """() => {
    const out = [];
    const overlap = (a, b) => a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;
    document.querySelectorAll('.js-plotly-plot').forEach((plot, i) => {
        const legend = plot.querySelector('.legend');
        if (!legend) return;
        const l = legend.getBoundingClientRect();
        if (!l.width || !l.height) return;
        plot.querySelectorAll('text[class*="xtitle"], text[class*="ytitle"], text.gtitle').forEach(t => {
            const r = t.getBoundingClientRect();
            if (r.width && r.height && overlap(l, r))
                out.push(`chart ${i}: legend over "${t.textContent}"`);
        });
    });
    return out;
}"""


def check(page, state: str, failures: list[str], artifacts: Path, size: tuple[int, int]) -> None:
    """Run the three checks on the settled page and take its screenshot."""
    settle(page)
    page.wait_for_function("() => [...document.querySelectorAll('.js-plotly-plot')]"
                           ".every(p => p.querySelector('.main-svg'))", timeout=60_000)
    failures += [f"{state}: cut off: {t}" for t in page.evaluate(TRUNCATED_JS, TEXT_SELECTORS)]
    failures += [f"{state}: {t}" for t in page.evaluate(LEGEND_JS)]
    failures += [f"{state}: exception {t[:200]}" for t in exception_texts(page)]
    shot(page, artifacts, f"layout-{size[0]}-{state}")  # what the viewport shows
    # …and the whole page: the app scrolls inside its own container, so grow the viewport for one shot.
    tall = page.evaluate("() => Math.max(...[...document.querySelectorAll('[data-testid=\"stMain\"], "
                         "[data-testid=\"stAppViewContainer\"]')].map(e => e.scrollHeight), 0)")
    page.set_viewport_size({"width": size[0], "height": min(max(tall, size[1]), 9000)})
    settle(page)
    shot(page, artifacts, f"layout-{size[0]}-{state}-full")
    page.set_viewport_size({"width": size[0], "height": size[1]})
    settle(page)


def in_view(page, locator, state: str, what: str, failures: list[str]) -> None:
    """The element a click produced must be visible: its top inside the viewport, at least 40 px of it shown."""
    box = locator.bounding_box()
    height = page.viewport_size["height"]
    if box is None or box["y"] < 0 or box["y"] > height - 40:
        failures.append(f"{state}: {what} outside the viewport (box {box}, viewport height {height})")


def first_example(runs_root: Path) -> str:
    return json.loads((runs_root / "demo" / "eval" / "demo.jsonl").read_text().splitlines()[0])["id"]


def button(page, text: str):
    return page.locator('[data-testid="stButton"] button').filter(has_text=text).first


CHECKPOINT_POINTS_JS = """() => {
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


def click_marker(page, index: int) -> str:
    """Click checkpoint marker ``index`` of the first chart (as a person does: point, then click)."""
    page.locator(".js-plotly-plot").first.scroll_into_view_if_needed()
    target = page.evaluate(CHECKPOINT_POINTS_JS)[index]["name"]
    selected = page.get_by_text(f"Selected: {target}").first
    for attempt in range(3):  # a click that lands while Plotly is still re-laying out is dropped
        point = next(p for p in page.evaluate(CHECKPOINT_POINTS_JS) if p["name"] == target)
        page.mouse.move(point["x"], point["y"], steps=4)
        page.mouse.click(point["x"], point["y"])
        try:
            selected.wait_for(timeout=20_000)
            return target
        except PlaywrightTimeout:
            if attempt == 2:
                raise
    return target


@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_every_page_reads_at_a_glance(page, server, artifacts_dir, demo_runs_root, size):
    width, height = size
    page.set_viewport_size({"width": width, "height": height})
    example = first_example(demo_runs_root)
    failures: list[str] = []
    goto(page, server)
    check(page, "home", failures, artifacts_dir, size)

    open_page(page, "Inference")
    check(page, "inference-gallery", failures, artifacts_dir, size)
    click_example(page, example)
    button(page, "Generate").click()
    page.get_by_text("Output tokens").first.wait_for(timeout=180_000)
    check(page, "inference-generated", failures, artifacts_dir, size)
    in_view(page, page.locator('[data-testid="stMetric"]').first, "inference-generated", "the timings", failures)

    open_page(page, "Comparison")
    click_example(page, example)
    button(page, "checkpoint(s)").click()
    button(page, "All outputs cached").wait_for(timeout=300_000)
    check(page, "comparison-outputs", failures, artifacts_dir, size)

    open_page(page, "Timeline")
    page.wait_for_selector(".js-plotly-plot .scatterlayer path.point")
    check(page, "timeline", failures, artifacts_dir, size)
    name = click_marker(page, 1)
    settle(page)
    # The panel scrolls itself into view; its first line names the checkpoint.
    panel = page.get_by_text(f"Selected: {name}").first
    with suppress(PlaywrightTimeout):  # poll (with a deadline) until it is in view; in_view judges
        page.wait_for_function("(el) => { const r = el.getBoundingClientRect(); "
                               "return r.top >= 0 && r.top <= window.innerHeight - 40; }",
                               arg=panel.element_handle(), timeout=20_000, polling=100)
    in_view(page, panel, "timeline-selected", "the Selected panel", failures)
    check(page, "timeline-selected", failures, artifacts_dir, size)

    open_page(page, "Attention")
    click_example(page, example)
    button(page, "Generate and capture").click()
    page.get_by_text("Generated token").first.wait_for(timeout=180_000)
    settle(page)
    in_view(page, page.locator('[data-testid="stMarkdownContainer"]').filter(has_text="Output of checkpoint").first,
            "attention-captured", "the captured output", failures)
    check(page, "attention-captured", failures, artifacts_dir, size)
    faith = button(page, "Check this map")
    faith.scroll_into_view_if_needed()
    faith.click()
    verdict = page.locator('[data-testid="stMetric"]').filter(has_text="Beats random orders").first
    verdict.wait_for(timeout=300_000)
    settle(page)
    in_view(page, page.locator(".js-plotly-plot").filter(has_text="Inserting patches").first,
            "attention-faithfulness", "the insertion curve", failures)
    check(page, "attention-faithfulness", failures, artifacts_dir, size)
    across = button(page, "Show across checkpoints")
    across.scroll_into_view_if_needed()
    across.click()
    page.locator('[data-testid="stImageCaption"]').filter(has_text="→").first.wait_for(timeout=300_000)
    page.get_by_label("Examples per checkpoint").fill("2")
    page.get_by_label("Examples per checkpoint").press("Enter")
    settle(page)
    button(page, "Score every checkpoint").click()
    page.locator(".js-plotly-plot").filter(has_text="pointing score").first.wait_for(timeout=300_000)
    check(page, "attention-across-and-pointing", failures, artifacts_dir, size)
    assert not failures, "\n".join(failures)
