"""The public upload limit (server option and uploader widgets) and the server's memory settings."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from streamlit import config
from streamlit.testing.v1 import AppTest

from dashboard.heap import release_freed_memory
from dashboard.public import LIMITS, upload_limit_mb
from dashboard.ui.upload_limit import SERVER_OPTION, enforce_upload_limit

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def server_option():
    """Streamlit's upload option put back after the test (it is process-wide)."""
    before = config.get_option(SERVER_OPTION)
    yield
    config.set_option(SERVER_OPTION, before)


def test_the_limit_applies_in_public_mode_only() -> None:
    assert upload_limit_mb({"VLMLAB_PUBLIC": "1"}) == LIMITS.max_upload_mb
    assert upload_limit_mb({"SPACE_ID": "someone/space"}) == LIMITS.max_upload_mb
    assert upload_limit_mb({}) is None
    assert upload_limit_mb({"SPACE_ID": "someone/space", "VLMLAB_PUBLIC": "0"}) is None


def test_public_mode_lowers_the_servers_upload_option(monkeypatch, server_option) -> None:
    config.set_option(SERVER_OPTION, 25)  # .streamlit/config.toml's value
    monkeypatch.setenv("VLMLAB_PUBLIC", "1")
    enforce_upload_limit()
    assert config.get_option(SERVER_OPTION) == LIMITS.max_upload_mb < 25


def test_an_operators_lower_limit_stands_and_local_use_is_unchanged(monkeypatch, server_option) -> None:
    monkeypatch.setenv("VLMLAB_PUBLIC", "1")
    config.set_option(SERVER_OPTION, 2)  # e.g. STREAMLIT_SERVER_MAX_UPLOAD_SIZE=2
    enforce_upload_limit()
    assert config.get_option(SERVER_OPTION) == 2
    monkeypatch.setenv("VLMLAB_PUBLIC", "0")
    config.set_option(SERVER_OPTION, 25)
    enforce_upload_limit()
    assert config.get_option(SERVER_OPTION) == 25


def _uploader_page(run_dir: str) -> None:
    from pathlib import Path

    from dashboard.ui.evalset_input import choose_eval_set_or_upload

    choose_eval_set_or_upload("t", Path(run_dir))


@pytest.mark.parametrize(("public", "expected_mb"), [("1", LIMITS.max_upload_mb), ("0", None)])
def test_the_eval_set_uploader_tells_the_browser_the_limit(monkeypatch, tmp_path, public, expected_mb) -> None:
    """The browser refuses a larger file before sending it ("File must be 8.0MB or smaller")."""
    monkeypatch.setenv("VLMLAB_PUBLIC", public)
    monkeypatch.setenv("VLMLAB_RUNS_ROOT", str(tmp_path))
    (tmp_path / "run").mkdir()
    app = AppTest.from_function(_uploader_page, args=(str(tmp_path / "run"),)).run()
    assert not app.exception
    uploaders = [e for e in app.get("file_uploader")]
    assert len(uploaders) == 1
    proto = uploaders[0].proto
    assert proto.max_upload_size_mb == (expected_mb or config.get_option(SERVER_OPTION))
    assert (f"up to {LIMITS.max_upload_mb} MB" in proto.help) == (expected_mb is not None)


def test_the_server_starts_with_two_malloc_arenas_wherever_it_is_launched() -> None:
    """Dockerfile, scripts/launch.sh and the load drive (which measures the server as deployed) agree."""
    from bench.abusive_load import DEPLOYED_ENV

    docker = (REPO / "Dockerfile").read_text()
    launch = (REPO / "scripts" / "launch.sh").read_text()
    assert re.search(r"^ENV MALLOC_ARENA_MAX=(\d+)$", docker, re.M).group(1) == DEPLOYED_ENV["MALLOC_ARENA_MAX"]
    assert re.search(r'MALLOC_ARENA_MAX="\$\{MALLOC_ARENA_MAX:-(\d+)\}"', launch).group(1) == \
        DEPLOYED_ENV["MALLOC_ARENA_MAX"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_freed_memory_can_be_released() -> None:
    blocks = [bytearray(1 << 20) for _ in range(64)]
    del blocks
    assert isinstance(release_freed_memory(), bool)  # callable on glibc; never raises


@pytest.mark.parametrize(("public", "bound"), [("1", LIMITS.decoded_cache_pixels), ("0", 2 * LIMITS.max_upload_pixels)])
def test_the_decode_cache_is_smaller_in_public_mode(monkeypatch, public, bound) -> None:
    """Many identities uploading distinct images fill the cache; in public mode it holds 128 MB, not 512 MB."""
    from dashboard.ui.image_input import decoded_images

    monkeypatch.setenv("VLMLAB_PUBLIC", public)
    decoded_images.clear()
    try:
        assert decoded_images().max_total_pixels == bound
    finally:
        decoded_images.clear()
    assert LIMITS.decoded_cache_pixels < 2 * LIMITS.max_upload_pixels
