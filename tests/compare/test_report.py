"""Eval report (CIs, per-task, paired tests) and regression finder on hand-made scores."""

from __future__ import annotations

from pathlib import Path

import pytest

from dashboard.compare.regressions import find_regressions
from dashboard.compare.report import (
    categorical_columns,
    default_pairs,
    eval_report,
    paired,
    summarize,
)
from dashboard.compare.results import CheckpointScores
from dashboard.compare.stats import holm, mcnemar_exact
from dashboard.evalset import EvalExample, EvalSet

TASKS = ["colour", "shape"] * 10
FILE_SHA = "6c" * 32


def _evalset() -> EvalSet:
    examples = [EvalExample(id=str(i), image_path=Path(f"/imgs/{i}.png"), prompt=f"q{i}", answer="red",
                            task=TASKS[i], extra={"split": "a" if i < 5 else "b", "uid": f"u{i}"})
                for i in range(20)]
    return EvalSet(name="toy", path=Path("/toy.jsonl"), examples=examples, content_hash=FILE_SHA)


def _scores(name: str, right: set[int], n: int = 20) -> CheckpointScores:
    rows = [{"id": str(i), "output": "red" if i in right else "blue",
             "scores": {"exact_match": float(i in right), "token_f1": 1.0 if i in right else 0.25}}
            for i in range(n)]
    return CheckpointScores(checkpoint=name, step=int(name.split("-")[1]), eval_set="toy", settings={},
                            settings_key="k", checkpoint_signature="s", rows=rows, total=20, eval_set_hash=FILE_SHA)


def test_summarize_overall_and_by_task() -> None:
    ev = _evalset()
    s = summarize(ev, _scores("checkpoint-1", {0, 1, 2, 4, 6}), ["exact_match"])
    em = s.metrics["exact_match"]
    assert em.value == pytest.approx(5 / 20) and em.n == 20 and em.ci95[0] < em.value < em.ci95[1]
    assert set(s.by_group) == {"colour", "shape"}
    colour = s.by_group["colour"]["exact_match"]  # ids 0, 2, 4, 6 right of the ten even ids
    assert colour.value == pytest.approx(0.4) and colour.n == 10
    assert s.by_group["shape"]["exact_match"].value == pytest.approx(0.1)
    by_split = summarize(ev, _scores("checkpoint-1", {0, 1, 2, 4, 6}), ["exact_match"], group_by="split")
    assert by_split.by_group["a"]["exact_match"].value == pytest.approx(4 / 5)


def test_categorical_columns_skip_id_like_columns() -> None:
    assert categorical_columns(_evalset()) == ["task", "split"]


def test_paired_uses_only_common_examples_and_mcnemar() -> None:
    a = _scores("checkpoint-1", {0, 1})
    b = _scores("checkpoint-2", set(range(2, 15)))
    b.rows = b.rows[:12]  # partial: only ids 0..11 are scored by both
    result = paired(a, b, "exact_match")
    assert result.n == 12 and (result.a_only, result.b_only) == (2, 10)
    assert result.p_value == pytest.approx(mcnemar_exact(2, 10))
    cont = paired(a, b, "token_f1")
    assert cont.test == "paired_bootstrap" and (cont.a_only, cont.b_only) == (2, 10)


def test_eval_report_schema() -> None:
    ev = _evalset()
    scores = {"checkpoint-1": _scores("checkpoint-1", {0}), "checkpoint-2": _scores("checkpoint-2", set(range(18))),
              "checkpoint-3": _scores("checkpoint-3", set(range(20)))}
    report = eval_report(ev, scores, settings={"max_new_tokens": 4}, metrics=["exact_match", "token_f1"])
    assert set(report) == {"eval_set", "settings", "checkpoints", "paired"}
    assert report["eval_set"] == {"name": "toy", "file": "toy.jsonl", "sha256": FILE_SHA, "subset": "all", "n": 20}
    first = report["checkpoints"][0]
    assert set(first) == {"checkpoint", "step", "n", "identity", "metrics", "by_task"}
    assert first["identity"]["key"] == scores["checkpoint-1"].identity.key
    assert set(first["metrics"]["exact_match"]) == {"value", "ci95", "method", "se"}
    assert first["metrics"]["exact_match"]["method"] == "clopper_pearson"
    assert first["metrics"]["token_f1"]["method"] == "bootstrap"
    assert set(first["by_task"]["colour"]["exact_match"]) == {"value", "ci95", "method", "se", "n"}
    last = report["checkpoints"][-1]["metrics"]["exact_match"]  # 20 of 20 right: not certainty
    assert last["value"] == 1.0 and last["ci95"][1] == 1.0 and last["ci95"][0] < 0.9
    pairs = {(p["a"], p["b"], p["metric"]): p for p in report["paired"]}
    assert len(pairs) == 6  # (1,2), (2,3), (1,3) × two metrics
    for metric in ("exact_match", "token_f1"):  # Holm within each metric's family of three pairs
        family = [p for p in report["paired"] if p["metric"] == metric]
        assert [p["p_holm"] for p in family] == pytest.approx(holm([p["p_value"] for p in family]))
        assert all(p["family_size"] == 3 and p["p_holm"] >= p["p_value"] for p in family)
        assert all(0 < p["min_detectable_difference"] < 1 for p in family)
    assert pairs[("checkpoint-1", "checkpoint-3", "exact_match")]["b_only"] == 19
    assert pairs[("checkpoint-1", "checkpoint-3", "exact_match")]["p_value"] < 0.001
    assert default_pairs(["a", "b"]) == [("a", "b")]


