"""Inference at 1500×1000: after picking an example, Generate and the answer are visible without scrolling."""

from __future__ import annotations

from tests.browser.browser_kit import click_button, goto, open_page, settle, shot

WIDTH, HEIGHT = 1500, 1000


def test_generate_and_answer_fit_the_viewport(page, server, artifacts_dir):
    page.set_viewport_size({"width": WIDTH, "height": HEIGHT})
    goto(page, server)
    open_page(page, "Inference")
    page.locator('[data-testid="stButton"] button').filter(has_text="0000").first.click()
    page.wait_for_selector('button:has-text("Choose another example")')
    settle(page)
    assert page.locator('[data-testid="stButton"] button').filter(has_text="00011").count() == 0  # collapsed
    generate = page.locator('[data-testid="stButton"] button').filter(has_text="Generate").first
    box = generate.bounding_box()
    assert box is not None and box["y"] + box["height"] <= HEIGHT, box  # was: ~1,800 px down
    click_button(page, "Generate")
    answer = page.get_by_text("Answer", exact=False).first
    answer.wait_for(timeout=90_000)
    settle(page)
    shot(page, artifacts_dir, "inference-layout-1500x1000")
    scroll = page.evaluate("""() => window.scrollY
        + (document.querySelector('[data-testid="stMain"]') || {scrollTop: 0}).scrollTop""")
    assert scroll == 0, scroll
    box = page.locator('[data-testid="stMarkdownContainer"]').filter(has_text="Answer").first.bounding_box()
    assert box is not None and box["y"] + box["height"] <= HEIGHT, box
    stats = page.locator('[data-testid="stMetric"]').first.bounding_box()
    assert stats is not None and stats["y"] + stats["height"] <= HEIGHT, stats
