"""TensorBoard logs as PyTorch writes them, with tbparse (0.0.9) as a peer oracle.

The scenarios are tbparse's own torch samples (``tests/test_summary_reader/*_torch_sample.py``):
``add_scalar``, ``add_scalars``, new-style scalars, ``add_hparams``, ``add_text`` and several
runs in one log dir, written with ``torch.utils.tensorboard.SummaryWriter``. Every scalar tbparse
returns must be read here with the same (folder, tag, step, value) — and nothing else, except
where noted: new-style (tensor) scalars, which tbparse's ``.scalars`` does not return.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tbparse import SummaryReader
from torch.utils.tensorboard import SummaryWriter

from dashboard.runs.run import RunData, load_run
from dashboard.runs.tensorboard import name_series, read_event_dir, sub_run_suffix
from dashboard.timeline.series import chart_rows, metric_series, plot_metrics

R, N_STEPS = 5, 100


def _ours(run: RunData) -> set[tuple[str, str, int, float]]:
    """(folder, tag, step, value) of every scalar we read: curves plus hparam results."""
    where = {m: (f, t) for m, f, t in zip(run.series["metric"], run.series["folder"], run.series["tag"], strict=True)}
    rows = {(*where[str(m)], int(s), float(v)) for m, s, v in
            zip(run.metrics["metric"], run.metrics["step"], run.metrics["value"], strict=True)}
    hp = run.hparam_metrics
    if hp is not None:
        rows |= {(f, t, int(s), float(v)) for f, t, s, v in zip(hp["folder"], hp["tag"], hp["step"], hp["value"],
                                                                strict=True)}
    return rows


def _oracle(log_dir: Path) -> set[tuple[str, str, int, float]]:
    df = SummaryReader(str(log_dir), extra_columns={"dir_name"}).scalars
    return {(d or ".", str(t), int(s), float(v)) for d, t, s, v in
            zip(df["dir_name"], df["tag"], df["step"], df["value"], strict=True)}


def _load(log_dir: Path) -> RunData:
    return load_run(log_dir, [log_dir.parent])


def test_add_scalar_matches_tbparse(tmp_path: Path) -> None:
    log_dir = tmp_path / "run"
    with SummaryWriter(str(log_dir)) as w:
        for i in range(N_STEPS):
            w.add_scalar("y=2x", i * 2, i)
            w.add_scalar("y=pow(2, x)", 2 ** (i / 10), i)
            w.add_scalar("sin", np.sin(i / R), i)
    run = _load(log_dir)
    assert _ours(run) == _oracle(log_dir) and len(_oracle(log_dir)) == 3 * N_STEPS
    assert sorted(run.series["metric"]) == ["sin", "y=2x", "y=pow(2, x)"]


def test_add_scalars_are_separate_series_grouped_by_tag(tmp_path: Path) -> None:
    log_dir = tmp_path / "run"
    with SummaryWriter(str(log_dir)) as w:
        for i in range(N_STEPS):
            w.add_scalars("run_14h", {"xsinx": i * np.sin(i / R), "xcosx": i * np.cos(i / R), "tanx": np.tan(i / R)}, i)
    run = _load(log_dir)
    assert _ours(run) == _oracle(log_dir) and len(_oracle(log_dir)) == 3 * N_STEPS
    names = {"run_14h/xsinx", "run_14h/xcosx", "run_14h/tanx"}
    assert set(run.series["metric"]) == names and set(run.series["group"]) == {"run_14h"}
    # Each curve is exactly its own series: never the zigzag of three merged ones.
    for name, func in (("xsinx", lambda i: i * np.sin(i / R)), ("xcosx", lambda i: i * np.cos(i / R))):
        series = metric_series(plot_metrics(run), f"run_14h/{name}")
        assert series.step.tolist() == list(range(N_STEPS))
        assert series.y.tolist() == [float(np.float32(func(i))) for i in range(N_STEPS)]
    assert chart_rows(sorted(names), run.series) == [("run_14h", sorted(names))]


def test_new_style_scalars_ours_shows_more_than_tbparse_scalars(tmp_path: Path) -> None:
    log_dir = tmp_path / "run"
    with SummaryWriter(str(log_dir)) as w:
        for i in range(N_STEPS):
            w.add_scalar("old", i * 0.5, i)
            w.add_scalar("new", i * 0.25, i, new_style=True)
    run = _load(log_dir)
    oracle = _oracle(log_dir)
    # tbparse's .scalars skips new-style scalars (it lists them under .tensors); we read both.
    assert {r[1] for r in oracle} == {"old"}
    tensors = SummaryReader(str(log_dir)).tensors
    new_rows = {(".", "new", int(s), float(v)) for s, v in zip(tensors["step"], tensors["value"], strict=True)}
    assert _ours(run) == oracle | new_rows and len(new_rows) == N_STEPS


def test_hparams_are_configuration_not_curves(tmp_path: Path) -> None:
    log_dir = tmp_path / "run"
    with SummaryWriter(str(log_dir / "run0")) as w:
        for i in range(5):
            w.add_hparams({"lr": 0.1 * i, "bsize": i}, {"hparam/accuracy": 10 * i, "hparam/loss": 10 * i})
        for i in range(3):
            w.add_scalar("train/loss", 1.0 / (i + 1), i)
    run = _load(log_dir)
    assert _ours(run) == _oracle(log_dir)
    assert set(run.series["metric"]) == {"loss"}  # the only training curve
    assert not run.metrics["metric"].astype(str).str.startswith("hparam/").any()
    assert len(run.hparam_metrics) == 10 and run.hparam_metrics["folder"].nunique() == 5
    hp = SummaryReader(str(log_dir), extra_columns={"dir_name"}).hparams
    ours = run.config[run.config["source"].str.startswith("add_hparams")]
    assert sorted(zip(ours["key"], ours["value"], strict=True)) == sorted(
        (str(k), f"{float(v):.6g}") for k, v in zip(hp["tag"], hp["value"], strict=True))


def test_text_summaries_per_step_match_tbparse(tmp_path: Path) -> None:
    log_dir = tmp_path / "run"
    with SummaryWriter(str(log_dir)) as w:
        for i in range(5):
            w.add_text("samples", f"<script>alert({i})</script> answer {i}", i * 10)
            w.add_scalar("eval/loss", 1.0 / (i + 1), i * 10)
        w.add_histogram("weights", np.arange(10), 0)
        w.add_image("input", np.zeros((3, 4, 4)), 0)
    run = _load(log_dir)
    text = SummaryReader(str(log_dir)).text
    assert list(zip(run.texts["tag"], run.texts["step"], run.texts["text"], strict=True)) == list(
        zip(text["tag"], text["step"], text["value"], strict=True))
    assert run.texts["text"].iloc[0] == "<script>alert(0)</script> answer 0"  # kept raw; shown as plain text
    others = {(t, k) for t, k in zip(run.other_summaries["tag"], run.other_summaries["kind"], strict=True)}
    assert others == {("weights", "histogram"), ("input", "image")}
    assert _ours(run) == _oracle(log_dir)


def test_several_runs_in_one_log_dir_never_merge(tmp_path: Path) -> None:
    log_dir = tmp_path / "logs"
    for k in range(3):
        with SummaryWriter(str(log_dir / f"run{k}")) as w:
            for i in range(20):
                w.add_scalar("y", k * 100 + i, i)
    run = _load(log_dir)
    assert _ours(run) == _oracle(log_dir) and len(_oracle(log_dir)) == 60
    assert sorted(run.series["metric"]) == ["y (run0)", "y (run1)", "y (run2)"]
    assert chart_rows(["y (run0)", "y (run1)"], run.series) == [("y", ["y (run0)", "y (run1)"])]


def test_naming_rules() -> None:
    assert sub_run_suffix("runs/x/loss_train", "loss") == "train"
    assert sub_run_suffix("runs/x/data_group_a", "data/group") == "a"
    assert sub_run_suffix(".", "loss") is None and sub_run_suffix("loss_", "loss") is None
    named = name_series([(".", "loss"), (".", "train/loss"), ("loss_val", "loss")])
    assert len({n for n, _, _ in named.values()}) == 3  # 'loss' and 'train/loss' both map to loss: kept apart
    assert named[("loss_val", "loss")] == ("loss/val", "loss", "sub-run")


def test_read_event_dir_equals_load_run(tmp_path: Path) -> None:
    log_dir = tmp_path / "run"
    with SummaryWriter(str(log_dir)) as w:
        for i in range(10):
            w.add_scalars("loss", {"train": i, "val": 2 * i}, i)
    direct = read_event_dir(log_dir)
    run = _load(log_dir)
    assert direct.metrics.equals(run.metrics)


# ------------------------------------------------------------------ fast path vs protobuf reference
def _fields(data) -> list[tuple]:
    return list(zip(data.tags.tolist(), data.steps.tolist(), data.walls.tolist(), data.values.tolist(), strict=True))


def test_vectorised_scalars_equal_the_protobuf_reference(tmp_path: Path) -> None:
    from dashboard.runs.tensorboard import scan_event_file

    log_dir = tmp_path / "run"
    long_tag = "x" * 130  # lengths ≥ 128 need two-byte varints: left to protobuf
    with SummaryWriter(str(log_dir)) as w:
        for i, step in enumerate([0, 1, 127, 128, 300, 2**31, 2**40, -5, 7, 7]):
            w.add_scalar("train/loss", 1.0 / (i + 1), step)
            w.add_scalar("ünïcode/τ", float("nan") if i == 3 else -i * 1e30, step)
            w.add_scalar(long_tag, i, step)
            w.add_scalar("new", i * 0.5, step, new_style=True)
            w.add_text("t", f"sample {i}", step)
    (path,) = list(log_dir.glob("events.out.tfevents.*"))
    fast, slow = scan_event_file(path), scan_event_file(path, fast=False)
    assert len(fast.tags) == 40
    from dashboard.runs.event_fastpath import decode_simple_scalars
    from dashboard.runs.tensorboard import split_records

    raw = path.read_bytes()
    starts, lengths, _, _ = split_records(raw)
    taken = decode_simple_scalars(raw, starts, lengths)[0]
    assert int(taken.sum()) == 20  # loss and the unicode tag (NaN too); long tag, new-style, text via protobuf
    # NaN compares unequal to itself: compare its position, then everything else exactly.
    assert [np.isnan(v) for v in fast.values] == [np.isnan(v) for v in slow.values]
    nan_free = [(t, s, w, v if v == v else "nan") for t, s, w, v in _fields(fast)]
    assert nan_free == [(t, s, w, v if v == v else "nan") for t, s, w, v in _fields(slow)]
    assert fast.texts == slow.texts and fast.problems == slow.problems


def test_fast_path_stops_at_a_corrupt_record_like_the_reference(tmp_path: Path) -> None:
    from dashboard.runs.synthetic import write_event_file
    from dashboard.runs.tensorboard import scan_event_file

    path = write_event_file(tmp_path / "tb", [("train/loss", s, float(s)) for s in range(1, 200)], start_time=0.0)
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 30] = b"\x2a" * 30  # a payload that is not an Event
    path.write_bytes(bytes(data))
    fast, slow = scan_event_file(path), scan_event_file(path, fast=False)
    assert _fields(fast) == _fields(slow) and fast.problems == slow.problems and len(fast.problems) == 1


# ------------------------------------------------------------------ the Parquet column cache
def _big_run(log_dir: Path, steps: range) -> Path:
    with SummaryWriter(str(log_dir), flush_secs=3600) as w:
        for i in steps:
            w.add_scalars("loss", {"train": 1.0 / (i + 1), "val": 2.0 / (i + 1)}, i)
            w.add_scalar("train/lr", i * 1e-4, i)
    return log_dir


def test_column_cache_equals_a_fresh_read_and_appends(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dashboard.runs import column_cache
    from dashboard.runs.tensorboard import scan_event_file

    monkeypatch.setattr(column_cache, "MIN_CACHED_BYTES", 0)
    data_dir = tmp_path / "data"
    path = tmp_path / "events.out.tfevents.1.host"
    src = _big_run(tmp_path / "src", range(500))
    original = next(src.glob("events.out.tfevents.*")).read_bytes()
    half = len(original) // 2
    path.write_bytes(original[:half])  # a live file, caught mid-record
    first = column_cache.cached_scan(path, data_dir)
    assert _fields(first) == _fields(scan_event_file(path))
    assert column_cache.cache_path(data_dir, path).is_file()

    calls: list[int] = []
    real = column_cache.scan_event_file

    def counting(p, roots=None, start=0, fast=True):
        calls.append(start)
        return real(p, roots, start, fast)

    monkeypatch.setattr(column_cache, "scan_event_file", counting)
    warm = column_cache.cached_scan(path, data_dir)
    assert calls == [] and _fields(warm) == _fields(first)  # nothing decoded

    with path.open("ab") as fh:  # the writer appends the rest
        fh.write(original[half:])
    grown = column_cache.cached_scan(path, data_dir)
    assert calls == [first.consumed] and 0 < first.consumed <= half  # only the new tail was decoded
    reference = real(path)
    assert _fields(grown) == _fields(reference) and grown.problems == reference.problems

    path.write_bytes(original[: half // 2])  # rewritten shorter: the cache is rebuilt, not trusted
    rebuilt = column_cache.cached_scan(path, data_dir)
    assert calls[-1] == 0 and _fields(rebuilt) == _fields(real(path))


def test_load_run_uses_the_cache_with_identical_tables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dashboard.runs import column_cache
    from dashboard.runs import run as run_module

    log_dir = _big_run(tmp_path / "runs" / "r", range(300))
    without = _load(log_dir)
    monkeypatch.setattr(column_cache, "MIN_CACHED_BYTES", 0)
    monkeypatch.setenv("VLMLAB_DATA_DIR", str(tmp_path / "data"))
    run_module.parse_event_file.clear()
    cached = _load(log_dir)
    assert list((tmp_path / "data" / column_cache.CACHE_FOLDER).glob("*.parquet"))
    assert cached.metrics.equals(without.metrics) and cached.series.equals(without.series)
