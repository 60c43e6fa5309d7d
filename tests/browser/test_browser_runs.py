"""Runs as others write them, in a real browser: a resumed run's Timeline says so and draws one
monotonic line; a run nested two folders deep opens from a copied link (issue 31)."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from dashboard.runs.synthetic import write_run
from tests.browser.browser_kit import (
    StreamlitServer,
    app_text,
    choose_select,
    exception_texts,
    fresh_page,
    goto,
    open_page,
    selected_value,
    settle,
    shot,
)

SIDEBAR = '[data-testid="stSidebar"]'
OTHER = "zz_older/sweep_lr3e-4_seed2_9f3c1b7e"

LOSS_X_JS = """() => {
    for (const gd of document.querySelectorAll('.js-plotly-plot')) {
        const trace = (gd._fullData || []).find(t => t.name === 'loss');
        if (trace) return Array.from(trace.x);
    }
    return null;
}"""


@pytest.fixture(scope="module")
def runs_server(resumed_run_root: Path, tmp_path_factory: pytest.TempPathFactory,
                artifacts_dir: Path) -> Iterator[StreamlitServer]:
    root = tmp_path_factory.mktemp("browser-runs") / "runs"
    shutil.copytree(resumed_run_root / "proj", root / "proj")
    old = write_run(root / OTHER, n_steps=300, save_every=100)
    then = time.time() - 86_400
    for path in [old, *old.rglob("*")]:
        os.utime(path, (then, then))
    srv = StreamlitServer(root, tmp_path_factory.mktemp("browser-runs-data"), artifacts_dir / "streamlit-runs.log")
    yield srv
    srv.stop()


def test_resumed_run_shows_the_notice_and_a_monotonic_line(browser, runs_server, artifacts_dir) -> None:
    with fresh_page(browser) as page:
        goto(page, runs_server)
        settle(page)
        assert "proj/resumed" in selected_value(page, "Run", scope=SIDEBAR)  # the newest run
        open_page(page, "Timeline")
        page.wait_for_selector(".js-plotly-plot .scatterlayer path")
        text = app_text(page)
        assert "Resumed training" in text and "steps 9–14 logged twice, showing the later attempt" in text
        # Draw loss from the TensorBoard events: the log that holds both attempts.
        page.locator('[data-testid="stRadio"] label').filter(has_text="TensorBoard events").first.click()
        page.get_by_text("loss is drawn from TensorBoard events", exact=False).first.wait_for()
        settle(page)
        xs = page.evaluate(LOSS_X_JS)
        assert xs is not None and len(xs) == 20
        assert all(b > a for a, b in pairwise(xs)), xs  # main: 9–14 twice, a zig-zag
        assert not exception_texts(page)
        shot(page, artifacts_dir, "runs-resumed-timeline")


def test_nested_run_opens_from_a_copied_link(browser, runs_server, artifacts_dir) -> None:
    with fresh_page(browser) as page:
        goto(page, runs_server)
        settle(page)
        choose_select(page, "Run", OTHER, scope=SIDEBAR)
        page.wait_for_function("(v) => new URL(location.href).searchParams.get('run') === v", arg=OTHER)
        link = page.url
        assert parse_qs(urlparse(link).query)["run"] == [OTHER]
    with fresh_page(browser) as fresh:
        fresh.goto(link)
        settle(fresh)
        assert OTHER in selected_value(fresh, "Run", scope=SIDEBAR)
        assert f"Run {OTHER}" in app_text(fresh)
        assert not exception_texts(fresh)
        assert "not a run under the runs root" not in app_text(fresh)
        shot(fresh, artifacts_dir, "runs-nested-link")
