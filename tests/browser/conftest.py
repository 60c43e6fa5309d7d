"""Fixtures for the real-browser tests; the harness itself lives in :mod:`tests.browser.browser_kit`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser.browser_kit import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, StreamlitServer, fresh_page


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def server(demo_runs_root: Path, tmp_path_factory: pytest.TempPathFactory,
           artifacts_dir: Path) -> Iterator[StreamlitServer]:
    data_dir = tmp_path_factory.mktemp("browser-data")
    srv = StreamlitServer(demo_runs_root, data_dir, artifacts_dir / "streamlit-server.log")
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture()
def page(browser, server: StreamlitServer) -> Iterator[object]:
    with fresh_page(browser) as pg:
        yield pg
