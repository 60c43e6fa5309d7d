"""A parsed-columns cache for large TensorBoard event files (Parquet in ``VLMLAB_DATA_DIR``).

Decoding 10⁶ event records costs seconds; reading the same columns back from Parquet costs
tens of milliseconds. The cache is keyed by the event file's resolved path, and holds the
file's size and mtime at the time it was written plus how many bytes had been consumed as
whole records:

* same size and mtime -> the cached columns are the answer (no event is decoded);
* the file has grown (TensorBoard writers only append) and its first bytes are unchanged ->
  only the appended records are decoded and added to the cached columns (live refresh);
* anything else (shrunk, rewritten, cache unreadable) -> a full read that replaces the cache.

Event files are always opened through :mod:`dashboard.runs.files` (in ``scan_event_file``);
the cache files are written atomically with :func:`dashboard.runs.files.write_atomic`.
Small files are not cached: they parse in milliseconds.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections import Counter
from pathlib import Path

import numpy as np

from dashboard.runs.files import RunFileError, open_checked, read_bytes, write_atomic
from dashboard.runs.tensorboard import EventFileData, scan_event_file

MIN_CACHED_BYTES = 4_000_000
"""Event files smaller than this are parsed directly (well under 0.1 s)."""
HEAD_BYTES = 4096
CACHE_FOLDER = "event-columns"
FORMAT = 1


def cache_path(data_dir: Path, event_file: Path) -> Path:
    digest = hashlib.sha256(str(Path(event_file).resolve()).encode()).hexdigest()[:32]
    return Path(data_dir) / CACHE_FOLDER / f"{digest}.parquet"


def _head_digest(path: Path, roots: list[Path]) -> str:
    with open_checked(path, roots, "events") as handle:
        return hashlib.sha256(handle.read(HEAD_BYTES)).hexdigest()


def _to_parquet(data: EventFileData, key: dict) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    extras = {"texts": data.texts, "hparams": data.hparams,
              "others": [[t, k, n] for (t, k), n in data.others.items()], "problems": data.problems}
    table = pa.table({
        "step": pa.array(data.steps, pa.int64()),
        "wall_time": pa.array(data.walls, pa.float64()),
        "tag": pa.array(data.tags.astype(str) if len(data.tags) else [], pa.string()).dictionary_encode(),
        "value": pa.array(data.values, pa.float64()),
    })
    table = table.replace_schema_metadata({"vlmlab.key": json.dumps(key), "vlmlab.extras": json.dumps(extras)})
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def _from_parquet(raw: bytes) -> tuple[dict, EventFileData]:
    import pyarrow.parquet as pq

    table = pq.read_table(io.BytesIO(raw))
    meta = table.schema.metadata or {}
    key = json.loads(meta[b"vlmlab.key"])
    extras = json.loads(meta[b"vlmlab.extras"])
    tags = table.column("tag").combine_chunks()
    tag_values = np.asarray(tags.dictionary.to_pylist(), dtype=object)
    codes = tags.indices.to_numpy(zero_copy_only=False)
    data = EventFileData(
        steps=table.column("step").to_numpy(), walls=table.column("wall_time").to_numpy(),
        tags=tag_values[codes] if len(codes) else np.array([], dtype=object),
        values=table.column("value").to_numpy(),
        texts=[tuple(t) for t in extras["texts"]], hparams=extras["hparams"],
        others=Counter({(t, k): n for t, k, n in extras["others"]}), problems=list(extras["problems"]),
        consumed=int(key["consumed"]))
    return key, data


def _merge(old: EventFileData, new: EventFileData) -> EventFileData:
    """``old`` followed by the records appended after it (``new``, read from ``old.consumed``)."""
    framing = [p for p in old.problems if "truncated" in p]  # the old tail was unfinished, now read
    return EventFileData(
        steps=np.concatenate([old.steps, new.steps]), walls=np.concatenate([old.walls, new.walls]),
        tags=np.concatenate([old.tags, new.tags]), values=np.concatenate([old.values, new.values]),
        texts=old.texts + new.texts,
        hparams={**(old.hparams or {}), **(new.hparams or {})} if (old.hparams or new.hparams) else None,
        others=old.others + new.others, problems=[p for p in old.problems if p not in framing] + new.problems,
        consumed=new.consumed, complete=new.complete)


def cached_scan(path: Path, data_dir: Path | None, roots: list[Path] | None = None) -> EventFileData:
    """``scan_event_file`` through the cache (see the module docstring); never raises for a bad cache."""
    path = Path(path)
    roots = roots or [path.parent]
    try:
        st = path.stat()
    except OSError:
        return scan_event_file(path, roots)
    if data_dir is None or st.st_size < MIN_CACHED_BYTES:
        return scan_event_file(path, roots)
    resolved = str(path.resolve())
    target = cache_path(data_dir, path)
    held = None  # in-process reuse is the caller's file memo (dashboard/caching.py); this is the disk layer
    if target.is_file():
        try:
            held = _from_parquet(read_bytes(target, [data_dir], "results"))
        except (RunFileError, OSError, ValueError, KeyError):
            held = None  # unreadable or from another version: rebuilt below
    try:
        head = _head_digest(path, roots)
    except (RunFileError, OSError):
        return scan_event_file(path, roots)
    key = {"format": FORMAT, "path": resolved, "size": st.st_size, "mtime_ns": st.st_mtime_ns, "head": head}
    if held is not None:
        old_key, old = held
        same_file = old_key.get("format") == FORMAT and old_key.get("path") == resolved and old_key.get("head") == head
        if same_file and old_key.get("size") == st.st_size and old_key.get("mtime_ns") == st.st_mtime_ns:
            return old
        if same_file and st.st_size > old.consumed and old.complete:
            data = _merge(old, scan_event_file(path, roots, start=old.consumed))
            return _store(target, data, key, data_dir)
    return _store(target, scan_event_file(path, roots), key, data_dir)


def _store(target: Path, data: EventFileData, key: dict, data_dir: Path) -> EventFileData:
    key = {**key, "consumed": data.consumed}
    if data.complete:
        try:
            write_atomic(target, _to_parquet(data, key), Path(data_dir))
        except (OSError, ValueError):
            pass  # a read-only data dir: the caller's file memo still serves this process
    return data
