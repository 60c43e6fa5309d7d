"""Inspect and load one checkpoint folder safely (no Streamlit here).

The folder is inspected *before* ``from_pretrained`` so that the common failures (no weights,
truncated safetensors, pickle-only weights, custom code, adapter without its base) surface as a
:class:`CheckpointLoadError` with a message a user can act on, instead of a deep traceback.
What a load reads is the folder's :class:`~dashboard.runs.load_plan.LoadPlan` (the same one the
listing shows), and transformers loads from a staging folder of checked bytes
(:mod:`dashboard.models.staging`), never from the run folder itself.
"""

from __future__ import annotations

import hashlib
import json
import struct
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from dashboard.config import LoadOptions
from dashboard.models.budget import (
    ConfigBudgetError,
    check_against_weights,
    check_config_sanity,
    check_processor_config,
    config_param_bytes,
)
from dashboard.models.processors import ProcessorLoadError, load_processor
from dashboard.models.staging import StagedCheckpoint, staged
from dashboard.runs.files import JsonFileError, RunFileError, confine, excerpt, parse_json
from dashboard.runs.load_plan import LoadPlan, WeightFormat, plan_checkpoint

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
    files: LoadPlan | None = None
    """The folder's load plan: every file the load reads (:mod:`dashboard.runs.load_plan`)."""
    config_digest: str = ""
    """SHA-256 of the ``config.json`` the estimate was made from (a changed one is estimated again)."""
    dtype: torch.dtype | None = None


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


def _fail(plan: LoadPlan, options: LoadOptions) -> None:
    """Raise the first reason ``plan`` cannot be loaded with ``options`` (nothing read yet)."""
    folder = plan.path
    base_problems = plan.base.problems if plan.base is not None else ()
    base_name = plan.base.path.name if plan.base is not None else ""
    problems = [*plan.problems, *(f"base model {base_name}: {p}" for p in base_problems)]
    if problems:
        more = f"; and {len(problems) - 3} more problem(s)" if len(problems) > 3 else ""
        raise CheckpointLoadError(f"{folder.name}: {'; '.join(problems[:3])}{more}")
    if plan.missing_files:
        raise CheckpointLoadError(f"{folder.name}: weights incomplete, missing {', '.join(plan.missing_files)}")
    for part in (plan, plan.base):
        if part is None:
            continue
        if part.weight_format == "pickle" and not options.allow_pickle:
            raise PickleRefusedError(
                f"pickle-only weights ({part.weight_files[0].name if part.weight_files else 'pytorch_model.bin'}) "
                f"are refused in {part.path.name}: pickle files can run code when loaded. Set VLMLAB_ALLOW_PICKLE=1 "
                "to load them with torch.load(weights_only=True), or convert the checkpoint to safetensors")
        if part.remote_code and not options.trust_remote_code:
            raise RemoteCodeRequiredError(
                f"{part.path.name}/config.json requires trust_remote_code (it maps to custom code: "
                f"{', '.join(part.remote_code)}); set VLMLAB_TRUST_REMOTE_CODE=1 only if you trust this "
                "checkpoint's code")
    if not plan.loadable:
        raise CheckpointLoadError(f"{folder.name} cannot be loaded (no config or weights)")


def _staged_config(folder: Path, shown: str) -> bytes:
    """The staged ``config.json`` bytes, sanity-checked (layer counts, widths, vocabulary)."""
    data = (folder / "config.json").read_bytes()
    config = parse_json(data, "config.json")
    if not isinstance(config, dict):
        raise CheckpointLoadError(f"{shown}/config.json is not a JSON object")
    try:
        check_config_sanity(config, f"{shown}/config.json")
    except ConfigBudgetError as exc:
        raise CheckpointLoadError(str(exc)) from exc
    return data


def _check_staged(plan: LoadPlan, stage: StagedCheckpoint) -> bytes:
    """Checks made on the staged bytes (what transformers will read): processor sizes, config sanity.

    Returns the staged model ``config.json`` bytes (their digest ties a plan's estimate to a load).
    """
    try:
        for staged_folder in (stage.folder, stage.base):
            if staged_folder is not None:
                check_processor_config(staged_folder, [staged_folder], shown=plan.path.name)
    except ConfigBudgetError as exc:
        raise CheckpointLoadError(str(exc)) from exc
    except RunFileError as exc:
        raise CheckpointLoadError(f"{plan.path.name}: {exc}") from exc
    model_plan = plan.base or plan
    try:
        return _staged_config(stage.model_folder, model_plan.path.name)
    except JsonFileError as exc:
        reason = str(exc).rsplit(": ", 1)[-1]
        raise CheckpointLoadError(f"{model_plan.path.name}/config.json: {reason}") from exc


