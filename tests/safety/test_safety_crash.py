"""Crash safety: a process killed (SIGKILL) in the middle of writing loses nothing already committed.

The writers run in child processes that use the app's own code (``HistoryStore.add`` and
``save_scores``) in a tight loop and report each completed write on stdout; the parent kills
them at staggered moments, so some kills land mid-transaction / mid-file. The server-level
version (kill ``streamlit`` during a generation, restart it) is in
``tests/browser/test_browser_safety.py``.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

HISTORY_WRITER = r"""
import sys, numpy as np
from PIL import Image
from dashboard.history import HistoryRecord, HistoryStore
store = HistoryStore(sys.argv[1])
tag = sys.argv[2]
rng = np.random.default_rng(int(sys.argv[3]))
n = 0
while True:
    n += 1
    image = Image.fromarray(rng.integers(0, 255, (384, 384, 3), dtype=np.uint8), "RGB")  # ~440 KB as PNG
    record = HistoryRecord.from_generation(checkpoint="/runs/demo/checkpoint-1", prompt=f"{tag}-{n}",
                                           output=f"out {tag}-{n} " * 50, settings={"n": n},
                                           timings={"latency_s": 0.1}, image=image)
    rid = store.add(record)
    print(f"{rid} {tag}-{n}", flush=True)
"""

SCORES_WRITER = r"""
import sys
from pathlib import Path
from dashboard.compare.results import CheckpointScores, save_scores
run_dir = Path(sys.argv[1])
version = 0
while True:
    version += 1
    rows = [{"id": str(i), "output": f"v{version} " * 40, "scores": {"exact_match": 1.0}} for i in range(3000)]
    scores = CheckpointScores(checkpoint="checkpoint-10", step=10, eval_set="demo", settings={}, settings_key="k",
                              checkpoint_signature="s", rows=rows, total=3000)
    save_scores(run_dir, scores)
    print(version, flush=True)
"""


def _spawn(code: str, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _kill_after(process: subprocess.Popen, completed_writes: int) -> list[str]:
    """Read ``completed_writes`` acknowledgements, then SIGKILL immediately (mid-way through the next)."""
    lines = []
    while len(lines) < completed_writes:
        line = process.stdout.readline()
        if not line:
            raise AssertionError(f"writer died early: {process.stderr.read()[-2000:]}")
        lines.append(line.strip())
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    lines += [x.strip() for x in process.stdout.read().splitlines() if x.strip()]  # acks flushed before the kill
    process.stdout.close()
    process.stderr.close()
    return lines


def test_history_database_survives_sigkill_mid_write(tmp_path):
    db = tmp_path / "history.sqlite"
    acknowledged: dict[int, str] = {}
    for round_no, writes in enumerate((3, 5, 8)):
        lines = _kill_after(_spawn(HISTORY_WRITER, str(db), f"r{round_no}", str(round_no)), writes)
        acknowledged.update({int(a): b for a, b in (line.split() for line in lines)})
        with sqlite3.connect(db) as conn:  # a fresh reader after the crash (what a restarted app does)
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    from dashboard.history import HistoryStore

    store = HistoryStore(db)
    rows = {r.id: r for r in store.list(limit=10_000, with_images=True)}
    for rid, prompt in acknowledged.items():  # every acknowledged write is there, whole
        assert rid in rows, f"acknowledged record {rid} lost"
        record = rows[rid]
        assert record.prompt == prompt and record.output == f"out {prompt} " * 50
        assert record.image is not None and record.image.startswith(b"\x89PNG")
    # At most one unacknowledged (committed just before the kill) record per crash, and whole too.
    extra = set(rows) - set(acknowledged)
    assert len(extra) <= 3, extra
    for rid in extra:
        assert rows[rid].output.startswith("out ") and rows[rid].image.startswith(b"\x89PNG")


def test_saved_eval_results_survive_sigkill_mid_write(tmp_path):
    from dashboard.compare.results import load_scores, result_relpath

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    for writes in (1, 2, 4):
        lines = _kill_after(_spawn(SCORES_WRITER, str(run_dir)), writes)
        last_ack = int(lines[-1])
        target = run_dir / "eval_results" / result_relpath("demo", "", "checkpoint-10", "k")
        data = json.loads(target.read_text(encoding="utf-8"))  # never torn: parses as a whole
        versions = {row["output"].split()[0] for row in data["rows"]}
        assert len(data["rows"]) == 3000 and len(versions) == 1, "a file mixes two writes"
        assert int(next(iter(versions))[1:]) >= last_ack, "an acknowledged write was rolled back"
        loaded = load_scores(run_dir, "demo", "checkpoint-10")
        assert loaded is not None and loaded.complete
