"""What one *Check this map* costs against the largest sweep a public visitor may run (issue 34 × issue 30).

    nice -n 10 .venv/bin/python bench/bench_map_check.py --run runs/demo --rounds 3

On the run's last checkpoint and its first eval example, one torch thread (public mode's setting), interleaved
round by round so machine load hits every side alike (medians):

- *public check*: ``check_map`` with the public plan (``CheckPlan.within(cells, LIMITS.max_map_check_pictures,
  LIMITS.max_batch_size)``: 19 random orders, no sanity check), each batch through a no-op turn;
- *local check*: ``check_map`` with the local defaults (99 orders, 21 points, batches of 32, sanity check);
- *largest sweep*: ``LIMITS.max_sweep_generations`` answers of exactly ``LIMITS.max_new_tokens`` tokens
  (``min_new_tokens`` forces the length an EOS would cut short) in batches of ``LIMITS.max_batch_size``:
  one batch is timed and multiplied by the number of batches.

Prints one JSON object: seconds per side, ratios, pictures, the CPU and the load.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="runs/demo")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-local", action="store_true", help="skip the local check (hours on a real model)")
    args = parser.parse_args()

    import numpy as np
    import torch

    from bench.faithfulness_demo import cpu_name
    from dashboard.attention.analysis import analyse
    from dashboard.attention.faithfulness import LOCAL_PLAN, CheckPlan, check_map
    from dashboard.evalset import load_eval_set
    from dashboard.generation import build_inputs
    from dashboard.images import load_image
    from dashboard.models.pool import ModelPool
    from dashboard.public import LIMITS

    torch.set_num_threads(1)
    run = Path(args.run).resolve()
    checkpoint = max(run.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    example = load_eval_set(next((run / "eval").glob("*.jsonl"))).examples[0]
    image, prompt = load_image(example.image_path), example.prompt
    pool = ModelPool(budget_bytes=4 * 1024**3, device="cpu", dtype=torch.float32)
    load_before = os.getloadavg()
    with pool.acquire(checkpoint) as loaded:
        captured = analyse(loaded, image, prompt, max_new_tokens=1, lens_top_k=0, lens_image_tokens=False)
        cells = int(np.prod(captured.layout.primary.shape))
        public = CheckPlan.within(cells, LIMITS.max_map_check_pictures, LIMITS.max_batch_size)
        batch = build_inputs(loaded, [image] * LIMITS.max_batch_size, prompt)
        batches = -(-LIMITS.max_sweep_generations // LIMITS.max_batch_size)

        def check(plan: CheckPlan) -> float:
            start = time.perf_counter()
            check_map(loaded, captured, 0, plan=plan)
            return time.perf_counter() - start

        def sweep() -> float:
            start = time.perf_counter()
            with torch.inference_mode():
                out = loaded.model.generate(**batch, max_new_tokens=LIMITS.max_new_tokens,
                                            min_new_tokens=LIMITS.max_new_tokens, do_sample=False)
            assert out.shape[1] - batch["input_ids"].shape[1] == LIMITS.max_new_tokens
            return (time.perf_counter() - start) * batches

        times: dict[str, list[float]] = {"public_check": [], "local_check": [], "largest_sweep": []}
        check(public)  # warm-up
        for _ in range(args.rounds):
            times["public_check"].append(check(public))
            if not args.no_local:
                times["local_check"].append(check(LOCAL_PLAN))
            times["largest_sweep"].append(sweep())
    median = {k: statistics.median(v) if v else float("nan") for k, v in times.items()}
    print(json.dumps({
        "checkpoint": checkpoint.name, "image": list(image.size),
        "prompt_tokens": int(batch["input_ids"].shape[1]), "cells": cells, "cpu": cpu_name(), "torch_threads": 1,
        "load_before": list(load_before), "load_after": list(os.getloadavg()),
        "public_pictures": public.pictures(cells), "public_points": public.points, "public_orders": len(public.seeds),
        "local_pictures": LOCAL_PLAN.pictures(cells), "sweep": f"{LIMITS.max_sweep_generations} answers × "
        f"{LIMITS.max_new_tokens} tokens, batches of {LIMITS.max_batch_size}",
        "seconds_median": median, "seconds": times,
        "public_over_sweep": median["public_check"] / median["largest_sweep"],
        "local_over_sweep": median["local_check"] / median["largest_sweep"],
        "local_over_public": median["local_check"] / median["public_check"],
    }, indent=1))


if __name__ == "__main__":
    main()
