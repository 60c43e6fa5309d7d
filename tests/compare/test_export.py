"""Export (JSON/CSV), default checkpoint choice and the per-example table/filter."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from PIL import Image

from dashboard.compare.export import csv_safe, eval_export, single_export, to_csv_bytes, to_json_bytes
from dashboard.compare.results import CheckpointScores
from dashboard.compare.runner import SingleOutput
from dashboard.compare.selection import default_checkpoints, merge_selection
from dashboard.compare.tables import (
    FILTER_ALL,
    FILTER_OUTPUTS_DIFFER,
    FILTER_SCORES_DIFFER,
    accuracy_figure,
    example_frame,
    filter_examples,
    summary_frame,
)
from dashboard.evalset import EvalExample, EvalSet
from dashboard.metrics import score

HOSTILE = "=HYPERLINK(\"http://x\") <script>alert(1)</script>"


def _outputs() -> list[SingleOutput]:
    return [SingleOutput(Path("/r/checkpoint-10"), "checkpoint-10", 10, text="the red circle", output_tokens=3,
                         generation_s=0.1, tokens_per_s=30.0),
            SingleOutput(Path("/r/checkpoint-20"), "checkpoint-20", 20, text=HOSTILE, output_tokens=5),
            SingleOutput(Path("/r/checkpoint-30"), "checkpoint-30", 30, error="CheckpointLoadError: no weights")]


def test_single_export_json_and_csv() -> None:
    data = single_export(_outputs(), reference="checkpoint-10", prompt="what ?", image_name="a.png",
                         image_digest="abc", settings={"max_new_tokens": 8})
    parsed = json.loads(to_json_bytes(data))
    assert parsed["kind"] == "single_example" and parsed["settings"] == {"max_new_tokens": 8}
    assert [o["checkpoint"] for o in parsed["outputs"]] == ["checkpoint-10", "checkpoint-20", "checkpoint-30"]
    assert parsed["outputs"][0]["similarity_to_reference"] == 1.0
    assert parsed["outputs"][1]["output"] == HOSTILE  # raw text in data exports; escaping is for HTML
    assert parsed["outputs"][2]["error"].startswith("CheckpointLoadError")
    assert parsed["checkpoints"][0]["step"] == 10
    rows = list(csv.DictReader(io.StringIO(to_csv_bytes(data).decode())))
    assert len(rows) == 3
    assert rows[1]["output"].startswith("'=HYPERLINK")  # formula neutralised
    assert rows[1]["diff_vs_reference"].startswith("[-the red circle-] {+=HYPERLINK")
    assert json.loads(rows[0]["settings"]) == {"max_new_tokens": 8}


def test_csv_safe() -> None:
    assert csv_safe("=1+1") == "'=1+1" and csv_safe("-2") == "'-2" and csv_safe("@x") == "'@x"
    assert csv_safe("red") == "red" and csv_safe(3) == 3


def _eval(tmp_path: Path) -> tuple[EvalSet, dict[str, CheckpointScores]]:
    img = tmp_path / "a.png"
    Image.new("RGB", (8, 8), "red").save(img)
    exs = [EvalExample(id=str(i), image_path=img, prompt="what colour ?", answer=a) for i, a in
           enumerate(["red", "blue", "green"])]
    es = EvalSet(name="demo", path=tmp_path / "demo.jsonl", examples=exs)

    def sc(name: str, step: int, outs: list[str]) -> CheckpointScores:
        rows = [{"id": ex.id, "output": o, "scores": score(o, ex.answer)} for ex, o in zip(exs, outs, strict=True)]
        return CheckpointScores(checkpoint=name, step=step, eval_set="demo", settings={}, settings_key="k",
                                checkpoint_signature="s", rows=rows, total=3)

    return es, {"checkpoint-10": sc("checkpoint-10", 10, ["red", "red", "The green."]),
                "checkpoint-20": sc("checkpoint-20", 20, ["red", "blue", "green"])}


def test_eval_export_and_tables(tmp_path: Path) -> None:
    es, scores = _eval(tmp_path)
    data = eval_export(es, scores, metrics=["exact_match"], settings={"seed": 0}, reference="checkpoint-20")
    assert [s["exact_match"] for s in data["summary"]] == [2 / 3, 1.0]
    assert data["examples"][1]["outputs"]["checkpoint-10"]["diff_text"] == "[-blue-] {+red+}"
    rows = list(csv.DictReader(io.StringIO(to_csv_bytes(data).decode())))
    assert len(rows) == 6 and {r["checkpoint"] for r in rows} == set(scores)

    summary = summary_frame(scores, ["exact_match", "token_f1"])
    assert list(summary["checkpoint"]) == ["checkpoint-10", "checkpoint-20"] and summary["complete"].all()
    fig = accuracy_figure(summary, ["exact_match", "token_f1"])
    assert len(fig.data) == 2 and list(fig.data[0].y) == [2 / 3, 1.0]

    frame = example_frame(es, scores, "exact_match")
    assert frame["image"].str.startswith("data:image/png;base64,").all()
    assert list(filter_examples(frame, FILTER_ALL)["id"]) == ["0", "1", "2"]
    # "The green." vs "green" normalise equal, so only example 1 has differing outputs.
    assert list(filter_examples(frame, FILTER_OUTPUTS_DIFFER)["id"]) == ["1"]
    assert list(filter_examples(frame, FILTER_SCORES_DIFFER)["id"]) == ["1"]


def test_default_checkpoints() -> None:
    names = [f"checkpoint-{i}" for i in (10, 20, 30, 40, 50)]
    assert default_checkpoints(names) == ["checkpoint-10", "checkpoint-50"]
    assert default_checkpoints(names, best="checkpoint-20") == ["checkpoint-10", "checkpoint-20", "checkpoint-50"]
    assert default_checkpoints(names, best="/other/machine/checkpoint-99") == default_checkpoints(names)
    assert default_checkpoints(names[:2]) == names[:2]
    assert default_checkpoints([]) == []
    assert merge_selection(names, ["checkpoint-50", "checkpoint-20"], ["checkpoint-10"]) == ["checkpoint-20",
                                                                                              "checkpoint-50"]
    assert merge_selection(names, ["checkpoint-40"], ["checkpoint-10", "checkpoint-50"]) == [
        "checkpoint-10", "checkpoint-40", "checkpoint-50"]


def test_eval_export_carries_the_pages_view_not_a_fixed_default(tmp_path: Path) -> None:
    """Before: the export always listed regressions first → last on the first metric, whatever the page showed."""
    from dashboard.compare.export import EvalView

    es, scores = _eval(tmp_path)
    view = EvalView(group_by=None, pair=("checkpoint-20", "checkpoint-10"),
                    regression=("checkpoint-20", "checkpoint-10", "token_f1"), example_metric="exact_match",
                    example_filter=FILTER_OUTPUTS_DIFFER)
    data = eval_export(es, scores, metrics=["exact_match", "token_f1"], settings={}, view=view)
    assert [e["id"] for e in data["examples"]] == ["1"]  # the filtered rows the page's table shows
    assert data["view"] == {"group_by": None, "pair": ["checkpoint-20", "checkpoint-10"],
                            "regression": {"earlier": "checkpoint-20", "later": "checkpoint-10", "metric": "token_f1"},
                            "example_metric": "exact_match", "example_filter": FILTER_OUTPUTS_DIFFER,
                            "examples_shown": 1, "examples_total": 3}
    assert [(p["a"], p["b"], p["metric"]) for p in data["shown_pair"]] == [
        ("checkpoint-20", "checkpoint-10", "exact_match"), ("checkpoint-20", "checkpoint-10", "token_f1")]
    reg = data["regressions"]
    assert (reg["earlier"], reg["later"], reg["metric"]) == ("checkpoint-20", "checkpoint-10", "token_f1")
    assert [c["id"] for c in reg["broke"]] == ["1"]  # right at 20, wrong at 10
    rows = list(csv.DictReader(io.StringIO(to_csv_bytes(data).decode())))
    assert {r["id"] for r in rows} == {"1"} and {r["filter"] for r in rows} == {FILTER_OUTPUTS_DIFFER}


def test_accuracy_chart_has_the_intervals_as_error_bars(tmp_path: Path) -> None:
    from dashboard.compare.report import estimate

    _, scores = _eval(tmp_path)
    summary = summary_frame(scores, ["exact_match"])
    bars = accuracy_figure(summary, ["exact_match"]).data[0]
    for (name, s), value, up, down in zip(scores.items(), bars.y, bars.error_y.array, bars.error_y.arrayminus,
                                          strict=True):
        lo, hi = estimate(s.rows, "exact_match").ci95
        assert (value + up, value - down) == pytest.approx((hi, lo)), name
    assert bars.error_y.array[1] == 0.0 and bars.error_y.arrayminus[1] > 0.3  # 3 of 3: up to 100 %, far down
