"""Read TensorBoard event files: scalars per series, hyper-parameters, text, other summaries.

A *series* is (event-file folder relative to the run, tag) — what TensorBoard calls a run and
a tag. Nothing from two series is merged: ``SummaryWriter.add_scalars("loss", {"train": …})``
writes tag ``loss`` into the sub-folder ``loss_train/``, which becomes the metric
``loss/train`` in group ``loss``; the same tag in two unrelated folders becomes
``loss (folder)``. ``add_hparams`` sub-runs give hyper-parameters and *hparam metrics*, which
are not training curves. Text summaries are kept per step; images, histograms, audio and the
like are counted as present, never decoded.

Events are decoded with TensorBoard's own ``Event`` protobuf (upb, in C); the TFRecord framing
around them is split here (see :func:`iter_records`) because TensorBoard's TensorFlow-free
reader, used by both ``EventAccumulator`` and tbparse, checksums every record in pure Python.
Tag names follow the HF ``TensorBoardCallback`` convention: ``train/loss`` -> ``loss``,
``eval/loss`` -> ``eval_loss``; ``train/epoch`` fills the epoch column.
"""

from __future__ import annotations

import re
import struct
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from dashboard.runs.attempts import Restart, describe, file_attempts, row_restarts, superseded
from dashboard.runs.event_fastpath import decode_simple_scalars
from dashboard.runs.files import RunFileError, open_checked
from dashboard.runs.listing import summary
from dashboard.runs.metrics import concat_metrics, empty_metrics, empty_series, make_metrics

MAX_DEPTH = 4
EPOCH_TAGS = ("train/epoch", "epoch")
MAX_RECORD_BYTES = 256 * 2**20
MAX_TEXT_CHARS = 100_000
HPARAMS_PLUGIN = "hparams"
TEXT_TAG_SUFFIX = "/text_summary"  # what torch's add_text appends to the tag
_LENGTH = struct.Struct("<Q")
_KIND_OF_FIELD = {"image": "image", "histo": "histogram", "audio": "audio"}
_KIND_OF_PLUGIN = {"images": "image", "histograms": "histogram", "audio": "audio", "pr_curves": "pr curve",
                   "mesh": "mesh", "custom_scalars": "custom scalars layout", "graph_keras_model": "graph"}
TEXT_COLUMNS = ("folder", "tag", "step", "wall_time", "text")
HPARAM_METRIC_COLUMNS = ("folder", "tag", "step", "wall_time", "value")


def find_event_files(run_dir: Path, max_depth: int = MAX_DEPTH) -> list[Path]:
    """``events.out.tfevents.*`` files anywhere below the run (HF puts them in ``runs/<date>/``).

    Checkpoint folders and symlinked folders are skipped; depth is bounded, and each folder's
    listing is memoised per change (:mod:`dashboard.runs.listing`), so a rerun costs a ``stat``
    per folder even next to 100,000 checkpoint folders.
    """
    found: list[Path] = []
    stack = [(Path(run_dir), 0)]
    while stack:
        current, depth = stack.pop()
        here = summary(current)
        found.extend(current / name for name in here.event_files)
        if depth < max_depth:
            stack.extend((current / name, depth + 1) for name in here.subdirs if not name.startswith("checkpoint-"))
    return sorted(found)


def metric_name(tag: str) -> str:
    """HF TensorBoardCallback tag -> trainer_state metric name."""
    if tag.startswith("train/"):
        return tag[len("train/"):]
    if tag.startswith("eval/"):
        return "eval_" + tag[len("eval/"):]
    return tag


def iter_records(data: bytes) -> tuple[list[memoryview], str | None]:
    starts, lengths, problem, _ = split_records(data)
    view = memoryview(data)
    return [view[s:s + n] for s, n in zip(starts.tolist(), lengths.tolist(), strict=True)], problem


def split_records(data: bytes) -> tuple[np.ndarray, np.ndarray, str | None, int]:
    """Split a TFRecord stream (``u64 length, u32 crc, payload, u32 crc``) into payloads.

    TensorBoard's own framing reader (without TensorFlow installed) computes CRC32C in pure
    Python: ~200 µs per event, minutes for 10⁶ points. Here CRCs are *not* checked; lengths are
    bounds-checked instead and every payload must parse as an ``Event`` (checked by the
    caller); the first inconsistency ends the read with a message, keeping everything before it.
    Payloads come back as (start, length) arrays into ``data``; the last value is how many bytes
    were consumed as whole records (where a live file's next read can resume).
    """
    starts: list[int] = []
    lengths: list[int] = []
    offset, end = 0, len(data)
    unpack = _LENGTH.unpack_from
    problem = None
    while offset < end:
        if offset + 12 > end:
            problem = f"truncated record header at byte {offset}"
            break
        (length,) = unpack(data, offset)
        start = offset + 12
        if length > MAX_RECORD_BYTES or start + length + 4 > end:
            problem = f"truncated or corrupt record at byte {offset}"
            break
        starts.append(start)
        lengths.append(length)
        offset = start + length + 4
    return np.array(starts, dtype=np.int64), np.array(lengths, dtype=np.int64), problem, offset


