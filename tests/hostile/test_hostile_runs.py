"""Hostile run folders at the reader: huge / malformed / NaN logs, links and ``..`` escaping the root.

Complements ``tests/runs`` (the Timeline engineer's unit tests); the browser versions are in
``tests/browser/test_browser_hostile.py``.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from dashboard.paths import PathOutsideRoots
from dashboard.runs.run import list_runs, load_run
from tests.hostile.hostile_files import huge_log_history, nan_inf_log_history, trainer_state


def _model_folder(tiny_llava_dir: Path, target: Path) -> Path:
    shutil.copytree(tiny_llava_dir, target)
    return target


def test_huge_trainer_state_loads_every_value(tmp_path):
    run = tmp_path / "runs" / "long"
    run.mkdir(parents=True)
    entries = 300_000
    (run / "trainer_state.json").write_text(trainer_state(huge_log_history(entries), global_step=entries))
    data = load_run(run, [tmp_path / "runs"])
    loss = data.metrics[data.metrics["metric"] == "loss"]
    assert len(loss) == entries
    assert len(data.metrics[data.metrics["metric"] == "eval_loss"]) == entries // 1000
    assert data.state is not None and data.state.global_step == entries


@pytest.mark.parametrize("text", ["", "{", "[]", "null", '{"log_history": "nope"}', '{"log_history": [1, "x", null]}',
                                  '{"log_history": [{"loss": "abc", "step": "x"}]}', "\xff\xfe garbage"])
def test_malformed_trainer_state_is_a_problem_not_a_crash(tmp_path, text):
    run = tmp_path / "runs" / "bad"
    (run / "checkpoint-1").mkdir(parents=True)
    (run / "trainer_state.json").write_bytes(text.encode("latin-1"))  # "\xff\xfe…" is not UTF-8
    data = load_run(run, [tmp_path / "runs"])
    assert data.problems, "a broken trainer_state.json must be reported"
    assert all(isinstance(p, str) and p for p in data.problems)


def test_nan_and_inf_are_reported_and_never_plotted(tmp_path):
    run = tmp_path / "runs" / "nan"
    run.mkdir(parents=True)
    (run / "trainer_state.json").write_text(trainer_state(nan_inf_log_history(), global_step=5))
    data = load_run(run, [tmp_path / "runs"])
    values = data.metrics["value"].tolist()
    assert all(math.isfinite(v) for v in values), values
    assert sorted(data.metrics[data.metrics["metric"] == "loss"]["value"]) == [0.5, 1.0]
    joined = " ".join(data.problems).lower()
    assert "nan" in joined or "inf" in joined or "non-finite" in joined, data.problems


def test_dotdot_paths_escaping_the_root_are_refused(tmp_path):
    root = tmp_path / "runs"
    (root / "ok" / "checkpoint-1").mkdir(parents=True)
    outside = tmp_path / "outside"
    (outside / "checkpoint-1").mkdir(parents=True)
    (outside / "trainer_state.json").write_text(trainer_state([{"loss": 1.0, "step": 1}]))
    for sneaky in (root / ".." / "outside", root / "ok" / ".." / ".." / "outside", Path("/etc")):
        with pytest.raises(PathOutsideRoots):
            load_run(sneaky, [root])


def test_run_symlinked_from_outside_is_refused_when_opened(tmp_path):
    root = tmp_path / "runs"
    root.mkdir()
    outside = tmp_path / "outside"
    (outside / "checkpoint-1").mkdir(parents=True)
    (outside / "trainer_state.json").write_text(trainer_state([{"loss": 1.0, "step": 1}]))
    (root / "linked").symlink_to(outside, target_is_directory=True)
    listed = [r.path for r in list_runs(root)]
    if root / "linked" in listed:  # may be listed by name, but never opened
        with pytest.raises(PathOutsideRoots):
            load_run(root / "linked", [root])


def test_checkpoint_symlinked_from_outside_is_never_offered_as_loadable(tmp_path, tiny_llava_dir):
    """A ``checkpoint-N`` link pointing outside the runs root must not reach the model pool.

    The Comparison page loads every loadable checkpoint of ``load_run`` without re-checking roots,
    so the run reader is the place that must drop (or mark unloadable) such links.
    """
    root = tmp_path / "runs"
    run = root / "linky"
    _model_folder(tiny_llava_dir, run / "checkpoint-1")
    escaped = _model_folder(tiny_llava_dir, tmp_path / "outside" / "checkpoint-7")
    (run / "checkpoint-2").symlink_to(escaped, target_is_directory=True)
    data = load_run(run, [root])
    offered = [c.name for c in data.checkpoints if c.loadable]
    assert "checkpoint-1" in offered
    assert "checkpoint-2" not in offered, "a link escaping the runs root is offered as a loadable checkpoint"
    assert any("checkpoint-2" in p for p in data.problems), data.problems


def test_trust_remote_code_config_never_imports_its_code(tmp_path, tiny_llava_dir):
    from dashboard.models.pool import CheckpointLoadError, ModelPool

    ckpt = _model_folder(tiny_llava_dir, tmp_path / "runs" / "evil" / "checkpoint-1")
    config = json.loads((ckpt / "config.json").read_text())
    config["auto_map"] = {"AutoModelForImageTextToText": "evil.Model", "AutoConfig": "evil.Config"}
    (ckpt / "config.json").write_text(json.dumps(config))
    marker = tmp_path / "ran"
    (ckpt / "evil.py").write_text(f"open({str(marker)!r}, 'w').write('x')\n")
    pool = ModelPool(budget_bytes=2**30, device="cpu")
    with pytest.raises(CheckpointLoadError, match="trust_remote_code"), pool.acquire(ckpt):
        pass
    assert not marker.exists()
