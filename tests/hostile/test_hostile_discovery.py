"""A run with 100,000 empty ``checkpoint-N`` folders (issue 29, "discovery"; issue 31).

On main the runs list was rebuilt with a fresh ``scandir`` of every run on every rerun (1.9 s
with this run present) and opening the run inspected all 100,000 folders (17 s); visitors of
*other* runs paid for the listing too. Asserted by call counts, never wall time: on main the
second listing scans the huge folder again, and loading the run inspects 100,000 folders, so
every assertion below about counts fails there.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from dashboard.runs import checkpoints as checkpoints_module
from dashboard.runs import listing
from dashboard.runs.checkpoints import MAX_LISTED_CHECKPOINTS
from dashboard.runs.run import list_runs, load_run, run_signature
from dashboard.runs.synthetic import write_run

N_HUGE = 100_000


def _age(path: Path, seconds: float = 3600) -> None:
    """Make a folder look untouched for an hour (fresh folders are never memoised: racy mtimes)."""
    then = time.time() - seconds
    os.utime(path, (then, then))


@pytest.fixture(scope="module")
def huge_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("huge-root")
    huge = root / "projA" / "huge"
    huge.mkdir(parents=True)
    for step in range(1, N_HUGE + 1):
        os.mkdir(huge / f"checkpoint-{step}")
    write_run(root / "projB" / "normal", n_steps=200, save_every=100)
    for folder in (huge, huge.parent, root / "projB" / "normal", root / "projB", root):
        _age(folder)
    return root


class _CountingScandir:
    def __init__(self, real) -> None:
        self.real, self.paths = real, []

    def __call__(self, path):
        self.paths.append(Path(path))
        return self.real(path)


def test_runs_list_is_not_rebuilt_when_nothing_changed(huge_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = {r.name: r.n_checkpoints for r in list_runs(huge_root)}
    assert first == {"projA/huge": N_HUGE, "projB/normal": 2}
    counter = _CountingScandir(os.scandir)
    monkeypatch.setattr(listing.os, "scandir", counter)
    again = {r.name: r.n_checkpoints for r in list_runs(huge_root)}
    assert again == first
    assert counter.paths == [], "an unchanged runs root must not be scanned again"


def test_opening_the_huge_run_inspects_a_bounded_number_of_folders(huge_root: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Path] = []
    real = checkpoints_module.inspect_checkpoint

    def counting(path, *args, **kwargs):
        calls.append(Path(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(checkpoints_module, "inspect_checkpoint", counting)
    huge = huge_root / "projA" / "huge"
    run = load_run(huge, [huge_root])
    assert len(calls) <= MAX_LISTED_CHECKPOINTS + 1
    assert len(run.checkpoints) <= MAX_LISTED_CHECKPOINTS + 1
    steps = [c.step for c in run.checkpoints]
    assert steps[0] == 1 and steps[-1] == N_HUGE and steps == sorted(steps)
    assert any("100,000 checkpoint folders; listing" in p for p in run.problems), run.problems
    # The change detector run on every rerun is bounded the same way.
    assert len(run_signature(huge)) <= 2 * MAX_LISTED_CHECKPOINTS + 10


def test_other_runs_do_not_pay_for_the_huge_one(huge_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    list_runs(huge_root)  # warm
    counter = _CountingScandir(os.scandir)
    monkeypatch.setattr(listing.os, "scandir", counter)
    normal = huge_root / "projB" / "normal"
    run = load_run(normal, [huge_root])
    list_runs(huge_root)
    assert len(run.checkpoints) == 2 and run.name == "projB/normal"
    assert not [p for p in counter.paths if "huge" in p.parts], counter.paths
