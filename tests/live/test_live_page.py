"""The Timeline's *Live scoring* switch (AppTest): one watcher per run, the score line grows by itself."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dashboard.ui import state
from dashboard.ui.live_scoring_view import live_registry

REPO_ROOT = Path(__file__).resolve().parents[2]
DEADLINE_S = 300.0
N_EXAMPLES = 6


@pytest.fixture()
def live_run(demo_run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The demo run with only its first checkpoint so far and a 6-example eval set."""
    root = tmp_path / "runs"
    run = root / "demo"
    shutil.copytree(demo_run_dir, run, ignore=shutil.ignore_patterns("checkpoint-*", "eval_results"))
    first = min(demo_run_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    shutil.copytree(first, run / first.name)
    jsonl = run / "eval" / "demo.jsonl"
    jsonl.write_text("".join(jsonl.read_text().splitlines(keepends=True)[:N_EXAMPLES]))
    monkeypatch.setenv("VLMLAB_RUNS_ROOT", str(root))
    monkeypatch.setenv("VLMLAB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("VLMLAB_MEMORY_BUDGET", "1GB")
    monkeypatch.delenv("VLMLAB_RAY_ADDRESS", raising=False)
    monkeypatch.chdir(REPO_ROOT)
    yield run
    registry = live_registry()
    registry.stop_all()
    job = registry.job(run)
    if job is not None:
        job.thread.join(60)


def _timeline(run: Path) -> AppTest:
    at = AppTest.from_file(str(REPO_ROOT / "Home.py"), default_timeout=120)
    at.run()
    if at.session_state[state.RUN_PATH] != str(run.resolve()):
        at.sidebar.selectbox(key="_w_sidebar_run").set_value(str(run.resolve())).run()
    at.switch_page("pages/3_Timeline.py").run()
    assert not at.exception, at.exception
    return at


def _score_steps(at: AppTest) -> list[int]:
    charts = at.get("plotly_chart")
    if not charts:
        return []
    spec = json.loads(charts[0].proto.spec)
    trace = next((t for t in spec["data"] if t.get("name") == "demo · exact_match (saved score)"), None)
    if trace is None:
        return []
    x = trace["x"]
    if isinstance(x, dict):  # Plotly 7: typed array
        import base64

        import numpy as np

        x = np.frombuffer(base64.b64decode(x["bdata"]), dtype=np.dtype(x["dtype"])).tolist()
    return [int(v) for v in x]


def _until_steps(at: AppTest, want: list[int]) -> None:
    end = time.monotonic() + DEADLINE_S
    while time.monotonic() < end:
        at.run()
        assert not at.exception, at.exception
        if _score_steps(at) == want:
            return
        time.sleep(0.5)
    raise AssertionError(f"score line never reached steps {want}; last {_score_steps(at)}; "
                         f"status {[c.value for c in at.caption if 'Live scoring' in c.value]}")


def _switch(at: AppTest):
    return next(t for t in at.toggle if t.label == "Live scoring")


def test_live_switch_scores_new_checkpoints_and_is_one_watcher_for_all_sessions(live_run: Path,
                                                                                 demo_run_dir: Path) -> None:
    first, second = _timeline(live_run), _timeline(live_run)
    assert _switch(first).value is False and _score_steps(first) == []
    _switch(first).set_value(True).run()
    assert not first.exception, first.exception
    job = live_registry().job(live_run)
    assert job is not None and job.on
    assert first.session_state["tl.live"] is True  # the chart's live refresh comes on with it
    assert any(c.value.startswith("Live scoring: ") for c in first.caption)

    first_step = int(next(live_run.glob("checkpoint-*")).name.split("-")[1])
    _until_steps(first, [first_step])

    second.run()  # another session: the same watcher is on there too, nothing started twice
    assert _switch(second).value is True
    _switch(second).set_value(True).run()
    assert live_registry().job(live_run) is job

    # Training goes on: a new checkpoint lands and the score line grows in both sessions.
    later = sorted(demo_run_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))[1]
    shutil.copytree(later, live_run / later.name)
    _until_steps(first, [first_step, int(later.name.split("-")[1])])
    _until_steps(second, [first_step, int(later.name.split("-")[1])])
    assert job.status.scored == ("checkpoint-" + str(first_step), later.name)

    _switch(second).set_value(False).run()  # off for everyone
    first.run()
    assert _switch(first).value is False
    job.thread.join(60)
    assert not job.thread.is_alive()
