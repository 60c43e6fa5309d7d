import os
from pathlib import Path

import pytest

from dashboard.paths import PathOutsideRoots, is_within, resolve_within


def test_inside_root_resolves(tmp_path: Path):
    (tmp_path / "run" / "checkpoint-1").mkdir(parents=True)
    checkpoint = tmp_path / "run" / "checkpoint-1"
    assert resolve_within(checkpoint, [tmp_path]) == checkpoint.resolve()
    assert resolve_within("run", [tmp_path]) == (tmp_path / "run").resolve()


def test_dotdot_escape_is_refused(tmp_path: Path):
    root = tmp_path / "runs"
    root.mkdir()
    with pytest.raises(PathOutsideRoots, match="outside the runs root"):
        resolve_within(root / ".." / "secret", [root])
    assert not is_within("../etc/passwd", [root])


def test_symlink_escape_is_refused(tmp_path: Path):
    root = tmp_path / "runs"
    outside = tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    os.symlink(outside, root / "sneaky")
    with pytest.raises(PathOutsideRoots):
        resolve_within(root / "sneaky", [root])


def test_prefix_sibling_is_not_inside(tmp_path: Path):
    root = tmp_path / "runs"
    sibling = tmp_path / "runs-other"
    root.mkdir()
    sibling.mkdir()
    assert not is_within(sibling, [root])


def test_second_root_accepted_and_no_roots_refused(tmp_path: Path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    assert is_within(b, [a, b])
    with pytest.raises(PathOutsideRoots, match="no runs root"):
        resolve_within(a, [])
