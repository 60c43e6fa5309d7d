"""Train the tiny LLaVA on the synthetic task with a stock ``transformers.Trainer``.

Using the real Trainer (not a hand-written loop) is the point: the checkpoints, the
``trainer_state.json`` files and the TensorBoard events are then exactly the format the
dashboard meets in real fine-tuning runs. The only customisation is an evaluation hook that
adds greedy-generation exact match (``eval_accuracy``) next to ``eval_loss``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import Dataset
from transformers import (
    LlavaForConditionalGeneration,
    LlavaProcessor,
    PrinterCallback,
    ProgressCallback,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)
from transformers.trainer_utils import EvalLoopOutput

from dashboard.demo.modeling import TinyLlavaSpec
from dashboard.demo.task import TASKS, Example, generate_example
from dashboard.metrics import exact_match

ProgressFn = Callable[[float, str], None]


@dataclass(frozen=True)
class TrainConfig:
    """Knobs of one demo training run (the presets in ``build.py`` fill these in)."""

    max_steps: int = 600
    save_steps: int = 60  # also the eval interval: every checkpoint has eval_loss + eval_accuracy
    logging_steps: int = 10
    batch_size: int = 32
    eval_batch_size: int = 128
    learning_rate: float = 3e-3
    warmup_steps: int = 20
    weight_decay: float = 0.0
    seed: int = 0
    follow_ups: int = 3  # extra questions per training image (multi-turn); eval stays single-turn
    threads: int | None = 1  # tiny matmuls: a 2nd thread adds sync cost (and spins on a busy machine)
    tensorboard: bool = True
    spec: TinyLlavaSpec = field(default_factory=TinyLlavaSpec)


class SyntheticTaskDataset(Dataset):
    """``n`` examples generated on demand; item ``i`` is the same for the same seed, whatever the order."""

    def __init__(self, n: int, seed: int, follow_ups: int = 0) -> None:
        self.n = n
        self.seed = seed
        self.follow_ups = follow_ups

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> Example:
        if not 0 <= index < self.n:
            raise IndexError(index)
        rng = random.Random(self.seed * 1_000_003 + index)
        return generate_example(rng, f"train-{index:06d}", follow_ups=self.follow_ups)


class ListDataset(Dataset):
    """A fixed list of examples (the eval set)."""

    def __init__(self, examples: Sequence[Example]) -> None:
        self.examples = list(examples)

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> Example:
        return self.examples[index]


def user_messages(prompt: str) -> list[dict]:
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]


def prompt_text(processor: LlavaProcessor, prompt: str) -> str:
    """The chat-formatted prompt ending in "ASSISTANT:", as inference code builds it."""
    return processor.apply_chat_template(user_messages(prompt), add_generation_prompt=True)


def full_text(processor: LlavaProcessor, prompt: str, answer: str,
              follow_ups: Sequence[tuple[str, str]] = ()) -> str:
    """The chat text of a training example: the image turn, then any follow-up turns about the same image."""
    messages = [*user_messages(prompt), {"role": "assistant", "content": [{"type": "text", "text": answer}]}]
    for question, reply in follow_ups:
        messages += [{"role": "user", "content": [{"type": "text", "text": question}]},
                     {"role": "assistant", "content": [{"type": "text", "text": reply}]}]
    return processor.apply_chat_template(messages)


class AnswerOnlyCollator:
    """Batch examples into model inputs; labels are -100 everywhere except the answer and its ``</s>``.

    Supervising only the answer is how instruction-tuned VLMs are trained, and it keeps the
    loss curve about the task rather than about predicting the (fixed) question template.
    """

    def __init__(self, processor: LlavaProcessor) -> None:
        self.processor = processor
        self.tokenizer = processor.tokenizer

    def __call__(self, examples: Sequence[Example]) -> dict[str, torch.Tensor]:
        texts = [full_text(self.processor, ex.prompt, ex.answer, ex.follow_ups) for ex in examples]
        batch = self.processor(images=[ex.image for ex in examples], text=texts, padding=True, return_tensors="pt")
        input_ids = batch["input_ids"]
        labels = torch.full_like(input_ids, -100)
        marker = self.tokenizer("ASSISTANT :", add_special_tokens=False)["input_ids"]
        for i, ex in enumerate(examples):
            row = input_ids[i].tolist()
            starts = [p + len(marker) for p in range(len(row) - len(marker) + 1) if row[p:p + len(marker)] == marker]
            answers = [ex.answer, *(reply for _, reply in ex.follow_ups)]
            if len(starts) != len(answers):
                raise ValueError(f"{len(answers)} answers but {len(starts)} assistant turns in {texts[i]!r}")
            for start, answer in zip(starts, answers, strict=True):
                answer_ids = self.tokenizer(answer, add_special_tokens=False)["input_ids"]
                answer_ids = [*answer_ids, self.tokenizer.eos_token_id]
                if row[start:start + len(answer_ids)] != answer_ids:
                    raise ValueError(f"answer {answer!r} is not where its turn starts in {texts[i]!r}")
                labels[i, start:start + len(answer_ids)] = input_ids[i, start:start + len(answer_ids)]
        batch["labels"] = labels
        return dict(batch)


@torch.no_grad()
def greedy_answers(model: LlavaForConditionalGeneration, processor: LlavaProcessor, examples: Sequence[Example],
                   batch_size: int = 128, max_new_tokens: int = 4) -> list[str]:
    """Greedy-decoded answers for ``examples`` (the same decoding the Inference page defaults to)."""
    was_training = model.training
    model.eval()
    outputs: list[str] = []
    try:
        for start in range(0, len(examples), batch_size):
            chunk = examples[start:start + batch_size]
            texts = [prompt_text(processor, ex.prompt) for ex in chunk]
            inputs = processor(images=[ex.image for ex in chunk], text=texts, padding=True, return_tensors="pt")
            inputs = inputs.to(model.device)
            generated = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
            new_tokens = generated[:, inputs["input_ids"].shape[1]:]
            outputs.extend(t.strip() for t in processor.batch_decode(new_tokens, skip_special_tokens=True))
    finally:
        model.train(was_training)
    return outputs


def exact_match_metrics(examples: Sequence[Example], predictions: Sequence[str]) -> dict[str, float]:
    """Overall and per-task exact match (keys ``accuracy`` and ``accuracy_<task>``), scored by the registry."""
    hits = [exact_match(p, ex.answer) for ex, p in zip(examples, predictions, strict=True)]
    metrics = {"accuracy": sum(hits) / max(len(hits), 1)}
    for task in TASKS:
        task_hits = [h for h, ex in zip(hits, examples, strict=True) if ex.task == task]
        if task_hits:
            metrics[f"accuracy_{task}"] = sum(task_hits) / len(task_hits)
    return metrics


class DemoTrainer(Trainer):
    """A Trainer whose every evaluation also logs greedy exact match on the eval examples."""

    def __init__(self, *args, accuracy_examples: Sequence[Example], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.accuracy_examples = list(accuracy_examples)

    def evaluation_loop(self, dataloader, description, prediction_loss_only=None, ignore_keys=None,
                        metric_key_prefix="eval") -> EvalLoopOutput:
        output = super().evaluation_loop(dataloader, description, prediction_loss_only, ignore_keys, metric_key_prefix)
        predictions = greedy_answers(self.model, self.processing_class, self.accuracy_examples,
                                     batch_size=self.args.per_device_eval_batch_size)
        for key, value in exact_match_metrics(self.accuracy_examples, predictions).items():
            output.metrics[f"{metric_key_prefix}_{key}"] = value
        return output


class ProgressReporter(TrainerCallback):
    """Forwards training progress as (fraction of the run, message) to a UI callback."""

    def __init__(self, progress: ProgressFn, start: float = 0.0, end: float = 1.0) -> None:
        self.progress = progress
        self.start, self.end = start, end
        self.last: dict[str, float] = {}

    def _report(self, state, message: str) -> None:
        fraction = state.global_step / max(state.max_steps, 1)
        self.progress(self.start + (self.end - self.start) * fraction, message)

    def on_log(self, args, state, control, logs=None, **kwargs):
        self.last.update({k: v for k, v in (logs or {}).items() if k in ("loss", "eval_loss", "eval_accuracy")})

    def on_step_end(self, args, state, control, **kwargs):
        parts = [f"step {state.global_step}/{state.max_steps}"]
        if "loss" in self.last:
            parts.append(f"loss {self.last['loss']:.3f}")
        if "eval_accuracy" in self.last:
            parts.append(f"eval acc {self.last['eval_accuracy']:.0%}")
        self._report(state, " · ".join(parts))


def train_demo(out_dir: Path, processor: LlavaProcessor, model: LlavaForConditionalGeneration,
               eval_examples: Sequence[Example], config: TrainConfig,
               progress: ProgressFn | None = None, progress_span: tuple[float, float] = (0.0, 1.0)) -> DemoTrainer:
    """Run the Trainer into ``out_dir`` (checkpoints + root ``trainer_state.json``); returns the trainer."""
    threads_before = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)  # restored below: callers (e.g. the app) keep their setting
    try:
        return _run_trainer(out_dir, processor, model, eval_examples, config, progress, progress_span)
    finally:
        torch.set_num_threads(threads_before)


def _run_trainer(out_dir: Path, processor: LlavaProcessor, model: LlavaForConditionalGeneration,
                 eval_examples: Sequence[Example], config: TrainConfig, progress: ProgressFn | None,
                 progress_span: tuple[float, float]) -> DemoTrainer:
    args = TrainingArguments(
        output_dir=str(out_dir),
        max_steps=config.max_steps,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.eval_batch_size,
        learning_rate=config.learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=config.warmup_steps,
        weight_decay=config.weight_decay,
        logging_strategy="steps",
        logging_steps=config.logging_steps,
        eval_strategy="steps",
        eval_steps=config.save_steps,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_only_model=True,
        metric_for_best_model="eval_loss",
        greater_is_better=False,
        report_to=["tensorboard"] if config.tensorboard else [],
        disable_tqdm=True,
        dataloader_num_workers=0,
        remove_unused_columns=False,
        use_cpu=True,
        seed=config.seed,
        data_seed=config.seed,
    )
    trainer = DemoTrainer(
        model=model,
        args=args,
        train_dataset=SyntheticTaskDataset(config.max_steps * config.batch_size, seed=config.seed,
                                           follow_ups=config.follow_ups),
        eval_dataset=ListDataset(eval_examples),
        data_collator=AnswerOnlyCollator(processor),
        processing_class=processor,
        accuracy_examples=eval_examples,
    )
    # Progress goes to the caller's bar instead of Trainer's own tqdm/printing.
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    if progress is not None:
        trainer.add_callback(ProgressReporter(progress, *progress_span))
    trainer.train()
    trainer.save_state()  # root trainer_state.json, as real runs have
    return trainer
