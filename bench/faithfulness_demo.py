"""Record the faithfulness of a run's maps, checkpoint by checkpoint, as README quotes it (issue 34's Done-when).

Runs ``python -m dashboard faithfulness --json`` (the CLI, i.e. the page's code) on each checkpoint, or takes
reports it already printed, and writes their summaries with the run's exact match, the CPU and the load into
one record, which ``tests/demo/test_readme_figures.py`` holds README's table to:

    nice -n 5 .venv/bin/python bench/faithfulness_demo.py --run runs/demo \\
        --checkpoints checkpoint-300,checkpoint-2700 --limit 100 --out bench/faithfulness_demo.json
    .venv/bin/python bench/faithfulness_demo.py --run runs/demo --reports first.json last.json --out …  # reports kept
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path


def cpu_name() -> str:
    """The CPU's model name (README says which machine each figure comes from)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def run_cli(checkpoint: Path, eval_file: Path, limit: int) -> dict:
    command = [sys.executable, "-m", "dashboard", "faithfulness", "--checkpoint", str(checkpoint), "--eval",
               str(eval_file), "--limit", str(limit), "--json"]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(done.stdout)


def record(run: Path, reports: list[dict], command: str, started: float, load_before: tuple) -> dict:
    summary = json.loads((run / "demo_run.json").read_text())
    steps = sorted(int(p.name.split("-")[1]) for p in run.glob("checkpoint-*"))
    accuracy = dict(zip(steps, summary.get("eval_accuracies", []), strict=False))
    rows = []
    for report in reports:
        name = Path(report["checkpoint"]).name
        rows.append({"checkpoint": name, "exact_match": accuracy.get(int(name.split("-")[1])),
                     "eval_set": report["eval_set"]["name"], "eval_sha256": report["eval_set"]["sha256"],
                     "random_orders": len(report["seeds"]), "points": report["points"], "summary": report["summary"]})
    return {"about": "Faithfulness of the demo's maps (`python -m dashboard faithfulness`, first answer token, every "
                     "layer, head mean), recorded by bench/faithfulness_demo.py; README quotes it.",
            "cpu": cpu_name(), "date": time.strftime("%Y-%m-%d", time.gmtime(started)), "command": command,
            "load_before": list(load_before), "load_after": list(os.getloadavg()), "run_seed": summary.get("seed"),
            "checkpoints": rows}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--run", required=True, type=Path, help="a full demo run (python -m dashboard demo --out …)")
    parser.add_argument("--checkpoints", default="", help="comma-separated checkpoint folder names")
    parser.add_argument("--reports", nargs="*", type=Path, default=[], help="CLI --json reports already printed")
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    started, load_before = time.time(), os.getloadavg()
    run = args.run.resolve()
    if args.reports:
        reports = [json.loads(p.read_text()) for p in args.reports]
    else:
        eval_file = run / "eval" / "demo.jsonl"
        reports = [run_cli(run / name, eval_file, args.limit) for name in args.checkpoints.split(",") if name]
    out = record(run, reports, " ".join(sys.argv), started, load_before)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    for row in out["checkpoints"]:
        print(row["checkpoint"], row["exact_match"], {k: row["summary"][k] for k in
              ("n_scored", "beats_random", "deletion_significant", "insertion_significant", "mean_sanity_spearman")})


if __name__ == "__main__":
    main()
