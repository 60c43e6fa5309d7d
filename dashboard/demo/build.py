"""Build the demo run: eval set + a genuinely trained tiny LLaVA with Trainer checkpoints.

No model hub is reachable, so the dashboard ships the means to make its own real run. The
result is an ordinary Trainer output directory (checkpoints, ``trainer_state.json``,
TensorBoard events) plus ``eval/demo.jsonl`` carrying the ground truth other pages score
against, and a ``demo_run.json`` marker so a rebuild never deletes anything else.

The build writes into the run folder itself, so the app shows checkpoints as they are saved; the
marker says ``"complete": false`` until the last one is written (the app then shows the run as
being built, never as the finished demo). A build that finds its own interrupted build (same
preset and seed) resumes from the last checkpoint with ``resume_from_checkpoint``; one that cannot
(no checkpoint yet, another preset or seed) starts again from scratch. Either way it says so.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import transformers
from transformers.utils import logging as hf_logging

from dashboard.demo.marker import MARKER, is_demo_run, is_incomplete_demo, read_marker
from dashboard.demo.marker import write_marker as _write_marker
from dashboard.demo.modeling import QUESTION_FIRST_TEMPLATE, TinyLlavaSpec, build_model, build_processor
from dashboard.demo.task import VOCAB, generate_examples, write_eval_set
from dashboard.demo.train import TrainConfig, train_demo

EVAL_SET_NAME = "demo"
EVAL_SEED_OFFSET = 7_919  # eval scenes come from a different stream than training scenes

ProgressFn = Callable[[float, str], None]


# 160-px images cut into 16-px patches: each cell of the task's 10×10 grid is exactly one of the 100
# image tokens. One vision layer is enough for 12-px shapes that each sit inside one patch.
DEMO_SPEC = TinyLlavaSpec(image_size=160, patch_size=16, vision_layers=1, chat_template=QUESTION_FIRST_TEMPLATE)


@dataclass(frozen=True)
class Preset:
    """A training recipe plus eval-set size."""

    train: TrainConfig
    n_eval: int


# One object for the first tenth of training, then two or three until 35 %, then the task's 2–5.
CURRICULUM = ((0.1, 1, 1), (0.35, 2, 3))
# The recipe both presets share; they differ only in length (bench/RESULTS.md, "Demo v2").
RECIPE = TrainConfig(learning_rate=3e-3, warmup_steps=20, weight_decay=0.1, patch_loss_weight=1.0,
                     curriculum=CURRICULUM, render_workers=1, spec=DEMO_SPEC)

PRESETS: dict[str, Preset] = {
    # The real demo: 9 checkpoints; measured accuracies are in bench/RESULTS.md "Demo v2".
    "full": Preset(replace(RECIPE, max_steps=2700, save_steps=300, logging_steps=20), n_eval=200),
    # For the test-suite: fast, ≥ 4 checkpoints, the loss falls (the lookup itself needs ≈ 1,500 steps).
    "test": Preset(replace(RECIPE, max_steps=600, save_steps=150, logging_steps=10), n_eval=32),
}


@dataclass(frozen=True)
class DemoReport:
    """What a build produced (the Home page and the CLI show it)."""

    path: Path
    n_checkpoints: int
    first_eval_accuracy: float
    last_eval_accuracy: float
    seconds: float
    preset: str = "full"
    seed: int = 0
    eval_set: Path | None = None
    eval_accuracies: tuple[float, ...] = ()  # exact match at every checkpoint, in step order
    resumed_from: str | None = None
    """The interrupted build's checkpoint this build continued from (None: built from scratch)."""


class DemoDirError(ValueError):
    """The output directory cannot be used for a demo run (it holds something else)."""


def resumable_checkpoint(out_dir: Path, preset: str, seed: int) -> Path | None:
    """The last checkpoint of an interrupted build of this preset and seed that Trainer can resume from."""
    marker = read_marker(out_dir)
    if marker is None or marker.get("complete") is not False or marker.get("preset") != preset \
            or marker.get("seed") != seed:
        return None
    ready = [p for p in out_dir.glob("checkpoint-*") if p.is_dir() and (p / "trainer_state.json").is_file()
             and (p / "model.safetensors").is_file() and (p / "optimizer.pt").is_file()
             and p.name.removeprefix("checkpoint-").isdigit()]
    return max(ready, key=lambda p: int(p.name.removeprefix("checkpoint-")), default=None)


