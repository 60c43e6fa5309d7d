"""Resumed training: attempts per log stream, the surviving run by default, every attempt on request.

The fixture is the real thing: ``Trainer`` to step 14, then a second process resuming from
checkpoint-8 (``resumed_run_root``). On main the TensorBoard and trainer_log passes were sorted
together by step (a zig-zag with steps 9–14 twice) and nothing said the run was resumed.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from torch.utils.tensorboard import SummaryWriter

from dashboard.runs.attempts import file_attempts, row_restarts, superseded
from dashboard.runs.metrics import preferred_source
from dashboard.runs.run import load_run
from dashboard.runs.trainer_log import parse_trainer_log
from dashboard.timeline.series import attempt_metrics, attempt_series, best_checkpoint, metric_series


def _run(root: Path):
    return load_run(root / "proj" / "resumed", [root])


def _monotonic(series) -> bool:
    return bool(len(series.step)) and bool(np.all(np.diff(series.step) > 0))


def test_real_trainer_resume_is_found_in_tensorboard_and_trainer_log(resumed_run_root: Path) -> None:
    run = _run(resumed_run_root)
    notices = run.restart_notices()
    assert len(notices) == 2, notices
    for notice in notices:
        assert "attempt 2 resumed from step 8" in notice
        assert "steps 9–14 logged twice, showing the later attempt" in notice
    assert any(n.startswith("TensorBoard") for n in notices) and any(n.startswith("trainer_log.jsonl") for n in notices)


@pytest.mark.parametrize("source", ["tensorboard", "trainer_log"])
def test_surviving_run_equals_the_restored_trainer_state(resumed_run_root: Path, source: str) -> None:
    """One truth: the surviving TensorBoard / trainer_log curve is what trainer_state.json (restored
    from checkpoint-8, then continued) says the run was — step for step, value for value."""
    run = _run(resumed_run_root)
    reference = metric_series(preferred_source(run.surviving_metrics, run.series), "loss")
    assert reference.source == "trainer_state" and list(reference.step) == list(range(1, 21))
    chosen = metric_series(preferred_source(run.surviving_metrics, run.series, {"loss": source}), "loss")
    assert chosen.source == source
    assert _monotonic(chosen) and list(chosen.step) == list(reference.step)
    np.testing.assert_allclose(chosen.y, reference.y, rtol=1e-6)


def test_each_attempt_is_kept_as_logged(resumed_run_root: Path) -> None:
    run = _run(resumed_run_root)
    traces = attempt_series(attempt_metrics(run, {"loss": "tensorboard"}), "loss")
    assert [t.metric for t in traces] == ["loss · attempt 1", "loss · attempt 2"]
    assert (int(traces[0].step.min()), int(traces[0].step.max())) == (1, 14)
    assert (int(traces[1].step.min()), int(traces[1].step.max())) == (9, 20)
    # The first attempt's values at 9–14 are not the surviving ones (training diverged after the restart).
    first = dict(zip(traces[0].step.tolist(), traces[0].y.tolist(), strict=True))
    second = dict(zip(traces[1].step.tolist(), traces[1].y.tolist(), strict=True))
    assert any(first[s] != second[s] for s in range(11, 15))


def test_best_checkpoint_and_markers_follow_the_surviving_run(resumed_run_root: Path) -> None:
    run = _run(resumed_run_root)
    tb = preferred_source(run.surviving_metrics, run.series, {"eval_loss": "tensorboard"})
    best = best_checkpoint(run, "eval_loss", "min", metrics=tb)
    reference = best_checkpoint(run, "eval_loss", "min")
    assert best is not None and reference is not None
    assert (best.step, best.checkpoint.name if best.checkpoint else None) == \
        (reference.step, reference.checkpoint.name if reference.checkpoint else None)
    # Every step's value comes from one attempt only.
    rows = tb[tb["metric"] == "eval_loss"]
    assert set(rows.loc[rows["step"] == 12, "attempt"]) == {1}


def test_two_summary_writers_in_one_folder(tmp_path: Path) -> None:
    """``TENSORBOARD_LOGGING_DIR`` set: both processes' writers share one folder (one file each)."""
    run = tmp_path / "root" / "r"
    logs = run / "logs"
    for step in (250, 500):
        (run / f"checkpoint-{step}").mkdir(parents=True)
    first = SummaryWriter(log_dir=str(logs))
    for step in range(10, 701, 10):
        first.add_scalar("train/loss", 2.0 - step / 1000, step, walltime=1_700_000_000 + step)
    first.close()
    second = SummaryWriter(log_dir=str(logs))
    for step in range(510, 1001, 10):
        second.add_scalar("train/loss", 1.0 - step / 2000, step, walltime=1_700_010_000 + step)
    second.close()
    data = load_run(run, [tmp_path / "root"])
    assert data.restart_notices() == ["TensorBoard logs: attempt 2 resumed from step 500 at 2023-11-15 "
                                      "01:08 UTC; steps 510–700 logged twice, showing the later attempt"]
    loss = metric_series(data.preferred_metrics, "loss")
    assert _monotonic(loss) and list(loss.step) == list(range(10, 1001, 10))
    assert loss.y[list(loss.step).index(600)] == pytest.approx(1.0 - 600 / 2000)


def test_late_eval_and_concurrent_writers_are_not_restarts() -> None:
    # train at 10, 20, 30; an eval for step 10 logged after step 30: not a restart.
    steps = np.array([10, 20, 30, 10, 40])
    codes = np.array([0, 0, 0, 1, 0])
    assert row_restarts(steps, codes).tolist() == [0, 0, 0, 0, 0]
    # The same metric going back is.
    assert row_restarts(np.array([10, 20, 30, 20, 30]), np.zeros(5, int)).tolist() == [0, 0, 0, 1, 1]
    # Files: overlapping time ranges share an attempt; HF's closing evaluate() file goes on from the top step.
    assert file_attempts([0, 5, 20, 30], [10, 15, 21, 40], [1, 1, 14, 9], [14, 14, 14, 20]) == [0, 0, 0, 1]


def test_superseded_rows_are_those_a_later_attempt_relogged() -> None:
    steps = np.array([1, 2, 3, 4, 2, 3, 5, 3, 6])
    attempts = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2])
    assert superseded(steps, attempts).tolist() == [False, True, True, True, False, True, True, False, False]


def test_trainer_log_restarts_and_torn_lines() -> None:
    lines = [{"current_steps": s, "total_steps": 20, "loss": 1.0 / s, "lr": 0.1, "epoch": s / 10}
             for s in (*range(1, 15), *range(9, 21))]
    body = ("\n".join(json.dumps(x) for x in lines) + '\n{"current_steps": 21, "lo').encode()
    log = parse_trainer_log(body)
    assert [r.notice(8) for r in log.restarts] == [
        "trainer_log.jsonl: attempt 2 resumed from step 8; steps 9–14 logged twice, showing the later attempt"]
    assert set(log.metrics["metric"].astype(str)) == {"loss", "learning_rate"}
    kept = log.metrics[~log.metrics["superseded"] & (log.metrics["metric"] == "loss")]
    assert kept["step"].tolist() == list(range(1, 21))
    assert "1 line(s)" in log.problems[0]
