"""Saved eval-set scores are re-read only when a result file changes (issue 35: every Home and
Timeline rerun asked for them, the Timeline twice)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from dashboard.runs.synthetic import write_run
from dashboard.timeline.scores import _saved_scores, saved_scores
from tests.timeline.test_timeline import _write_scores


def test_scores_are_reread_only_when_a_result_changes(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path / "r", n_steps=300, save_every=100, eval_every=100)
    data_dir = tmp_path / "data"
    saved_scores.clear()
    _write_scores(run_dir, "checkpoint-100", 100, [0, 1, 0, 0])
    first, problem = saved_scores(run_dir, data_dir)
    assert problem is None
    calls = saved_scores.calls
    again, _ = saved_scores(run_dir, data_dir)
    assert again is first and saved_scores.calls == calls  # unchanged files: not read again
    pd.testing.assert_frame_equal(first, _saved_scores(run_dir, data_dir)[0])

    _write_scores(run_dir, "checkpoint-300", 300, [1, 1, 1, 0])  # a new result
    grown, _ = saved_scores(run_dir, data_dir)
    assert saved_scores.calls == calls + 1 and set(grown["step"]) == {100, 300}
    pd.testing.assert_frame_equal(grown, _saved_scores(run_dir, data_dir)[0])

    _write_scores(run_dir, "checkpoint-300", 300, [0, 0, 0, 0])  # the same result saved again, other values
    changed, _ = saved_scores(run_dir, data_dir)
    assert saved_scores.calls == calls + 2
    pd.testing.assert_frame_equal(changed, _saved_scores(run_dir, data_dir)[0])
    assert not changed.equals(grown)
