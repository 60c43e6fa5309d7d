"""Train the tiny LLaVA on the synthetic task with a stock ``transformers.Trainer``.

Using the real Trainer (not a hand-written loop) is the point: the checkpoints, the
``trainer_state.json`` files and the TensorBoard events are then exactly the format the
dashboard meets in real fine-tuning runs. Two customisations: an evaluation hook that adds
greedy-generation exact match (``eval_accuracy``) next to ``eval_loss``, and an optional dense
per-patch loss during training (``patch_loss_weight``): the language model's prediction at every
image token is trained towards the words of what that patch shows (an object's colour, shape and
quadrant, or ``background``). That is the demo's stand-in for the captioning/grounding data real
VLMs are pre-trained on; without it the tiny model does not learn to find the asked object
within the CPU budget (bench/RESULTS.md, "Demo v2"). ``eval_loss`` stays the answer loss alone,
and the logs carry ``patch_loss`` beside the combined training ``loss``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset
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
from dashboard.demo.task import MAX_OBJECTS, MIN_OBJECTS, TASKS, Example, generate_example
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
    threads: int | None = 1  # tiny matmuls: a 2nd thread adds sync cost (and spins on a busy machine)
    tensorboard: bool = True
    patch_loss_weight: float = 0.0  # weight of the per-patch loss added to the answer loss (training only)
    patch_loss_layer: int = 0  # decoder layer whose output the per-patch loss reads (logit lens); 0 = the logits
    # Object counts over training: (until this fraction of the steps, min objects, max objects) stages;
    # after the last stage, and for the eval set, the task's own 2–5.
    curriculum: tuple[tuple[float, int, int], ...] = ()
    render_workers: int = 0  # spawned processes drawing + processing training batches beside the training loop
    spec: TinyLlavaSpec = field(default_factory=TinyLlavaSpec)


class SyntheticTaskDataset(Dataset):
    """``n`` examples generated on demand; item ``i`` is the same for the same seed, whatever the order.

    With a ``curriculum``, item ``i`` draws its object count from the stage that covers ``i / n``
    (the trainer reads items in order, so that is the share of training done): a single object first,
    where the answer only needs "where is the object", then two or three, then the task's 2–5. Without
    it the tiny model found the named object late or not at all within the CPU budget
    (bench/RESULTS.md, "Demo v2").
    """

    def __init__(self, n: int, seed: int, curriculum: Sequence[tuple[float, int, int]] = ()) -> None:
        self.n = n
        self.seed = seed
        self.curriculum = tuple(curriculum)

    def __len__(self) -> int:
        return self.n

    def object_range(self, index: int) -> tuple[int, int]:
        """(min, max) objects for item ``index``."""
        fraction = index / max(self.n, 1)
        for until, low, high in self.curriculum:
            if fraction < until:
                return low, high
        return MIN_OBJECTS, MAX_OBJECTS

    def __getitem__(self, index: int) -> Example:
        if not 0 <= index < self.n:
            raise IndexError(index)
        rng = random.Random(self.seed * 1_000_003 + index)
        low, high = self.object_range(index)
        return generate_example(rng, f"train-{index:06d}", min_objects=low, max_objects=high)


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


def full_text(processor: LlavaProcessor, prompt: str, answer: str) -> str:
    messages = [*user_messages(prompt), {"role": "assistant", "content": [{"type": "text", "text": answer}]}]
    return processor.apply_chat_template(messages)


class AnswerOnlyCollator:
    """Batch examples into model inputs; labels are -100 everywhere except the answer and its ``</s>``.

    Supervising only the answer is how instruction-tuned VLMs are trained, and it keeps the
    loss curve about the task rather than about predicting the (fixed) question template.
    """

    def __init__(self, processor: LlavaProcessor, patch_targets: bool = False) -> None:
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.patch_targets = patch_targets

    def __call__(self, examples: Sequence[Example]) -> dict[str, torch.Tensor]:
        texts = [full_text(self.processor, ex.prompt, ex.answer) for ex in examples]
        batch = self.processor(images=[ex.image for ex in examples], text=texts, padding=True, return_tensors="pt")
        input_ids = batch["input_ids"]
        labels = torch.full_like(input_ids, -100)
        for i, ex in enumerate(examples):
            answer_ids = self.tokenizer(ex.answer, add_special_tokens=False)["input_ids"]
            answer_ids = [*answer_ids, self.tokenizer.eos_token_id]
            end = int(batch["attention_mask"][i].nonzero().max()) + 1
            start = end - len(answer_ids)
            if input_ids[i, start:end].tolist() != answer_ids:
                raise ValueError(f"answer {ex.answer!r} is not the tokenized tail of its training text {texts[i]!r}")
            labels[i, start:end] = input_ids[i, start:end]
        batch["labels"] = labels
        if self.patch_targets:
            batch["patch_targets"] = self._patch_targets(examples, input_ids)
        return dict(batch)

    def _patch_targets(self, examples: Sequence[Example], input_ids: torch.Tensor) -> torch.Tensor:
        """(batch, image tokens, vocab) soft targets: each patch's words, equally weighted."""
        image_token_id = self.tokenizer.convert_tokens_to_ids(self.processor.image_token)
        n_image_tokens = int((input_ids[0] == image_token_id).sum())
        targets = torch.zeros(len(examples), n_image_tokens, len(self.tokenizer))
        for i, ex in enumerate(examples):
            patches = ex.patch_words()
            if len(patches) != n_image_tokens:
                raise ValueError(f"the task has {len(patches)} patches per image, the processor {n_image_tokens} "
                                 "image tokens: the task's grid and the model's patch size disagree")
            for words in set(patches):  # a handful of distinct patches: most are background
                ids = self.tokenizer.convert_tokens_to_ids(list(words))
                rows = [p for p, w in enumerate(patches) if w == words]
                targets[i, torch.tensor(rows)[:, None], torch.tensor(ids)[None, :]] = 1.0 / len(ids)
        return targets