@dataclass
class EventFileData:
    """Everything one event file holds, before series are named (that needs the other files)."""

    steps: np.ndarray
    walls: np.ndarray
    tags: np.ndarray
    values: np.ndarray
    texts: list[tuple[str, int, float, str]] = field(default_factory=list)
    hparams: dict[str, object] | None = None
    others: Counter = field(default_factory=Counter)  # (tag, kind) -> number of summaries
    problems: list[str] = field(default_factory=list)
    consumed: int = 0
    """Bytes of the file read as whole records: an appending writer's next read starts here."""
    complete: bool = True
    """False when a record failed to parse (not just an unfinished tail): never resume after it."""


def _tensor_scalar(value) -> float | None:
    from tensorboard.util import tensor_util

    array = tensor_util.make_ndarray(value.tensor)
    if array.size == 1 and array.dtype.kind in "fiu":
        return float(array.reshape(-1)[0])
    return None


def _text(value) -> str:
    strings = [s.decode("utf-8", errors="replace") for s in value.tensor.string_val]
    text = "\n".join(strings)
    return text if len(text) <= MAX_TEXT_CHARS else text[:MAX_TEXT_CHARS] + " …(truncated)"


def _hparams(content: bytes) -> dict[str, object] | None:
    """Hyper-parameters of an ``add_hparams`` session (``session_start_info``), else None."""
    from google.protobuf.json_format import MessageToDict
    from tensorboard.plugins.hparams import plugin_data_pb2

    data = plugin_data_pb2.HParamsPluginData.FromString(content)
    if not data.HasField("session_start_info"):
        return None
    return {str(k): MessageToDict(v) for k, v in data.session_start_info.hparams.items()}


def scan_event_file(path: Path, roots: list[Path] | None = None, start: int = 0, fast: bool = True) -> EventFileData:
    """All summaries of one event file (truncated/corrupt tails are reported, earlier data kept).

    ``start`` > 0 reads only the records from that byte on (a live file's newly appended tail).
    ``fast=False`` sends every record through protobuf: the reference the fast path is tested
    against.
    """
    from tensorboard.compat.proto import event_pb2

    path = Path(path)
    steps: list[int] = []
    walls: list[float] = []
    tags: list[str] = []
    values: list[float] = []
    out = EventFileData(np.array([], np.int64), np.array([]), np.array([], dtype=object), np.array([]))
    try:
        with open_checked(path, roots or [path.parent], "events") as handle:
            if start:
                handle.seek(start)
            data = handle.read()
    except (RunFileError, OSError) as exc:
        out.problems.append(str(exc) if isinstance(exc, RunFileError) else
                            f"{path.name}: cannot read ({exc.strerror or exc})")
        return out
    starts, lengths, framing_problem, consumed = split_records(data)
    out.consumed = start + consumed
    # Plain scalars are decoded all at once; the protobuf loop sees only the other records.
    taken, f_steps, f_walls, f_tags, f_values = decode_simple_scalars(data, starts, lengths if fast else lengths[:0])
    fast_records = np.flatnonzero(taken)
    record_of: list[int] = []  # record index of each slow-path scalar, to restore file order
    parse = event_pb2.Event.FromString
    view = memoryview(data)
    for i in np.flatnonzero(~taken).tolist():
        try:
            event = parse(view[starts[i]:starts[i] + lengths[i]])
        except Exception:  # protobuf's DecodeError: the record is not an Event
            framing_problem = f"record {i} is not a valid event"
            out.complete = False
            out.consumed = start + int(starts[i]) - 12
            before = fast_records < i  # like a sequential reader: nothing after the bad record
            fast_records, f_steps, f_walls = fast_records[before], f_steps[before], f_walls[before]
            f_tags, f_values = f_tags[before], f_values[before]
            break
        if not event.HasField("summary"):
            continue
        for value in event.summary.value:
            kind = value.WhichOneof("value")
            if kind == "simple_value":
                record_of.append(i)
                steps.append(event.step)
                walls.append(event.wall_time)
                tags.append(value.tag)
                values.append(value.simple_value)
                continue
            plugin = value.metadata.plugin_data.plugin_name
            try:
                if kind == "tensor" and plugin in ("scalars", ""):
                    scalar = _tensor_scalar(value)
                    if scalar is not None:
                        record_of.append(i)
                        steps.append(event.step)
                        walls.append(event.wall_time)
                        tags.append(value.tag)
                        values.append(scalar)
                        continue
                elif kind == "tensor" and plugin == "text":
                    tag = value.tag.removesuffix(TEXT_TAG_SUFFIX)  # as TensorBoard and tbparse show it
                    out.texts.append((tag, int(event.step), float(event.wall_time), _text(value)))
                    continue
                elif plugin == HPARAMS_PLUGIN:
                    hparams = _hparams(value.metadata.plugin_data.content)
                    if hparams is not None:
                        out.hparams = {**(out.hparams or {}), **hparams}
                    continue
            except Exception:  # a malformed tensor / plugin payload: list it, keep reading
                out.problems.append(f"{path.name}: summary '{value.tag}' at step {event.step} is malformed; skipped")
                continue
            label = _KIND_OF_FIELD.get(kind or "") or _KIND_OF_PLUGIN.get(plugin) or plugin or kind or "unknown"
            out.others[(value.tag, label)] += 1
    order: np.ndarray | slice = slice(None)  # fast-path rows alone are already in file order
    if record_of:
        order = np.argsort(np.concatenate([fast_records, np.array(record_of, np.int64)]), kind="stable")
    out.steps = np.concatenate([f_steps, np.array(steps, np.int64)])[order]
    out.walls = np.concatenate([f_walls, np.array(walls, np.float64)])[order]
    out.tags = np.concatenate([f_tags, np.array(tags, dtype=object)])[order]
    out.values = np.concatenate([f_values, np.array(values, np.float64)])[order]
    if framing_problem:
        out.problems.append(f"{path.name}: {framing_problem}; kept the {len(out.tags):,} scalar point(s) before it")
    return out