def _headers(folder: Path, plan: LoadPlan) -> list[dict[str, Any]]:
    if plan.weight_format not in ("safetensors", "sharded-safetensors"):
        return []
    return [read_safetensors_header(folder / f.name) for f in plan.weight_files]


def _estimate(plan: LoadPlan, stage: StagedCheckpoint, dtype: torch.dtype, trust_remote_code: bool) -> int:
    """Bytes the loaded model will hold: weight headers, and the config's own size (refused when far larger)."""
    model_plan = plan.base or plan
    headers = _headers(stage.model_folder, model_plan)
    weights = _estimate_bytes(headers, dtype) if headers else model_plan.weights_bytes
    if headers:
        weights = max(weights, _config_estimate(stage.model_folder, model_plan.path.name, dtype, trust_remote_code,
                                                weights))
    if plan.base is not None:
        adapter = _headers(stage.folder, plan)
        weights += _estimate_bytes(adapter, dtype) if adapter else 0
    return weights


def _options(options: LoadOptions | None, allow_pickle: bool, trust_remote_code: bool,
             roots: Sequence[str | Path] | None) -> LoadOptions:
    if options is not None:
        return options
    return LoadOptions(roots=tuple(Path(r) for r in roots) if roots else None, allow_pickle=allow_pickle,
                       trust_remote_code=trust_remote_code)


def _roots(folder: Path, options: LoadOptions) -> list[Path]:
    return [Path(r).expanduser().resolve() for r in options.roots] if options.roots else [folder.resolve().parent]


def _plan(path: str | Path, options: LoadOptions) -> tuple[LoadPlan, list[Path]]:
    folder = Path(path)
    if not folder.exists():
        raise CheckpointLoadError(f"checkpoint folder {folder} does not exist")
    if not folder.is_dir():
        raise CheckpointLoadError(f"{folder} is not a folder")
    roots = _roots(folder, options)
    try:
        confine(folder, roots)
    except RunFileError:
        raise CheckpointLoadError(f"{folder.name} is outside the runs root") from None
    plan = plan_checkpoint(folder, roots)
    _fail(plan, options)
    return plan, roots


def inspect_checkpoint(path: str | Path, dtype: torch.dtype = torch.float32, allow_pickle: bool = False,
                       trust_remote_code: bool = False, roots: Sequence[str | Path] | None = None, *,
                       options: LoadOptions | None = None) -> CheckpointPlan:
    """Validate a checkpoint folder without loading it; raises CheckpointLoadError with the reason.

    The folder's :class:`~dashboard.runs.load_plan.LoadPlan` must be clean (every file a load reads
    inside ``options.roots`` — default: the folder's parent, its run — and through the walls); the
    small files are then staged and checked as transformers would read them. The size estimate is
    the larger of what the weight files hold and what ``config.json`` describes (built on the meta
    device); a config describing far more than the weights present is refused before anything is built.
    """
    options = _options(options, allow_pickle, trust_remote_code, roots)
    plan, roots_list = _plan(path, options)
    with _staging(plan, roots_list, options) as stage:
        config = _check_staged(plan, stage)
        estimate = _estimate(plan, stage, dtype, options.trust_remote_code)
    model_plan = plan.base or plan
    return CheckpointPlan(plan.path, plan.weight_format, tuple(plan.file(f.name) for f in plan.weight_files),
                          model_plan.model_type or "unknown", is_adapter=plan.is_adapter,
                          base_path=plan.base.path if plan.base else None, estimated_bytes=estimate, files=plan,
                          config_digest=hashlib.sha256(config).hexdigest(), dtype=dtype)


@contextmanager
def _staging(plan: LoadPlan, roots: list[Path], options: LoadOptions) -> Iterator[StagedCheckpoint]:
    try:
        with staged(plan, roots, code=options.trust_remote_code) as stage:
            yield stage
    except FileNotFoundError as exc:
        raise CheckpointLoadError(f"{plan.path.name}: {Path(exc.filename or '').name or 'a file'} disappeared "
                                  "while loading") from None
    except RunFileError as exc:
        raise CheckpointLoadError(f"{plan.path.name}: {exc}") from exc


