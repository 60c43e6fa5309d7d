"""``python -m dashboard pointing``: per-checkpoint numbers in step order, as JSON, equal to a direct scoring."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from dashboard.attention.analysis import pointing_report
from dashboard.cli import main
from dashboard.evalset import load_eval_set
from dashboard.models.pool import ModelPool


def test_pointing_cli_json_in_step_order(demo_run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    checkpoints = sorted(demo_run_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    last, first = checkpoints[-1].name, checkpoints[0].name
    assert main(["pointing", "--run", str(demo_run_dir), "--checkpoints", f"{last},{first}", "--examples", "3",
                 "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    rows = payload["checkpoints"]
    assert [r["checkpoint"] for r in rows] == [first, last]  # step order, whatever order was asked
    assert [r["step"] for r in rows] == [int(first.split("-")[1]), int(last.split("-")[1])]
    assert all(set(r) == {"checkpoint", "step", "n", "pointing", "pointing_ci95", "chance", "mass_in_box",
                          "examples"} for r in rows)
    assert payload["eval_set"]["sha256"] == load_eval_set(demo_run_dir / "eval" / "demo.jsonl").content_hash
    examples = load_eval_set(demo_run_dir / "eval" / "demo.jsonl").examples
    pool = ModelPool(budget_bytes=10**9, device="cpu", dtype=torch.float32)
    for row, name in zip(rows, [first, last], strict=True):
        with pool.acquire(demo_run_dir / name) as loaded:
            summary = pointing_report(loaded, examples, max_examples=3).summary()
        assert row["n"] == summary["n"] == 3
        for key in ("pointing", "chance", "mass_in_box"):
            assert row[key] == pytest.approx(summary[key])
        # per example: which examples the checkpoint misses, where its peak was, how much mass was in the box
        examples_ = row["examples"]
        assert [e["id"] for e in examples_] == [ex.id for ex in examples[:3]]
        assert sum(e["hit"] for e in examples_) / 3 == pytest.approx(row["pointing"])
        assert sum(e["mass_in_box"] for e in examples_) / 3 == pytest.approx(row["mass_in_box"])
        assert all(len(e["peak_patch"]) == 2 and all(isinstance(v, int) for v in e["peak_patch"]) for e in examples_)
        lo, hi = row["pointing_ci95"]
        assert 0 <= lo <= row["pointing"] <= hi <= 1 and hi - lo > 0.3  # n = 3: a wide, honest interval
        assert 0 < row["chance"] < 1  # the share of grid cells inside the target's box


def test_pointing_cli_table_and_bad_input(demo_run_dir: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    first = min(demo_run_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1])).name
    assert main(["pointing", "--run", str(demo_run_dir), "--checkpoints", first.split("-")[1], "--examples", "2"]) == 0
    out = capsys.readouterr().out
    assert "pointing" in out and first in out
    assert main(["pointing", "--run", str(tmp_path / "nope")]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["pointing", "--run", str(demo_run_dir), "--checkpoints", "checkpoint-999999"]) == 2
    assert "no checkpoint checkpoint-999999" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["pointing", "--run", str(tmp_path / "empty")]) == 2
    assert "no eval set" in capsys.readouterr().err


def test_pointing_caption_says_the_real_n_and_the_split_shows_n_and_an_interval() -> None:
    """Before: "first 1000 examples" when n = 200 were scored; the split drew n = 1 or 3 as bare points."""
    import pandas as pd

    from dashboard.attention.charts import pointing_split_figure
    from dashboard.ui.attention_sweep_view import pointing_caption

    frame = pd.DataFrame({"n": [200, 200], "step": [300, 600]})
    caption = pointing_caption(frame, 1000, "demo")
    assert caption.startswith("Scored on n = 200 examples of demo") and "1000 examples" not in caption
    split = pd.DataFrame({"step": [300, 300], "answer": ["right", "wrong"], "n": [1, 3], "pointing": [1.0, 0.0],
                          "pointing_ci95_low": [0.025, 0.0], "pointing_ci95_high": [1.0, 0.708], "chance": [0.01] * 2})
    fig = pointing_split_figure(split)
    right, wrong = fig.data[0], fig.data[1]
    assert list(right.text) == ["n=1"] and list(wrong.text) == ["n=3"]
    assert right.error_y.arrayminus[0] == pytest.approx(0.975) and wrong.error_y.array[0] == pytest.approx(0.708)
