"""Public mode in a real browser: a Streamlit-SDK Space's first visitors, and history per visitor.

The Space route: an empty runs root, public mode on (``SPACE_ID`` set as a Space sets it), the
demo run built from Home's button. Two visitors click *Build* at the same moment: one build
runs, both watch it and both end on Home showing the demo, no error, no reload.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.browser.browser_kit import (
    StreamlitServer,
    app_text,
    exception_texts,
    fresh_page,
    goto,
    open_page,
    selected_value,
    settle,
    shot,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SPACE_ENV = {"SPACE_ID": "vlmlab/test-space", "VLMLAB_DEMO_PRESET": "test", "VLMLAB_MEMORY_BUDGET": "1GB"}


@pytest.fixture()
def space_server(tmp_path, artifacts_dir):
    runs_root = tmp_path / "runs"
    runs_root.mkdir()
    srv = StreamlitServer(runs_root, tmp_path / "data", artifacts_dir / "public-build-server.log", extra_env=SPACE_ENV)
    yield srv
    srv.stop()


@pytest.fixture()
def public_server(demo_runs_root, tmp_path, artifacts_dir):
    srv = StreamlitServer(demo_runs_root, tmp_path / "data", artifacts_dir / "public-history-server.log",
                          extra_env={"VLMLAB_PUBLIC": "1", "VLMLAB_MEMORY_BUDGET": "1GB"})
    yield srv
    srv.stop()


def test_two_visitors_build_the_demo_at_once(browser, space_server, artifacts_dir):
    with fresh_page(browser) as a, fresh_page(browser) as b:
        for page in (a, b):
            goto(page, space_server)
            page.locator('[data-testid="stButton"] button').filter(has_text="Build the demo run").first.wait_for()
        assert "visitor=" in a.url and "visitor=" in b.url and a.url != b.url
        buttons = [p.locator('[data-testid="stButton"] button').filter(has_text="Build the demo run").first
                   for p in (a, b)]
        a.evaluate("() => 0")  # both pages ready; click as close together as Playwright allows
        buttons[0].click(no_wait_after=True)
        buttons[1].click(no_wait_after=True)
        for page in (a, b):
            page.get_by_text("one build for everyone").first.wait_for(timeout=60_000)
        shot(b, artifacts_dir, "public-build-progress")
        for page in (a, b):  # the demo appears without a reload (while it trains, then finished)
            page.get_by_text("Built the demo run").first.wait_for(timeout=600_000)
            settle(page)
        for name, page in (("a", a), ("b", b)):
            text = app_text(page)
            assert "Checkpoints" in text and "Open a page" in text, text[:1500]
            assert exception_texts(page) == [], exception_texts(page)
            assert "AttributeError" not in text and "failed" not in text.lower(), text[:1500]
            assert selected_value(page, "Run", scope='[data-testid="stSidebar"]').startswith("demo")
            shot(page, artifacts_dir, f"public-build-done-{name}")
        assert "Built the demo run" in app_text(a) + app_text(b)
    log = space_server.log_path.read_text()
    assert len(re.findall(r"demo build started into", log)) == 1, log[-3000:]
    root = space_server.runs_root
    assert sorted(p.name for p in root.iterdir()) == ["demo"]  # no staging folder left behind
    assert (root / "demo" / "eval" / "demo.jsonl").is_file()


def _generate(page, server, example_id: str, marker: str) -> None:
    goto(page, server)
    open_page(page, "Inference")
    page.locator('[data-testid="stButton"] button').filter(has_text=example_id).first.click()
    page.get_by_text(f"Example {example_id}").first.wait_for()
    settle(page)
    box = page.get_by_label("Prompt", exact=True)
    box.fill(f"what colour is the square ? {marker}")
    box.press("Control+Enter")
    settle(page)
    page.locator('[data-testid="stButton"] button').filter(has_text="Generate").first.click()
    page.get_by_text("Output tokens").first.wait_for(timeout=120_000)
    settle(page)


def _history(page) -> str:
    open_page(page, "Inference")
    page.locator('[data-testid="stButtonGroup"] button').filter(has_text="History").first.click()
    settle(page)
    page.get_by_text("record(s) shown").first.wait_for()
    return app_text(page)


def _export_json(page) -> list[dict]:
    with page.expect_download() as info:
        page.locator('[data-testid="stDownloadButton"] button').filter(has_text="Export JSON").first.click()
    return json.loads(Path(info.value.path()).read_text())


def test_visitors_see_only_their_own_history(browser, public_server, demo_runs_root, artifacts_dir):
    example_id = json.loads((demo_runs_root / "demo" / "eval" / "demo.jsonl").read_text().splitlines()[0])["id"]
    with fresh_page(browser) as a, fresh_page(browser) as b:
        _generate(a, public_server, example_id, "a-secret")
        _generate(b, public_server, example_id, "b-asks")
        prompt_a, prompt_b = ("what colour is the square ? a-secret", "what colour is the square ? b-asks")
        text_a = _history(a)
        assert "Public demo" in text_a and "1 record(s) shown · 1 stored" in text_a, text_a[:1500]
        assert prompt_a in selected_value(a, "Record")
        assert [r["prompt"] for r in _export_json(a)] == [prompt_a]
        text_b = _history(b)
        assert "1 record(s) shown · 1 stored" in text_b, text_b[:1500]
        assert prompt_b in selected_value(b, "Record")
        search = b.get_by_label("Search prompt / output", exact=True)
        search.fill("a-secret")
        search.press("Enter")
        b.get_by_text("No generations recorded yet").first.wait_for()
        search.fill("")
        search.press("Enter")
        b.get_by_text("1 record(s) shown").first.wait_for()
        settle(b)
        exported = _export_json(b)
        assert [r["prompt"] for r in exported] == [prompt_b]
        assert all("visitor" not in r for r in exported)
        shot(b, artifacts_dir, "public-history-b")
        b.locator('[data-testid="stButton"] button').filter(has_text="Delete all 1 shown").first.click()
        b.locator('[data-testid="stButton"] button').filter(has_text="Yes, delete").first.click()  # confirm
        b.get_by_text("No generations recorded yet").first.wait_for()
        a.reload()  # A's row survived B's "delete all", and A's token survives the refresh
        settle(a)
        assert "1 record(s) shown · 1 stored" in _history(a)
        assert [r["prompt"] for r in _export_json(a)] == [prompt_a]


def test_local_mode_keeps_one_shared_history(browser, server, demo_runs_root):
    example_id = json.loads((demo_runs_root / "demo" / "eval" / "demo.jsonl").read_text().splitlines()[0])["id"]
    with fresh_page(browser) as a, fresh_page(browser) as b:
        _generate(a, server, example_id, "shared-row")
        assert "visitor=" not in a.url
        goto(b, server)
        text = _history(b)
        assert "Public demo" not in text
        assert "shared-row" in selected_value(b, "Record")  # newest row, made by the other session
