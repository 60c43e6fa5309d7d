"""Read scalar summaries from TensorBoard event files into the tidy metrics table.

Events are decoded with TensorBoard's own ``Event`` protobuf (upb, in C); the TFRecord framing
around them is split here (see :func:`iter_records`) because TensorBoard's TensorFlow-free
reader, used by both ``EventAccumulator`` and tbparse, checksums every record in pure Python.
Both the legacy ``simple_value`` and the newer tensor-form scalar
are understood. Tag names follow the HF ``TensorBoardCallback`` convention: ``train/loss`` ->
``loss``, ``eval/loss`` -> ``eval_loss``; ``train/epoch`` fills the epoch column.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import struct
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from dashboard.runs.files import RunFileError, open_checked
from dashboard.runs.metrics import empty_metrics, make_metrics

EVENT_FILE_MARKER = "tfevents"
MAX_DEPTH = 4
EPOCH_TAGS = ("train/epoch", "epoch")
MAX_RECORD_BYTES = 256 * 2**20
_LENGTH = struct.Struct("<Q")


def find_event_files(run_dir: Path, max_depth: int = MAX_DEPTH) -> list[Path]:
    """``events.out.tfevents.*`` files anywhere below the run (HF puts them in ``runs/<date>/``).

    Checkpoint folders are skipped; depth is bounded so a huge tree stays cheap to scan.
    """
    found: list[Path] = []
    stack = [(Path(run_dir), 0)]
    while stack:
        current, depth = stack.pop()
        try:
            with os.scandir(current) as it:
                entries = list(it)
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    if depth < max_depth and not entry.name.startswith(("checkpoint-", ".")):
                        stack.append((Path(entry.path), depth + 1))
                elif EVENT_FILE_MARKER in entry.name and entry.is_file():
                    found.append(Path(entry.path))
            except OSError:
                continue
    return sorted(found)


def metric_name(tag: str) -> str:
    """HF TensorBoardCallback tag -> trainer_state metric name."""
    if tag.startswith("train/"):
        return tag[len("train/"):]
    if tag.startswith("eval/"):
        return "eval_" + tag[len("eval/"):]
    return tag


def _scalar(value) -> float | None:
    kind = value.WhichOneof("value")
    if kind == "simple_value":
        return value.simple_value
    if kind == "tensor" and value.metadata.plugin_data.plugin_name in ("scalars", ""):
        from tensorboard.util import tensor_util

        array = tensor_util.make_ndarray(value.tensor)
        if array.size == 1 and array.dtype.kind in "fiu":
            return float(array.reshape(-1)[0])
    return None


def iter_records(data: bytes | mmap.mmap) -> tuple[list[memoryview], str | None]:
    """Split a TFRecord stream (``u64 length, u32 crc, payload, u32 crc``) into payloads.

    TensorBoard's own framing reader (without TensorFlow installed) computes CRC32C in pure
    Python: ~200 µs per event, minutes for 10⁶ points. Here lengths are bounds-checked instead
    of CRC-checked and every payload must parse as an ``Event`` (checked by the caller); the
    first inconsistency ends the read with a message, keeping everything before it.
    """
    records: list[memoryview] = []
    view = memoryview(data)
    offset, end = 0, len(data)
    unpack = _LENGTH.unpack_from
    while offset < end:
        if offset + 12 > end:
            return records, f"truncated record header at byte {offset}"
        (length,) = unpack(data, offset)
        start = offset + 12
        if length > MAX_RECORD_BYTES or start + length + 4 > end:
            return records, f"truncated or corrupt record at byte {offset}"
        records.append(view[start:start + length])
        offset = start + length + 4
    return records, None


def read_event_file(path: Path, roots: Sequence[Path] | None = None) -> tuple[pd.DataFrame, list[str]]:
    """All scalars of one event file (truncated/corrupt tails are reported, earlier data kept).

    The file is opened through the run-file opener (confined to ``roots``, default its own
    folder; special and sparse files refused) and memory-mapped, so a large file is paged in
    by the OS rather than copied whole into the process.
    """
    path = Path(path)
    try:
        with open_checked(path, roots or [path.parent], "events") as handle:
            size = os.fstat(handle.fileno()).st_size
            mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) if size else None
    except RunFileError as exc:
        return empty_metrics(), [str(exc)]
    except OSError as exc:
        return empty_metrics(), [f"{path.name}: cannot read ({exc.strerror or type(exc).__name__})"]
    try:
        return _parse_events(path, mapped if mapped is not None else b"")
    finally:
        if mapped is not None:
            with contextlib.suppress(BufferError):
                mapped.close()


def _parse_events(path: Path, data: bytes | mmap.mmap) -> tuple[pd.DataFrame, list[str]]:
    from tensorboard.compat.proto import event_pb2

    problems: list[str] = []
    steps: list[int] = []
    walls: list[float] = []
    tags: list[str] = []
    values: list[float] = []
    records, framing_problem = iter_records(data)
    parse = event_pb2.Event.FromString
    for i, raw in enumerate(records):
        try:
            event = parse(raw)
        except Exception:  # protobuf's DecodeError: the record is not an Event
            framing_problem = f"record {i} is not a valid event"
            break
        if not event.HasField("summary"):
            continue
        for value in event.summary.value:
            scalar = _scalar(value)
            if scalar is not None:
                steps.append(event.step)
                walls.append(event.wall_time)
                tags.append(value.tag)
                values.append(scalar)
    for raw in records:
        raw.release()
    records.clear()
    if framing_problem:
        problems.append(f"{path.name}: {framing_problem}; kept the {len(tags):,} scalar point(s) before it")
    if not tags:
        return empty_metrics(), problems
    return _to_table(np.array(steps, np.int64), np.array(walls), np.array(tags, dtype=object),
                     np.array(values, np.float64), path, problems), problems


def _to_table(steps, walls, tags, values, path: Path, problems: list[str]) -> pd.DataFrame:
    is_epoch = np.isin(tags, EPOCH_TAGS)
    epochs = np.full(len(steps), np.nan)
    if is_epoch.any():
        # The epoch reached at each step, looked up from the epoch tag (last value per step).
        e_steps, e_vals = steps[is_epoch], values[is_epoch]
        order = np.argsort(e_steps, kind="stable")
        e_steps, e_vals = e_steps[order], e_vals[order]
        pos = np.searchsorted(e_steps, steps, side="right") - 1
        hit = (pos >= 0) & (e_steps[np.clip(pos, 0, None)] == steps)
        epochs[hit] = e_vals[pos[hit]]
    keep = ~is_epoch
    finite = np.isfinite(values)
    bad = keep & ~finite
    if bad.any():
        for tag in np.unique(tags[bad]):
            bad_steps = steps[bad & (tags == tag)][:5].tolist()
            problems.append(f"{path.name}: '{tag}' has {int((bad & (tags == tag)).sum())} NaN/inf value(s) "
                            f"(step {', '.join(map(str, bad_steps))}); not plotted")
    keep &= finite
    tag_codes, uniq = pd.factorize(tags[keep])  # map each distinct tag once, not per point
    mapped_codes, names = pd.factorize(np.array([metric_name(str(t)) for t in uniq], dtype=object))
    codes = mapped_codes[tag_codes] if len(tag_codes) else tag_codes
    table = make_metrics(steps[keep], epochs[keep], walls[keep], codes, values[keep], source="tensorboard",
                         names=[str(n) for n in names])
    order = np.lexsort((table["step"].to_numpy(), table["metric"].cat.codes.to_numpy()))
    return table.iloc[order].reset_index(drop=True)

