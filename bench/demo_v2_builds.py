"""Demo v2 search on the dashboard's own builder: ``build_demo_run`` with the full preset's fields replaced.

The runs xa … k1 of bench/RESULTS.md "Demo v2" (e.g. ``PYTHONPATH=. .venv/bin/python bench/demo_v2_builds.py
--seed 1 --easy 0.3 --wd 0.1 --steps 1500 --save 300 --out /tmp/e5``). ``--easy S``: a share S of training
scenes draws 1–5 objects instead of 2–5; ``--cur 1``: the curriculum the demo now ships (one object, then
2–3, then 2–5; needs ``--workers 1`` so items are read in order by the builder's loader). Prints exact match
per checkpoint. A scratch tool, kept as the record of how those figures were made.
"""

import argparse
import dataclasses
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from the repo root

from dashboard.demo import build, train
from dashboard.demo.task import generate_example

p = argparse.ArgumentParser(description=__doc__)
for flag, kind, default in (("--seed", int, 0), ("--steps", int, 1200), ("--save", int, 150), ("--easy", float, 0.0),
                            ("--lr", float, 3e-3), ("--workers", int, 0), ("--neval", int, 100), ("--tl", int, 2),
                            ("--heads", int, 4), ("--pl", int, 0), ("--wd", float, 0.0), ("--imgfirst", int, 0),
                            ("--cur", int, 0), ("--bs", int, 32)):
    p.add_argument(flag, type=kind, default=default)
p.add_argument("--out", required=True)


def _easy_item(self, index):
    rng = random.Random(self.seed * 1_000_003 + index)
    share = float(sys.argv[sys.argv.index("--easy") + 1])
    return generate_example(rng, f"train-{index:06d}", min_objects=1 if rng.random() < share else 2)


def _curriculum_item(self, index):
    rng = random.Random(self.seed * 1_000_003 + index)
    fraction = index / self.n
    low, high = (1, 1) if fraction < 0.1 else (2, 3) if fraction < 0.35 else (2, 5)
    return generate_example(rng, f"train-{index:06d}", min_objects=low, max_objects=high)


# At import, so that a spawned render worker (which re-imports this script) draws the same scenes.
if "--cur" in sys.argv:
    train.SyntheticTaskDataset.__getitem__ = _curriculum_item
elif "--easy" in sys.argv:
    train.SyntheticTaskDataset.__getitem__ = _easy_item


def main() -> None:
    a = p.parse_args()
    full = build.PRESETS["full"]
    spec = dataclasses.replace(full.train.spec, text_layers=a.tl, text_heads=a.heads)
    if a.imgfirst:
        from dashboard.demo.modeling import CHAT_TEMPLATE

        spec = dataclasses.replace(spec, chat_template=CHAT_TEMPLATE)
    recipe = dataclasses.replace(full.train, max_steps=a.steps, save_steps=a.save, learning_rate=a.lr,
                                 render_workers=a.workers, batch_size=a.bs, curriculum=(),
                                 patch_loss_layer=a.pl, weight_decay=a.wd, spec=spec)
    build.PRESETS["x"] = build.Preset(recipe, n_eval=a.neval)
    started = time.time()
    build.build_demo_run(Path(a.out), preset="x", seed=a.seed)
    history = json.loads((Path(a.out) / "trainer_state.json").read_text())["log_history"]
    scores = [(e["step"], round(e["eval_accuracy"], 2)) for e in history if "eval_accuracy" in e]
    print(vars(a), f"{time.time() - started:.0f}s", scores, flush=True)


if __name__ == "__main__":
    main()
