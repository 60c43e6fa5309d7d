"""``python -m dashboard eval``: JSON schema on the demo run, same result files, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dashboard.cli import main
from dashboard.compare.results import load_scores


def test_eval_cli_reports_cis_by_task_and_paired(demo_run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VLMLAB_RAY_ADDRESS", raising=False)
    monkeypatch.setenv("VLMLAB_DATA_DIR", str(tmp_path / "data"))
    ckpts = sorted((p.name for p in demo_run_dir.glob("checkpoint-*")), key=lambda n: int(n.split("-")[1]))
    out = tmp_path / "report.json"
    rc = main(["eval", "--run", str(demo_run_dir), "--checkpoints", f"{ckpts[0]},{ckpts[-1]}", "--limit", "16",
               "--json", "--out", str(out)])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    report = json.loads(captured.out)
    assert json.loads(out.read_text()) == report
    assert "eval (local)" in captured.err  # progress on stderr, not in the JSON
    assert report["eval_set"]["n"] == 16 and len(report["eval_set"]["sha256"]) == 64
    assert [c["checkpoint"] for c in report["checkpoints"]] == [ckpts[0], ckpts[-1]]
    for ck in report["checkpoints"]:
        em = ck["metrics"]["exact_match"]
        assert em["ci95"][0] <= em["value"] <= em["ci95"][1] and ck["n"] == 16
        assert set(ck["by_task"]) <= {"colour", "shape", "position", "describe"} and ck["by_task"]
        assert sum(t["exact_match"]["n"] for t in ck["by_task"].values()) == 16
        saved = load_scores(demo_run_dir, "demo", ck["checkpoint"], tmp_path / "data")  # the page's files
        assert saved is not None and saved.n == 16
        assert saved.metrics["exact_match"] == pytest.approx(em["value"])
    (pair,) = [p for p in report["paired"] if p["metric"] == "exact_match"]
    assert set(pair) == {"a", "b", "metric", "a_only", "b_only", "p_value"} and 0 <= pair["p_value"] <= 1


@pytest.mark.parametrize("args", [
    ["--run", "/nonexistent/run"],
    ["--checkpoints", "checkpoint-999999"],
    ["--eval", "/nonexistent.jsonl"],
    ["--limit", "0"],
])
def test_eval_cli_bad_input_exits_2_with_a_message(args: list[str], demo_run_dir: Path,
                                                   capsys: pytest.CaptureFixture) -> None:
    full = ["eval", "--run", str(demo_run_dir), *args] if args[0] != "--run" else ["eval", *args]
    assert main(full) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err


def test_eval_cli_failure_exits_1(demo_run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VLMLAB_RAY_ADDRESS", raising=False)
    monkeypatch.setenv("VLMLAB_DATA_DIR", str(tmp_path / "data"))

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr("dashboard.compare.headless.run_eval", boom)
    assert main(["eval", "--run", str(demo_run_dir), "--limit", "2"]) == 1
    assert "disk on fire" in capsys.readouterr().err
