"""Vectorised decoding of the commonest TensorBoard record: one ``simple_value`` scalar.

``SummaryWriter.add_scalar`` (torch, TensorBoard, tensorboardX) writes each point as an Event
of exactly this shape (proto3 wire format)::

    09 <wall_time: 8-byte double>  [10 <step: varint>]  2a <L1>  0a <L2>  0a <T> <tag: T bytes>  15 <value: float32>

with ``L2 = T + 7`` and ``L1 = L2 + 2``. Decoding 10⁶ of them one protobuf at a time costs
seconds of Python attribute access; here every field of every record is pulled out at once with
numpy gathers over the file's bytes. A record is taken only if *every* byte of that layout
checks out and its length is exactly accounted for; anything else (text, tensors, hparams,
several values per event, unknown fields) is left to the protobuf path. Tests check that both
paths give identical (tag, step, wall_time, value).
"""

from __future__ import annotations

import numpy as np

_VARINT_MAX = 10


def _gather(buf: np.ndarray, starts: np.ndarray, width: int) -> np.ndarray:
    """``width`` bytes from each start, as rows (starts past the end are clipped; callers validate).

    Rows are taken from a zero-copy view of every ``width``-byte window of the buffer, so one
    fancy index copies them, with no (n × width) index matrix.
    """
    if len(buf) < width:
        buf = np.concatenate([buf, np.zeros(width - len(buf), np.uint8)])
    windows = np.lib.stride_tricks.sliding_window_view(buf, width)
    return windows[np.clip(starts, 0, len(windows) - 1)]


def _varints(buf: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(value as int64, encoded length) of the varint at each start; length 0 where malformed.

    Worked column by column (byte k of every varint at once) and only as far as the longest
    varint present: steps below 2²¹ take three passes over small arrays, not ten over a matrix.
    """
    n = len(starts)
    values = np.zeros(n, dtype=np.uint64)
    lengths = np.zeros(n, dtype=np.int64)
    open_ = np.ones(n, dtype=bool)  # still inside the varint
    last = len(buf) - 1
    for k in range(_VARINT_MAX):
        if not open_.any():
            break
        byte = buf[np.minimum(starts + k, last)]
        values |= np.where(open_, byte & 0x7F, 0).astype(np.uint64) << np.uint64(7 * k)
        ends_here = open_ & (byte < 0x80)
        lengths[ends_here] = k + 1
        open_ &= ~ends_here
    return values.view(np.int64), lengths


def decode_simple_scalars(data: bytes, starts: np.ndarray, lengths: np.ndarray):
    """Decode every record of the simple-scalar shape.

    Returns ``(taken, steps, walls, tags, values)``: a mask over the records and, for the taken
    ones in record order, their fields (``tags`` as an object array of ``str``).
    """
    buf = np.frombuffer(data, dtype=np.uint8)
    n = len(starts)
    if len(lengths) != n:  # the caller asked for no fast path
        return np.zeros(n, bool), np.array([], np.int64), np.array([]), np.array([], dtype=object), np.array([])
    empty = (np.zeros(n, bool), np.array([], np.int64), np.array([]), np.array([], dtype=object), np.array([]))
    if not n or not len(buf):
        return empty
    starts = starts.astype(np.int64)
    ends = starts + lengths.astype(np.int64)
    ok = (lengths >= 9 + 2 + 9) & (buf[np.minimum(starts, len(buf) - 1)] == 0x09)
    p = starts + 9
    has_step = buf[np.minimum(p, len(buf) - 1)] == 0x10
    steps, vlen = _varints(buf, p + 1)
    ok &= ~has_step | (vlen > 0)
    q = np.where(has_step, p + 1 + vlen, p)
    head = _gather(buf, q, 6).astype(np.int64)  # 2a L1 0a L2 0a T
    t = head[:, 5]
    ok &= (head[:, 0] == 0x2A) & (head[:, 2] == 0x0A) & (head[:, 4] == 0x0A) & (head[:, 1] < 0x80)
    ok &= (head[:, 3] == head[:, 1] - 2) & (head[:, 3] == t + 7) & (q + 2 + head[:, 1] == ends)
    ok &= buf[np.clip(q + 6 + t, 0, len(buf) - 1)] == 0x15
    idx = np.flatnonzero(ok)
    if not len(idx):
        return empty
    walls = _gather(buf, starts[idx] + 1, 8).copy().view("<f8").reshape(-1)
    values = _gather(buf, q[idx] + 7 + t[idx], 4).copy().view("<f4").reshape(-1).astype(np.float64)
    tag_start, tag_len = q[idx] + 6, t[idx]
    tags = np.empty(len(idx), dtype=object)
    good = np.ones(len(idx), dtype=bool)
    for width in np.unique(tag_len).tolist():
        rows = np.flatnonzero(tag_len == width)
        if width == 0:
            tags[rows] = ""
            continue
        block = np.ascontiguousarray(_gather(buf, tag_start[rows], width))
        good[rows] = ~(block == 0).any(axis=1)  # NUL bytes would be lost by numpy's S dtype: slow path
        raw = block.view(f"S{width}").reshape(-1)
        uniq, inverse = np.unique(raw, return_inverse=True)
        try:
            names = np.array([u.decode("utf-8") for u in uniq.tolist()], dtype=object)
        except UnicodeDecodeError:  # protobuf would refuse the record: let it say so
            good[rows] = False
            continue
        tags[rows] = names[inverse.reshape(-1)]
    step_values = np.where(has_step[idx], steps[idx], 0).astype(np.int64)
    if not good.all():
        ok[idx[~good]] = False
        step_values, walls, tags, values = step_values[good], walls[good], tags[good], values[good]
    return ok, step_values, walls, tags, values
