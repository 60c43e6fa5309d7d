"""AppTest of the Comparison page on the trained demo run (test preset)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dashboard.compare.results import load_saved_scores
from dashboard.compare.stats import format_p
from dashboard.formatting import fmt_fraction
from dashboard.metrics import get_metric

REPO_ROOT = Path(__file__).resolve().parents[2]


def _page() -> AppTest:
    at = AppTest.from_file(str(REPO_ROOT / "Home.py"), default_timeout=240)
    at.run()
    at.switch_page("pages/2_Comparison.py").run()
    assert not at.exception, at.exception
    return at


def _table(at: AppTest, column: str):
    """The dataframe that has ``column`` (AppTest does not expose st.dataframe keys)."""
    return next(d.value for d in at.dataframe if column in d.value.columns)


def _percent(text: str) -> float:
    assert text.endswith("%"), text
    return float(text[:-1])


def _identity_caption(at: AppTest) -> str:
    """The page's result-identity caption as plain text (markdown escapes removed)."""
    return next(c.value for c in at.caption if c.value.startswith("Eval file sha256")).replace("\\", "")


def _steps(run: Path) -> list[str]:
    return [p.name for p in sorted(run.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))]


def test_eval_set_mode_last_beats_first(own_demo_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dashboard.compare import export
    from dashboard.ui import comparison_eval_view

    exported: list[dict] = []

    def capture(*args: object, **kwargs: object) -> dict:
        exported.append(export.eval_export(*args, **kwargs))  # type: ignore[arg-type]
        return exported[-1]

    monkeypatch.setattr(comparison_eval_view, "eval_export", capture)
    at = _page()
    names = _steps(own_demo_root)
    chosen = at.multiselect(key="cmp.checkpoints").value
    assert chosen[0] == names[0] and chosen[-1] == names[-1] and 2 <= len(chosen) <= 4
    at.radio(key="cmp.mode").set_value("Eval set").run()
    assert not at.exception, at.exception
    assert any("press **Run eval set**" in i.value for i in at.info)
    at.button(key="cmp.eval.run").click().run()
    assert not at.exception, at.exception
    summary = _table(at, "complete")
    assert list(summary["checkpoint"]) == chosen
    assert summary["complete"].all()
    first, last = summary.iloc[0], summary.iloc[-1]
    label = get_metric("exact_match").label
    assert _percent(last[label]) > _percent(first[label]), summary
    # One rounding everywhere: the chart's bar labels read exactly like the table's cells.
    chart = json.loads(at.get("plotly_chart")[0].proto.spec)
    bars = next(t for t in chart["data"] if t.get("name") == label)
    assert list(bars["text"]) == list(summary[label])
    # Saved next to the run, readable by the Timeline page, and reused on a re-visit.
    # Results are keyed by eval-set content hash + checkpoint + settings (see compare/results.py).
    (saved_path,) = (own_demo_root / "eval_results").glob(f"demo-*/{names[-1]}-*.json")
    saved = json.loads(saved_path.read_text())
    assert saved["n"] == saved["total"] and fmt_fraction(saved["metrics"]["exact_match"]) == last[label]
    table = load_saved_scores(own_demo_root)
    assert set(table["checkpoint"]) == set(chosen)
    at.button(key="cmp.eval.run").click().run()
    assert any("Generated 0 answers" in c.value for c in at.caption), [c.value for c in at.caption]
    # Disagreement filter leaves only rows where outputs differ.
    at.radio(key="cmp.eval.filter").set_value("Outputs differ").run()
    rows = _table(at, "prompt")
    outputs = rows[[c for c in rows.columns if c.endswith(" output")]]
    assert len(rows) > 0 and all(len(set(r)) > 1 for r in outputs.itertuples(index=False))
    assert len(at.download_button) == 3  # JSON, CSV, summary CSV
    # Exports = screen: the pair, regression pair and metric, example filter and subset on the page.
    at.selectbox(key="cmp.eval.pair_a").set_value(chosen[-2])
    at.selectbox(key="cmp.eval.reg_earlier").set_value(chosen[-1])
    at.selectbox(key="cmp.eval.reg_later").set_value(chosen[0])
    at.selectbox(key="cmp.eval.reg_metric").set_value("token_f1")
    at.radio(key="cmp.eval.filter").set_value("Correctness differs").run()
    assert not at.exception, at.exception
    data = exported[-1]
    shown = _table(at, "prompt")
    assert [e["id"] for e in data["examples"]] == list(shown["id"])
    assert data["view"]["examples_shown"] == len(shown) and data["view"]["example_filter"] == "Correctness differs"
    assert data["view"]["pair"] == [chosen[-2], chosen[-1]]
    assert {(p["a"], p["b"]) for p in data["shown_pair"]} == {(chosen[-2], chosen[-1])}
    assert (data["regressions"]["earlier"], data["regressions"]["later"], data["regressions"]["metric"]) == \
        (chosen[-1], chosen[0], "token_f1")
    assert data["eval_set"]["subset"] == "all" and data["provenance"]["subset"] == "all"


def test_eval_page_shows_the_cli_numbers(own_demo_root: Path, app_env: Path, capsys: pytest.CaptureFixture,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """CIs, per-task rows and the paired test on the page equal `python -m dashboard eval`'s; page, CLI,
    export and Timeline name the same result identity."""
    from dashboard.cli import main
    from dashboard.compare import export
    from dashboard.ui import comparison_eval_view

    exported: list[dict] = []
    monkeypatch.setattr(comparison_eval_view, "eval_export",
                        lambda *a, **k: exported.append(export.eval_export(*a, **k)) or exported[-1])
    at = _page()
    at.radio(key="cmp.mode").set_value("Eval set").run()
    at.button(key="cmp.eval.run").click().run()
    assert not at.exception, at.exception
    chosen = at.multiselect(key="cmp.checkpoints").value
    ci = _table(at, "exact_match ci95 low")
    assert list(ci["checkpoint"]) == chosen
    assert main(["eval", "--run", str(own_demo_root), "--checkpoints", ",".join(chosen), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    # One identity: the CLI's defaults are the page's, so it finds the page's results and generates nothing.
    assert report["work"]["generated"] == 0, report["work"]
    caption = _identity_caption(at)
    assert f"sha256 {report['eval_set']['sha256'][:12]} · subset all" in caption
    for ck in report["checkpoints"]:
        assert f"{ck['checkpoint']} {ck['identity']['key'][:12]}" in caption
    cli_keys = {ck["checkpoint"]: ck["identity"]["key"] for ck in report["checkpoints"]}
    assert {c["name"]: c["result_key"] for c in exported[-1]["provenance"]["checkpoints"]} == cli_keys
    assert exported[-1]["eval_set"]["sha256"] == report["eval_set"]["sha256"]
    timeline = load_saved_scores(own_demo_root, app_env)
    assert dict(zip(timeline["checkpoint"], timeline["result_key"], strict=True)) == cli_keys
    em_line = timeline[timeline["metric"] == "exact_match"].set_index("checkpoint")
    for ck in report["checkpoints"]:  # the Timeline's point and band are the CLI's value and interval
        em = ck["metrics"]["exact_match"]
        assert em_line.loc[ck["checkpoint"], "value"] == pytest.approx(em["value"])
        assert [em_line.loc[ck["checkpoint"], "ci95_low"], em_line.loc[ck["checkpoint"], "ci95_high"]] == \
            pytest.approx(em["ci95"])
    for (_, row), ck in zip(ci.iterrows(), report["checkpoints"], strict=True):
        em = ck["metrics"]["exact_match"]  # one format for every number of the CI table: the CLI's, formatted
        assert row["n"] == ck["n"] and row["exact_match"] == fmt_fraction(em["value"])
        assert [row["exact_match ci95 low"], row["exact_match ci95 high"]] == [fmt_fraction(x) for x in em["ci95"]]
        assert all(_percent(row[c]) == round(_percent(row[c]), 1) for c in ("exact_match", "exact_match ci95 low"))
    last = report["checkpoints"][-1]["by_task"]
    if len(last) == 1:  # the demo asks one task: a per-task table would repeat the overall one
        assert not any("group" in d.value.columns for d in at.dataframe)
        assert any("no per-task table" in c.value for c in at.caption)
    else:
        by_task = _table(at, "group")
        got = by_task[by_task["checkpoint"] == chosen[-1]].set_index("group")
        assert set(got.index) == set(last)
        for task, values in last.items():
            assert got.loc[task, "exact_match"] == fmt_fraction(values["exact_match"]["value"])
            assert got.loc[task, "n"] == values["exact_match"]["n"]
    paired_rows = _table(at, "verdict")
    page_em = paired_rows[paired_rows["metric"] == "Exact match"].iloc[0]
    (cli_em,) = [p for p in report["paired"] if p["metric"] == "exact_match"
                 and (p["a"], p["b"]) == (chosen[0], chosen[-1])]
    assert (page_em["only A better"], page_em["only B better"]) == (cli_em["a_only"], cli_em["b_only"])
    assert page_em["p-value"] == format_p(cli_em["p_value"])
    assert page_em["min. detectable difference"] == fmt_fraction(cli_em["min_detectable_difference"])
    if len(chosen) > 2:  # several pairs: Holm-adjusted, the CLI's family
        holm_column = next(c for c in paired_rows.columns if c.startswith("p (Holm"))
        assert page_em[holm_column] == format_p(cli_em["p_holm"])
    assert any(c.value.startswith(f"With {cli_em['n']} examples, differences under ") for c in at.caption)
    # Error bars on the accuracy chart: the CI table's intervals.
    chart = json.loads(at.get("plotly_chart")[0].proto.spec)
    bars = next(t for t in chart["data"] if t.get("name") == get_metric("exact_match").label)
    assert bars["error_y"]["visible"] and bars["error_y"]["symmetric"] is False
    assert any("Regressions" in h.value for h in at.subheader)
    assert any(" broke, " in c.value and " fixed from " in c.value for c in at.caption)


def test_cli_subset_results_are_reused_by_the_page(own_demo_root: Path, app_env: Path,
                                                    capsys: pytest.CaptureFixture) -> None:
    """``eval --limit 5`` first; the page's *First N examples* = 5 is the same result (same keys, nothing
    generated), and the whole set on the page only generates the rows the CLI did not."""
    from dashboard.cli import main

    at = _page()
    chosen = at.multiselect(key="cmp.checkpoints").value
    assert main(["eval", "--run", str(own_demo_root), "--checkpoints", ",".join(chosen), "--limit", "5",
                 "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["work"]["generated"] == 5 * len(chosen)
    at.radio(key="cmp.mode").set_value("Eval set").run()
    at.number_input(key="cmp.eval.limit").set_value(5).run()
    assert not at.exception, at.exception
    caption = _identity_caption(at)
    assert "subset first-5 (n = 5)" in caption
    for ck in report["checkpoints"]:
        assert f"{ck['checkpoint']} {ck['identity']['key'][:12]}" in caption
    ci = _table(at, "exact_match ci95 low")
    assert list(ci["n"]) == [5] * len(chosen)
    at.number_input(key="cmp.eval.limit").set_value(1).run()  # one example: one task, no per-task table
    assert not any("group" in d.value.columns for d in at.dataframe)
    assert any("no per-task table" in c.value for c in at.caption)
    at.number_input(key="cmp.eval.limit").set_value(5).run()
    at.button(key="cmp.eval.run").click().run()
    assert any("Generated 0 answers" in c.value for c in at.caption), [c.value for c in at.caption]
    at.number_input(key="cmp.eval.limit").set_value(0).run()
    at.button(key="cmp.eval.run").click().run()
    assert not at.exception, at.exception
    total = len((own_demo_root / "eval" / "demo.jsonl").read_text().splitlines())
    expected = f"Generated {(total - 5) * len(chosen)} answers (reused {5 * len(chosen)} saved)"
    # captions show run-derived text escaped (``\\(``); the numbers are what is compared
    assert any(expected in c.value.replace("\\", "") for c in at.caption), [c.value for c in at.caption]


def test_single_example_mode_with_gallery_and_cache(own_demo_root: Path) -> None:
    at = _page()
    first_example = json.loads((own_demo_root / "eval" / "demo.jsonl").read_text().splitlines()[0])
    at.button(key=f"cmp.img.pick.{first_example['id']}").click().run()
    assert at.text_area(key="cmp.prompt").value == first_example["prompt"]
    at.button(key="cmp.run_single").click().run()
    assert not at.exception, at.exception
    assert at.button(key="cmp.run_single").label == "All outputs cached"
    blocks = [h.value for h in at.html if h.value.startswith('<div class="vlm-diff">')]
    assert len(blocks) == len(at.multiselect(key="cmp.checkpoints").value)
    # Changing the reference re-renders from the cache without running the models.
    names = at.selectbox(key="cmp.reference").options
    at.selectbox(key="cmp.reference").set_value(names[0]).run()
    assert not at.exception, at.exception
    assert at.button(key="cmp.run_single").label == "All outputs cached"


@pytest.fixture()
def tiny_two_checkpoints(tiny_llava_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """runs/run with two tiny checkpoints and a 2-row eval set; the app pointed at it (no Ray)."""
    from PIL import Image

    run = tmp_path / "runs" / "run"
    for name in ("checkpoint-1", "checkpoint-2"):
        shutil.copytree(tiny_llava_dir, run / name)
    (run / "eval" / "images").mkdir(parents=True)
    rows = []
    for i, colour in enumerate(("red", "blue")):
        Image.new("RGB", (64, 64), colour).save(run / "eval" / "images" / f"{i}.png")
        rows.append(json.dumps({"id": str(i), "image": f"images/{i}.png", "prompt": "what colour ?",
                                "answer": colour}))
    (run / "eval" / "tiny.jsonl").write_text("\n".join(rows) + "\n")
    monkeypatch.setenv("VLMLAB_RUNS_ROOT", str(run.parent))
    monkeypatch.setenv("VLMLAB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("VLMLAB_MEMORY_BUDGET", "1GB")
    monkeypatch.delenv("VLMLAB_RAY_ADDRESS", raising=False)
    monkeypatch.chdir(REPO_ROOT)
    return run


def _tiny_page(run: Path) -> AppTest:
    from dashboard.ui import state

    at = AppTest.from_file(str(REPO_ROOT / "pages" / "2_Comparison.py"), default_timeout=120)
    at.session_state[state.RUN_PATH] = str(run)
    at.session_state[state.CHECKPOINT_PATH] = str(run / "checkpoint-2")
    at.run()
    assert not at.exception, at.exception
    return at


def test_single_example_generation_stops_when_the_session_is_gone(tiny_two_checkpoints: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.pages.gone_session import GoneSession

    session = GoneSession(gone=True)
    monkeypatch.setattr("dashboard.ui.comparison_single_view.session_gone_check", session.factory)
    at = _tiny_page(tiny_two_checkpoints)
    at.button(key="cmp.img.pick.0").click().run()
    at.button(key="cmp.run_single").click().run()
    assert not at.exception, at.exception
    assert session.made == 1 and session.polls >= 1  # the page handed its check to the generation
    assert at.session_state["cmp.cache"] == {}  # and nothing was generated for a closed tab
    assert at.button(key="cmp.run_single").label == "Run 2 checkpoint(s)"


def test_eval_set_run_stops_when_the_session_is_gone(tiny_two_checkpoints: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.pages.gone_session import GoneSession

    session = GoneSession(gone=True)
    monkeypatch.setattr("dashboard.ui.comparison_eval_view.session_gone_check", session.factory)
    at = _tiny_page(tiny_two_checkpoints)
    at.radio(key="cmp.mode").set_value("Eval set").run()
    at.button(key="cmp.eval.run").click().run()
    assert not at.exception, at.exception
    assert session.made == 1 and session.polls >= 1
    assert at.session_state["cmp.eval.report"]["stopped"] and at.session_state["cmp.eval.report"]["computed"] == 0
    assert not list((tiny_two_checkpoints / "eval_results").rglob("*.json"))