def test_find_regressions_right_to_wrong_and_back() -> None:
    ev = _evalset()
    early, late = _scores("checkpoint-1", {0, 1, 2, 3}), _scores("checkpoint-2", {2, 3, 4})
    found = find_regressions(ev, early, late)
    assert [c.example.id for c in found.broke] == ["0", "1"]
    assert [c.example.id for c in found.fixed] == ["4"]
    first = found.broke[0]
    assert (first.earlier_output, first.later_output, first.delta) == ("red", "blue", -1.0)
    assert first.as_dict()["later_diff"] == "[-red-] {+blue+}"
    f1 = find_regressions(ev, early, late, metric="token_f1")
    assert [c.example.id for c in f1.broke] == ["0", "1"] and f1.broke[0].delta == pytest.approx(-0.75)


def test_eval_export_carries_cis_groups_paired_and_provenance() -> None:
    import csv
    import io

    from dashboard.compare.export import eval_export, summary_csv_bytes

    ev = _evalset()
    scores = {"checkpoint-1": _scores("checkpoint-1", {0, 1}), "checkpoint-2": _scores("checkpoint-2", set(range(15)))}
    data = eval_export(ev, scores, metrics=["exact_match"], settings={"max_new_tokens": 4}, run="/runs/toy")
    assert data["summary"][0]["exact_match_ci95"][0] <= 0.1 <= data["summary"][0]["exact_match_ci95"][1]
    keys = [s.identity.key for s in scores.values()]
    assert data["provenance"] == {"run": "/runs/toy", "eval_set_sha256": FILE_SHA, "subset": "all",
                                  "checkpoints": [{"name": "checkpoint-1", "step": 1, "result_key": keys[0]},
                                                  {"name": "checkpoint-2", "step": 2, "result_key": keys[1]}],
                                  "settings": {"max_new_tokens": 4}, "group_by": "task"}
    assert {r["group"] for r in data["by_group"]} == {"colour", "shape"}
    assert data["paired"][0]["b_only"] == 13
    assert [c["id"] for c in data["regressions"]["fixed"]][:2] == ["2", "3"]
    rows = list(csv.DictReader(io.StringIO(summary_csv_bytes(data).decode())))
    assert len(rows) == 2 + 4  # two overall rows, two groups × two checkpoints
    overall = rows[0]
    assert (overall["checkpoint"], overall["group"], overall["metric"]) == ("checkpoint-1", "(all)", "exact_match")
    assert float(overall["ci95_low"]) <= float(overall["value"]) <= float(overall["ci95_high"])
    assert overall["eval_set_sha256"] == FILE_SHA and overall["run"] == "/runs/toy" and overall["subset"] == "all"
    assert overall["result_key"] == keys[0]


def test_examples_sharing_an_image_get_clustered_intervals() -> None:
    """Saved rows name their image; three questions per image carry less than three examples' evidence."""
    from dashboard.compare.report import estimate

    rows = [{"id": f"{i}-{q}", "image": f"{i}.png", "scores": {"exact_match": float(i % 3 == 0)}}
            for i in range(30) for q in range(3)]
    clustered = estimate(rows, "exact_match")
    naive = estimate([{k: v for k, v in r.items() if k != "image"} for r in rows], "exact_match")
    assert clustered.clusters == 30 and naive.clusters is None and clustered.value == naive.value
    assert clustered.ci95[1] - clustered.ci95[0] > 1.5 * (naive.ci95[1] - naive.ci95[0])
    assert clustered.se > 1.5 * naive.se
