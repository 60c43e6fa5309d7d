"""Writes (history, results, exports) never go through a symlink or out of their folder (issue 13).

Each test plants a link (or a FIFO) where the app writes, points it at a file outside, and
checks that the write is refused and the outside file is byte-for-byte unchanged.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from dashboard.compare.results import CheckpointScores, load_scores, result_relpath, save_scores
from dashboard.history import HistoryError, HistoryRecord, HistoryStore
from dashboard.metrics import score
from dashboard.runs.files import RunFileError

SECRET_BYTES = b"outside: must stay exactly like this\n"


@pytest.fixture()
def outside(tmp_path: Path) -> Path:
    target = tmp_path / "outside" / "victim"
    target.parent.mkdir()
    target.write_bytes(SECRET_BYTES)
    return target


def _record() -> HistoryRecord:
    return HistoryRecord.from_generation(checkpoint="run/checkpoint-1", prompt="p", output="o", settings={},
                                         timings={})


def _untouched(outside: Path) -> None:
    assert outside.read_bytes() == SECRET_BYTES
    assert sorted(p.name for p in outside.parent.iterdir()) == ["victim"]  # no side file created there


@pytest.mark.parametrize("existing", [True, False], ids=["to-a-file", "dangling"])
def test_symlinked_history_database_is_refused(tmp_path: Path, outside: Path, existing: bool) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "history.sqlite").symlink_to(outside if existing else outside.parent / "made-by-sqlite")
    with pytest.raises(HistoryError, match="is a symlink; refusing"):
        HistoryStore(data / "history.sqlite")
    _untouched(outside)


@pytest.mark.parametrize("suffix", ["-wal", "-shm", "-journal"])
def test_symlinked_sqlite_side_file_is_refused(tmp_path: Path, outside: Path, suffix: str) -> None:
    path = tmp_path / "data" / "history.sqlite"
    store = HistoryStore(path)
    store.add(_record())
    Path(f"{path}{suffix}").unlink(missing_ok=True)
    Path(f"{path}{suffix}").symlink_to(outside.parent / "made-by-sqlite")  # SQLite would create it
    with pytest.raises(HistoryError, match="is a symlink; refusing"):
        store.add(_record())
    _untouched(outside)


def test_history_swapped_for_a_link_after_opening_is_refused(tmp_path: Path, outside: Path) -> None:
    path = tmp_path / "data" / "history.sqlite"
    store = HistoryStore(path)
    store.add(_record())
    for leftover in path.parent.glob("history.sqlite*"):
        leftover.unlink()
    path.symlink_to(outside)
    for call in (lambda: store.add(_record()), store.list, store.count):
        with pytest.raises(HistoryError, match="is a symlink; refusing"):
            call()
    _untouched(outside)


def test_history_on_a_fifo_is_refused_not_hung(tmp_path: Path) -> None:
    path = tmp_path / "data" / "history.sqlite"
    path.parent.mkdir()
    os.mkfifo(path)
    with pytest.raises(HistoryError, match="not a regular file"):
        HistoryStore(path)


def test_export_to_a_symlink_is_refused(tmp_path: Path, outside: Path, capsys: pytest.CaptureFixture) -> None:
    """``eval --out`` is the user's own path (folders on it may be links, e.g. ``/tmp`` on macOS); the file
    itself must not be a link, and it is written atomically."""
    from dashboard.compare.headless import write_outputs  # here: its stderr default is bound at import

    report = {"eval_set": {"name": "demo", "n": 0, "sha256": "0" * 64}, "checkpoints": [], "paired": []}
    link = tmp_path / "report.json"
    link.symlink_to(outside)
    with pytest.raises(RunFileError, match="is a symlink; refusing"):
        write_outputs(report, as_json=True, out=str(link))
    _untouched(outside)
    plain = tmp_path / "out" / "report.json"
    plain.parent.mkdir()
    write_outputs(report, as_json=True, out=str(plain))
    assert json.loads(plain.read_text()) == report
    assert sorted(p.name for p in plain.parent.iterdir()) == ["report.json"]  # atomic: no temp file left


def _scores() -> CheckpointScores:
    rows = [{"id": "0", "output": "red", "scores": score("red", "red")}]
    return CheckpointScores(checkpoint="checkpoint-1", step=1, eval_set="demo", settings={}, settings_key="k",
                            checkpoint_signature="s", rows=rows, total=1, eval_set_hash="a" * 64)


@pytest.mark.parametrize("where", ["file", "set folder"])
def test_symlinked_result_file_or_folder_is_never_written_through(tmp_path: Path, outside: Path,
                                                                   where: str) -> None:
    run = tmp_path / "run"
    rel = result_relpath("demo", "a" * 64, "checkpoint-1", "k")
    folder = run / "eval_results" / rel.parent
    if where == "file":
        folder.mkdir(parents=True)
        (folder / rel.name).symlink_to(outside)
    else:
        folder.parent.mkdir(parents=True)
        folder.symlink_to(outside.parent, target_is_directory=True)
    saved = save_scores(run, _scores(), data_dir=tmp_path / "data")
    assert saved.is_relative_to(tmp_path / "data")  # the writable fallback, not the link's target
    _untouched(outside)
    again = load_scores(run, "demo", "checkpoint-1", tmp_path / "data", eval_set_hash="a" * 64)
    assert again is not None and again.n == 1
    with pytest.raises(OSError):
        save_scores(run, _scores())  # no data dir: refused rather than followed
    _untouched(outside)
