"""Peak memory over baseline while each hostile run of issue 13 is opened (target: < 512 MB each).

Each case runs in a fresh subprocess (so one case's allocations cannot hide another's): the
process imports the app, records its resident set as the baseline, then opens the case the way
the app does — ``load_run`` (checkpoints, trainer_state, event files), the eval sets
(``find_eval_sets`` + ``load_eval_set``), every image of them (``load_image``), and
``inspect_checkpoint`` of every checkpoint (configs, shard index, processor, meta-device
estimate) — while a sampler thread tracks the peak RSS. Errors are expected (that is the point);
crashes and the peak are what is reported.

    python bench/bench_hostile.py [--only NAME]
    python bench/bench_hostile.py --loads [--only FILE-ATTACK,...]

``--loads`` runs issue 29's cases instead (``tests/hostile/load_corpus.py``): every file a checkpoint
load reads (configs, tokenizer, chat templates, processor configs, special/added tokens) linked
outside the root, linked to ``/proc/self/environ``, 3 GB sparse, huge, or hard-linked; each child lists
the checkpoint and runs the full ``load_checkpoint`` (staging, processor, model) as the pool would.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGET_MB = 512

# Both children measure the same way: RSS sampled every 2 ms from right after the baseline.
_PEAK_SAMPLER = """def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096

{args}, root = Path(sys.argv[2]), Path(sys.argv[3])
baseline = rss()
peak = [baseline]
stop = threading.Event()
def sample():
    while not stop.is_set():
        peak[0] = max(peak[0], rss())
        time.sleep(0.002)
threading.Thread(target=sample, daemon=True).start()
started = time.perf_counter()"""

CHILD = r"""
import json, sys, threading, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import torch, transformers, pandas  # noqa: F401 - part of the baseline, as in the app
from dashboard.evalset import EvalSetError, find_eval_sets, load_eval_set
from dashboard.images import ImageError, load_image
from dashboard.models.loading import CheckpointLoadError, inspect_checkpoint
from dashboard.runs.run import load_run

""" + _PEAK_SAMPLER.format(args="run") + r"""
outcomes = []
data = load_run(run, [root])
outcomes.append(f"{len(data.checkpoints)} ckpt, {len(data.problems)} problems")
for path in find_eval_sets(run, [root]):
    try:
        evalset = load_eval_set(path, roots=[root])
    except EvalSetError as exc:
        outcomes.append(type(exc).__name__); continue
    for ex in evalset.examples:
        try:
            load_image(ex.image_path)
        except ImageError:
            outcomes.append("ImageError")
for c in data.checkpoints:
    try:
        inspect_checkpoint(c.path, roots=[root])
    except CheckpointLoadError:
        outcomes.append("CheckpointLoadError")
elapsed = time.perf_counter() - started
stop.set(); time.sleep(0.01)
peak[0] = max(peak[0], rss())
print(json.dumps({"over_baseline_mb": (peak[0] - baseline) / 1e6, "seconds": elapsed,
                  "outcome": "; ".join(dict.fromkeys(outcomes))}))
"""


LOAD_CHILD = r"""
import json, sys, threading, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import torch, transformers, pandas  # noqa: F401 - part of the baseline, as in the app
from dashboard.models.loading import CheckpointLoadError, load_checkpoint
from dashboard.runs.checkpoints import inspect_checkpoint

""" + _PEAK_SAMPLER.format(args="ckpt") + r"""
listed = inspect_checkpoint(ckpt, roots=[root])
try:
    load_checkpoint(ckpt, torch.device("cpu"), roots=[root])
    outcome = "LOADED"
except CheckpointLoadError as exc:
    outcome = "refused: " + str(exc).split(": ", 1)[-1]
elapsed = time.perf_counter() - started
stop.set(); time.sleep(0.01)
peak[0] = max(peak[0], rss())
print(json.dumps({"over_baseline_mb": (peak[0] - baseline) / 1e6, "seconds": elapsed,
                  "outcome": ("listed loadable; " if listed.loadable else "") + outcome}))
"""


def _load_cases(base: Path, model: Path, only: list[str] | None) -> dict[str, tuple[Path, Path]]:
    """Issue 29's cases, one runs root each: name → (checkpoint, runs root)."""
    from tests.hostile.load_corpus import ATTACKS, LOAD_FILES, build_case

    cases = {}
    if not only or "clean" in only:  # the same checkpoint untouched: what a normal load costs
        root = base / "clean" / "runs"
        cases["clean"] = (Path(shutil.copytree(model, root / "run" / "checkpoint-1")), root)
    for name in LOAD_FILES:
        for attack in ATTACKS:
            case = f"{name}-{attack}"
            if only and case not in only:
                continue
            root = base / case / "runs"
            cases[case] = (build_case(root, base / case / "outside", model, name, attack), root)
    return cases


def _child(code: str, target: Path, root: Path) -> tuple[float, float, str]:
    proc = subprocess.run([sys.executable, "-c", code, str(REPO), str(target), str(root)],
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    if proc.returncode:
        return float("nan"), 0.0, f"CRASHED rc={proc.returncode}: {proc.stderr[-200:]}"
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return result["over_baseline_mb"], result["seconds"], result["outcome"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated case names to run (default: all)")
    parser.add_argument("--loads", action="store_true", help="issue 29's load cases instead of issue 13's runs")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from dashboard.demo.modeling import save_tiny_llava
    from tests.hostile.walls_corpus import build_corpus

    print("load average:", os.getloadavg())
    with tempfile.TemporaryDirectory(prefix="bench-hostile-") as tmp:
        base = Path(tmp)
        model = save_tiny_llava(base / "model")
        only = args.only.split(",") if args.only else None
        rows = []
        if args.loads:
            for name, (ckpt, root) in _load_cases(base, model, only).items():
                rows.append((name, *_child(LOAD_CHILD, ckpt, root)))
                print(f"{name:44s} {rows[-1][1]:8.1f} MB {rows[-1][2]:6.2f} s  {rows[-1][3][:110]}", flush=True)
        else:
            runs = build_corpus(base / "runs", base / "outside", model)
            for name, run in sorted(runs.items()):
                if only and name not in only:
                    continue
                rows.append((name, *_child(CHILD, run, base / "runs")))
                print(f"{name:22s} {rows[-1][1]:8.1f} MB {rows[-1][2]:6.2f} s  {rows[-1][3][:90]}", flush=True)
    worst = max((r[1] for r in rows), default=0.0)
    print(f"\nworst case: {worst:.1f} MB over baseline (target < {TARGET_MB} MB) · load average {os.getloadavg()}")
    print(f"finished {time.strftime('%Y-%m-%d %H:%M:%S')}")


if __name__ == "__main__":
    main()
