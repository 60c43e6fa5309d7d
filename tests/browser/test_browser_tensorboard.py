"""In Chromium: a run logged with ``SummaryWriter.add_scalars`` shows two separate, exact curves."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser.browser_kit import StreamlitServer, exception_texts, fresh_page, goto, open_page, shot
from tests.pages.test_timeline_tensorboard import N, train_val, write_tb_run

pytestmark = pytest.mark.browser

TRACES_JS = """() => {
    const gd = document.querySelector('.js-plotly-plot');
    if (!gd || !gd._fullData) return null;
    return gd._fullData.filter(t => t.mode.includes('lines')).map(t => ({
        name: t.name, yaxis: t.yaxis, x: Array.from(t.x), y: Array.from(t.y),
        drawn: !!gd.querySelector('.trace' + t.uid + ' path.js-line'),
    }));
}"""


@pytest.fixture(scope="module")
def tb_server(tmp_path_factory: pytest.TempPathFactory, artifacts_dir: Path) -> Iterator[StreamlitServer]:
    root = tmp_path_factory.mktemp("tb-runs")
    write_tb_run(root / "tbrun")
    srv = StreamlitServer(root, tmp_path_factory.mktemp("tb-data"), artifacts_dir / "streamlit-tb-server.log")
    yield srv
    srv.stop()


@pytest.fixture()
def tb_page(browser, tb_server) -> Iterator[object]:
    with fresh_page(browser) as pg:  # not the demo server's page: this run is all it needs
        yield pg


def test_add_scalars_run_shows_two_exact_curves(tb_page, tb_server, artifacts_dir):
    page = tb_page
    goto(page, tb_server)
    open_page(page, "Timeline")
    page.wait_for_selector(".js-plotly-plot .scatterlayer path.js-line")
    traces = page.evaluate(TRACES_JS)
    shot(page, artifacts_dir, "timeline-add-scalars")
    raw = {t["name"]: t for t in traces if "smoothed" not in t["name"]}  # the logged values
    assert set(raw) == {"loss/train", "loss/val"}
    for name, k in (("loss/train", 0), ("loss/val", 1)):
        assert raw[name]["x"] == list(range(N)) and raw[name]["drawn"]
        assert raw[name]["y"] == [train_val(i)[k] for i in range(N)]
    assert {t["yaxis"] for t in traces} == {"y"}  # one chart (the tag 'loss'), two lines on it
    assert exception_texts(page) == []