def prepare_out_dir(out_dir: Path, force: bool = False) -> None:
    """Empty ``out_dir`` if it is absent, empty, or a previous demo run; refuse anything else."""
    if out_dir.exists() and not out_dir.is_dir():
        raise DemoDirError(f"{out_dir} exists and is not a directory; choose another --out")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not (is_demo_run(out_dir) or force):
            raise DemoDirError(
                f"{out_dir} is not empty and is not a previous demo run (no {MARKER}); refusing to overwrite it. "
                "Choose an empty or new directory, or pass --force to delete its contents."
            )
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)


def _eval_accuracies(log_history: list[dict]) -> list[float]:
    return [entry["eval_accuracy"] for entry in log_history if "eval_accuracy" in entry]


def build_demo_run(out_dir: Path, preset: str = "full", seed: int = 0, progress: ProgressFn | None = None,
                   force: bool = False) -> DemoReport:
    """Generate the eval set and train the demo run into ``out_dir``; deterministic for ``seed``.

    ``progress(fraction, message)`` is called as the build advances (fraction in [0, 1]).
    Raises ``DemoDirError`` if ``out_dir`` holds something other than a previous demo run
    (unless ``force``), ``ValueError`` for an unknown preset.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    recipe = PRESETS[preset]
    config = replace(recipe.train, seed=seed)
    out_dir = Path(out_dir)
    report = progress or (lambda fraction, message: None)
    started = time.perf_counter()

    resume = None if force else resumable_checkpoint(out_dir, preset, seed)
    eval_examples = list(generate_examples(recipe.n_eval, seed=seed + EVAL_SEED_OFFSET))
    eval_path = out_dir / "eval" / f"{EVAL_SET_NAME}.jsonl"
    if resume is not None and not eval_path.is_file():
        resume = None  # its eval set is gone: nothing to score the resumed checkpoints against
    if resume is not None:
        report(0.0, f"resuming the interrupted build from {resume.name}")
        for later in out_dir.glob("checkpoint-*"):  # half-written when the build stopped: Trainer saves them again
            step = later.name.removeprefix("checkpoint-")
            if step.isdigit() and int(step) > int(resume.name.removeprefix("checkpoint-")):
                shutil.rmtree(later)
    else:
        if is_incomplete_demo(out_dir):
            report(0.0, "restarting the interrupted build from scratch (no checkpoint of this preset and seed "
                        "to resume from)")
        prepare_out_dir(out_dir, force=force)
        _write_marker(out_dir, {"complete": False, "preset": preset, "seed": seed})
        report(0.0, "writing the eval set")
        eval_path = write_eval_set(eval_examples, out_dir / "eval", name=EVAL_SET_NAME)

    report(0.03, "building the tiny LLaVA")
    transformers.set_seed(seed)
    spec: TinyLlavaSpec = config.spec
    processor = build_processor(VOCAB, spec)
    model = build_model(processor, spec, seed=seed)

    bars_were_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # "Writing model shards" bars per checkpoint would garble the caller's bar
    try:
        trainer = train_demo(out_dir, processor, model, eval_examples, config, progress=report,
                             progress_span=(0.05, 1.0), resume_from=resume)
    finally:
        if bars_were_on:
            hf_logging.enable_progress_bar()
    accuracies = _eval_accuracies(trainer.state.log_history)
    n_checkpoints = sum(1 for p in out_dir.glob("checkpoint-*") if p.is_dir())
    result = DemoReport(
        path=out_dir,
        n_checkpoints=n_checkpoints,
        first_eval_accuracy=accuracies[0] if accuracies else float("nan"),
        last_eval_accuracy=accuracies[-1] if accuracies else float("nan"),
        seconds=time.perf_counter() - started,
        preset=preset,
        seed=seed,
        eval_set=eval_path,
        eval_accuracies=tuple(accuracies),
        resumed_from=resume.name if resume is not None else None,
    )
    _write_marker(out_dir, {"complete": True, **asdict(result)})
    resumed = f" (resumed from {resume.name})" if resume is not None else ""
    report(1.0, f"done{resumed}: {n_checkpoints} checkpoints, eval accuracy "
                f"{result.first_eval_accuracy:.0%} → {result.last_eval_accuracy:.0%}")
    return result