def _config_estimate(folder: Path, shown: str, dtype: torch.dtype, trust_remote_code: bool,
                     weights_bytes: int) -> int:
    """Parameter bytes the config describes; refuses a config far larger than its weights."""
    try:
        config_bytes = config_param_bytes(folder, dtype, trust_remote_code)
    except Exception:  # an architecture this app cannot build: loading will report it properly
        return 0
    try:
        check_against_weights(config_bytes, weights_bytes, shown)
    except ConfigBudgetError as exc:
        raise CheckpointLoadError(str(exc)) from exc
    return config_bytes


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
                    plan: CheckpointPlan | None = None, roots: Sequence[str | Path] | None = None, *,
                    options: LoadOptions | None = None) -> LoadedModel:
    """Load model + processor for inference (``eval()``, no grad) after :func:`inspect_checkpoint`.

    transformers reads only the staged folder (:mod:`dashboard.models.staging`): the small files as
    checked bytes, the weights through descriptors opened and checked here.
    """
    options = _options(options, allow_pickle, trust_remote_code, roots)
    dtype = dtype or default_dtype(device)
    if plan is None or plan.files is None:
        plan = inspect_checkpoint(path, dtype, options=options)
    files, roots_list = _plan(plan.path, options)
    started = time.perf_counter()
    with _staging(files, roots_list, options) as stage:
        config = _check_staged(files, stage)
        if hashlib.sha256(config).hexdigest() != plan.config_digest:  # changed since inspection: estimate again
            _estimate(files, stage, dtype, options.trust_remote_code)
        processor = _load_processor(files, stage, options.trust_remote_code)  # before the weights: fail cheaply
        model_plan = files.base or files
        try:
            model = _auto_model(stage.model_folder, model_plan.weight_format, device, dtype,
                                options.trust_remote_code)
            if files.is_adapter:
                model = _apply_adapter(model, stage.folder, files.path.name)
        except CheckpointLoadError:
            raise
        except (torch.OutOfMemoryError, MemoryError) as exc:
            raise CheckpointLoadError(f"out of memory while loading {plan.path.name}: {exc}") from exc
        except ValueError as exc:
            if "trust_remote_code" in str(exc):
                raise RemoteCodeRequiredError(f"{plan.path.name} requires trust_remote_code: "
                                              f"{_unstaged(exc, stage)}") from None
            raise CheckpointLoadError(f"cannot load {plan.path.name}: {_unstaged(exc, stage)}") from None
        except Exception as exc:  # unpickling refusals, shape mismatches, …: report, never crash the app
            raise CheckpointLoadError(f"cannot load {plan.path.name}: {type(exc).__name__}: "
                                      f"{_unstaged(exc, stage)}") from None
    model.eval()
    model.requires_grad_(False)
    return LoadedModel(path=plan.path, model=model, processor=processor, device=device, dtype=dtype,
                       nbytes=model_nbytes(model), load_seconds=time.perf_counter() - started,
                       model_type=plan.model_type)


def load_config_and_processor(path: str | Path, *, options: LoadOptions | None = None) -> tuple[Any, Any]:
    """A checkpoint's config and processor without its weights, read through the same plan, walls and
    staging as :func:`load_checkpoint` (for tools such as the geometry oracle that need no model)."""
    from transformers import AutoConfig

    options = _options(options, False, False, None)
    plan, roots_list = _plan(path, options)
    with _staging(plan, roots_list, options) as stage:
        _check_staged(plan, stage)
        try:
            config = AutoConfig.from_pretrained(stage.model_folder, local_files_only=True,
                                                trust_remote_code=options.trust_remote_code)
        except Exception as exc:  # an unreadable config is a load error, never a crash
            raise CheckpointLoadError(f"cannot read the config of {plan.path.name}: {type(exc).__name__}: "
                                      f"{_unstaged(exc, stage)}") from None
        processor = _load_processor(plan, stage, options.trust_remote_code)
    return config, processor


def _unstaged(exc: BaseException, stage: StagedCheckpoint) -> str:
    """An error message with the private staging folder's path replaced by a neutral name."""
    text = excerpt(exc, 400)
    for folder, name in ((stage.folder, "checkpoint"), (stage.base, "base model")):
        if folder is not None:
            text = text.replace(str(folder), name)
    return text


def _load_processor(plan: LoadPlan, stage: StagedCheckpoint, trust_remote_code: bool) -> Any:
    """The checkpoint's own processor files if it has them, else the base model's (adapters)."""
    own = any(f.name in ("preprocessor_config.json", "processor_config.json") for f in plan.small_files)
    folder = stage.folder if own or stage.base is None else stage.base
    try:
        return load_processor(folder, trust_remote_code=trust_remote_code, shown=plan.path.name)
    except ProcessorLoadError as exc:
        raise CheckpointLoadError(_unstaged(exc, stage)) from None


def _apply_adapter(model: Any, adapter_dir: Path, shown: str) -> Any:
    """Attach a PEFT adapter and merge it (inference only, so the merged plain model is simplest)."""
    try:
        from peft import PeftModel
    except ImportError as exc:
        raise CheckpointLoadError(
            f"{shown} is a PEFT adapter checkpoint; install the 'peft' package to load it") from exc
    peft_model = PeftModel.from_pretrained(model, adapter_dir, is_trainable=False)
    return peft_model.merge_and_unload()
