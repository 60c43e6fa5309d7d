"""Timeline benchmark: parse + prepare a 1,000,000-point log, next to baselines in the same run.

trainer_state.json (N log entries, each with loss/grad_norm/learning_rate; evals every 1000):
  * json.load alone (the floor: any reader pays it)
  * naive pandas: json.load + DataFrame(list of dicts) + melt
  * ours: dashboard.runs.trainer_state.read_trainer_state (json.load + column-wise table)
TensorBoard event file (N scalar points, HF tag layout):
  * tensorboard's EventAccumulator (size_guidance: keep all scalars)
  * tbparse.SummaryReader(...).scalars
  * ours: dashboard.runs.tensorboard.read_event_file (vectorised plain scalars; CRC not checked)
  * ours without the vectorised path (every record through protobuf): the reference
  Values are compared with tbparse's (tag, step, value): printed as "identical".
Prepare: build the Timeline figure (3 metrics, smoothing 0.6, 2,000 points per trace) and
report points per trace and the JSON size sent to the browser.
Cold / warm Timeline on the event-file run (load_run + build_figure + figure JSON):
  * first read ever (no column cache), * cold process with the Parquet column cache on disk,
  * warm (run already parsed in this process: build_figure + JSON only, as a rerun does).

With ``--trainer-state-only --pairs K``: only the trainer_state parse, K interleaved rounds of
(json.load with its result freed, json.load with its result kept, read_trainer_state) on the same
file, each round's ratios and their median (on a shared machine the load changes between two
separate best-of-3 runs more than the gap).

With ``--fresh-processes --pairs K``: the first Home + Timeline of a fresh app process on a run
whose only log is the N-entry trainer_state.json, K rounds of three child processes on the same
file: ``json.load`` of it; the app with an empty data dir (no column cache: parses the JSON and
writes the cache); the app again with that cache on disk (a restarted server). The app part is
Streamlit's ``AppTest`` running ``Home.py`` and then switching to the Timeline page, timed after
the app's modules are imported and a one-line AppTest has run once (imports and Streamlit's
start-up, e.g. its 0.4-0.6 s component-manifest scan, which AppTest repeats per instance and
is answered from the first scan, cost the same with or without the cache, and a
server pays them before its first page). Wall and CPU seconds (``time.process_time``, all of the
child's threads) are both reported: CPU time leaves out the time spent waiting for a core on a
shared machine.

Usage: .venv/bin/python bench/bench_timeline.py [--points 1000000] [--skip-tbparse]
       .venv/bin/python bench/bench_timeline.py --points 300000 --trainer-state-only --pairs 9
       .venv/bin/python bench/bench_timeline.py --points 1000000 --fresh-processes --pairs 5
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd

from dashboard.runs import run as run_module
from dashboard.runs.run import load_run
from dashboard.runs.synthetic import log_history, trainer_state, write_event_file, write_json
from dashboard.runs.tensorboard import read_event_file, scan_event_file
from dashboard.runs.trainer_state import read_trainer_state
from dashboard.timeline.figure import ChartOptions, build_figure
from dashboard.timeline.series import best_checkpoint


def timed(fn, repeat: int = 1):
    best, result = float("inf"), None
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def naive_pandas(path: Path) -> pd.DataFrame:
    with path.open("rb") as fh:
        state = json.load(fh)
    frame = pd.DataFrame(state["log_history"])
    return frame.melt(id_vars=["step", "epoch"], var_name="metric", value_name="value").dropna(subset=["value"])


def event_accumulator(path: Path) -> int:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(path), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    tags = acc.Tags()
    n = sum(len(acc.Scalars(t)) for t in tags.get("scalars", []))
    n += sum(len(acc.Tensors(t)) for t in tags.get("tensors", []))
    return n


def tbparse_scalars(path: Path):
    from tbparse import SummaryReader

    return SummaryReader(str(path)).scalars


def identical_to_tbparse(ours_table: pd.DataFrame, ref: pd.DataFrame) -> bool:
    """Same (tag, step, value) multiset, epoch tag aside (ours folds it into the epoch column)."""
    ref = ref[ref["tag"] != "train/epoch"]
    name = {"train/loss": "loss", "train/grad_norm": "grad_norm", "train/learning_rate": "learning_rate"}
    theirs = sorted(zip(ref["tag"].map(name), ref["step"].astype(int), ref["value"].astype(float), strict=True))
    mine = sorted(zip(ours_table["metric"].astype(str), ours_table["step"].astype(int),
                      ours_table["value"].astype(float), strict=True))
    return theirs == mine


def prepare(run_dir: Path, root: Path, metrics: list[str]) -> tuple[float, dict, int]:
    def go():
        run = load_run(run_dir, [root])
        best = best_checkpoint(run, metrics[-1]) if metrics else None
        fig, stats = build_figure(run, ChartOptions(metrics=metrics, smoothing=0.6), best=best)
        return stats, len(fig.to_json())

    seconds, (stats, nbytes) = timed(go)
    return seconds, stats.points, nbytes


def _json_load_and_free(path: Path) -> None:
    """json.load with its result freed inside the timing: every reader pays for dropping the parsed
    log (300k dicts), and ours frees it before returning."""
    with path.open("rb") as fh:
        json.load(fh)


def _json_load_kept(path: Path):
    with path.open("rb") as fh:
        return json.load(fh)


def interleaved_pairs(path: Path, pairs: int) -> dict[str, list[float]]:
    """Ratios of read_trainer_state to json.load (result freed / result kept, i.e. its freeing
    outside the timing), each from back-to-back runs on the same file, order rotating."""
    readers = {"json.load + free": lambda: _json_load_and_free(path), "json.load, kept": lambda: _json_load_kept(path),
               "ours": lambda: read_trainer_state(path)}
    ratios: dict[str, list[float]] = {"json.load + free": [], "json.load, kept": []}
    names = list(readers)
    best = dict.fromkeys(names, float("inf"))
    for i in range(pairs):
        seconds = {}
        for which in names[i % 3:] + names[:i % 3]:
            seconds[which], _ = timed(readers[which])
            best[which] = min(best[which], seconds[which])
        for base in ratios:
            ratios[base].append(seconds["ours"] / seconds[base])
        print(f"  round {i + 1}: " + ", ".join(f"{k} {v:.3f} s" for k, v in seconds.items()))
    print("  best of all rounds: " + ", ".join(f"{k} {v:.3f} s" for k, v in best.items())
          + "; ratios of bests: " + ", ".join(f"/ {k} {best['ours'] / best[k]:.2f}×" for k in ratios))
    return ratios


REPO_ROOT = Path(__file__).resolve().parents[1]
CHILD_JSON = """
import json, sys, time
start, cpu = time.perf_counter(), time.process_time()
with open(sys.argv[1], "rb") as fh:
    json.load(fh)
