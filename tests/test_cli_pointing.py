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
    assert all(set(r) == {"checkpoint", "step", "n", "pointing", "chance", "mass_in_box"} for r in rows)
    examples = load_eval_set(demo_run_dir / "eval" / "demo.jsonl").examples
    pool = ModelPool(budget_bytes=10**9, device="cpu", dtype=torch.float32)
    for row, name in zip(rows, [first, last], strict=True):
        with pool.acquire(demo_run_dir / name) as loaded:
            summary = pointing_report(loaded, examples, max_examples=3).summary()
        assert row["n"] == summary["n"] == 3
        for key in ("pointing", "chance", "mass_in_box"):
            assert row[key] == pytest.approx(summary[key])
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
