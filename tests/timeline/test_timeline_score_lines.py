"""Saved eval-set scores on the Timeline: one line per (eval set, subset, settings), never mixed (issue 36).

Before: after ``eval --limit 40`` the "demo · exact_match" line had two points at step 300 (the 200-example
result and the 40-example one) and their bands merged into one.
"""

from __future__ import annotations

from pathlib import Path

from dashboard.compare.results import CheckpointScores, save_scores
from dashboard.metrics import score
from dashboard.runs.run import load_run
from dashboard.runs.synthetic import write_run
from dashboard.timeline.figure import ChartOptions, build_figure
from dashboard.timeline.scores import default_score_labels, saved_scores, score_series, score_series_names

SHA = "6c7e6104" + "0" * 56
SHORT = '{"max_new_tokens":16}'
LONG = '{"max_new_tokens":32}'


def _save(run_dir: Path, checkpoint: str, right: int, n: int, *, total: int, subset: str = "all",
          settings_key: str = LONG) -> None:
    rows = [{"id": f"e{i}", "output": "red" if i < right else "blue",
             "scores": score("red" if i < right else "blue", "red")} for i in range(n)]
    save_scores(run_dir, CheckpointScores(checkpoint=checkpoint, step=int(checkpoint.split("-")[1]), eval_set="demo",
                                          settings={}, settings_key=settings_key, checkpoint_signature="s",
                                          rows=rows, total=total, eval_set_hash=SHA, subset=subset))


def test_subsets_and_settings_are_separate_lines_and_only_whole_sets_are_drawn_by_default(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path / "r", n_steps=400, save_every=100, eval_every=100)
    _save(run_dir, "checkpoint-100", 50, 200, total=200)
    _save(run_dir, "checkpoint-300", 65, 200, total=200)
    _save(run_dir, "checkpoint-300", 16, 40, total=40, subset="first-40")  # python -m dashboard eval --limit 40
    _save(run_dir, "checkpoint-300", 70, 200, total=200, settings_key=SHORT)  # other generation settings
    scores, problem = saved_scores(run_dir)
    assert problem is None
    labels = score_series_names(scores)
    em = [label for label in labels if label.endswith("· exact_match")]
    assert len(em) == 3  # whole set × two settings, and the subset
    subset_line = next(label for label in em if "first 40" in label)
    assert "n = 40" in subset_line  # a partial subset says how many examples it has
    whole = [label for label in em if label != subset_line]
    assert set(default_score_labels(scores)) >= set(whole) and subset_line not in default_score_labels(scores)
    for label in em:  # no line has two points at one step
        rows = score_series(scores, label)
        assert rows["step"].is_unique and rows["result_key"].is_unique and rows["subset"].nunique() == 1
    long_line = next(label for label in whole if "max_new_tokens=32" in label)
    assert list(score_series(scores, long_line)["step"]) == [100, 300]
    assert list(score_series(scores, subset_line)["n"]) == [40]

    run = load_run(run_dir, [tmp_path])
    fig, _ = build_figure(run, ChartOptions(metrics=["loss"], score_labels=default_score_labels(scores)),
                          scores=scores)
    drawn = [t for t in fig.data if (t.name or "").endswith("(saved score)")]
    assert all("first 40" not in t.name for t in drawn)
    assert all(len(set(t.x)) == len(t.x) for t in drawn)
    fig, _ = build_figure(run, ChartOptions(metrics=["loss"], score_labels=[subset_line]), scores=scores)
    (line,) = [t for t in fig.data if t.name == f"{subset_line} (saved score)"]
    assert list(line.y) == [16 / 40] and "(n = %{customdata[1]})" in line.hovertemplate
    assert list(line.customdata[0]) == ["checkpoint-300", "40"]


def test_one_settings_one_file_version_keeps_the_short_label(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path / "r", n_steps=200, save_every=100, eval_every=100)
    _save(run_dir, "checkpoint-100", 1, 4, total=4)
    scores, _ = saved_scores(run_dir)
    assert "demo · exact_match" in score_series_names(scores) == default_score_labels(scores)


def test_a_result_without_the_eval_files_hash_is_named_not_drawn(tmp_path: Path) -> None:
    """``eval --limit 40`` before identities saved under ``demo-nohash``: never mixed into a line, never silent."""
    run_dir = write_run(tmp_path / "r", n_steps=200, save_every=100, eval_every=100)
    _save(run_dir, "checkpoint-100", 2, 4, total=4)
    save_scores(run_dir, CheckpointScores(checkpoint="checkpoint-100", step=100, eval_set="demo", settings={},
                                          settings_key=LONG, checkpoint_signature="s", total=1,
                                          rows=[{"id": "e0", "output": "red", "scores": score("red", "red")}]))
    scores, problem = saved_scores(run_dir)
    assert set(scores["eval_set_sha256"]) == {SHA} and set(scores["n"]) == {4}
    assert problem is not None and "no eval-file hash" in problem and "demo · checkpoint-100" in problem
