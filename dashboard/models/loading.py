"""Inspect and load one checkpoint folder safely (no Streamlit here).

The folder is inspected *before* ``from_pretrained`` so that the common failures (no weights,
truncated safetensors, pickle-only weights, custom code, adapter without its base) surface as a
:class:`CheckpointLoadError` with a message a user can act on, instead of a deep traceback.
"""

from __future__ import annotations

import json
import struct
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from dashboard.models.budget import (
    ConfigBudgetError,
    check_against_weights,
    check_config_sanity,
    check_processor_config,
    config_param_bytes,
)
from dashboard.models.processors import ProcessorLoadError, load_processor
from dashboard.runs.files import JsonFileError, RunFileError, confine, excerpt, read_json, weights_file_present

WeightFormat = Literal["safetensors", "sharded-safetensors", "pickle", "none"]

SAFE_SINGLE = "model.safetensors"
SAFE_INDEX = "model.safetensors.index.json"
PICKLE_SINGLE = "pytorch_model.bin"
PICKLE_INDEX = "pytorch_model.bin.index.json"
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_SAFE = "adapter_model.safetensors"
ADAPTER_PICKLE = "adapter_model.bin"

_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
                "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1, "U16": 2, "U32": 4, "U64": 8}
_FLOAT_DTYPES = {"F64", "F32", "F16", "BF16"}
_MAX_HEADER = 100 * 2**20  # the safetensors format itself caps the JSON header at 100 MB


class CheckpointLoadError(RuntimeError):
    """A checkpoint cannot be loaded; the message says why and what to do."""


class PickleRefusedError(CheckpointLoadError):
    """Only pickle weights exist and the user has not allowed them."""


class RemoteCodeRequiredError(CheckpointLoadError):
    """The config needs custom Python code and ``trust_remote_code`` is off."""


@dataclass
class LoadedModel:
    """A model + processor ready for inference, as handed out by the pool."""

    path: Path
    model: Any  # transformers.PreTrainedModel
    processor: Any  # transformers.ProcessorMixin
    device: torch.device
    dtype: torch.dtype
    nbytes: int
    load_seconds: float
    model_type: str
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    """Hold while generating: one model object must not run two generations at once."""


@dataclass(frozen=True)
class CheckpointPlan:
    """What inspection found: how to load the folder and roughly how big it will be in memory."""

    path: Path
    weight_format: WeightFormat
    weight_files: tuple[Path, ...]
    model_type: str
    is_adapter: bool = False
    base_path: Path | None = None
    estimated_bytes: int = 0


