"""The one run-file opener: confinement, special/sparse/oversized files, LFS pointers, JSON depth."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dashboard.runs import files
from dashboard.runs.load_plan import plan_checkpoint
from dashboard.runs.files import (
    FileTooLargeError,
    JsonFileError,
    LfsPointerError,
    OutsideRootsError,
    SpecialFileError,
    read_bytes,
    read_json,
    write_atomic,
)

LFS = b"version https://git-lfs.github.com/spec/v1\noid sha256:" + b"0" * 64 + b"\nsize 123\n"


def test_reads_a_file_inside_the_root(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text('{"x": 1}')
    assert read_json(tmp_path / "a.json", [tmp_path]) == {"x": 1}


def test_relative_path_is_taken_against_the_first_root(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text("[1]")
    assert read_json("a.json", [tmp_path]) == [1]


def test_symlink_out_of_the_root_is_refused_without_quoting_content(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.json").write_text('{"token": "SECRET-123"}')
    root = tmp_path / "root"
    root.mkdir()
    (root / "evil.json").symlink_to(outside / "secret.json")
    with pytest.raises(OutsideRootsError) as info:
        read_json(root / "evil.json", [root])
    assert "SECRET" not in str(info.value)
    assert "outside the runs root" in str(info.value)


def test_proc_files_are_refused_even_inside_a_root() -> None:
    with pytest.raises(SpecialFileError):
        read_bytes("/proc/self/environ", ["/proc"], "text")


def test_fifo_is_refused(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.json")
    with pytest.raises(SpecialFileError):
        read_json(tmp_path / "pipe.json", [tmp_path])


def test_sparse_file_is_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "trainer_state.json"
    with path.open("wb") as handle:
        handle.truncate(200 * files.MB)
    with pytest.raises(FileTooLargeError, match="sparse"):
        read_json(path, [tmp_path], "trainer_state")


def test_oversized_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(files.SIZE_LIMITS, "json", 10)
    (tmp_path / "big.json").write_text("[" + "1," * 20 + "1]")
    with pytest.raises(FileTooLargeError, match="limit"):
        read_json(tmp_path / "big.json", [tmp_path])


def test_lfs_pointer_is_named(tmp_path: Path) -> None:
    (tmp_path / "trainer_state.json").write_bytes(LFS)
    with pytest.raises(LfsPointerError, match="git lfs pull"):
        read_json(tmp_path / "trainer_state.json", [tmp_path], "trainer_state")
    (tmp_path / "config.json").write_text('{"model_type": "llava"}')
    (tmp_path / "model.safetensors").write_bytes(LFS)
    plan = plan_checkpoint(tmp_path, [tmp_path])
    assert not plan.loadable and not plan.weight_files
    assert plan.problems == ("model.safetensors: Git LFS pointer — run `git lfs pull`",)


def test_deep_json_is_an_error_not_a_recursion_crash(tmp_path: Path) -> None:
    (tmp_path / "deep.json").write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(JsonFileError, match="nested too deeply"):
        read_json(tmp_path / "deep.json", [tmp_path])


def test_write_atomic_refuses_symlinked_folders_and_targets(tmp_path: Path) -> None:
    base, elsewhere = tmp_path / "base", tmp_path / "elsewhere"
    base.mkdir()
    elsewhere.mkdir()
    (base / "eval_results").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(OutsideRootsError):
        write_atomic(base / "eval_results" / "x.json", b"{}", base)
    assert list(elsewhere.iterdir()) == []
    (base / "link.json").symlink_to(elsewhere / "victim.json")
    with pytest.raises(OutsideRootsError):
        write_atomic(base / "link.json", b"{}", base)
    assert not (elsewhere / "victim.json").exists()
    assert write_atomic(base / "ok" / "x.json", b"{}", base).read_bytes() == b"{}"


def test_relative_symlink_inside_the_root_still_reads(tmp_path: Path) -> None:
    """The descriptor walk follows the *resolved* path, so a link that stays inside the root works."""
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "config.json").write_text('{"x": 2}')
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").symlink_to("../shared/config.json")
    (tmp_path / "linked").symlink_to("shared", target_is_directory=True)
    assert read_json(tmp_path / "run" / "config.json", [tmp_path]) == {"x": 2}
    assert read_json(tmp_path / "linked" / "config.json", [tmp_path]) == {"x": 2}
