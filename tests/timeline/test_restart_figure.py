"""The Timeline figure of a resumed run: one surviving line by default, each attempt on request,
sources overlaid when asked; best checkpoint and markers from the surviving values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dashboard.runs.run import load_run
from dashboard.runs.synthetic import write_checkpoint, write_event_file, write_json
from dashboard.timeline.figure import ChartOptions, build_figure
from dashboard.timeline.series import best_checkpoint


def _resumed(tmp_path: Path):
    """Attempt 1 logs steps 10–700 (eval_loss falling to 0.30 at 700), attempt 2 resumes from
    checkpoint-500 and logs 510–1000 with eval_loss 0.50 at 600 and 0.40 at 700."""
    run = tmp_path / "root" / "r"
    for step in (500, 600, 700):
        write_checkpoint(run / f"checkpoint-{step}")
    logs = run / "logs"
    first = [("train/loss", s, 2.0 - s / 1000) for s in range(10, 701, 10)]
    first += [("eval/loss", 500, 0.6), ("eval/loss", 600, 0.35), ("eval/loss", 700, 0.30)]
    second = [("train/loss", s, 1.5 - s / 2000) for s in range(510, 1001, 10)]
    second += [("eval/loss", 600, 0.50), ("eval/loss", 700, 0.40)]
    write_event_file(logs, sorted(first, key=lambda t: t[1]), start_time=1.7e9)
    write_event_file(logs, sorted(second, key=lambda t: t[1]), start_time=1.8e9)
    write_json(run / "trainer_state.json", {"global_step": 1000, "log_history": []})
    return load_run(run, [tmp_path / "root"])


def _traces(fig) -> dict[str, np.ndarray]:
    return {t.name: np.asarray(t.x) for t in fig.data if t.mode != "markers" and "smoothed" not in (t.name or "")}


def test_default_figure_draws_the_surviving_run_and_smooths_it(tmp_path: Path) -> None:
    run = _resumed(tmp_path)
    assert len(run.restarts) == 1
    fig, _ = build_figure(run, ChartOptions(metrics=["loss"], smoothing=0.6))
    x = _traces(fig)["loss"]
    assert np.all(np.diff(x) > 0) and len(x) == len(range(10, 1001, 10))
    smoothed = next(t for t in fig.data if t.name and t.name.startswith("loss (smoothed"))
    assert np.all(np.diff(np.asarray(smoothed.x)) > 0)


def test_each_attempt_is_its_own_trace_on_request(tmp_path: Path) -> None:
    run = _resumed(tmp_path)
    fig, _ = build_figure(run, ChartOptions(metrics=["loss"], smoothing=0, split_attempts=True))
    traces = _traces(fig)
    assert set(traces) == {"loss · attempt 1", "loss · attempt 2"}
    assert (traces["loss · attempt 1"].max(), traces["loss · attempt 2"].min()) == (700, 510)


def test_best_checkpoint_uses_the_later_attempt(tmp_path: Path) -> None:
    run = _resumed(tmp_path)
    best = best_checkpoint(run, "eval_loss", "min")
    # Attempt 1's 0.30 at 700 was replaced by 0.40: the surviving best is checkpoint-700 at 0.40,
    # not a value the surviving run never had.
    assert best is not None and best.checkpoint is not None and best.checkpoint.name == "checkpoint-700"
    assert best.value == pytest.approx(0.40, abs=1e-6)
    fig, _ = build_figure(run, ChartOptions(metrics=["eval_loss"], smoothing=0), best=best)
    star = next(t for t in fig.data if t.name == "best checkpoint")
    assert list(star.y) == [pytest.approx(0.40, abs=1e-6)]
