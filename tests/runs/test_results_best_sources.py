"""End-of-run results, the one best-checkpoint rule, and which source a metric is drawn from."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from dashboard.runs.metrics import preferred_source, source_choices
from dashboard.runs.overview import runs_table
from dashboard.runs.run import list_runs, load_run
from dashboard.runs.synthetic import hf_scalars, log_history, write_event_file, write_run
from dashboard.timeline.series import metric_groups, plot_metrics


def _results(run) -> dict[str, tuple[float, str]]:
    return {m: (v, s) for m, v, s in run.results.itertuples(index=False)}


def test_result_files_and_final_summary_are_results_not_curves(resumed_run_root: Path) -> None:
    run = load_run(resumed_run_root / "proj" / "resumed", [resumed_run_root])
    files = {n: json.loads((run.path / n).read_text()) for n in ("all_results.json", "eval_results.json",
                                                                 "train_results.json")}
    results = _results(run)
    assert results["eval_loss"] == (files["eval_results.json"]["eval_loss"], "all_results.json, eval_results.json")
    assert results["train_loss"][0] == files["train_results.json"]["train_loss"]
    assert "train_results.json" in results["train_loss"][1]
    state = json.loads((run.path / "trainer_state.json").read_text())
    summary = next(e for e in reversed(state["log_history"]) if "train_runtime" in e)
    assert any(m == "total_flos" and v == summary["total_flos"] and "final log entry" in s
               for m, v, s in run.results.itertuples(index=False))
    # …and none of the summary numbers is a one-point curve in the metric picker.
    picker = {m for names in metric_groups(plot_metrics(run)).values() for m in names}
    assert picker.isdisjoint({"train_runtime", "train_loss", "total_flos", "train_samples_per_second"})
    assert {"loss", "eval_loss"} <= picker


def _state(run_dir: Path) -> dict:
    return json.loads((run_dir / "trainer_state.json").read_text())


def _rewrite(run_dir: Path, **fields) -> None:
    state = _state(run_dir)
    state.update(fields)
    (run_dir / "trainer_state.json").write_text(json.dumps(state))


def test_windows_best_model_checkpoint_is_mapped(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path / "root" / "r", n_steps=300, save_every=100)
    _rewrite(run_dir, best_model_checkpoint="C:\\Users\\me\\out\\checkpoint-200", best_global_step=None)
    run = load_run(run_dir, [tmp_path / "root"])
    assert run.best_checkpoint is not None and run.best_checkpoint.name == "checkpoint-200"
    # the folder it maps to, never the rest of the training machine's path (public mode shows no server paths)
    assert run.best.reason == "best_model_checkpoint …/checkpoint-200" and "Users" not in run.best.reason


def test_best_global_step_is_the_fallback(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path / "root" / "r", n_steps=300, save_every=100)
    _rewrite(run_dir, best_model_checkpoint=None, best_global_step=100)
    run = load_run(run_dir, [tmp_path / "root"])
    assert run.best_checkpoint is not None and run.best_checkpoint.name == "checkpoint-100"
    assert run.best.reason.startswith("best_global_step 100")


def test_deleted_best_folder_is_named_as_the_reason(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path / "root" / "r", n_steps=300, save_every=100, best_step=200)
    shutil.rmtree(run_dir / "checkpoint-200")  # what save_total_limit does to old checkpoints
    run = load_run(run_dir, [tmp_path / "root"])
    assert run.best_checkpoint is None
    assert "checkpoint-200, was deleted" in run.best.reason and "save_total_limit" in run.best.reason
    _rewrite(run_dir, best_model_checkpoint=None, best_global_step=None)
    assert "records no best checkpoint" in load_run(run_dir, [tmp_path / "root"]).best.reason


def test_runs_table_uses_the_same_best_rule(tmp_path: Path) -> None:
    root = tmp_path / "root"
    a = write_run(root / "projA" / "a", n_steps=300, save_every=100, best_step=200)
    _rewrite(a, best_model_checkpoint="C:\\x\\checkpoint-200")
    write_run(root / "projB" / "b", n_steps=200, save_every=100)
    table = runs_table(list_runs(root), [root]).set_index("run")
    for name in ("projA/a", "projB/b"):
        run = load_run(root / name, [root])
        assert table.loc[name, "best checkpoint"] == (run.best_checkpoint.name if run.best_checkpoint else None)
        assert table.loc[name, "checkpoints"] == len(run.checkpoints)
    assert table.loc["projA/a", "best checkpoint"] == "checkpoint-200"


def test_two_sources_of_one_metric_are_named_and_switchable(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path / "root" / "r", n_steps=200, save_every=100, eval_every=100)
    dense = log_history(200, eval_every=100, logging_steps=1)
    write_event_file(run_dir / "runs" / "Dec06_10-00-00_host", hf_scalars(dense), start_time=1.7e9)
    run = load_run(run_dir, [tmp_path / "root"])
    choices = source_choices(run.surviving_metrics, run.series)
    assert choices["loss"] == ["trainer_state", "tensorboard"]
    default = preferred_source(run.surviving_metrics, run.series)
    assert set(default.loc[default["metric"] == "loss", "source"]) == {"trainer_state"}
    picked = preferred_source(run.surviving_metrics, run.series, {"loss": "tensorboard"})
    assert set(picked.loc[picked["metric"] == "loss", "source"]) == {"tensorboard"}
    assert set(picked.loc[picked["metric"] == "eval_loss", "source"]) == {"trainer_state"}
    both = preferred_source(run.surviving_metrics, run.series, {"loss": "all"})
    assert set(both.loc[both["metric"] == "loss", "source"]) == {"trainer_state", "tensorboard"}


def test_cli_runs_lists_nested_runs_with_the_same_best(tmp_path: Path, capsys) -> None:
    from dashboard.cli import main

    root = tmp_path / "root"
    a = write_run(root / "projA" / "a", n_steps=300, save_every=100, best_step=200)
    _rewrite(a, best_model_checkpoint="C:\\x\\checkpoint-200")
    write_run(root / "b", n_steps=200, save_every=100)
    assert main(["runs", "--root", str(root), "--json"]) == 0
    rows = {r["run"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) == {"projA/a", "b"}
    assert rows["projA/a"]["best checkpoint"] == load_run(a, [root]).best_checkpoint.name == "checkpoint-200"


def test_runs_table_is_rebuilt_only_when_a_run_changes(tmp_path: Path) -> None:
    import os
    import time

    from dashboard.runs import overview

    root = tmp_path / "root"
    a = write_run(root / "a", n_steps=200, save_every=100, best_step=100)
    write_run(root / "b", n_steps=200, save_every=100)
    then = time.time() - 3600
    for path in [root, *root.rglob("*")]:
        os.utime(path, (then, then))
    first = runs_table(list_runs(root), [root])
    calls = overview.runs_table.calls
    assert runs_table(list_runs(root), [root]) is first and overview.runs_table.calls == calls
    _rewrite(a, best_model_checkpoint="/elsewhere/checkpoint-200", best_global_step=200)
    table = runs_table(list_runs(root), [root]).set_index("run")
    assert overview.runs_table.calls == calls + 1 and table.loc["a", "best checkpoint"] == "checkpoint-200"
