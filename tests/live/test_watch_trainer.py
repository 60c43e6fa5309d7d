"""``python -m dashboard watch`` beside a real ``Trainer`` job: every checkpoint scored exactly once.

The training job and the watchers are separate processes, as on a real machine. The trainer
holds after chosen saves (``hold-N`` files, see ``tiny_trainer.py``), so the test decides which
checkpoints exist when each watcher starts; everything else is polled with deadlines.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from dashboard.compare.results import CheckpointScores, iter_saved

REPO_ROOT = Path(__file__).resolve().parents[2]
TRAINER = Path(__file__).with_name("tiny_trainer.py")
DEADLINE_S = 600.0
N_EXAMPLES = 12


def _env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VLMLAB_")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               VLMLAB_DATA_DIR=str(data_dir), VLMLAB_MEMORY_BUDGET="1GB", PYTHONPATH=str(REPO_ROOT))
    return env


def _until(condition: Callable[[], object], what: str, deadline_s: float = DEADLINE_S) -> object:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


class WatchProcess:
    """``python -m dashboard watch --json`` in a subprocess; its stdout lines collected as they come."""

    def __init__(self, run: Path, env: dict[str, str], *extra: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dashboard", "watch", "--run", str(run), "--json", "--batch-size", "1",
             "--poll", "0.2", *extra], cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True)
        self.lines: list[dict] = []
        self.stderr: list[str] = []
        self._readers = [threading.Thread(target=self._read_out, daemon=True),
                         threading.Thread(target=self._read_err, daemon=True)]
        for reader in self._readers:
            reader.start()

    def _read_out(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(json.loads(line))

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        self.stderr.extend(self.proc.stderr)

    def scored(self) -> list[str]:
        return [line["checkpoint"] for line in self.lines]

    def finish(self, timeout: float = DEADLINE_S) -> int:
        code = self.proc.wait(timeout)
        for reader in self._readers:
            reader.join(10)
        return code


def _results(run: Path, data_dir: Path) -> dict[str, CheckpointScores]:
    return {s.checkpoint: s for s in iter_saved(run, data_dir)}


def _result_files(run: Path) -> dict[str, int]:
    return {str(p.relative_to(run)): p.stat().st_mtime_ns for p in (run / "eval_results").glob("*/*.json")}


def test_watch_scores_each_trainer_checkpoint_once_and_survives_a_kill(tmp_path: Path) -> None:
    sys.path.insert(0, str(TRAINER.parent))
    from tiny_trainer import write_tiny_eval_set

    run, gates, data_dir = tmp_path / "run", tmp_path / "gates", tmp_path / "data"
    run.mkdir()
    gates.mkdir()
    write_tiny_eval_set(run, N_EXAMPLES)
    for step in (4, 12):
        (gates / f"hold-{step}").touch()
    env = _env(data_dir)
    trainer = subprocess.Popen([sys.executable, str(TRAINER), str(run), "--gate-dir", str(gates)], cwd=REPO_ROOT,
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    watchers: list[WatchProcess] = []
    try:
        _until(lambda: (run / "checkpoint-4" / "trainer_state.json").is_file(), "checkpoint-4")

        # Watcher A: killed (SIGKILL, no clean-up) while checkpoint-4 is half scored.
        first = WatchProcess(run, env)
        watchers.append(first)
        partial = _until(lambda: (r := _results(run, data_dir).get("checkpoint-4")) is not None and r.n > 0 and r,
                         "a first batch of checkpoint-4")
        first.proc.send_signal(signal.SIGKILL)
        first.finish()
        killed_mid = _results(run, data_dir)["checkpoint-4"]
        assert isinstance(partial, CheckpointScores)
        assert not killed_mid.complete, "the watcher finished checkpoint-4 before it could be killed mid-way"
        assert first.scored() == []

        # Watcher B: started before checkpoints 8 and 12 exist; finishes 4 without redoing its saved rows.
        second = WatchProcess(run, env)
        watchers.append(second)
        (gates / "hold-4").unlink()
        _until(lambda: second.scored() == ["checkpoint-4", "checkpoint-8", "checkpoint-12"],
               f"watcher B to score 4, 8 and 12 (so far {second.scored()})")
        second.proc.send_signal(signal.SIGTERM)  # a clean stop: exit 0
        assert second.finish() == 0
        after_b = _results(run, data_dir)
        assert after_b["checkpoint-4"].rows[:killed_mid.n] == killed_mid.rows  # kept, not recomputed
        files_after_b = _result_files(run)

        # Watcher C: a restart; rescores nothing complete, scores 16 when it lands, then exits when idle.
        third = WatchProcess(run, env, "--until-idle", "5")
        watchers.append(third)
        (gates / "hold-12").unlink()
        assert trainer.wait(DEADLINE_S) == 0, trainer.stderr.read() if trainer.stderr else ""
        assert third.finish() == 0, "".join(third.stderr)
        assert third.scored() == ["checkpoint-16"]
    finally:
        for gate in gates.glob("hold-*"):
            gate.unlink()
        for w in watchers:
            if w.proc.poll() is None:
                w.proc.kill()
        if trainer.poll() is None:
            trainer.kill()

    every = [name for w in watchers for name in w.scored()]
    checkpoints = sorted((p.name for p in run.glob("checkpoint-*")), key=lambda n: int(n.split("-")[1]))
    assert checkpoints == ["checkpoint-4", "checkpoint-8", "checkpoint-12", "checkpoint-16"]
    assert sorted(every, key=lambda n: int(n.split("-")[1])) == checkpoints  # each exactly once
    final = _results(run, data_dir)
    assert set(final) == set(checkpoints) and all(s.complete and s.n == N_EXAMPLES for s in final.values())
    files_now = _result_files(run)
    assert len(files_now) == len(checkpoints)  # one result file per checkpoint: one key
    assert {k: v for k, v in files_now.items() if k in files_after_b} == files_after_b  # C rewrote none of them
    for line in (line for w in watchers for line in w.lines):
        em = line["metrics"]["exact_match"]
        assert line["n"] == N_EXAMPLES and em["ci95"][0] <= em["value"] <= em["ci95"][1]
        assert line["step"] == int(line["checkpoint"].split("-")[1])
        assert final[line["checkpoint"]].metrics["exact_match"] == pytest.approx(em["value"])