def per_patch_loss(logits: torch.Tensor, input_ids: torch.Tensor, image_token_id: int,
                   targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy between the predictions at the image tokens and ``targets`` (soft, per patch)."""
    at_image = logits[input_ids == image_token_id].float().view(*targets.shape)
    return -(targets * torch.log_softmax(at_image, dim=-1)).sum(-1).mean()


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

    def __init__(self, *args, accuracy_examples: Sequence[Example], patch_loss_weight: float = 0.0,
                 patch_loss_layer: int = 0, render_workers: int = 0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.accuracy_examples = list(accuracy_examples)
        self.patch_loss_weight = patch_loss_weight
        self.patch_loss_layer = patch_loss_layer
        self.render_workers = render_workers
        self._patch_losses: list[float] = []

    def get_train_dataloader(self) -> DataLoader:
        """Training batches in item order (items are seeded scenes generated fresh per index, so a shuffle
        adds nothing, and the curriculum needs the order). With ``render_workers`` they are drawn and
        processed in spawned processes: on two cores the next batch's rendering (about a third of a
        step) then overlaps the training step. Spawned, not forked, because the build may run in a
        thread of the Streamlit server; as with any spawned worker, a script that calls the build must
        guard its entry point (``if __name__ == "__main__":``)."""
        workers = {"num_workers": self.render_workers, "multiprocessing_context": "spawn", "prefetch_factor": 4}
        loader = DataLoader(self.train_dataset, batch_size=self._train_batch_size, collate_fn=self.data_collator,
                            shuffle=False, **(workers if self.render_workers else {}))
        return self.accelerator.prepare(loader)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """The answer loss, plus the weighted per-patch loss while training (never in evaluation)."""
        targets = inputs.pop("patch_targets", None)
        if targets is None or not model.training or not self.patch_loss_weight:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        if self.patch_loss_layer:
            inputs = {**inputs, "output_hidden_states": True}
        loss, outputs = super().compute_loss(model, inputs, True, num_items_in_batch)
        logits = outputs.logits
        if self.patch_loss_layer:  # the logit lens at that layer: final norm + LM head on its output
            decoder = model.model.language_model
            logits = model.lm_head(decoder.norm(outputs.hidden_states[self.patch_loss_layer]))
        patch_loss = per_patch_loss(logits, inputs["input_ids"], model.config.image_token_index, targets)
        self._patch_losses.append(float(patch_loss.detach()))
        loss = loss + self.patch_loss_weight * patch_loss
        return (loss, outputs) if return_outputs else loss

    def log(self, logs: dict[str, float], *args, **kwargs) -> None:
        if "loss" in logs and self._patch_losses:  # a training log: the mean per-patch loss since the last one
            logs = {**logs, "patch_loss": round(sum(self._patch_losses) / len(self._patch_losses), 4)}
            self._patch_losses.clear()
        super().log(logs, *args, **kwargs)

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
               progress: ProgressFn | None = None, progress_span: tuple[float, float] = (0.0, 1.0),
               resume_from: Path | None = None) -> DemoTrainer:
    """Run the Trainer into ``out_dir`` (checkpoints + root ``trainer_state.json``); returns the trainer.

    ``resume_from``: a checkpoint of an interrupted run of the same config (``resume_from_checkpoint``).
    """
    threads_before = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)  # restored below: callers (e.g. the app) keep their setting
    try:
        return _run_trainer(out_dir, processor, model, eval_examples, config, progress, progress_span,
                            resume_from)
    finally:
        torch.set_num_threads(threads_before)


def _run_trainer(out_dir: Path, processor: LlavaProcessor, model: LlavaForConditionalGeneration,
                 eval_examples: Sequence[Example], config: TrainConfig, progress: ProgressFn | None,
                 progress_span: tuple[float, float], resume_from: Path | None = None) -> DemoTrainer:
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
        save_only_model=False,  # optimizer, scheduler and RNG state too: an interrupted build resumes exactly
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
                                           curriculum=config.curriculum),
        eval_dataset=ListDataset(eval_examples),
        data_collator=AnswerOnlyCollator(processor, patch_targets=config.patch_loss_weight > 0),
        processing_class=processor,
        accuracy_examples=eval_examples,
        patch_loss_weight=config.patch_loss_weight,
        patch_loss_layer=config.patch_loss_layer,
        render_workers=config.render_workers,
    )
    # Progress goes to the caller's bar instead of Trainer's own tqdm/printing.
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    if progress is not None:
        trainer.add_callback(ProgressReporter(progress, *progress_span))
    trainer.train(resume_from_checkpoint=str(resume_from) if resume_from is not None else None)
    trainer.save_state()  # root trainer_state.json, as real runs have
    return trainer
