"""Patching bench: one example of ``python -m dashboard patch``, batched sites vs one forward per site.

    .venv/bin/python bench/bench_patching.py --run runs/demo --checkpoints A,B [--repeats 3]

Prints (as JSON) the end-to-end wall time of the CLI in a fresh process (imports, loading both
checkpoints, finding the first differing example, patching), then, in this process, the time
of finding the example and of patching it with every site in one batch (the shipped path) and
with one forward pass per site (the baseline, ``batch_size=1``), medians of ``--repeats`` runs,
their ratio, the restored values' largest difference between the two (they must agree), the
process's peak RSS and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _cli_seconds(run: str, checkpoints: str) -> float:
    began = time.perf_counter()
    subprocess.run([sys.executable, "-m", "dashboard", "patch", "--run", run, "--checkpoints", checkpoints, "--json"],
                   cwd=REPO, check=True, capture_output=True)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True)
    parser.add_argument("--checkpoints", required=True, help="A,B")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import torch

    from dashboard.analysis.patching import find_divergence, patch_divergence
    from dashboard.compare.headless import resolve_checkpoints, resolve_eval_set
    from dashboard.generation import GenerationSettings
    from dashboard.models.loading import load_checkpoint

    cli = _cli_seconds(args.run, args.checkpoints)
    run = Path(args.run).resolve()
    a_path, b_path = resolve_checkpoints(run, args.checkpoints.split(","))
    examples = resolve_eval_set(run, None, None).examples
    began = time.perf_counter()
    a = load_checkpoint(a_path, torch.device("cpu"), torch.float32, roots=[run])
    b = load_checkpoint(b_path, torch.device("cpu"), torch.float32, roots=[run])
    load_s = time.perf_counter() - began
    began = time.perf_counter()
    found = find_divergence(a, b, examples, [run], GenerationSettings(max_new_tokens=16))
    find_s = time.perf_counter() - began

    def timed(batch_size: int) -> tuple[float, dict]:
        times, report = [], None
        for _ in range(args.repeats):
            began = time.perf_counter()
            report = patch_divergence(a, b, found, batch_size=batch_size)
            times.append(time.perf_counter() - began)
        assert report is not None
        return statistics.median(times), report.to_dict()

    batched_s, batched = timed(32)
    single_s, single = timed(1)
    values = lambda r: [c["restored"] for c in r["components"]] + [x["restored"] for x in r["layers"]]  # noqa: E731
    gap = max(abs(x - y) for x, y in zip(values(batched), values(single), strict=True))
    print(json.dumps({
        "run": args.run, "checkpoints": args.checkpoints, "example": found.example.id,
        "sites": len(values(batched)) + 1,  # + the combined "language-model input" row
        "cli_end_to_end_s": round(cli, 2), "load_both_s": round(load_s, 2), "find_example_s": round(find_s, 2),
        "patch_batched_s": round(batched_s, 3), "patch_one_forward_per_site_s": round(single_s, 3),
        "speedup": round(single_s / batched_s, 2), "max_restored_difference": gap,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "load_average": [round(x, 2) for x in os.getloadavg()], "cpus": os.cpu_count(),
        "threads": torch.get_num_threads(),
    }, indent=1))


if __name__ == "__main__":
    main()
