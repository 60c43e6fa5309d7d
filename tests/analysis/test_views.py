"""AppTest of the "Why?" view and the Timeline's "What moved" heatmap on the demo run (test preset).

Both must draw exactly the numbers the CLI prints (one code path: the report's ``to_dict``).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from dashboard.ui import drift_view, state

REPO_ROOT = Path(__file__).resolve().parents[2]


def _values(array: object) -> np.ndarray:
    """A Plotly 7 array: a list, or ``{"dtype", "bdata"}`` (base64) — shared/README.md."""
    if isinstance(array, dict):
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"])
    return np.asarray(array, dtype=float)


def _checkpoints(run: Path) -> list[Path]:
    return sorted(run.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))


def _why_script(earlier: str, later: str, example_id: str) -> None:
    from pathlib import Path

    from dashboard.evalset import find_eval_sets, load_eval_set
    from dashboard.ui import state
    from dashboard.ui.patching_view import why_button

    run = state.selected_run()
    assert run is not None
    example = load_eval_set(find_eval_sets(Path(run))[0], roots=[run]).by_id()[example_id]
    why_button(earlier, later, example)


def test_why_shows_the_cli_report(app_env: Path, demo_run_dir: Path, capsys: pytest.CaptureFixture) -> None:
    from dashboard.cli import main

    first, last = _checkpoints(demo_run_dir)[0].name, _checkpoints(demo_run_dir)[-1].name
    assert main(["patch", "--run", str(demo_run_dir), "--checkpoints", f"{first},{last}", "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)
    at = AppTest.from_function(_why_script, args=(first, last, cli["example"]), default_timeout=300)
    at.session_state[state.RUN_PATH] = str(demo_run_dir)
    at.run()
    assert not at.exception, at.exception
    assert not at.get("plotly_chart")  # nothing is computed before the click
    (button,) = at.button
    button.click().run()
    assert not at.exception, at.exception
    answers = next(h.value for h in at.html if "first different token" in h.value)
    assert cli["a"]["answer"] in answers and cli["b"]["answer"] in answers
    bars, heatmap = (json.loads(c.proto.spec) for c in at.get("plotly_chart"))
    restored = next(t for t in bars["data"] if t["name"].startswith("restored"))
    assert list(restored["x"]) == [c["component"] for c in cli["components"]]
    np.testing.assert_allclose(_values(restored["y"]), [c["restored"] for c in cli["components"]], atol=1e-6)
    cells = np.array([_values(row) for row in heatmap["data"][0]["z"]])
    expected = {(f"L{r['layer']} {r['site']}", r["positions"]): r["restored"] for r in cli["layers"]}
    for i, name in enumerate(heatmap["data"][0]["y"]):
        for j, positions in enumerate(("image", "text", "all")):
            assert cells[i, j] == pytest.approx(expected[(name, positions)], abs=1e-6)
    assert len(at.get("download_button")) == 1  # its payload: test_patch_export_carries_both_checkpoints_provenance
    at.run()  # a rerun redraws from the session, without the button
    assert len(at.get("plotly_chart")) == 2 and not at.button


def test_patch_export_carries_both_checkpoints_provenance(demo_run_dir: Path) -> None:
    import torch

    from dashboard.analysis.figures import patch_export
    from dashboard.analysis.patching import patch_checkpoints
    from dashboard.evalset import find_eval_sets, load_eval_set
    from dashboard.models.loading import load_checkpoint

    first, last = _checkpoints(demo_run_dir)[0], _checkpoints(demo_run_dir)[-1]
    eval_file = find_eval_sets(demo_run_dir)[0]
    a, b = (load_checkpoint(p, torch.device("cpu"), torch.float32) for p in (first, last))
    report = patch_checkpoints(a, b, load_eval_set(eval_file, roots=[demo_run_dir]).examples, [demo_run_dir])
    data = json.loads(json.dumps(patch_export(report, demo_run_dir, (first, last), eval_file, [demo_run_dir])))
    assert data["report"] == json.loads(json.dumps(report.to_dict()))
    assert data["provenance"]["a"]["checkpoint"] == first.name and data["provenance"]["b"]["checkpoint"] == last.name
    assert data["provenance"]["b"]["step"] == int(last.name.split("-")[1])
    assert len(data["provenance"]["a"]["eval_set"]["sha256"]) == 64


def test_timeline_what_moved_equals_the_cli(app_env: Path, demo_run_dir: Path,
                                            capsys: pytest.CaptureFixture) -> None:
    from dashboard.cli import main

    at = AppTest.from_file(str(REPO_ROOT / "Home.py"), default_timeout=300)
    at.run()
    if at.session_state[state.RUN_PATH] != str(demo_run_dir.resolve()):
        at.sidebar.selectbox(key="_w_sidebar_run").set_value(str(demo_run_dir.resolve())).run()
    at.switch_page("pages/3_Timeline.py").run()
    assert not at.exception, at.exception
    assert not any(b.label.startswith("Compute for") for b in at.button)  # closed: drawn only when opened
    at.session_state[drift_view.K_OPEN] = True
    at.run()
    compute = next(b for b in at.button if b.label.startswith("Compute for"))
    compute.click().run()
    assert not at.exception, at.exception
    figure = next(json.loads(c.proto.spec) for c in at.get("plotly_chart") if "What moved" in c.proto.spec)
    heat = figure["data"][0]
    assert main(["drift", "--run", str(demo_run_dir), "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)
    assert list(heat["x"]) == [c["checkpoint"] for c in cli["checkpoints"]]
    z = np.array([_values(row) for row in heat["z"]])
    for i, module in enumerate(heat["y"]):
        for j, checkpoint in enumerate(cli["checkpoints"]):
            value = {m["module"]: m["relative_change"] for m in checkpoint["modules"]}[module]
            assert z[i, j] == pytest.approx(value, rel=1e-9)
    assert any("Largest change" in c.value for c in at.caption)


def test_comparison_regression_has_a_why_button(app_env: Path, demo_run_dir: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The Comparison page's regression cards carry the button, and a click draws the explanation."""
    import shutil

    root = tmp_path / "runs"
    shutil.copytree(demo_run_dir, root / "demo", ignore=shutil.ignore_patterns("eval_results"))
    monkeypatch.setenv("VLMLAB_RUNS_ROOT", str(root))
    run = root / "demo"
    first, last = _checkpoints(run)[0].name, _checkpoints(run)[-1].name
    at = AppTest.from_file(str(REPO_ROOT / "Home.py"), default_timeout=300)
    at.run()
    at.switch_page("pages/2_Comparison.py").run()
    at.multiselect(key="cmp.checkpoints").set_value([first, last]).run()
    at.radio(key="cmp.mode").set_value("Eval set").run()
    at.button(key="cmp.eval.run").click().run()
    assert not at.exception, at.exception
    why = [b for b in at.button if b.label == "Why?"]
    assert why, "no regression card with a Why? button"
    charts_before = len(at.get("plotly_chart"))
    why[0].click().run()
    assert not at.exception, at.exception
    drawn = len(at.get("plotly_chart")) - charts_before
    explained = any("first different token" in h.value for h in at.html)
    declined = any(i.value.startswith("No explanation:") for i in at.info)  # answers agree at batch 1
    assert (drawn == 2 and explained) or declined
