"""In Chromium: Markdown payloads in run files make no request leave for the host they name (issue 29 item 4).

A local HTTP listener on 127.0.0.1 plays the attacker's host. The runs root holds one run whose folder
name, eval-set file name, eval row ids/prompts/answers/tasks, trainer_state metric name and
``best_model_checkpoint``, TensorBoard tags and text summaries all carry ``![…](http://<listener>/…)``,
HTML, code spans and directives (:mod:`tests.hostile.markdown_corpus`). Every page is visited, the
gallery buttons and their tooltips shown, an example picked; then the listener must have received
nothing and the browser must have requested nothing from any host but the app's.

Fails on today's main: Home already shows a link to ``http://127.0.0.1:<listener>/bimg.png`` (escapes do not
stop GFM autolink literals), and the gallery buttons' labels are the raw eval row ids (Markdown images).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar
from urllib.parse import urlsplit

import pytest

from tests.browser.browser_kit import StreamlitServer, exception_texts, fresh_page, goto, open_page, settle, shot
from tests.hostile.markdown_corpus import MARKERS, build_markdown_run

pytestmark = pytest.mark.browser


class _Recorder(BaseHTTPRequestHandler):
    hits: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        type(self).hits.append(self.path)
        self.send_response(404)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def listener() -> Iterator[tuple[str, list[str]]]:
    hits: list[str] = []
    handler = type("Recorder", (_Recorder,), {"hits": hits})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{httpd.server_address[1]}", hits
    httpd.shutdown()


@pytest.fixture(scope="module")
def md_server(demo_runs_root: Path, listener, tmp_path_factory: pytest.TempPathFactory,
              artifacts_dir: Path) -> Iterator[StreamlitServer]:
    host, _ = listener
    root = tmp_path_factory.mktemp("md-runs")
    build_markdown_run(demo_runs_root / "demo", root, host)
    srv = StreamlitServer(root, tmp_path_factory.mktemp("md-data"), artifacts_dir / "streamlit-markdown-server.log")
    yield srv
    srv.stop()


def assert_no_live_markdown(page, host: str, where: str) -> None:
    """No element in the settled DOM points at the listener (an image, link or anything with a src/href)."""
    pointing = page.evaluate("""(host) => [...document.querySelectorAll('[src], [href], [srcset]')]
        .map(e => e.outerHTML.slice(0, 200)).filter(html => html.includes(host))""", host)
    assert not pointing, f"{where}: elements point at {host}: {pointing}"


def test_no_request_leaves_for_a_host_named_in_a_run_file(browser, md_server, listener, artifacts_dir):
    host, hits = listener
    named: list[str] = []  # what the browser asked of the host the run files name, or for a payload's file
    with fresh_page(browser) as page:
        page.on("request", lambda r: named.append(r.url) if urlsplit(r.url).netloc == host
                or any(f"{m}.png" in r.url for m in MARKERS) else None)
        goto(page, md_server)
        settle(page)
        assert_no_live_markdown(page, host, "Home")
        for title in ("Inference", "Comparison", "Timeline", "Attention"):
            open_page(page, title)
            if title in ("Inference", "Attention"):
                buttons = page.locator('[data-testid="stButton"] button').filter(has_text="idimg")
                buttons.first.wait_for(timeout=90_000)
                buttons.first.hover()  # the tooltip (help = the example's prompt) renders its Markdown
                page.locator('[data-testid="stTooltipContent"]').filter(has_text="pimg").first.wait_for()
                assert_no_live_markdown(page, host, f"{title}, gallery tooltip")
                if title == "Inference":
                    buttons.first.click()
                    page.get_by_text("Choose another example").first.wait_for(timeout=90_000)
                    settle(page)
            assert not exception_texts(page), exception_texts(page)
            assert_no_live_markdown(page, host, title)
            shot(page, artifacts_dir, f"markdown-payloads-{title.lower()}")
        # The payloads were on the pages, as text: the gallery id shows its literal "![idimg](http://…)".
        open_page(page, "Inference")
        text = page.locator('[data-testid="stMain"]').inner_text().replace("\u200c", "")  # invisible breakers
        assert f"![idimg](http://{host}/idimg.png) `idimg-code` <b>idimg-html</b> :red[idimg-red]" in text, text[:2000]
        goto(page, md_server)  # a new script run: anything still loading has been requested by now
        settle(page)
    assert not hits, f"the listener named in run files was contacted: {hits}"
    assert not named, f"the browser requested what run files name: {named}"