def resolve_device(spec: str = "auto") -> torch.device:
    """``auto`` → CUDA if present, else CPU; otherwise the named device (checked to exist)."""
    if spec in ("", "auto"):
        return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    device = torch.device(spec)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CheckpointLoadError(f"device {spec!r} requested but CUDA is not available (set VLMLAB_DEVICE=auto)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise CheckpointLoadError(f"device {spec!r} requested but MPS is not available (set VLMLAB_DEVICE=auto)")
    return device


def default_dtype(device: torch.device) -> torch.dtype:
    """bf16 on GPUs that support it, fp16 on other GPUs, fp32 on CPU (CPU half-precision is slow)."""
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "mps":
        return torch.float16
    return torch.float32


def model_nbytes(model: torch.nn.Module) -> int:
    """Bytes held by parameters + buffers (what the pool budgets; activations are not counted)."""
    seen: set[int] = set()
    total = 0
    for tensor in [*model.parameters(), *model.buffers()]:
        if tensor.device.type == "meta":
            continue
        key = tensor.data_ptr()
        if key in seen and key != 0:  # tied weights share storage: count them once
            continue
        seen.add(key)
        total += tensor.numel() * tensor.element_size()
    return total


def read_safetensors_header(path: Path) -> dict[str, Any]:
    """Parse and validate a safetensors header; a truncated/corrupt file raises CheckpointLoadError."""
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            raw_len = handle.read(8)
            if len(raw_len) < 8:
                raise CheckpointLoadError(f"{path.name} is truncated/corrupt: file has only {size} bytes")
            (header_len,) = struct.unpack("<Q", raw_len)
            if header_len <= 0 or header_len > _MAX_HEADER or 8 + header_len > size:
                raise CheckpointLoadError(
                    f"{path.name} is truncated/corrupt: header length {header_len} does not fit a {size}-byte file")
            header = json.loads(handle.read(header_len))
    except OSError as exc:
        raise CheckpointLoadError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointLoadError(f"{path.name} is truncated/corrupt: header is not valid JSON ({exc})") from exc
    if not isinstance(header, dict):
        raise CheckpointLoadError(f"{path.name} is truncated/corrupt: header is not a JSON object")
    data_len = size - 8 - header_len
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            _start, end = info["data_offsets"]
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointLoadError(f"{path.name} is truncated/corrupt: bad entry for tensor {name!r}") from exc
        if end > data_len:
            raise CheckpointLoadError(
                f"{path.name} is truncated/corrupt: tensor {name!r} ends at byte {end} but the file holds "
                f"only {data_len} data bytes")
    return header


def _estimate_bytes(headers: list[dict[str, Any]], dtype: torch.dtype) -> int:
    """Bytes the weights will occupy once float tensors are cast to ``dtype``."""
    target = torch.tensor([], dtype=dtype).element_size()
    total = 0
    for header in headers:
        for name, info in header.items():
            if name == "__metadata__":
                continue
            numel = 1
            for dim in info.get("shape", []):
                numel *= int(dim)
            kind = str(info.get("dtype", "F32"))
            total += numel * (target if kind in _FLOAT_DTYPES else _DTYPE_BYTES.get(kind, 4))
    return total


def _read_json(path: Path, what: str, roots: Sequence[Path] | None = None) -> dict[str, Any]:
    try:
        data = read_json(path, roots or [path.parent])
    except JsonFileError as exc:
        reason = str(exc).rsplit(": ", 1)[-1]
        raise CheckpointLoadError(f"{path.parent.name}/{path.name} is not valid JSON ({reason})") from exc
    except RunFileError as exc:
        raise CheckpointLoadError(f"{what} {exc}") from exc
    except OSError as exc:
        raise CheckpointLoadError(f"cannot read {what} {path.name}: {exc.strerror or exc}") from exc
    if not isinstance(data, dict):
        raise CheckpointLoadError(f"{path.parent.name}/{path.name} is not a JSON object")
    return data


def _check_config(folder: Path, trust_remote_code: bool, roots: Sequence[Path]) -> str:
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise CheckpointLoadError(f"{folder.name} has no config.json, so it is not a transformers model folder")
    config = _read_json(config_path, "config", roots)
    try:
        check_config_sanity(config, f"{folder.name}/config.json")
    except ConfigBudgetError as exc:
        raise CheckpointLoadError(str(exc)) from exc
    if config.get("auto_map") and not trust_remote_code:
        raise RemoteCodeRequiredError(
            f"{folder.name}/config.json requires trust_remote_code (it maps to custom code: "
            f"{', '.join(sorted(config['auto_map']))}); set VLMLAB_TRUST_REMOTE_CODE=1 only if you trust this "
            "checkpoint's code")
    return str(config.get("model_type") or "unknown")


def _confined_weight(folder: Path, name: str, roots: Sequence[Path]) -> Path:
    """A weight file named by the folder (or its shard index), confined and real (not an LFS pointer)."""
    if Path(name).is_absolute() or ".." in Path(name).parts:
        try:
            confine(folder / name, roots)
        except RunFileError:
            raise CheckpointLoadError(f"{folder.name}: shard {Path(name).name} is outside the runs root") from None
        raise CheckpointLoadError(f"{folder.name}: shard {Path(name).name} is not inside the checkpoint folder")
    try:
        resolved = confine(folder / name, roots)
    except RunFileError:
        raise CheckpointLoadError(f"{folder.name}: {Path(name).name} is outside the runs root") from None
    if resolved.is_file() and not weights_file_present(resolved):
        raise CheckpointLoadError(f"{folder.name}/{Path(name).name}: Git LFS pointer — run `git lfs pull`")
    return folder / name


def _weights(folder: Path, allow_pickle: bool, single: str, index: str, pickle_single: str,
             pickle_index: str, roots: Sequence[Path] = (),
             ) -> tuple[WeightFormat, tuple[Path, ...], list[dict[str, Any]]]:
    roots = list(roots) or [folder]
    if (folder / index).is_file():
        weight_map = _read_json(folder / index, "shard index", roots).get("weight_map", {})
        if not isinstance(weight_map, dict):
            raise CheckpointLoadError(f"{folder.name}/{index}: no 'weight_map' object")
        shards = sorted({str(v) for v in weight_map.values()})
        files = tuple(_confined_weight(folder, s, roots) for s in shards)
        missing = [s for s, f in zip(shards, files, strict=True) if not f.is_file()]
        if not shards or missing:
            raise CheckpointLoadError(
                f"{folder.name}: sharded weights incomplete, missing {', '.join(missing) or 'all shards'}")
        return "sharded-safetensors", files, [read_safetensors_header(f) for f in files]
    if (folder / single).is_file():
        path = _confined_weight(folder, single, roots)
        return "safetensors", (path,), [read_safetensors_header(path)]
    pickles = [folder / n for n in (pickle_single, pickle_index) if (folder / n).is_file()]
    if pickles:
        if not allow_pickle:
            raise PickleRefusedError(
                f"pickle-only weights ({pickles[0].name}) are refused in {folder.name}: pickle files can run code "
                "when loaded. Set VLMLAB_ALLOW_PICKLE=1 to load them with torch.load(weights_only=True), or convert "
                "the checkpoint to safetensors")
        return "pickle", tuple(pickles), []
    raise CheckpointLoadError(f"{folder.name} has no model weights ({single} missing)")


def inspect_checkpoint(path: str | Path, dtype: torch.dtype = torch.float32, allow_pickle: bool = False,
                       trust_remote_code: bool = False, roots: Sequence[str | Path] | None = None) -> CheckpointPlan:
    """Validate a checkpoint folder without loading it; raises CheckpointLoadError with the reason.

    Every file read (configs, shard index, weight headers, an adapter's base model) must lie in
    ``roots`` (default: the folder's parent, i.e. its run). The size estimate is the larger of
    what the weight files hold and what ``config.json`` describes (built on the meta device), and
    a config describing far more than the weights present is refused before anything is built.
    """
    folder = Path(path)
    root_list = [Path(r).expanduser().resolve() for r in roots] if roots else [folder.resolve().parent]
    if not folder.exists():
        raise CheckpointLoadError(f"checkpoint folder {folder} does not exist")
    if not folder.is_dir():
        raise CheckpointLoadError(f"{folder} is not a folder")
    try:
        confine(folder, root_list)
    except RunFileError:
        raise CheckpointLoadError(f"{folder.name} is outside the runs root") from None
    try:
        check_processor_config(folder, root_list)
    except ConfigBudgetError as exc:
        raise CheckpointLoadError(str(exc)) from exc
    if (folder / ADAPTER_CONFIG).is_file():
        return _inspect_adapter(folder, dtype, allow_pickle, trust_remote_code, root_list)
    model_type = _check_config(folder, trust_remote_code, root_list)
    fmt, files, headers = _weights(folder, allow_pickle, SAFE_SINGLE, SAFE_INDEX, PICKLE_SINGLE, PICKLE_INDEX,
                                   root_list)
    estimate = _estimate_bytes(headers, dtype) if headers else sum(f.stat().st_size for f in files)
    if headers:
        estimate = max(estimate, _config_estimate(folder, dtype, trust_remote_code, estimate))
    return CheckpointPlan(folder, fmt, files, model_type, estimated_bytes=estimate)


def _config_estimate(folder: Path, dtype: torch.dtype, trust_remote_code: bool, weights_bytes: int) -> int:
    """Parameter bytes the config describes; refuses a config far larger than its weights."""
    try:
        config_bytes = config_param_bytes(folder, dtype, trust_remote_code)
    except Exception:  # an architecture this app cannot build: loading will report it properly
        return 0
    try:
        check_against_weights(config_bytes, weights_bytes, folder.name)
    except ConfigBudgetError as exc:
        raise CheckpointLoadError(str(exc)) from exc
    return config_bytes


def _inspect_adapter(folder: Path, dtype: torch.dtype, allow_pickle: bool, trust_remote_code: bool,
                     roots: Sequence[Path]) -> CheckpointPlan:
    adapter = _read_json(folder / ADAPTER_CONFIG, "adapter config", roots)
    base_name = adapter.get("base_model_name_or_path")
    if not base_name or not isinstance(base_name, str):
        raise CheckpointLoadError(f"{folder.name}/adapter_config.json names no base_model_name_or_path")
    candidates = [Path(base_name).expanduser(), folder / base_name, folder.parent / base_name]
    found = [c for c in candidates if (c / "config.json").is_file()]
    if not found:
        raise CheckpointLoadError(
            f"{folder.name} is a PEFT adapter whose base model {excerpt(base_name, 80)!r} is not a local folder; "
            "models are never downloaded here, so place the base checkpoint locally and point "
            "base_model_name_or_path at it")
    try:
        base = confine(found[0], roots)
    except RunFileError:
        raise CheckpointLoadError(f"{folder.name}: the adapter's base model {Path(base_name).name!r} is outside "
                                  "the runs root") from None
    fmt, files, headers = _weights(folder, allow_pickle, ADAPTER_SAFE, "adapter_model.safetensors.index.json",
                                   ADAPTER_PICKLE, "adapter_model.bin.index.json", roots)
    base_plan = inspect_checkpoint(base, dtype, allow_pickle, trust_remote_code, roots)
    estimate = base_plan.estimated_bytes + (_estimate_bytes(headers, dtype) if headers else 0)
    return CheckpointPlan(folder, fmt, files, base_plan.model_type, is_adapter=True, base_path=base,
                          estimated_bytes=estimate)


def _auto_model(path: Path, plan_format: WeightFormat, device: torch.device, dtype: torch.dtype,
                trust_remote_code: bool) -> Any:
    from transformers import AutoModelForImageTextToText

    return AutoModelForImageTextToText.from_pretrained(
        path,
        dtype=dtype,
        use_safetensors=plan_format != "pickle",
        weights_only=True,
        trust_remote_code=trust_remote_code,
        local_files_only=True,
        low_cpu_mem_usage=True,
    ).to(device)


def load_checkpoint(path: str | Path, device: torch.device, dtype: torch.dtype | None = None,
                    allow_pickle: bool = False, trust_remote_code: bool = False,
                    plan: CheckpointPlan | None = None, roots: Sequence[str | Path] | None = None) -> LoadedModel:
    """Load model + processor for inference (``eval()``, no grad) after :func:`inspect_checkpoint`."""
    dtype = dtype or default_dtype(device)
    plan = plan or inspect_checkpoint(path, dtype, allow_pickle, trust_remote_code, roots)
    started = time.perf_counter()
    model_dir = plan.base_path if plan.is_adapter and plan.base_path else plan.path
    processor = _load_processor(plan, model_dir, trust_remote_code)  # before the weights: fail cheaply
    try:
        if plan.is_adapter:
            base_plan = inspect_checkpoint(model_dir, dtype, allow_pickle, trust_remote_code,
                                           roots or [model_dir.resolve().parent])
            model = _auto_model(model_dir, base_plan.weight_format, device, dtype, trust_remote_code)
            model = _apply_adapter(model, plan.path)
        else:
            model = _auto_model(model_dir, plan.weight_format, device, dtype, trust_remote_code)
    except CheckpointLoadError:
        raise
    except (torch.OutOfMemoryError, MemoryError) as exc:
        raise CheckpointLoadError(f"out of memory while loading {plan.path.name}: {exc}") from exc
    except ValueError as exc:
        if "trust_remote_code" in str(exc):
            raise RemoteCodeRequiredError(f"{plan.path.name} requires trust_remote_code: {exc}") from exc
        raise CheckpointLoadError(f"cannot load {plan.path.name}: {exc}") from exc
    except Exception as exc:  # unpickling refusals, shape mismatches, …: report, never crash the app
        raise CheckpointLoadError(f"cannot load {plan.path.name}: {type(exc).__name__}: {exc}") from exc
    model.eval()
    model.requires_grad_(False)
    return LoadedModel(path=plan.path, model=model, processor=processor, device=device, dtype=dtype,
                       nbytes=model_nbytes(model), load_seconds=time.perf_counter() - started,
                       model_type=plan.model_type)


def _load_processor(plan: CheckpointPlan, model_dir: Path, trust_remote_code: bool) -> Any:
    """The checkpoint's own processor files if it has them, else the base model's (adapters)."""
    own = any((plan.path / name).is_file() for name in ("preprocessor_config.json", "processor_config.json"))
    try:
        return load_processor(plan.path if own else model_dir, trust_remote_code=trust_remote_code)
    except ProcessorLoadError as exc:
        raise CheckpointLoadError(str(exc)) from exc


def _apply_adapter(model: Any, adapter_dir: Path) -> Any:
    """Attach a PEFT adapter and merge it (inference only, so the merged plain model is simplest)."""
    try:
        from peft import PeftModel
    except ImportError as exc:
        raise CheckpointLoadError(
            f"{adapter_dir.name} is a PEFT adapter checkpoint; install the 'peft' package to load it") from exc
    peft_model = PeftModel.from_pretrained(model, adapter_dir, is_trainable=False)
    return peft_model.merge_and_unload()