# ---------------------------------------------------------------- naming series across files
@dataclass
class TensorBoardData:
    """A run's event files, assembled: metrics (train curves), hparam metrics, texts, hparams."""

    metrics: pd.DataFrame
    series: pd.DataFrame
    hparam_metrics: pd.DataFrame  # folder, tag, step, wall_time, value: one row per logged result
    hparams: dict[str, dict[str, object]]  # folder -> hyper-parameters of that add_hparams session
    texts: pd.DataFrame
    others: pd.DataFrame  # folder, tag, kind, count
    problems: list[str]
    restarts: list[Restart] = field(default_factory=list)


def folder_of(path: Path, run_dir: Path) -> str:
    """The event file's folder relative to the run, POSIX-style; ``.`` for the run itself."""
    try:
        rel = Path(path).parent.relative_to(run_dir)
    except ValueError:
        rel = Path(path).parent
    return PurePosixPath(*rel.parts).as_posix() if rel.parts else "."


HF_LOGDIR_RE = re.compile(r"^runs/[A-Z][a-z]{2}\d{2}_\d{2}-\d{2}-\d{2}_[^/]+$")
"""``runs/Dec06_12-00-00_host``: the Trainer's default ``logging_dir``, a new one per process."""
HF_LOGS = "runs"


def stream_folder(folder: str) -> str:
    """The log stream an event folder belongs to.

    Every ``Trainer`` process logs into a fresh ``runs/<date>_<host>/`` unless
    ``TENSORBOARD_LOGGING_DIR`` is set, so a resumed run's attempts land in sibling folders:
    they are one run's one log (``runs``), split into attempts, not separate series.
    """
    return HF_LOGS if HF_LOGDIR_RE.match(folder) else folder


def sub_run_suffix(folder: str, tag: str) -> str | None:
    """``add_scalars(main_tag, {name: …})`` writes tag ``main_tag`` into ``<main_tag with / -> _>_<name>/``."""
    leaf = PurePosixPath(folder).name
    prefix = tag.replace("/", "_") + "_"
    if folder != "." and leaf.startswith(prefix) and len(leaf) > len(prefix):
        return leaf[len(prefix):]
    return None


