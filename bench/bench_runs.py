"""Run discovery at scale: 500 nested runs, and one run with 100,000 empty checkpoint folders.

    .venv/bin/python bench/bench_runs.py [--runs 500] [--huge 100000] [--reps 5]

Times (medians of ``--reps``), each against a baseline measured in the same process:

- listing the runs root: *cold* (every directory memo cleared: what main did on every rerun,
  an uncached walk) vs *warm* (the memoised listing a rerun gets when nothing changed);
- the Home runs table (trainer_state run-level fields per run), cold vs warm;
- Home's first render and a rerun with AppTest (sidebar + overview + runs table), 500 runs;
- opening the 100k-checkpoint run (capped listing) and the runs list next to it, cold vs warm.

No timed assertions anywhere: the numbers go to bench/RESULTS.md with the machine load.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

REPO = Path(__file__).resolve().parents[1]


def _median(fn, reps: int, before=None) -> float:
    times = []
    for _ in range(reps):
        if before:
            before()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _age(root: Path) -> None:
    then = time.time() - 3600
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            os.utime(Path(dirpath) / name, (then, then), follow_symlinks=False)
    os.utime(root, (then, then))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--huge", type=int, default=100_000)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()

    from dashboard import caching
    from dashboard.runs.discovery import list_runs
    from dashboard.runs.listing import dir_summary
    from dashboard.runs.overview import runs_table
    from dashboard.runs.run import load_run
    from dashboard.runs.synthetic import write_run

    print(f"load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    tmp = Path(tempfile.mkdtemp(prefix="bench-runs-"))
    root = tmp / "runs"
    for i in range(args.runs):
        write_run(root / f"project{i // 10:02d}" / f"sweep_lr{i % 10}e-4_seed{i}_{i * 7919 % 100_000:05x}",
                  n_steps=100, save_every=50, eval_every=50, seed=i)
    _age(root)
    n = len(list_runs(root))
    cold = _median(lambda: list_runs(root), args.reps, before=dir_summary.clear)
    warm = _median(lambda: list_runs(root), args.reps)
    print(f"{n} runs: list cold {cold * 1e3:.1f} ms, warm {warm * 1e3:.1f} ms ({cold / warm:.0f}x)")
    table_cold = _median(lambda: runs_table(list_runs(root), [root]), args.reps, before=caching.clear_all)
    table_warm = _median(lambda: runs_table(list_runs(root), [root]), args.reps)
    print(f"runs table: cold {table_cold * 1e3:.0f} ms, warm {table_warm * 1e3:.1f} ms "
          f"({table_cold / table_warm:.0f}x)")

    huge = tmp / "huge-root" / "proj" / "huge"
    huge.mkdir(parents=True)
    for step in range(1, args.huge + 1):
        os.mkdir(huge / f"checkpoint-{step}")
    _age(huge.parent.parent)
    huge_root = huge.parent.parent
    list_cold = _median(lambda: list_runs(huge_root), args.reps, before=dir_summary.clear)
    list_warm = _median(lambda: list_runs(huge_root), args.reps)
    load = _median(lambda: load_run(huge, [huge_root]), args.reps, before=caching.clear_all)
    print(f"{args.huge:,}-checkpoint run: list cold {list_cold * 1e3:.0f} ms, warm {list_warm * 1e3:.2f} ms "
          f"({list_cold / list_warm:.0f}x); load_run (capped listing) {load:.2f} s")

    import streamlit as st
    from streamlit.testing.v1 import AppTest

    def first_render(runs_root: Path) -> tuple[float, float]:
        """Seconds for a fresh session's first Home render (caches cleared) and a rerun's median."""
        os.environ["VLMLAB_RUNS_ROOT"] = str(runs_root)
        caching.clear_all()
        st.cache_resource.clear()  # the app's memo stores (dashboard/ui/resources.py) live here
        at = AppTest.from_file(str(REPO / "Home.py"), default_timeout=600)
        start = time.perf_counter()
        at.run()
        seconds = time.perf_counter() - start
        assert not at.exception, at.exception
        return seconds, _median(lambda: at.run(), args.reps)

    os.environ.update(VLMLAB_DATA_DIR=str(tmp / "data"), VLMLAB_MEMORY_BUDGET="1GB")
    os.chdir(REPO)
    one = tmp / "one-run"
    write_run(one / "only", n_steps=100, save_every=50, eval_every=50)
    _age(one)
    first_render(one)  # imports and Streamlit's own start-up, outside every timing below
    base_first, base_rerun = first_render(one)
    many_first, many_rerun = first_render(root)
    print(f"Home first render: 1 run {base_first:.2f} s, {n} runs {many_first:.2f} s "
          f"({many_first / base_first:.1f}x); rerun 1 run {base_rerun:.2f} s, {n} runs {many_rerun:.2f} s "
          f"({many_rerun / base_rerun:.1f}x)")

    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
