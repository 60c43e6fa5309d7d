"""The server log of a first launch stays readable: a demo build adds no Streamlit or transformers noise.

The server is started as ``scripts/launch.sh`` starts it (``streamlit run Home.py`` with
``VLMLAB_DEMO_AUTOBUILD=1`` and the offline settings) on an empty runs root; one session opens Home,
which starts the build (test preset). Once its first checkpoint is saved, the build's spawned
batch-rendering worker has started and fed training, so whatever it printed is in the log.

Failed before the fixes (issue 37): the worker re-imported ``__main__`` — which Streamlit sets to
``Home.py`` — and so ran the whole app without a session (~40 "missing ScriptRunContext" warnings
per build); and ``dashboard/demo/modeling.py`` named ``CLIPImageProcessor``, whose torchvision
fallback warning then printed in the server and again in the worker.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bench.load_test import run_in_thread
from bench.protocol_client import ProtocolSession
from tests.browser.browser_kit import ARTIFACTS, StreamlitServer

pytestmark = pytest.mark.slow

LAUNCH_ENV = {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",  # what scripts/launch.sh exports
              "VLMLAB_DEMO_AUTOBUILD": "1", "VLMLAB_DEMO_PRESET": "test", "VLMLAB_MEMORY_BUDGET": "1GB"}
FIRST_CHECKPOINT_S = 1800  # ≈ 15 s on a quiet 2-core machine; far longer on a busy one


def _open_home(url: str) -> str:
    async def drive() -> str:
        async with ProtocolSession(url) as session:
            run = await session.open()
            assert run.status == "FINISHED_SUCCESSFULLY" and not run.errors(), run.errors()
            return run.text()
    return run_in_thread(drive())


def _wait_for_first_checkpoint(demo: Path, server: StreamlitServer) -> None:
    deadline = time.monotonic() + FIRST_CHECKPOINT_S
    while not any(demo.glob("checkpoint-*/trainer_state.json")):
        assert server.process.poll() is None, "the server exited during the build"
        assert time.monotonic() < deadline, f"no checkpoint in {FIRST_CHECKPOINT_S} s"
        time.sleep(1.0)


def test_a_first_launch_build_leaves_no_session_warnings_and_no_repeated_torchvision_warning(tmp_path: Path):
    root = tmp_path / "runs"
    root.mkdir()
    ARTIFACTS.mkdir(exist_ok=True)
    server = StreamlitServer(root, tmp_path / "data", ARTIFACTS / "streamlit-launch-build.log", extra_env=LAUNCH_ENV)
    try:
        home = _open_home(server.url)
        assert "Checkpoints appear in the sidebar" in home  # the first view started the build: nobody pressed anything
        _wait_for_first_checkpoint(root / "demo", server)
    finally:
        server.stop()
    log = server.log_path.read_text(encoding="utf-8")
    assert log.count("demo build started into") == 1, log[-3000:]
    assert "missing ScriptRunContext" not in log, f"{log.count('missing ScriptRunContext')} warnings"
    assert "without `streamlit run`" not in log and "streamlit run [FILE_NAME]" not in log
    assert log.count("requires torchvision") == 0, log[-3000:]
