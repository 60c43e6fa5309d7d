"""Weight drift: how far each module's weights moved between two checkpoints.

Per module (vision-tower layers, projector, embeddings, each decoder layer's attention / MLP /
norms, final norm, LM head — grouped by :mod:`dashboard.analysis.modules`) the relative change
``‖θ_B − θ_A‖ / ‖θ_A‖`` over all of the module's tensors together (Frobenius norms, in float64).

Streamed tensor by tensor (large tensors in row chunks) from the safetensors files, so two
checkpoints are never in memory at once: memory stays at one chunk of each. Every file is first
checked by :func:`dashboard.models.loading.inspect_checkpoint` (confined to the runs root, headers
valid, shards complete) and then opened through :func:`dashboard.runs.files.open_checked`; the
safetensors reader maps that very file descriptor (``/proc/self/fd``), not a path that could be
swapped after the check.

PEFT adapter checkpoints are compared by **the adapter's own tensors** (``lora_A`` / ``lora_B`` …),
not the merged weights: the base model is the same for every checkpoint of an adapter run, so only
the adapter can move, and merging would need the whole base model in memory.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from safetensors import safe_open

from dashboard.analysis.modules import NameScheme, module_of, module_order
from dashboard.models.loading import CheckpointLoadError, inspect_checkpoint, read_safetensors_header
from dashboard.runs.checkpoints import checkpoint_step
from dashboard.runs.files import open_checked

Against = Literal["previous", "first"]
CHUNK_ELEMENTS = 1 << 24  # rows read per step so that one chunk stays ≈ 128 MB in float64


class DriftError(ValueError):
    """Two checkpoints cannot be compared; the message says why."""


@dataclass(frozen=True)
class ModuleDrift:
    module: str
    relative_change: float | None  # None when the module's weights in the reference are all zero
    parameters: int


@dataclass
class CheckpointDrift:
    """One checkpoint against its reference (the previous checkpoint or the first)."""

    checkpoint: str
    step: int | None
    against: str
    weights: Literal["full", "adapter"]
    modules: list[ModuleDrift]
    generic_grouping: bool = False  # no family adapter: grouped by common name prefixes
    unmatched: list[str] = field(default_factory=list)  # tensors in one file only or with another shape

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def ranked(self) -> list[ModuleDrift]:
        """Modules by relative change, largest first (modules without a value last)."""
        return sorted(self.modules, key=lambda m: -1.0 if m.relative_change is None else -m.relative_change)


@contextmanager
def _opened(path: Path, roots: Sequence[Path]) -> Iterator[Any]:
    """A safetensors reader over the checked file (its descriptor, where the OS names descriptors)."""
    with open_checked(path, roots, "weights") as handle:
        by_fd = Path(f"/proc/self/fd/{handle.fileno()}")
        with safe_open(str(by_fd if by_fd.exists() else path), framework="pt") as reader:
            yield reader


def _tensor_files(folder: Path, roots: Sequence[Path]) -> tuple[dict[str, Path], str, bool]:
    """``name -> file`` for every tensor of the checkpoint, its model type, and whether it is an adapter."""
    try:
        plan = inspect_checkpoint(folder, roots=roots)
    except CheckpointLoadError as exc:
        raise DriftError(str(exc)) from exc
    if plan.weight_format not in ("safetensors", "sharded-safetensors"):
        raise DriftError(f"{folder.name}: drift reads safetensors weights only (found {plan.weight_format})")
    names: dict[str, Path] = {}
    for file in plan.weight_files:
        header = read_safetensors_header(file)
        names.update({name: file for name in header if name != "__metadata__"})
    return names, plan.model_type, plan.is_adapter


def _sums(reader_a: Any, reader_b: Any, name: str) -> tuple[float, float, int] | None:
    """``(‖B − A‖², ‖A‖², elements)`` of one tensor, in row chunks; None when the shapes differ."""
    slice_a, slice_b = reader_a.get_slice(name), reader_b.get_slice(name)
    shape = list(slice_a.get_shape())
    if shape != list(slice_b.get_shape()):
        return None
    numel = math.prod(shape)
    if not shape or numel <= CHUNK_ELEMENTS:
        a, b = reader_a.get_tensor(name).double(), reader_b.get_tensor(name).double()
        return float((b - a).pow(2).sum()), float(a.pow(2).sum()), numel
    rows = max(1, CHUNK_ELEMENTS // max(1, numel // shape[0]))
    diff = ref = 0.0
    for start in range(0, shape[0], rows):
        a, b = slice_a[start:start + rows].double(), slice_b[start:start + rows].double()
        diff += float((b - a).pow(2).sum())
        ref += float(a.pow(2).sum())
    return diff, ref, numel


def compare_checkpoints(reference: Path, checkpoint: Path, roots: Sequence[Path]) -> CheckpointDrift:
    """Relative change per module of ``checkpoint`` against ``reference`` (both confined to ``roots``)."""
    names_a, model_type, adapter_a = _tensor_files(reference, roots)
    names_b, _, adapter_b = _tensor_files(checkpoint, roots)
    if adapter_a != adapter_b:
        raise DriftError(f"{reference.name} and {checkpoint.name} are not both adapters or both full checkpoints")
    scheme, declared = NameScheme.for_model_type(model_type)
    totals: dict[str, list[float]] = {}
    unmatched = sorted(set(names_a) ^ set(names_b))
    with ExitStack() as stack:
        readers: dict[Path, Any] = {}

        def reader(file: Path) -> Any:
            if file not in readers:
                readers[file] = stack.enter_context(_opened(file, roots))
            return readers[file]

        for name in sorted(set(names_a) & set(names_b)):
            sums = _sums(reader(names_a[name]), reader(names_b[name]), name)
            if sums is None:
                unmatched.append(name)
                continue
            total = totals.setdefault(module_of(name, scheme), [0.0, 0.0, 0])
            for i, value in enumerate(sums):
                total[i] += value
    modules = [ModuleDrift(module, math.sqrt(diff / ref) if ref > 0 else None, int(n))
               for module, (diff, ref, n) in sorted(totals.items(), key=lambda kv: module_order(kv[0]))]
    return CheckpointDrift(checkpoint.name, checkpoint_step(checkpoint.name), reference.name,
                           "adapter" if adapter_a else "full", modules, not declared, sorted(unmatched))


def drift_over_checkpoints(checkpoints: Sequence[Path], roots: Sequence[Path],
                           against: Against = "previous") -> list[CheckpointDrift]:
    """Each checkpoint after the first against the previous one (or against the first), in the given order."""
    if len(checkpoints) < 2:
        raise DriftError("drift needs at least two checkpoints")
    if against not in ("previous", "first"):
        raise DriftError(f"--against must be 'previous' or 'first', not {against!r}")
    out = []
    for i in range(1, len(checkpoints)):
        reference = checkpoints[i - 1] if against == "previous" else checkpoints[0]
        out.append(compare_checkpoints(reference, checkpoints[i], roots))
    return out


def drift_report(run: Path, results: Sequence[CheckpointDrift], against: Against) -> dict[str, Any]:
    """The JSON the CLI prints and the Timeline exports (one code path)."""
    return {"run": str(run), "against": against,
            "checkpoints": [r.to_dict() for r in results]}


def heatmap_rows(results: Sequence[CheckpointDrift]) -> tuple[list[str], list[str], list[list[float | None]]]:
    """``(modules, checkpoints, values[module][checkpoint])`` for the module × checkpoint heatmap."""
    modules = sorted({m.module for r in results for m in r.modules}, key=module_order)
    columns = [r.checkpoint for r in results]
    by = [{m.module: m.relative_change for m in r.modules} for r in results]
    return modules, columns, [[col.get(module) for col in by] for module in modules]

