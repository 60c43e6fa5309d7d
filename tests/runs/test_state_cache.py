"""The trainer_state column cache (issue 35): a cached parse equals a fresh one, is dropped when the
file changes, and a corrupt or hostile cache entry is ignored and rebuilt.

``MIN_CACHED_STATE_BYTES`` is lowered so small files go through the cache; how many times the JSON
is actually parsed is counted by wrapping ``read_trainer_state``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

from dashboard.runs import column_cache
from dashboard.runs.synthetic import log_history, trainer_state, write_json
from dashboard.runs.trainer_state import ParsedState, read_trainer_state


@pytest.fixture()
def counted(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every real JSON parse the cache makes, by path."""
    monkeypatch.setattr(column_cache, "MIN_CACHED_STATE_BYTES", 0)
    calls: list[Path] = []

    def counting(path, roots=None):
        calls.append(Path(path))
        return read_trainer_state(path, roots)

    monkeypatch.setattr(column_cache, "read_trainer_state", counting)
    return calls


def assert_same(a: ParsedState, b: ParsedState) -> None:
    pd.testing.assert_frame_equal(a.metrics, b.metrics, check_exact=True)
    assert a.summary == b.summary
    assert a.problems == b.problems
    assert a.final_summary == b.final_summary
    assert a.readable == b.readable


def _synthetic(path: Path, n: int = 2000) -> Path:
    entries = log_history(n, eval_every=100)
    entries.append({"train_runtime": 12.5, "total_flos": 3.0, "train_loss": 0.5, "epoch": 1.0, "step": n})
    state = trainer_state(entries, n)
    state["best_metric"] = 0.25
    state["best_model_checkpoint"] = "/elsewhere/out/checkpoint-1000"
    state["trial_params"] = {"lr": 3e-4, "name": "x"}
    return write_json(path, state)


def test_cached_parse_equals_fresh_parse_on_a_synthetic_log(tmp_path: Path, counted: list[Path]) -> None:
    path = _synthetic(tmp_path / "run" / "trainer_state.json")
    data_dir = tmp_path / "data"
    fresh = read_trainer_state(path)
    first = column_cache.cached_state(path, data_dir)
    assert counted == [path] and column_cache.cache_path(data_dir, path, column_cache.STATE_FOLDER).is_file()
    second = column_cache.cached_state(path, data_dir)
    assert counted == [path]  # served from Parquet: no JSON parsed
    assert len(second.metrics) > 2000 and second.final_summary["train_runtime"] == 12.5
    assert_same(first, fresh)
    assert_same(second, fresh)
    assert column_cache.cached_state_summary(path, data_dir) == fresh.summary


def test_cached_parse_equals_fresh_parse_on_a_trainer_written_state(
        tmp_path: Path, demo_run_dir: Path, counted: list[Path]) -> None:
    """The demo run's root and checkpoint files were written by ``transformers.Trainer``."""
    files = sorted(demo_run_dir.rglob("trainer_state.json"))
    assert files
    for i, original in enumerate(files):
        path = tmp_path / str(i) / "trainer_state.json"
        path.parent.mkdir()
        shutil.copy2(original, path)
        column_cache.cached_state(path, tmp_path / "data")
        cached = column_cache.cached_state(path, tmp_path / "data")
        assert counted.count(path) == 1
        assert len(cached.metrics)
        assert_same(cached, read_trainer_state(path))


