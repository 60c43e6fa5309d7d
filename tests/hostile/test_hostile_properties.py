"""Property-based tests (hypothesis): the log readers, the eval-set parser and the diff renderer
take any input without crashing, and what they return keeps its invariants."""

from __future__ import annotations

import html
import json
import math
import re
from collections import Counter
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dashboard.compare.diff import diff_html
from dashboard.evalset import EvalSetError, parse_eval_set
from dashboard.runs.tensorboard import iter_records
from dashboard.runs.trainer_state import parse_log_history

COLUMNS = {"step", "epoch", "wall_time", "metric", "value", "split", "source"}
numbers = st.one_of(st.integers(-10**12, 10**12), st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
                    st.none(), st.text(max_size=5))
keys = st.sampled_from(["loss", "eval_loss", "eval_accuracy", "grad_norm", "learning_rate", "epoch", "step",
                        "train_runtime", "total_flos", "weird key", ""])
entries = st.one_of(st.dictionaries(keys, numbers, max_size=6), numbers, st.lists(numbers, max_size=3))


@settings(max_examples=300, deadline=None)
@given(st.lists(entries, max_size=40))
def test_log_history_reader_never_crashes_and_keeps_only_finite_values(log_history):
    table, problems = parse_log_history(log_history)
    assert set(table.columns) >= COLUMNS
    assert all(math.isfinite(v) for v in table["value"])
    assert set(table["split"].astype(str)) <= {"train", "eval"}
    assert all(isinstance(p, str) for p in problems)
    # Every clean (int step, finite number) loss of the input is in the table; nothing else is.
    def strict(e):
        return (type(e) is dict and type(e.get("step")) is int and type(e.get("loss")) in (int, float)
                and math.isfinite(e["loss"]))

    def lenient(e):
        step, loss = (e.get("step"), e.get("loss")) if type(e) is dict else (None, None)
        # Fractional steps are truncated (HF writes ints); huge ones must not wrap around int64.
        return (type(step) in (int, float, bool) and math.isfinite(step) and abs(step) < 2**62
                and type(loss) in (int, float, bool) and math.isfinite(loss))  # bools are read as 0/1

    got = table[table["metric"].astype(str) == "loss"]
    got_pairs = Counter(zip(got["step"].astype(int), got["value"].astype(float), strict=True))
    want = Counter((e["step"], float(e["loss"])) for e in log_history if strict(e))
    allowed = Counter((int(e["step"]), float(e["loss"])) for e in log_history if lenient(e))
    assert not want - got_pairs, f"lost: {want - got_pairs}"
    assert not got_pairs - allowed, f"invented: {got_pairs - allowed}"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_event_file_framing_never_crashes_on_garbage(data):
    records, problem = iter_records(data)
    assert sum(len(r) for r in records) <= len(data)
    assert problem is None or isinstance(problem, str)


row_values = st.one_of(st.text(max_size=20), st.integers(), st.none(), st.lists(st.integers(), max_size=2),
                       st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))
rows = st.dictionaries(st.sampled_from(["id", "image", "prompt", "answer", "task", "objects", "target", "question",
                                         "extra"]), row_values, max_size=8)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(rows, max_size=10), st.binary(max_size=200))
def test_eval_set_parser_reports_bad_rows_and_keeps_images_inside_roots(tmp_path, lines, noise):
    root = tmp_path / "root"
    (root / "images").mkdir(parents=True, exist_ok=True)
    data = b"\n".join(json.dumps(r).encode() for r in lines) + b"\n" + noise
    try:
        result = parse_eval_set(data, name="fuzz", path=root / "fuzz.jsonl", base_dir=root, roots=[root], fmt="jsonl")
    except EvalSetError as exc:
        assert str(exc)
        return
    assert all(isinstance(p, str) and p for p in result.problems)
    for example in result.examples:
        assert example.prompt.strip() and isinstance(example.answer, str)
        resolved = Path(example.image_path).resolve()
        assert resolved == root.resolve() or root.resolve() in resolved.parents
    assert len({e.id for e in result.examples}) == len(result.examples)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=300))
def test_eval_set_csv_parser_takes_any_bytes(tmp_path, data):
    try:
        result = parse_eval_set(data, name="fuzz", path=tmp_path / "f.csv", base_dir=tmp_path, roots=[tmp_path],
                                fmt="csv")
    except EvalSetError as exc:
        assert str(exc)
        return
    assert result.examples or result.problems


def _visible_text(markup: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", markup.replace("<br>", "\n")))


@settings(max_examples=300, deadline=None)
@given(st.text(), st.text())
def test_diff_without_deletions_shows_exactly_the_output_words(reference, output):
    markup = diff_html(reference, output, show_deleted=False)
    assert "<script" not in markup.lower() and "<img" not in markup.lower()
    shown = _visible_text(markup)
    if not output.split():
        return
    assert shown.split() == output.split()
