"""Write synthetic Trainer-style run directories (trainer_state.json, checkpoints, event files).

Used by tests and benchmarks to get runs of any size and shape without training anything; the
layouts mirror what ``transformers.Trainer`` and its ``TensorBoardCallback`` write.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np


def log_history(n_steps: int, eval_every: int = 0, logging_steps: int = 1, steps_per_epoch: int = 100,
                seed: int = 0) -> list[dict]:
    """A realistic ``log_history``: decaying noisy loss, grad_norm, cosine lr, periodic evals."""
    rng = np.random.default_rng(seed)
    entries: list[dict] = []
    steps = np.arange(logging_steps, n_steps + 1, logging_steps)
    loss = 3.0 * np.exp(-steps / max(n_steps / 4, 1)) + 0.1 + 0.05 * rng.standard_normal(len(steps))
    grad = np.abs(1.0 + 0.3 * rng.standard_normal(len(steps)))
    lr = 1e-4 * 0.5 * (1 + np.cos(np.pi * steps / max(n_steps, 1)))
    for i, step in enumerate(steps.tolist()):
        entries.append({"epoch": round(step / steps_per_epoch, 4), "grad_norm": float(grad[i]),
                        "learning_rate": float(lr[i]), "loss": round(float(loss[i]), 4), "step": step})
        if eval_every and step % eval_every == 0:
            entries.append({"epoch": round(step / steps_per_epoch, 4), "eval_loss": round(float(loss[i]) * 1.1, 4),
                            "eval_accuracy": round(min(1.0, step / n_steps), 4), "eval_runtime": 1.5,
                            "eval_samples_per_second": 40.0, "step": step})
    return entries


def trainer_state(entries: list[dict], global_step: int, best_step: int | None = None,
                  best_metric: float | None = None, origin: str = "/home/someone/output") -> dict:
    state = {"best_metric": best_metric, "best_model_checkpoint": None, "epoch": entries[-1]["epoch"] if entries
             else 0.0, "eval_steps": 100, "global_step": global_step, "is_hyper_param_search": False,
             "is_local_process_zero": True, "is_world_process_zero": True, "log_history": entries,
             "logging_steps": 1, "max_steps": global_step, "save_steps": 100, "total_flos": 0.0}
    if best_step is not None:
        state["best_model_checkpoint"] = f"{origin}/checkpoint-{best_step}"
        state["best_global_step"] = best_step
    return state


def write_json(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def write_checkpoint(path: Path, state: dict | None = None, weights: str = "safetensors",
                     model_type: str = "llava", adapter: bool = False) -> Path:
    """A checkpoint folder with a tiny weight file of the requested format (no real model)."""
    from safetensors.numpy import save_file

    path.mkdir(parents=True, exist_ok=True)
    if model_type:
        write_json(path / "config.json", {"model_type": model_type})
    if adapter:
        write_json(path / "adapter_config.json", {"peft_type": "LORA", "r": 4})
    tensors = {"w": np.arange(16, dtype=np.float32).reshape(4, 4)}
    if weights == "safetensors":
        save_file(tensors, str(path / ("adapter_model.safetensors" if adapter else "model.safetensors")))
    elif weights == "sharded-safetensors":
        save_file({"a": tensors["w"]}, str(path / "model-00001-of-00002.safetensors"))
        save_file({"b": tensors["w"]}, str(path / "model-00002-of-00002.safetensors"))
        write_json(path / "model.safetensors.index.json", {"metadata": {}, "weight_map": {
            "a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}})
    elif weights == "pickle":
        (path / "pytorch_model.bin").write_bytes(b"not really a pickle")
    if state is not None:
        write_json(path / "trainer_state.json", state)
    return path


def write_run(run_dir: Path, n_steps: int = 300, save_every: int = 100, eval_every: int = 100,
              best_step: int | None = None, seed: int = 0, root_state: bool = True) -> Path:
    """A complete small run: checkpoint-N folders with their own trainer_state + the root one."""
    entries = log_history(n_steps, eval_every=eval_every, seed=seed)
    for step in range(save_every, n_steps + 1, save_every):
        upto = [e for e in entries if e["step"] <= step]
        evals = [e for e in upto if "eval_loss" in e]
        best = min(evals, key=lambda e: e["eval_loss"]) if evals else None
        state = trainer_state(upto, step, best["step"] if best else None, best["eval_loss"] if best else None)
        write_checkpoint(run_dir / f"checkpoint-{step}", state)
    if root_state:
        evals = [e for e in entries if "eval_loss" in e]
        best_at = best_step or (min(evals, key=lambda e: e["eval_loss"])["step"] if evals else None)
        best_metric = next((e["eval_loss"] for e in evals if e["step"] == best_at), None)
        write_json(run_dir / "trainer_state.json", trainer_state(entries, n_steps, best_at, best_metric))
    return run_dir


def write_event_file(log_dir: Path, scalars: Iterable[tuple[str, int, float]], start_time: float | None = None,
                     tensor_form: bool = False, seconds_per_step: float = 0.5) -> Path:
    """Write (tag, step, value) scalars the way ``SummaryWriter.add_scalar`` does (simple_value),
    or in the newer tensor form. Records are written synchronously (no writer thread)."""
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.summary.writer.record_writer import RecordWriter
    from tensorboard.util import tensor_util

    log_dir.mkdir(parents=True, exist_ok=True)
    start = time.time() if start_time is None else start_time
    path = log_dir / f"events.out.tfevents.{int(start)}.host.{len(list(log_dir.iterdir()))}"
    with path.open("wb") as fh:
        writer = RecordWriter(fh)
        writer.write(event_pb2.Event(wall_time=start, file_version="brain.Event:2").SerializeToString())
        for tag, step, value in scalars:
            if tensor_form:
                summary_value = summary_pb2.Summary.Value(tag=tag, tensor=tensor_util.make_tensor_proto(
                    np.float32(value)))
                summary_value.metadata.plugin_data.plugin_name = "scalars"
            else:
                summary_value = summary_pb2.Summary.Value(tag=tag, simple_value=value)
            event = event_pb2.Event(wall_time=start + step * seconds_per_step, step=step,
                                    summary=summary_pb2.Summary(value=[summary_value]))
            writer.write(event.SerializeToString())
    return path


def hf_scalars(entries: list[dict]) -> list[tuple[str, int, float]]:
    """The scalars HF's TensorBoardCallback writes for these log entries (train/..., eval/...)."""
    out = []
    for e in entries:
        step = e["step"]
        for key, value in e.items():
            if key == "step" or not isinstance(value, (int, float)) or not math.isfinite(value):
                continue
            tag = "eval/" + key[5:] if key.startswith("eval_") else "train/" + key
            out.append((tag, step, float(value)))
    return out
