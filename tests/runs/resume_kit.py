"""Train a tiny GPT-2 with the stock ``Trainer`` — or resume it — as its own process.

The resumed-run fixtures need what real writers leave behind after a restart: one
TensorBoard ``SummaryWriter`` per process, an append-only ``trainer_log.jsonl`` written the way
LLaMA-Factory's ``LogCallback`` writes it, ``trainer_state.json`` restored from the checkpoint,
and the result files of ``trainer.save_metrics``. Run as
``python -m tests.runs.resume_kit OUT --max-steps 14 [--resume checkpoint-8]``.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

SEQ = 8
VOCAB = 32


class JsonlLog:
    """Append one JSON line per ``on_log`` (LLaMA-Factory's ``trainer_log.jsonl`` keys)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def callback(self):
        from transformers import TrainerCallback

        path = self.path

        class _Log(TrainerCallback):
            def on_log(self, args, state, control, logs=None, **kwargs):
                logs = logs or {}
                entry = {"current_steps": state.global_step, "total_steps": state.max_steps,
                         "loss": logs.get("loss"), "eval_loss": logs.get("eval_loss"), "lr": logs.get("learning_rate"),
                         "epoch": logs.get("epoch"), "percentage": round(100 * state.global_step / state.max_steps, 2),
                         "elapsed_time": "0:00:01", "remaining_time": "0:00:01"}
                entry = {k: v for k, v in entry.items() if v is not None}
                with path.open("a", encoding="utf-8") as handle:
                    handle.write(json.dumps(entry) + "\n")

        return _Log()


def _data(n: int, seed: int):
    import torch

    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, VOCAB, (n, SEQ), generator=generator)
    ids[:, 1::2] = ids[:, ::2]  # something learnable: every other token repeats the one before
    return [{"input_ids": row, "labels": row.clone(), "attention_mask": torch.ones(SEQ, dtype=torch.long)}
            for row in ids]


def train(out: Path, max_steps: int, resume: str | None, save_total_limit: int | None) -> None:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(n_layer=1, n_head=2, n_embd=16, vocab_size=VOCAB, n_positions=SEQ))
    args = TrainingArguments(
        output_dir=str(out), max_steps=max_steps, per_device_train_batch_size=4, learning_rate=1e-2,
        logging_steps=1, save_steps=4, eval_strategy="steps", eval_steps=4, metric_for_best_model="eval_loss",
        save_total_limit=save_total_limit, report_to=["tensorboard"], use_cpu=True, seed=0,
        dataloader_num_workers=0, disable_tqdm=True, save_only_model=False,
    )
    trainer = Trainer(model=model, args=args, train_dataset=_data(64, 1), eval_dataset=_data(8, 2),
                      callbacks=[JsonlLog(out / "trainer_log.jsonl").callback()])
    result = trainer.train(resume_from_checkpoint=str(out / resume) if resume else None)
    trainer.save_model()
    trainer.save_state()
    trainer.log_metrics("train", result.metrics)
    trainer.save_metrics("train", result.metrics)
    metrics = trainer.evaluate()
    trainer.save_metrics("eval", metrics)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--max-steps", type=int, required=True)
    parser.add_argument("--resume", default=None)
    parser.add_argument("--save-total-limit", type=int, default=None)
    a = parser.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    train(a.out, a.max_steps, a.resume, a.save_total_limit)


if __name__ == "__main__":
    main()


def build_resumed_run(out: Path) -> Path:
    """Train to step 14 in one process, then resume from checkpoint-8 to step 20 in a second one.

    No ``TENSORBOARD_LOGGING_DIR``: each process logs into its own ``runs/<date>_<host>/``, the
    Trainer's default. Steps 9–14 are in both attempts' TensorBoard files and twice in
    ``trainer_log.jsonl``; ``trainer_state.json`` has them once (restored from checkpoint-8).
    """
    import subprocess
    import sys
    import time

    env = {k: v for k, v in os.environ.items() if k != "TENSORBOARD_LOGGING_DIR"}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    root = Path(__file__).resolve().parents[2]
    for extra in (["--max-steps", "14"], ["--max-steps", "20", "--resume", "checkpoint-8"]):
        subprocess.run([sys.executable, "-m", "tests.runs.resume_kit", str(out), *extra], check=True, cwd=root,
                       env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(1.1)  # the default log folder is named to the second: never share one
    return out
