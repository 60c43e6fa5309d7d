"""AppTest for the Timeline page on a synthetic run (and on the demo run when it can be built)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from dashboard.runs.synthetic import hf_scalars, log_history, write_event_file, write_json, write_run
from dashboard.ui import state
from dashboard.ui.timeline_view import K_MORE

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def synthetic_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "runs"
    run = write_run(root / "alpha", n_steps=300, save_every=100, eval_every=100, best_step=200)
    write_event_file(run / "runs" / "Nov23", hf_scalars(log_history(300, eval_every=100)), start_time=1.7e9)
    write_run(root / "beta", n_steps=200, save_every=100, eval_every=100, seed=2)
    monkeypatch.setenv("VLMLAB_RUNS_ROOT", str(root))
    monkeypatch.setenv("VLMLAB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("VLMLAB_MEMORY_BUDGET", "1GB")
    monkeypatch.chdir(REPO_ROOT)
    return root


def _timeline(run_dir: Path) -> AppTest:
    at = AppTest.from_file(str(REPO_ROOT / "Home.py"), default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    if at.session_state[state.RUN_PATH] != str(run_dir.resolve()):
        at.sidebar.selectbox(key="_w_sidebar_run").set_value(str(run_dir.resolve())).run()
    at.switch_page("pages/3_Timeline.py").run()
    assert not at.exception, at.exception
    return at


def _open_more(at: AppTest) -> None:
    """Open the "Best checkpoint, overlays, …" expander: its widgets are drawn only while it is open."""
    at.session_state[K_MORE] = True
    at.run()
    assert not at.exception, at.exception


def _decode(value):
    """Plotly ≥ 6 sends numeric arrays as ``{"dtype", "bdata"}`` (base64 typed arrays)."""
    if isinstance(value, dict) and "bdata" in value:
        array = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        return array.reshape(value["shape"]) if "shape" in value else array
    return value


def _chart_spec(at: AppTest) -> dict:
    charts = at.get("plotly_chart")
    assert charts, "no chart rendered"
    spec = json.loads(charts[0].proto.spec)
    for trace in spec["data"]:
        for axis in ("x", "y"):
            if axis in trace:
                trace[axis] = list(_decode(trace[axis]))
    return spec


def test_page_draws_curves_markers_and_best(synthetic_root: Path) -> None:
    at = _timeline(synthetic_root / "alpha")
    assert [t.value for t in at.title] == ["Timeline"]
    spec = _chart_spec(at)
    names = [t.get("name") for t in spec["data"]]
    assert "loss" in names and "eval_loss" in names and "checkpoints" in names
    assert any("Best checkpoint" in m.value and "lowest eval\\_loss" in m.value for m in at.markdown)
    # Controls: the x axis offers wall time because the run has TensorBoard events.
    x_radio = next(r for r in at.radio if r.label == "X axis")
    assert list(x_radio.options) == ["Step", "Epoch", "Wall time"]
    x_radio.set_value("wall_time").run()
    assert not at.exception, at.exception
    spec = _chart_spec(at)
    loss = next(t for t in spec["data"] if t.get("name") == "loss")
    assert str(loss["x"][0]).startswith("2023-11-14")  # 1.7e9 s


def test_page_overlay_smoothing_and_log_controls(synthetic_root: Path) -> None:
    at = _timeline(synthetic_root / "alpha")
    assert not any(m.label.startswith("Overlay runs") for m in at.multiselect)  # closed: not drawn, not sent
    _open_more(at)
    next(m for m in at.multiselect if m.label.startswith("Overlay runs")).set_value(
        [str(synthetic_root / "beta")]).run()
    next(t for t in at.toggle if t.label == "Log scale (y)").set_value(True).run()
    next(s for s in at.slider if s.label == "Smoothing").set_value(0.0).run()
    assert not at.exception, at.exception
    spec = _chart_spec(at)
    names = [t.get("name") for t in spec["data"]]
    # Overlaid runs are labelled by the configuration that tells them apart (trainer_state's max_steps).
    assert "beta (max_steps=200) · loss" in names and "alpha (max_steps=300) · loss" in names
    assert not any("smoothed" in str(n) for n in names)
    assert spec["layout"]["yaxis"]["type"] == "log"


def test_selected_checkpoint_offers_open_in(synthetic_root: Path) -> None:
    at = _timeline(synthetic_root / "alpha")
    at.session_state["tl.selected_checkpoint"] = str((synthetic_root / "alpha" / "checkpoint-200").resolve())
    at.run()
    assert not at.exception, at.exception
    labels = [b.label for b in at.button]
    assert {"Open in Inference", "Open in Comparison", "Open in Attention"} <= set(labels)
    assert any("Selected: checkpoint\\-200" in m.value for m in at.markdown)  # markdown_safe escapes "-"


def test_open_in_carries_the_checkpoint_over(synthetic_root: Path) -> None:
    at = _timeline(synthetic_root / "alpha")
    target = str((synthetic_root / "alpha" / "checkpoint-200").resolve())
    at.session_state["tl.selected_checkpoint"] = target
    at.run()
    next(b for b in at.button if b.label == "Open in Comparison").click().run()
    assert not at.exception, at.exception
    assert at.session_state[state.CHECKPOINT_PATH] == target
    assert target in at.session_state[state.COMPARE_CHECKPOINTS]
    assert [t.value for t in at.title] != ["Timeline"]  # switched away


def test_live_run_gains_checkpoints_and_log_lines(synthetic_root: Path) -> None:
    run = synthetic_root / "alpha"
    at = _timeline(run)
    _open_more(at)
    next(t for t in at.toggle if t.label == "Live: auto-refresh").set_value(True).run()
    assert not at.exception, at.exception
    markers = [t for t in _chart_spec(at)["data"] if t.get("name") == "checkpoints"]
    assert len(markers[0]["x"]) == 3
    write_run(run, n_steps=400, save_every=100, eval_every=100)  # training went on: checkpoint-400 appears
    at.run()
    assert not at.exception, at.exception
    spec = _chart_spec(at)
    markers = [t for t in spec["data"] if t.get("name") == "checkpoints"]
    assert len(markers[0]["x"]) == 4
    loss = next(t for t in spec["data"] if t.get("name") == "loss")
    assert max(loss["x"]) == 400


def test_page_reports_malformed_log_and_keeps_running(synthetic_root: Path) -> None:
    run = synthetic_root / "alpha"
    state_data = json.loads((run / "trainer_state.json").read_text())
    state_data["log_history"][3]["loss"] = float("inf")
    write_json(run / "trainer_state.json", state_data)
    (run / "checkpoint-100" / "model.safetensors").unlink()
    at = _timeline(run)
    problems = "\n".join(t.value for t in at.text)
    assert "'loss' has 1 NaN/inf/null value(s) (step 4)" in problems
    assert "checkpoint-100: no model weights" in problems
    assert _chart_spec(at)["data"]


def test_page_on_broken_state_file_shows_message(synthetic_root: Path) -> None:
    run = synthetic_root / "beta"
    (run / "trainer_state.json").write_text("{ nope")
    for ckpt in run.glob("checkpoint-*"):
        (ckpt / "trainer_state.json").write_text("[]")
    at = _timeline(run)
    problems = "\n".join(t.value for t in at.text)
    assert "trainer_state.json: not valid JSON" in problems
    assert any("No metrics found" in w.value for w in at.warning)


def test_page_on_demo_run(app_env: Path, demo_run_dir: Path) -> None:
    at = _timeline(demo_run_dir)
    spec = _chart_spec(at)
    names = [t.get("name") for t in spec["data"]]
    assert any(n == "checkpoints" for n in names)
    # The default view (smoothing 0.6 on the slider) draws every eval series exactly as logged.
    log = json.loads((demo_run_dir / "trainer_state.json").read_text())["log_history"]
    eval_traces = [t for t in spec["data"] if str(t.get("name", "")).startswith("eval_")]
    assert eval_traces and not any("smoothed" in t["name"] for t in eval_traces)
    for trace in eval_traces:
        logged = [(e["step"], e[trace["name"]]) for e in log if trace["name"] in e]
        assert list(zip(trace["x"], trace["y"], strict=True)) == logged
    # Every drawn metric the demo logs twice (trainer_state + TensorBoard) says its source, in one caption.
    notes = [c.value.replace("\\", "") for c in at.caption if "is drawn from" in c.value]
    assert len(notes) == 1
    drawn = [line.split(" is drawn from")[0] for line in notes[0].split("  \n")]
    assert drawn == ["loss", "eval_loss", "eval_accuracy"]


def test_page_names_results_saved_before_content_keys(synthetic_root: Path) -> None:
    """An old-layout result the page cannot check against an eval set of the run is named, not dropped."""
    run = synthetic_root / "alpha"
    rows = [{"id": "0", "prompt": "p", "image": "0.png", "output": "red", "scores": {"exact_match": 1.0}}]
    write_json(run / "eval_results" / "demo" / "checkpoint-100.json", {
        "checkpoint": "checkpoint-100", "step": 100, "eval_set": "demo", "settings": {}, "settings_key": "k",
        "checkpoint_signature": "s", "rows": rows, "total": 1, "saved_at": 1.0, "schema": 1})
    at = _timeline(run)
    warnings = " ".join(w.value for w in at.warning).replace("\\", "")
    assert "demo · checkpoint-100: saved before results were keyed by eval-set content, not comparable" in warnings


def test_closed_expander_keeps_its_values(synthetic_root: Path) -> None:
    """Closed, the expander's widgets are not drawn (issue 35: page-switch latency); what they were set
    to must still shape the chart and be there again when it is reopened."""
    at = _timeline(synthetic_root / "alpha")
    _open_more(at)
    next(m for m in at.multiselect if m.label.startswith("Overlay runs")).set_value(
        [str(synthetic_root / "beta")]).run()
    next(s for s in at.selectbox if s.label == "Best by").set_value("loss").run()
    next(r for r in at.radio if r.label == "Mode").set_value("max").run()
    next(s for s in at.slider if s.label.startswith("Step range")).set_value((50, 250)).run()
    at.session_state[K_MORE] = False
    at.run()
    next(t for t in at.toggle if t.label == "Log scale (y)").set_value(True).run()  # a rerun with it closed
    assert not at.exception, at.exception
    assert not any(m.label.startswith("Overlay runs") for m in at.multiselect)
    names = [t.get("name") for t in _chart_spec(at)["data"]]
    assert "beta (max_steps=200) · loss" in names
    loss = next(t for t in _chart_spec(at)["data"] if t.get("name") == "alpha (max_steps=300) · loss")
    assert min(loss["x"]) >= 50 and max(loss["x"]) <= 250
    assert any("Best checkpoint" in m.value and "highest loss" in m.value for m in at.markdown)
    _open_more(at)
    assert next(m for m in at.multiselect if m.label.startswith("Overlay runs")).value == [str(synthetic_root / "beta")]
    assert next(s for s in at.selectbox if s.label == "Best by").value == "loss"
    assert next(s for s in at.slider if s.label.startswith("Step range")).value == (50, 250)


def test_closed_expander_defaults_equal_the_drawn_widgets(synthetic_root: Path) -> None:
    """Never opened, the chart uses the same defaults the widgets would show: same figure either way."""
    at = _timeline(synthetic_root / "alpha")
    closed = _chart_spec(at)
    best_closed = [m.value for m in at.markdown if "Best checkpoint" in m.value]
    _open_more(at)
    assert _chart_spec(at)["data"] == closed["data"]
    assert [m.value for m in at.markdown if "Best checkpoint" in m.value] == best_closed
