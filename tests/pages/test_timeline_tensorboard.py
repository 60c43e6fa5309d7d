"""AppTest: a run logged with torch's SummaryWriter (add_scalars, add_hparams, add_text) on Timeline and Home."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest
from torch.utils.tensorboard import SummaryWriter

from dashboard.timeline.figure import CURVE_MODE
from dashboard.ui import state

REPO_ROOT = Path(__file__).resolve().parents[2]
N = 40


def train_val(i: int) -> tuple[float, float]:
    """Two series that cross: a merged reading would zigzag between them at every step."""
    return float(np.float32(2.0 - i * 0.04)), float(np.float32(0.5 + i * 0.03))


def write_tb_run(run_dir: Path) -> Path:
    with SummaryWriter(str(run_dir / "runs" / "Dec02_host")) as w:
        for i in range(N):
            train, val = train_val(i)
            w.add_scalars("loss", {"train": train, "val": val}, i)
            if i % 10 == 0:
                w.add_text("samples", f"<b>step {i}</b> a red circle", i)
        w.add_histogram("weights", np.arange(10), 0)
        w.add_hparams({"lr": 0.001, "optimizer": "adamw"}, {"hparam/accuracy": 0.75})
    return run_dir


@pytest.fixture()
def tb_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "runs"
    write_tb_run(root / "tbrun")
    monkeypatch.setenv("VLMLAB_RUNS_ROOT", str(root))
    monkeypatch.setenv("VLMLAB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("VLMLAB_MEMORY_BUDGET", "1GB")
    monkeypatch.chdir(REPO_ROOT)
    return root


def _app(run_dir: Path, page: str | None) -> AppTest:
    at = AppTest.from_file(str(REPO_ROOT / "Home.py"), default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    assert at.session_state[state.RUN_PATH] == str(run_dir.resolve())
    if page:
        at.switch_page(page).run()
        assert not at.exception, at.exception
    return at


def _decode(values) -> list:
    if isinstance(values, dict) and "bdata" in values:  # plotly's typed-array encoding
        import base64

        return np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"]).tolist()
    return list(values)


def test_add_scalars_run_draws_two_separate_exact_curves(tb_root: Path) -> None:
    at = _app(tb_root / "tbrun", "pages/3_Timeline.py")
    metrics = next(m for m in at.multiselect if m.label == "Metrics")
    assert sorted(metrics.value) == ["loss/train", "loss/val"]  # hparam/accuracy is not a curve
    assert "hparam/accuracy" not in metrics.options and not any("hparam" in o for o in metrics.options)
    next(s for s in at.slider if s.label == "Smoothing").set_value(0.0).run()
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    curves = {t["name"]: t for t in spec["data"] if t.get("mode") == CURVE_MODE}
    assert set(curves) == {"loss/train", "loss/val"}
    for name, k in (("loss/train", 0), ("loss/val", 1)):
        assert _decode(curves[name]["x"]) == list(range(N))
        assert _decode(curves[name]["y"]) == [train_val(i)[k] for i in range(N)]
    assert curves["loss/train"]["yaxis"] == curves["loss/val"]["yaxis"]  # one chart: the tag
    titles = [a["text"] for a in spec["layout"]["annotations"]]
    assert titles == ["loss"]


def test_text_samples_viewable_per_step_as_plain_text(tb_root: Path) -> None:
    at = _app(tb_root / "tbrun", "pages/3_Timeline.py")
    assert next(s for s in at.selectbox if s.label == "Text series").value == "samples"
    step = next(s for s in at.select_slider if s.label == "Step")
    assert step.options == ["0", "10", "20", "30"] or list(step.options) == [0, 10, 20, 30]
    step.set_value(10).run()
    texts = [t.value for t in at.text]
    assert "<b>step 10</b> a red circle" in texts  # shown verbatim as text, not rendered HTML
    assert any("weights \\(histogram, 1×\\)" in c.value for c in at.caption)  # tags are run text: escaped


def test_home_shows_hparams_as_configuration(tb_root: Path) -> None:
    at = _app(tb_root / "tbrun", None)
    tables = [d.value for d in at.dataframe]
    config = next(t for t in tables if "key" in t.columns)
    values = dict(zip(config["key"], config["value"], strict=True))
    assert values["lr"] == "0.001" and values["optimizer"] == "adamw"
    results = next(t for t in tables if "hparam/accuracy" in t.columns)
    assert results["hparam/accuracy"].tolist() == [0.75]