def test_a_changed_file_is_parsed_again(tmp_path: Path, counted: list[Path]) -> None:
    path = _synthetic(tmp_path / "run" / "trainer_state.json", n=500)
    data_dir = tmp_path / "data"
    column_cache.cached_state(path, data_dir)

    text = path.read_text(encoding="utf-8")  # appended to (the Trainer rewrites it longer)
    _synthetic(path, n=600)
    assert_same(column_cache.cached_state(path, data_dir), read_trainer_state(path))
    assert len(counted) == 2

    # Same size, mtime put back: only the content (one digit in the middle) changed.
    path.write_text(text, encoding="utf-8")
    column_cache.cached_state(path, data_dir)
    before = path.stat()
    middle = len(text) // 2
    digit = next(i for i in range(middle, len(text)) if text[i] in "12345678")
    changed = text[:digit] + str(int(text[digit]) + 1) + text[digit + 1:]
    path.write_text(changed, encoding="utf-8")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    n = len(counted)
    fresh = read_trainer_state(path)
    assert_same(column_cache.cached_state(path, data_dir), fresh)
    assert len(counted) == n + 1
    assert not read_trainer_state(path).metrics.equals(ParsedState.unreadable("x").metrics)


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "other_file"])
def test_a_corrupt_cache_entry_is_ignored_and_rebuilt(tmp_path: Path, counted: list[Path], damage: str) -> None:
    path = _synthetic(tmp_path / "run" / "trainer_state.json", n=800)
    other = _synthetic(tmp_path / "other" / "trainer_state.json", n=300)
    data_dir = tmp_path / "data"
    column_cache.cached_state(path, data_dir)
    column_cache.cached_state(other, data_dir)
    target = column_cache.cache_path(data_dir, path, column_cache.STATE_FOLDER)
    raw = target.read_bytes()
    target.write_bytes({"truncated": raw[: len(raw) // 2], "garbage": b"PAR1" + os.urandom(4000) + b"PAR1",
                        "empty": b"",
                        # a valid entry for another file: its key does not match
                        "other_file": column_cache.cache_path(data_dir, other, column_cache.STATE_FOLDER)
                        .read_bytes()}[damage])
    assert column_cache.cached_state_summary(path, data_dir) is None
    n = len(counted)
    assert_same(column_cache.cached_state(path, data_dir), read_trainer_state(path))
    assert len(counted) == n + 1  # parsed again, and the entry rewritten
    assert target.read_bytes() != b"" and column_cache.cached_state_summary(path, data_dir) is not None


def test_a_cache_entry_with_out_of_range_codes_is_ignored(tmp_path: Path, counted: list[Path]) -> None:
    """A well-formed Parquet file whose metric codes point past the names must not index out of range."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    path = _synthetic(tmp_path / "run" / "trainer_state.json", n=300)
    data_dir = tmp_path / "data"
    column_cache.cached_state(path, data_dir)
    target = column_cache.cache_path(data_dir, path, column_cache.STATE_FOLDER)
    table = pq.read_table(target)
    codes = table.column("metric").to_numpy().copy()
    codes[0] = 10_000
    table = table.set_column(2, "metric", pa.array(codes, pa.int32()))
    sink = io.BytesIO()
    pq.write_table(table, sink)
    target.write_bytes(sink.getvalue())
    n = len(counted)
    assert_same(column_cache.cached_state(path, data_dir), read_trainer_state(path))
    assert len(counted) == n + 1


def test_small_files_and_no_data_dir_are_not_cached(tmp_path: Path) -> None:
    path = _synthetic(tmp_path / "run" / "trainer_state.json", n=100)
    assert path.stat().st_size < column_cache.MIN_CACHED_STATE_BYTES
    assert_same(column_cache.cached_state(path, tmp_path / "data"), read_trainer_state(path))
    assert not (tmp_path / "data").exists()
    assert column_cache.cached_state_summary(path, None) is None


def test_load_run_and_runs_table_go_through_the_cache(tmp_path: Path, counted: list[Path],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from dashboard.runs import run as run_module
    from dashboard.runs.overview import runs_table, state_summary
    from dashboard.runs.discovery import list_runs

    root = tmp_path / "runs"
    path = _synthetic(root / "r" / "trainer_state.json", n=700)
    monkeypatch.setenv("VLMLAB_DATA_DIR", str(tmp_path / "data"))
    for memo in (run_module.parse_state_file, state_summary, runs_table):
        memo.clear()
    table = runs_table(list_runs(root), [root])
    assert table["best metric"].tolist() == [0.25] and table["global step"].tolist() == [700]
    run = run_module.load_run(root / "r", [root])
    assert counted == [path]  # Home's summary and the Timeline's table: one parse
    for memo in (run_module.parse_state_file, state_summary, runs_table):
        memo.clear()  # a fresh process: only the cache on disk
    assert runs_table(list_runs(root), [root]).equals(table)
    again = run_module.load_run(root / "r", [root])
    assert counted == [path]
    pd.testing.assert_frame_equal(again.metrics, run.metrics, check_exact=True)
    assert again.problems == run.problems and again.state == run.state
