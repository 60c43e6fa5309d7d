"""A tiny LLaVA trained with a stock ``transformers.Trainer``: the live-scoring tests' training job.

Run as a script (``python tests/live/tiny_trainer.py OUT --gate-dir G``) it trains in its own
process, as a real training job beside a watcher would. ``on_save`` of step N waits while
``G/hold-N`` exists, so a test decides when the next checkpoints appear, without sleeping.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from transformers import Trainer, TrainerCallback, TrainingArguments  # noqa: E402

from dashboard.demo.modeling import build_model, build_processor  # noqa: E402
from dashboard.demo.task import VOCAB, generate_examples, write_eval_set  # noqa: E402
from dashboard.demo.train import AnswerOnlyCollator, SyntheticTaskDataset  # noqa: E402


class Gate(TrainerCallback):
    """Holds the training process after saving step N while ``<gate_dir>/hold-N`` exists."""

    def __init__(self, gate_dir: Path, deadline_s: float = 600.0) -> None:
        self.gate_dir = gate_dir
        self.deadline_s = deadline_s

    def on_save(self, args, state, control, **kwargs):
        hold = self.gate_dir / f"hold-{state.global_step}"
        end = time.monotonic() + self.deadline_s
        while hold.exists() and time.monotonic() < end:
            time.sleep(0.05)
        return control


def write_tiny_eval_set(out_dir: Path, n: int = 16) -> Path:
    return write_eval_set(list(generate_examples(n, seed=11)), out_dir / "eval", name="tiny")


def make_trainer(out_dir: Path, *, steps: int = 16, save_steps: int = 4,
                 callbacks: Sequence[TrainerCallback] = ()) -> Trainer:
    """A Trainer over the demo task with a tiny untrained LLaVA (64-px images, 64 image tokens)."""
    processor = build_processor(VOCAB)
    model = build_model(processor, seed=0)
    args = TrainingArguments(output_dir=str(out_dir), max_steps=steps, per_device_train_batch_size=2,
                             learning_rate=1e-3, logging_steps=5, save_strategy="steps", save_steps=save_steps,
                             save_only_model=True, report_to=[], disable_tqdm=True, dataloader_num_workers=0,
                             remove_unused_columns=False, use_cpu=True, seed=0)
    return Trainer(model=model, args=args, train_dataset=SyntheticTaskDataset(steps * 2, seed=0),
                   data_collator=AnswerOnlyCollator(processor), processing_class=processor,
                   callbacks=list(callbacks))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--gate-dir", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--save-steps", type=int, default=4)
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    make_trainer(args.out, steps=args.steps, save_steps=args.save_steps, callbacks=[Gate(args.gate_dir)]).train()
    return 0


if __name__ == "__main__":
    sys.exit(main())
