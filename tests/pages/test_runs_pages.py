"""AppTest: nested runs, a resumed run, results and the runs table on Home; restarts and sources on
the Timeline (issue 31)."""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from dashboard.runs.synthetic import write_run
from dashboard.ui import state
from tests.pages.test_timeline import _chart_spec

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def nested_root(resumed_run_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "runs"
    shutil.copytree(resumed_run_root / "proj", root / "proj")
    old = write_run(root / "zz_older" / "sweep_lr3e-4_seed2_9f3c1b7e", n_steps=300, save_every=100, best_step=200)
    shutil.rmtree(old / "checkpoint-200")  # deleted by save_total_limit
    then = time.time() - 86_400
    for path in [old, *old.rglob("*")]:
        os.utime(path, (then, then))
    monkeypatch.setenv("VLMLAB_RUNS_ROOT", str(root))
    monkeypatch.setenv("VLMLAB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("VLMLAB_MEMORY_BUDGET", "1GB")
    monkeypatch.chdir(REPO_ROOT)
    return root


def _plain(elements) -> list[str]:
    """Texts as shown: run-derived text reaches Markdown widgets backslash-escaped."""
    return [re.sub(r"\\(.)", r"\1", e.value) for e in elements]


def _app(params: dict[str, str] | None = None) -> AppTest:
    at = AppTest.from_file(str(REPO_ROOT / "Home.py"), default_timeout=120)
    for key, value in (params or {}).items():
        at.query_params[key] = value
    at.run()
    assert not at.exception, at.exception
    return at


def test_home_opens_the_newest_nested_run_with_restart_results_and_scores(nested_root: Path) -> None:
    at = _app()
    resumed = nested_root / "proj" / "resumed"
    assert at.session_state[state.RUN_PATH] == str(resumed.resolve())  # newest, not alphabetically last
    assert at.query_params["run"] in ("proj/resumed", ["proj/resumed"])
    assert any("Resumed training" in i and "steps 9–14 logged twice" in i for i in _plain(at.info))
    assert any("proj/resumed · 6 checkpoint(s)" in c for c in _plain(at.sidebar.caption))
    assert any(h.value == "Results" for h in at.subheader)
    frames = [d.value for d in at.dataframe]
    checkpoints = frames[0]
    assert "eval_loss" in checkpoints.columns
    state_log = json.loads((resumed / "trainer_state.json").read_text())["log_history"]
    at_12 = [e["eval_loss"] for e in state_log if e.get("step") == 12 and "eval_loss" in e][-1]
    assert checkpoints.set_index("checkpoint").loc["checkpoint-12", "eval_loss"] == pytest.approx(at_12)
    results = next(f for f in frames if list(f.columns) == ["metric", "value", "source"])
    assert "train_loss" in set(results["metric"]) and "total_flos" in set(results["metric"])
    runs = next(f for f in frames if "best checkpoint" in f.columns)
    assert list(runs["run"]) == ["proj/resumed", "zz_older/sweep_lr3e-4_seed2_9f3c1b7e"]


def test_home_names_the_deleted_best_checkpoint(nested_root: Path) -> None:
    at = _app({"run": "zz_older/sweep_lr3e-4_seed2_9f3c1b7e"})
    assert at.session_state[state.RUN_PATH].endswith("sweep_lr3e-4_seed2_9f3c1b7e")
    assert any("checkpoint-200, was deleted" in c and "save_total_limit" in c for c in _plain(at.caption)), \
        _plain(at.caption)


def test_filtering_the_runs_table(nested_root: Path) -> None:
    at = _app()
    at.text_input(key="home.runs_filter").set_value("SEED2").run()
    runs = next(d.value for d in at.dataframe if "best checkpoint" in d.value.columns)
    assert list(runs["run"]) == ["zz_older/sweep_lr3e-4_seed2_9f3c1b7e"]


def _loss_traces(at: AppTest) -> dict[str, list]:
    return {t["name"]: t["x"] for t in _chart_spec(at)["data"] if t.get("name", "").startswith("loss")
            and "smoothed" not in t["name"]}


def test_timeline_says_resumed_draws_the_surviving_run_and_splits_attempts(nested_root: Path) -> None:
    at = _app()
    at.switch_page("pages/3_Timeline.py").run()
    assert not at.exception, at.exception
    assert any("Resumed training" in i for i in _plain(at.info))
    source = next(r for r in at.radio if r.label == "Source of loss")
    assert any("drawn from trainer_state.json" in c for c in _plain(at.caption))
    source.set_value("tensorboard").run()
    assert any("loss is drawn from TensorBoard events" in c for c in _plain(at.caption))
    steps = _loss_traces(at)["loss"]
    assert steps == sorted(steps) and len(steps) == len(set(steps)) == 20
    next(t for t in at.toggle if t.label == "Draw each training attempt as its own trace").set_value(True).run()
    traces = _loss_traces(at)
    assert set(traces) == {"loss · attempt 1", "loss · attempt 2"}
    assert (min(traces["loss · attempt 2"]), max(traces["loss · attempt 1"])) == (9, 14)
    assert np.all(np.diff(traces["loss · attempt 1"]) > 0)
