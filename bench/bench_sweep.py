"""Wall time of one eval sweep: in-process pool vs Ray with 2 workers, same run, same settings.

    .venv/bin/python bench/bench_sweep.py --run runs/demo --checkpoints 4 --examples 40

Each backend scores a fresh copy of the run (no saved results reused); the Ray figure
includes starting the local cluster's actors and loading the models in them (not ray.init).
Rows of both are checked to be identical (greedy decoding).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="runs/demo")
    parser.add_argument("--checkpoints", type=int, default=4)
    parser.add_argument("--examples", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()

    import ray

    from dashboard.compare.ray_backend import RayBackend
    from dashboard.compare.results import load_scores
    from dashboard.compare.runner import run_eval
    from dashboard.evalset import EvalSet, load_eval_set
    from dashboard.generation import GenerationSettings
    from dashboard.models.pool import ModelPool

    src = Path(args.run)
    ckpt_names = sorted((p.name for p in src.glob("checkpoint-*")), key=lambda n: int(n.split("-")[1]))
    ckpt_names = ckpt_names[-args.checkpoints:]
    settings = GenerationSettings(max_new_tokens=16)
    tmp = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    times: dict[str, float] = {}
    rows: dict[str, dict[str, list]] = {}
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        for name in ("in-process", "ray-2-workers"):
            run = tmp / name / "demo"
            shutil.copytree(src, run, ignore=shutil.ignore_patterns("eval_results"))
            full = load_eval_set(run / "eval" / "demo.jsonl")
            evalset = EvalSet(full.name, full.path, full.examples[:args.examples])
            ckpts = [run / n for n in ckpt_names]
            if name == "in-process":
                kwargs = {"pool": ModelPool(budget_bytes=2 * 10**9, device="cpu"), "backend": None}
            else:
                kwargs = {"pool": None, "backend": RayBackend("auto")}
            t0 = time.perf_counter()
            report = run_eval(kwargs["pool"], run, ckpts, evalset, settings, batch_size=args.batch_size,
                              backend=kwargs["backend"])
            times[name] = time.perf_counter() - t0
            assert not report.errors, report.errors
            rows[name] = {n: [(r["id"], r["output"]) for r in load_scores(run, "demo", n).rows] for n in ckpt_names}
    finally:
        ray.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)
    identical = rows["in-process"] == rows["ray-2-workers"]
    load = os.getloadavg()
    print(f"{len(ckpt_names)} checkpoints × {args.examples} examples, batch {args.batch_size}, "
          f"max_new_tokens 16, greedy; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    for name, seconds in times.items():
        print(f"  {name:>14}: {seconds:6.1f} s")
    print(f"  ratio ray/in-process: {times['ray-2-workers'] / times['in-process']:.2f}; rows identical: {identical}")


if __name__ == "__main__":
    main()
