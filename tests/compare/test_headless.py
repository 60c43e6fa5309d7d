"""``python -m dashboard eval``: JSON schema on the demo run, same result files, exit codes."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from dashboard.cli import main
from dashboard.compare.results import RESULTS_DIRNAME, load_scores


def test_eval_cli_reports_cis_by_task_and_paired(demo_run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # A copy of its own: results saved next to the shared session run by other tests would be reused here.
    demo_run_dir = Path(shutil.copytree(demo_run_dir, tmp_path / "runs" / "demo",
                                        ignore=shutil.ignore_patterns(RESULTS_DIRNAME)))
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
    file_sha = hashlib.sha256((demo_run_dir / "eval" / "demo.jsonl").read_bytes()).hexdigest()
    assert report["eval_set"]["n"] == 16 and report["eval_set"]["sha256"] == file_sha  # the file's own sha256
    assert report["eval_set"]["subset"] == "first-16" and report["work"]["generated"] == 32
    assert [c["checkpoint"] for c in report["checkpoints"]] == [ckpts[0], ckpts[-1]]
    for ck in report["checkpoints"]:
        em = ck["metrics"]["exact_match"]
        assert em["ci95"][0] <= em["value"] <= em["ci95"][1] and ck["n"] == 16
        assert set(ck["by_task"]) <= {"colour", "shape", "position", "describe"} and ck["by_task"]
        assert sum(t["exact_match"]["n"] for t in ck["by_task"].values()) == 16
        saved = load_scores(demo_run_dir, "demo", ck["checkpoint"], tmp_path / "data", subset="first-16")
        assert saved is not None and saved.n == 16 and saved.identity.key == ck["identity"]["key"]
        assert saved.eval_set_hash == file_sha and ck["identity"]["subset"] == "first-16"
        assert saved.metrics["exact_match"] == pytest.approx(em["value"])
    (pair,) = [p for p in report["paired"] if p["metric"] == "exact_match"]
    assert {"a", "b", "metric", "a_only", "b_only", "p_value"} <= set(pair) and 0 <= pair["p_value"] <= 1
    folders = {p.parent.name for p in (demo_run_dir / "eval_results").glob("*/*.json")}
    assert f"demo-{file_sha[:12]}-first-16" in folders and not any("nohash" in f for f in folders)
    # A smaller subset is another result (own key, own folder) but generates nothing new.
    assert main(["eval", "--run", str(demo_run_dir), "--checkpoints", f"{ckpts[0]},{ckpts[-1]}", "--limit", "8",
                 "--json"]) == 0
    smaller = json.loads(capsys.readouterr().out)
    assert smaller["work"] == {"generated": 0, "reused": 16}
    assert {c["identity"]["key"] for c in smaller["checkpoints"]}.isdisjoint(
        {c["identity"]["key"] for c in report["checkpoints"]})


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
