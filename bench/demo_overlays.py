"""First vs last checkpoint of the demo run: attention overlays where the last checkpoint points at the target.

Usage: .venv/bin/python bench/demo_overlays.py [--run runs/demo] [--examples 40] [--show 3]
Writes test-artifacts/demo-first-vs-last-<id>.png: the image, the first checkpoint's and the last checkpoint's
answer-token attention (mean over layers and heads, the Attention page's default view), for the first ``--show``
eval examples where the last checkpoint's peak is inside the target's box and the first's is not; prints how
many of ``--examples`` each checkpoint points at."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from the repo root

from dashboard.attention.analysis import analyse
from dashboard.attention.overlay import render_overlay, upscale
from dashboard.attention.pointing import point_hit
from dashboard.evalset import load_eval_set
from dashboard.images import load_image
from dashboard.models.pool import ModelPool
from dashboard.runs.checkpoints import discover_checkpoints


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run", type=Path, default=Path("runs/demo"))
    parser.add_argument("--examples", type=int, default=40)
    parser.add_argument("--show", type=int, default=3)
    args = parser.parse_args()
    run = args.run.resolve()
    examples = load_eval_set(run / "eval/demo.jsonl", roots=[run]).examples
    checkpoints = discover_checkpoints(run)
    first, last = checkpoints[0].path.name, checkpoints[-1].path.name
    hits = {first: 0, last: 0}
    pool = ModelPool(budget_bytes=10**9, device="cpu", dtype=torch.float32)
    Path("test-artifacts").mkdir(exist_ok=True)
    shown = 0
    for e in examples[:args.examples]:
        image = load_image(e.image_path)
        bbox = e.objects[e.target]["bbox"]
        tiles = []
        for name in (first, last):
            with pool.acquire(run / name) as loaded:
                r = analyse(loaded, image, e.prompt, max_new_tokens=3, lens_top_k=0, lens_image_tokens=False)
            grid = r.grid(0, None, "mean")
            overlay = render_overlay(image, grid, r.layout.primary, alpha=0.55)
            tiles.append((r.text, point_hit(grid, r.layout.primary, bbox), overlay))
            hits[name] += tiles[-1][1]
        if tiles[1][1] and not tiles[0][1] and shown < args.show:
            row = [upscale(np.asarray(image), 320), upscale(tiles[0][2], 320), upscale(tiles[1][2], 320)]
            Image.fromarray(np.concatenate(row, axis=1)).save(f"test-artifacts/demo-first-vs-last-{e.id}.png")
            print(e.id, e.prompt, "->", e.answer, "| first:", tiles[0][0], "| last:", tiles[1][0], "bbox", bbox)
            shown += 1
    n = min(args.examples, len(examples))
    print(f"peak inside the target's box: {first} {hits[first]}/{n}, {last} {hits[last]}/{n}")


if __name__ == "__main__":
    main()