def name_series(pairs: list[tuple[str, str]]) -> dict[tuple[str, str], tuple[str, str, str]]:
    """(folder, tag) -> (metric name, group, kind) with every name distinct.

    ``kind`` is ``sub-run`` for ``add_scalars`` series, else ``direct``. A direct tag found in
    several folders is named ``<name> (<folder>)`` everywhere, so none of them is merged.
    """
    direct_folders: dict[str, set[str]] = {}
    for folder, tag in pairs:
        if sub_run_suffix(folder, tag) is None:
            direct_folders.setdefault(metric_name(tag), set()).add(folder)
    named: dict[tuple[str, str], tuple[str, str, str]] = {}
    taken: set[str] = set()
    for folder, tag in sorted(pairs):
        group = metric_name(tag)
        suffix = sub_run_suffix(folder, tag)
        if suffix is not None:
            name, kind = f"{group}/{suffix}", "sub-run"
        else:
            name, kind = (group if len(direct_folders[group]) == 1 else f"{group} ({folder})"), "direct"
        if name in taken:  # e.g. tags 'loss' and 'train/loss' in one folder: keep them apart
            name = f"{tag} ({folder})" if f"{tag} ({folder})" not in taken else f"{tag} ({folder}, {len(taken)})"
        taken.add(name)
        named[(folder, tag)] = (name, group, kind)
    return named


