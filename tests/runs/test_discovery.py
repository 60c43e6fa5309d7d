"""Runs at any depth, named by their path relative to the root; capped checkpoint listing; names
accepted by the URL and the CLI."""

from __future__ import annotations

import os
import time
from pathlib import Path

from dashboard.runs.checkpoints import listed_checkpoint_dirs
from dashboard.runs.discovery import (
    MAX_RUN_DEPTH,
    discover_runs,
    find_run,
    list_runs,
    resolve_run_arg,
    run_name,
    valid_run_name,
)
from dashboard.runs.run import load_run
from dashboard.runs.synthetic import hf_scalars, log_history, write_checkpoint, write_event_file, write_json, write_run


def _nested_root(root: Path) -> Path:
    write_run(root / "projA" / "run1", n_steps=200, save_every=100)
    write_run(root / "projA" / "run2", n_steps=100, save_every=100)
    write_json(root / "projB" / "sweep" / "lr3e-4_seed2" / "trainer_state.json",
               {"global_step": 1, "log_history": [{"loss": 1.0, "step": 1}]})
    # Only TensorBoard logs, where HF's callback puts them: <output_dir>/runs/<date>_<host>/
    write_event_file(root / "tbonly" / "runs" / "Dec06_12-00-00_host", hf_scalars(log_history(20)))
    # A final save_model output with no checkpoints.
    write_checkpoint(root / "exports" / "final")
    # Deeper than the limit: not listed.
    write_run(root.joinpath(*[f"d{i}" for i in range(MAX_RUN_DEPTH)]) / "too_deep", n_steps=100, save_every=100)
    (root / ".hidden" / "r" / "checkpoint-1").mkdir(parents=True)
    return root


def test_runs_are_found_at_any_depth_and_named_relative_to_the_root(tmp_path: Path) -> None:
    root = _nested_root(tmp_path / "root")
    names = [r.name for r in list_runs(root)]
    assert names == ["exports/final", "projA/run1", "projA/run2", "projB/sweep/lr3e-4_seed2", "tbonly"]
    by_name = {r.name: r for r in list_runs(root)}
    assert by_name["projA/run1"].n_checkpoints == 2 and by_name["exports/final"].n_checkpoints == 1
    # Never inside a run: its checkpoint folders (which hold trainer_state.json) are not runs.
    assert not any("checkpoint-" in n for n in names)


def test_a_run_inside_a_run_is_part_of_it(tmp_path: Path) -> None:
    root = tmp_path / "root"
    write_run(root / "outer", n_steps=100, save_every=100)
    write_run(root / "outer" / "extra" / "inner", n_steps=100, save_every=100)
    assert [r.name for r in list_runs(root)] == ["outer"]


def test_root_that_is_a_run_is_the_only_run(tmp_path: Path) -> None:
    run = write_run(tmp_path / "solo", n_steps=100, save_every=100)
    assert [(r.name, r.path) for r in list_runs(run)] == [("solo", run)]


def test_a_new_run_appears_and_a_deleted_one_goes(tmp_path: Path) -> None:
    root = _nested_root(tmp_path / "root")
    before = {r.name for r in list_runs(root)}
    write_run(root / "projA" / "run3", n_steps=100, save_every=100)
    assert {r.name for r in list_runs(root)} == before | {"projA/run3"}


def test_walk_is_bounded_with_a_message(tmp_path: Path) -> None:
    root = tmp_path / "root"
    for i in range(30):
        (root / f"empty{i:02}").mkdir(parents=True)
    write_run(root / "zz_run", n_steps=100, save_every=100)
    found = discover_runs(root, max_folders=10)
    assert found.runs == [] and "stopped looking for runs after 10 folders" in found.problems[0]
    assert [r.name for r in discover_runs(root).runs] == ["zz_run"]


def test_names_are_looked_up_never_joined(tmp_path: Path) -> None:
    root = _nested_root(tmp_path / "root")
    assert find_run("projA/run1", [root]) == (root / "projA" / "run1").resolve()
    assert find_run("projA", [root]) is None  # a folder of runs is not a run
    for bad in ("projA/../projA/run1", "/projA/run1", "projA//run1", "projA\\run1", "./projA/run1", ""):
        assert valid_run_name(bad) is None
        assert find_run(bad, [root]) is None
    outside = write_run(tmp_path / "outside", n_steps=100, save_every=100)
    (root / "link").symlink_to(outside)
    assert find_run("link", [root]) is None


def test_run_data_and_cli_use_the_relative_name(tmp_path: Path) -> None:
    root = _nested_root(tmp_path / "root")
    run = load_run(root / "projA" / "run1", [root])
    assert run.name == "projA/run1" == run_name(run.path, [root])
    assert resolve_run_arg("projA/run1", [root]) == (root / "projA" / "run1").resolve()
    assert resolve_run_arg(str(root / "projA" / "run2"), [root]) == root / "projA" / "run2"


def test_cli_accepts_a_run_name(tmp_path: Path, monkeypatch, capsys) -> None:
    from dashboard.cli import main

    root = _nested_root(tmp_path / "root")
    monkeypatch.setenv("VLMLAB_RUNS_ROOT", str(root))
    assert main(["pointing", "--run", "projA/run1"]) == 2  # found, but it has no eval set
    assert f"{(root / 'projA' / 'run1').resolve()} has no eval set" in capsys.readouterr().err


def test_listed_checkpoints_are_capped_evenly_with_first_last_and_kept(tmp_path: Path) -> None:
    run = tmp_path / "run"
    for step in range(1, 1001):
        os.makedirs(run / f"checkpoint-{step}")
    chosen = listed_checkpoint_dirs(run, keep_steps=[777], cap=50)
    steps = [s for s, _ in chosen.dirs]
    assert chosen.total == 1000 and chosen.capped and len(steps) <= 51
    assert steps[0] == 1 and steps[-1] == 1000 and 777 in steps and steps == sorted(set(steps))
    gaps = [b - a for a, b in zip(steps, steps[1:], strict=False)]
    assert max(gaps) <= 2 * (1000 // 49)
    assert "1,000 checkpoint folders; listing" in (chosen.message or "")
    full = listed_checkpoint_dirs(run, cap=5000)
    assert not full.capped and full.message is None and len(full.dirs) == 1000


def test_a_checkpoint_added_to_an_old_run_is_seen(tmp_path: Path) -> None:
    run = write_run(tmp_path / "root" / "r", n_steps=200, save_every=100)
    then = time.time() - 3600
    os.utime(run, (then, then))
    assert len(listed_checkpoint_dirs(run).dirs) == 2
    write_checkpoint(run / "checkpoint-300")
    assert [s for s, _ in listed_checkpoint_dirs(run).dirs] == [100, 200, 300]