print(time.perf_counter() - start, time.process_time() - cpu)
"""
CHILD_APP = """
import sys, time
from streamlit.testing.v1 import AppTest
import dashboard.ui.home_view, dashboard.ui.timeline_view, dashboard.ui.sidebar  # noqa: F401 (imports untimed)
import plotly.graph_objects  # noqa: F401
import functools
from streamlit.components.v2 import manifest_scanner
# AppTest rescans every installed package for component manifests per instance (~0.4 s); a server
# scans once at start-up. The scan's answer is kept so only the app's own work is timed.
manifest_scanner.scan_component_manifests = functools.cache(manifest_scanner.scan_component_manifests)
AppTest.from_string("import streamlit as st; st.write(1)").run()  # Streamlit's one-time start-up (untimed)
start, cpu = time.perf_counter(), time.process_time()
at = AppTest.from_file(sys.argv[1] + "/Home.py", default_timeout=600).run()
assert not at.exception, at.exception
home = time.perf_counter() - start
at.switch_page("pages/3_Timeline.py").run()
assert not at.exception, at.exception
assert at.get("plotly_chart"), "the Timeline drew no chart"
print(home, time.perf_counter() - start, time.process_time() - cpu)
"""


def _child(code: str, *args: str, env: dict[str, str] | None = None) -> list[float]:
    done = subprocess.run([sys.executable, "-c", code, *args], cwd=REPO_ROOT, env=env, check=True,
                          capture_output=True, text=True)
    return [float(x) for x in done.stdout.split()]


def fresh_processes(root: Path, path: Path, pairs: int) -> None:
    """First Home + Timeline in a fresh process, without and with the column cache, vs json.load."""
    data_dir = Path(tempfile.mkdtemp(prefix="bench-timeline-data-"))  # the app's data dir: not in the runs root
    env = {**os.environ, "VLMLAB_RUNS_ROOT": str(path.parent.parent), "VLMLAB_DATA_DIR": str(data_dir),
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONPATH": str(REPO_ROOT)}
    ratios: dict[str, list[float]] = {"first process (no cache), wall": [], "second process (cache on disk), wall": [],
                                      "first process (no cache), CPU": [], "second process (cache on disk), CPU": []}
    for i in range(pairs):
        shutil.rmtree(data_dir, ignore_errors=True)
        t_json, cpu_json = _child(CHILD_JSON, str(path))
        home_cold, cold, cpu_cold = _child(CHILD_APP, str(REPO_ROOT), env=env)
        home_warm, warm, cpu_warm = _child(CHILD_APP, str(REPO_ROOT), env=env)
        ratios["first process (no cache), wall"].append(cold / t_json)
        ratios["second process (cache on disk), wall"].append(warm / t_json)
        ratios["first process (no cache), CPU"].append(cpu_cold / cpu_json)
        ratios["second process (cache on disk), CPU"].append(cpu_warm / cpu_json)
        print(f"  round {i + 1}: json.load {t_json:.2f} s (CPU {cpu_json:.2f} s); "
              f"first process Home {home_cold:.2f} s, "
              f"+ Timeline {cold:.2f} s ({cold / t_json:.2f}×; CPU {cpu_cold:.2f} s, {cpu_cold / cpu_json:.2f}×); "
              f"second process Home {home_warm:.2f} s, + Timeline {warm:.2f} s ({warm / t_json:.2f}×; "
              f"CPU {cpu_warm:.2f} s, {cpu_warm / cpu_json:.2f}×)", flush=True)
    for label, values in ratios.items():
        values.sort()
        print(f"Home + Timeline / json.load, {label}: median {values[len(values) // 2]:.2f}× "
              f"(min {values[0]:.2f}×, max {values[-1]:.2f}×, {len(values)} rounds)")
    print("goals: first process ≤ 1.5×, second process ≤ 0.5×")
    shutil.rmtree(data_dir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--skip-tbparse", action="store_true")
    parser.add_argument("--trainer-state-only", action="store_true",
                        help="only the trainer_state parse, as interleaved pairs with json.load")
    parser.add_argument("--fresh-processes", action="store_true",
                        help="first Home + Timeline in fresh processes, with and without the column cache")
    parser.add_argument("--pairs", type=int, default=9)
    args = parser.parse_args()
    n = args.points
    rows: list[tuple[str, str, float]] = []
    with tempfile.TemporaryDirectory(prefix="bench-timeline-") as tmp:
        root = Path(tmp)
        # ------------------------------------------------------------ trainer_state.json
        entries = log_history(n, eval_every=1000)
        state_dir = root / "state-run"
        path = state_dir / "trainer_state.json"
        if args.fresh_processes:  # as TrainerState.save_to_json writes it
            state_dir.mkdir(parents=True)
            path.write_text(json.dumps(trainer_state(entries, n), indent=2, sort_keys=True) + "\n", encoding="utf-8")
        else:
            write_json(path, trainer_state(entries, n))
        del entries
        print(f"trainer_state.json: {n:,} log entries, {path.stat().st_size / 1e6:.0f} MB")
        if args.fresh_processes:
            fresh_processes(root, path, args.pairs)
            return
        if args.trainer_state_only:
            for base, values in interleaved_pairs(path, args.pairs).items():
                values.sort()
                print(f"read_trainer_state / {base}: median {values[len(values) // 2]:.2f}× "
                      f"(min {values[0]:.2f}×, max {values[-1]:.2f}×, {len(values)} rounds; goal ≤ 0.8×)")
            return
        t_json, _ = timed(lambda: json.load(path.open("rb")), repeat=3)
        t_naive, naive = timed(lambda: naive_pandas(path))
        t_ours, parsed = timed(lambda: read_trainer_state(path), repeat=3)
        print(f"  rows: ours {len(parsed.metrics):,}, naive {len(naive):,}")
        del naive, parsed
        rows += [("trainer_state", "json.load only (baseline)", t_json),
                 ("trainer_state", "naive pandas (DataFrame(records) + melt)", t_naive),
                 ("trainer_state", "ours: read_trainer_state", t_ours)]
        t_prep, points, nbytes = prepare(state_dir, root, ["loss", "learning_rate", "eval_loss"])
        rows.append(("trainer_state", "ours: load_run + build_figure (3 metrics)", t_prep))
        print(f"  figure: max {max(points.values()):,} points/trace, {len(points)} traces, JSON {nbytes / 1e6:.2f} MB")
        print(f"  points per trace: {points}")

        # ------------------------------------------------------------ TensorBoard
        steps = n // 4  # HF logs loss, grad_norm, learning_rate, epoch per logging step: 4 scalars per step
        tb_entries = log_history(steps)
        scalars = [(tag, e["step"], float(e[key])) for e in tb_entries
                   for tag, key in (("train/loss", "loss"), ("train/grad_norm", "grad_norm"),
                                    ("train/learning_rate", "learning_rate"), ("train/epoch", "epoch"))]
        tb_dir = root / "tb-run"
        event_path = write_event_file(tb_dir / "runs" / "x", scalars, start_time=1.7e9)
        del tb_entries
        print(f"event file: {len(scalars):,} scalar points, {event_path.stat().st_size / 1e6:.0f} MB")
        del scalars
        t_tb_ours, (table, _) = timed(lambda: read_event_file(event_path), repeat=3)
        print(f"  rows: ours {len(table):,} (epoch tag folded into the epoch column)")
        t_slow, _ = timed(lambda: scan_event_file(event_path, fast=False))
        t_acc, n_acc = timed(lambda: event_accumulator(event_path))
        print(f"  EventAccumulator points: {n_acc:,}")
        rows += [("tensorboard", "EventAccumulator (tensorboard)", t_acc),
                 ("tensorboard", "ours: read_event_file", t_tb_ours),
                 ("tensorboard", "ours, every record through protobuf (reference)", t_slow)]
        if not args.skip_tbparse:
            t_tbp, ref = timed(lambda: tbparse_scalars(event_path))
            print(f"  tbparse rows: {len(ref):,}; values identical to ours: {identical_to_tbparse(table, ref)}")
            rows.append(("tensorboard", "tbparse SummaryReader.scalars", t_tbp))
            del ref
        metrics3 = ["loss", "learning_rate", "grad_norm"]
        data_dir = root / "data"
        os.environ["VLMLAB_DATA_DIR"] = str(data_dir)
        run_module.parse_event_file.clear()
        t_first, points_tb, nbytes_tb = prepare(tb_dir, root, metrics3)
        run_module.parse_event_file.clear()
        # a restarted app: only the Parquet cache is left
        t_cold, _, _ = prepare(tb_dir, root, metrics3)
        run = load_run(tb_dir, [root])
        best = best_checkpoint(run, metrics3[-1])
        t_warm, _ = timed(lambda: build_figure(run, ChartOptions(metrics=metrics3, smoothing=0.6), best=best)[0]
                          .to_json())
        rows += [("tensorboard", "Timeline first read ever (load_run + figure + JSON, no cache)", t_first),
                 ("tensorboard", "Timeline cold process, Parquet column cache on disk", t_cold),
                 ("tensorboard", "Timeline warm rerun (figure + JSON)", t_warm)]
        print(f"  figure: max {max(points_tb.values()):,} points/trace, JSON {nbytes_tb / 1e6:.2f} MB")

    print()
    print("| input | reader | seconds | ratio |")
    print("|---|---|---:|---:|")
    base = {"trainer_state": t_json, "tensorboard": t_tb_ours}
    for source, label, seconds in rows:
        print(f"| {source} | {label} | {seconds:.2f} | {seconds / base[source]:.2f}× |")
    print("\nratio: trainer_state rows vs json.load alone; tensorboard rows vs ours.")
    print(f"goals: trainer_state -> table {t_ours / t_json:.2f}× json.load (≤ 1.0×); "
          + (f"tbparse / ours {t_tbp / t_tb_ours:.1f}× (≥ 5×); " if not args.skip_tbparse else "")
          + f"cold Timeline with cache {t_cold:.2f} s (≤ 2 s); warm {t_warm:.2f} s (≤ 0.3 s)")


if __name__ == "__main__":
    main()