def _epochs_for(steps: np.ndarray, tags: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Epoch at each point from the folder's epoch tag (last value per step); mask of epoch rows."""
    is_epoch = np.isin(tags, EPOCH_TAGS)
    epochs = np.full(len(steps), np.nan)
    if is_epoch.any():
        e_steps, e_vals = steps[is_epoch], values[is_epoch]
        order = np.argsort(e_steps, kind="stable")
        e_steps, e_vals = e_steps[order], e_vals[order]
        pos = np.searchsorted(e_steps, steps, side="right") - 1
        hit = (pos >= 0) & (e_steps[np.clip(pos, 0, None)] == steps)
        epochs[hit] = e_vals[pos[hit]]
    return epochs, is_epoch


def _first_last_wall(d: EventFileData) -> tuple[float, float]:
    walls = d.walls[np.isfinite(d.walls)] if len(d.walls) else d.walls
    return (float(walls.min()), float(walls.max())) if len(walls) else (np.inf, -np.inf)


def folder_attempts(files: list[tuple[str, str, EventFileData]]
                    ) -> tuple[dict[int, tuple[np.ndarray, np.ndarray]], list[Restart]]:
    """Per file (index into ``files``): each row's attempt and whether a later attempt replaced it.

    The files of one folder are one log stream, taken in creation order (first wall time, then
    name: the name starts with the creation time); see :mod:`dashboard.runs.attempts`.
    """
    by_folder: dict[str, list[int]] = {}
    for i, (folder, _, d) in enumerate(files):
        if len(d.steps):
            by_folder.setdefault(folder, []).append(i)
    out: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    restarts: list[Restart] = []
    for folder, indices in by_folder.items():
        indices.sort(key=lambda i: (_first_last_wall(files[i][2])[0], files[i][1]))
        spans = [_first_last_wall(files[i][2]) for i in indices]
        per_file = file_attempts([a for a, _ in spans], [b for _, b in spans],
                                 [int(files[i][2].steps[0]) for i in indices],
                                 [int(files[i][2].steps.max()) for i in indices])
        parts: list[np.ndarray] = []
        base, top, previous = 0, -1, None
        for i, file_attempt in zip(indices, per_file, strict=True):
            d = files[i][2]
            if previous is not None and file_attempt != previous:
                base = top + 1
            previous = file_attempt
            codes, _ = pd.factorize(d.tags)
            rows = base + row_restarts(d.steps, codes)
            top = max(top, int(rows.max()))
            parts.append(rows)
        steps = np.concatenate([files[i][2].steps for i in indices])
        walls = np.concatenate([files[i][2].walls for i in indices])
        attempts = np.concatenate(parts)
        replaced = superseded(steps, attempts)
        offset = 0
        for i, rows in zip(indices, parts, strict=True):
            out[i] = (rows, replaced[offset:offset + len(rows)])
            offset += len(rows)
        stream = "TensorBoard " + ("(run folder)" if folder == "." else folder)
        restarts.extend(describe(stream, steps, walls, attempts))
    return out, restarts


def assemble(files: list[tuple[str, str, EventFileData]]) -> TensorBoardData:
    """Name every series and build the tables from ``(folder, file name, data)`` triples."""
    problems = [p for _, _, d in files for p in d.problems]
    attempts, restarts = folder_attempts(files)
    hparams = {folder: d.hparams for folder, _, d in files if d.hparams is not None}
    hparam_folders = set(hparams)
    # Epoch rows and non-finite values are taken out per file first.
    kept: list[tuple[str, EventFileData, np.ndarray, np.ndarray, int]] = []
    pairs: set[tuple[str, str]] = set()
    for index, (folder, file_name, d) in enumerate(files):
        if not len(d.tags):
            continue
        epochs, is_epoch = _epochs_for(d.steps, d.tags, d.values)
        keep = ~is_epoch
        bad = keep & ~np.isfinite(d.values)
        for tag in np.unique(d.tags[bad]) if bad.any() else []:
            tag_bad = bad & (d.tags == tag)
            bad_steps = d.steps[tag_bad][:5].tolist()
            problems.append(f"{file_name}: '{tag}' has {int(tag_bad.sum())} NaN/inf value(s) "
                            f"(step {', '.join(map(str, bad_steps))}); not plotted")
        keep &= np.isfinite(d.values)
        kept.append((folder, d, keep, epochs, index))
        if folder not in hparam_folders:
            pairs.update((folder, str(t)) for t in pd.unique(d.tags[keep]))
    names = name_series(sorted(pairs))
    metric_frames, hparam_frames = [], []
    for folder, d, keep, epochs, index in kept:
        if folder in hparam_folders:  # add_hparams results: one small table, never curves
            hparam_frames.append(pd.DataFrame({"folder": folder, "tag": d.tags[keep].astype(str),
                                               "step": d.steps[keep], "wall_time": d.walls[keep],
                                               "value": d.values[keep]}, columns=list(HPARAM_METRIC_COLUMNS)))
            continue
        tag_codes, uniq = pd.factorize(d.tags[keep])  # map each distinct tag once, not per point
        series_names = [names[(folder, str(t))][0] for t in uniq]
        rows, replaced = attempts[index]
        metric_frames.append(make_metrics(d.steps[keep], epochs[keep], d.walls[keep], tag_codes, d.values[keep],
                                          source="tensorboard", names=series_names, attempts=rows[keep],
                                          superseded=replaced[keep]))
    metrics = _sorted(concat_metrics(metric_frames))
    hparam_metrics = (pd.concat(hparam_frames, ignore_index=True) if hparam_frames
                      else pd.DataFrame([], columns=list(HPARAM_METRIC_COLUMNS)))
    series = pd.DataFrame(
        [{"metric": n, "group": g, "folder": f, "tag": t, "kind": k, "source": "tensorboard"}
         for (f, t), (n, g, k) in names.items()], columns=list(empty_series().columns))
    texts = pd.DataFrame([(folder, *t) for folder, _, d in files for t in d.texts], columns=list(TEXT_COLUMNS))
    texts = texts.sort_values(["tag", "folder", "step"], kind="stable", ignore_index=True)
    others = pd.DataFrame([(folder, tag, kind, n) for folder, _, d in files for (tag, kind), n in d.others.items()],
                          columns=["folder", "tag", "kind", "count"])
    others = others.groupby(["folder", "tag", "kind"], as_index=False)["count"].sum() if len(others) else others
    return TensorBoardData(metrics=metrics, series=series, hparam_metrics=hparam_metrics,
                           hparams=hparams, texts=texts, others=others, problems=problems, restarts=restarts)


def _sorted(table: pd.DataFrame) -> pd.DataFrame:
    if table.empty:
        return table
    order = np.lexsort((table["wall_time"].to_numpy(), table["step"].to_numpy(), table["metric"].cat.codes.to_numpy()))
    return table.iloc[order].reset_index(drop=True)


def read_event_file(path: Path) -> tuple[pd.DataFrame, list[str]]:
    """The scalar table of one event file on its own (its folder taken as the run)."""
    data = assemble([(".", Path(path).name, scan_event_file(path))])
    return data.metrics, data.problems


def read_event_dir(run_dir: Path, paths: list[Path] | None = None) -> TensorBoardData:
    """Every event file below ``run_dir`` (or the ``paths`` given), series named across files."""
    run_dir = Path(run_dir)
    paths = find_event_files(run_dir) if paths is None else paths
    return assemble([(folder_of(p, run_dir), p.name, scan_event_file(p, [run_dir])) for p in paths])


__all__ = [
    "EventFileData",
    "TensorBoardData",
    "assemble",
    "empty_metrics",
    "find_event_files",
    "folder_of",
    "iter_records",
    "metric_name",
    "name_series",
    "read_event_dir",
    "read_event_file",
    "scan_event_file",
    "sub_run_suffix",
]
