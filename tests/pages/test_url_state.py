"""The view in the URL: ?run=&ckpt= (+ page choices) written as the sidebar changes, read on arrival."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dashboard.ui import state
from dashboard.ui.url_state import find_run, folder_name
from tests.attention_kit import capture_first_example

REPO_ROOT = Path(__file__).resolve().parents[2]


def _steps(run: Path) -> list[str]:
    return [p.name for p in sorted(run.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))]


def _arrive(params: dict[str, str]) -> AppTest:
    """A fresh browser session opening a copied link."""
    at = AppTest.from_file(str(REPO_ROOT / "Home.py"), default_timeout=120)
    for key, value in params.items():
        at.query_params[key] = value
    return at.run()


def _url(at: AppTest) -> dict[str, str]:
    return {k: (v[0] if isinstance(v, list) else v) for k, v in at.query_params.items()}


def test_folder_names_only() -> None:
    assert folder_name("demo") == "demo"
    for bad in ("", "..", ".", "a/b", "../etc", "/abs", "x" * 500, "a\\b"):
        assert folder_name(bad) is None


def test_find_run_stays_inside_the_roots(demo_runs_root: Path, tmp_path: Path) -> None:
    assert find_run("demo", [demo_runs_root]) == (demo_runs_root / "demo").resolve()
    assert find_run("nope", [demo_runs_root]) is None
    assert find_run("..", [demo_runs_root]) is None
    outside = tmp_path / "outside"
    (outside / "checkpoint-1").mkdir(parents=True)
    link_root = tmp_path / "root"
    link_root.mkdir()
    (link_root / "escape").symlink_to(outside)
    assert find_run("escape", [link_root]) is None


def test_sidebar_choice_is_written_to_the_url(app_env: Path, demo_run_dir: Path) -> None:
    at = _arrive({})
    names = _steps(demo_run_dir)
    assert _url(at) == {"run": "demo", "ckpt": names[-1]}
    at.sidebar.selectbox(key="_w_sidebar_checkpoint").set_value(str((demo_run_dir / names[0]).resolve())).run()
    assert _url(at) == {"run": "demo", "ckpt": names[0]}


def test_a_copied_url_opens_the_same_checkpoint(app_env: Path, demo_run_dir: Path) -> None:
    names = _steps(demo_run_dir)
    at = _arrive({"run": "demo", "ckpt": names[1]})
    assert not at.exception and not at.warning, [w.value for w in at.warning]
    assert at.session_state[state.CHECKPOINT_PATH] == str((demo_run_dir / names[1]).resolve())
    assert _url(at)["ckpt"] == names[1]  # was: back to the newest checkpoint, nothing in the URL


@pytest.mark.parametrize(("params", "message"), [
    ({"run": "no-such-run"}, "not a run under the runs root"),
    ({"run": "../../etc"}, "not a run under the runs root"),
    ({"run": "demo", "ckpt": "checkpoint-999999"}, "not a loadable checkpoint"),
    ({"run": "demo", "ckpt": "../../demo/checkpoint-1"}, "not a loadable checkpoint"),
    ({"ckpt": "checkpoint-1"}, "no run"),
])
def test_bad_url_values_say_so_and_fall_back(app_env: Path, demo_run_dir: Path, params, message) -> None:
    at = _arrive(params)
    assert not at.exception, at.exception
    assert any(message in w.value for w in at.warning), [w.value for w in at.warning]
    assert at.session_state[state.RUN_PATH] == str(demo_run_dir.resolve())
    assert at.session_state[state.CHECKPOINT_PATH] == str((demo_run_dir / _steps(demo_run_dir)[-1]).resolve())


def test_comparison_view_round_trips(app_env: Path, demo_run_dir: Path) -> None:
    names = _steps(demo_run_dir)
    at = _arrive({})
    at.switch_page("pages/2_Comparison.py").run()
    at.multiselect(key="cmp.checkpoints").set_value(names[1:3]).run()
    at.radio(key="cmp.mode").set_value("Eval set").run()
    url = _url(at)
    assert url["cmp"] == ",".join(names[1:3]) and url["mode"] == "eval"
    fresh = _arrive(url)  # the same link in a new browser
    fresh.switch_page("pages/2_Comparison.py").run()
    assert not fresh.exception, fresh.exception
    assert fresh.multiselect(key="cmp.checkpoints").value == names[1:3]
    assert fresh.radio(key="cmp.mode").value == "Eval set"
    bad = _arrive({**url, "cmp": "checkpoint-1,../x"})
    bad.switch_page("pages/2_Comparison.py").run()
    assert any("cmp=" in w.value and "cannot be used" in w.value for w in bad.warning)
    assert len(bad.multiselect(key="cmp.checkpoints").value) >= 2  # the default selection


def test_timeline_chart_controls_round_trip(app_env: Path) -> None:
    at = _arrive({})
    at.switch_page("pages/3_Timeline.py").run()
    toggle = next(t for t in at.toggle if t.label == "Log scale (y)")
    toggle.set_value(True).run()
    next(s for s in at.slider if s.label == "Smoothing").set_value(0.8).run()
    next(r for r in at.radio if r.label == "X axis").set_value("epoch").run()  # the demo logs epochs
    url = _url(at)
    assert url["log"] == "1" and url["smooth"] == "0.8" and url["x"] == "epoch", url
    fresh = _arrive(url).switch_page("pages/3_Timeline.py").run()
    assert not fresh.exception and not fresh.warning, [w.value for w in fresh.warning]
    assert next(t for t in fresh.toggle if t.label == "Log scale (y)").value is True
    assert next(s for s in fresh.slider if s.label == "Smoothing").value == 0.8
    assert next(r for r in fresh.radio if r.label == "X axis").value == "epoch"
    bad = _arrive({**url, "smooth": "inf", "log": "yes"}).switch_page("pages/3_Timeline.py").run()
    assert not bad.exception, bad.exception
    warnings = " ".join(w.value for w in bad.warning)
    assert "smooth=" in warnings and "log=" in warnings, warnings


def test_timeline_metrics_round_trip(app_env: Path) -> None:
    at = _arrive({})
    at.switch_page("pages/3_Timeline.py").run()
    metrics = next(m for m in at.multiselect if m.label == "Metrics")
    metrics.set_value(["loss"]).run()
    url = _url(at)
    assert url["metrics"] == "loss"
    fresh = _arrive(url)
    fresh.switch_page("pages/3_Timeline.py").run()
    assert not fresh.exception, fresh.exception
    assert next(m for m in fresh.multiselect if m.label == "Metrics").value == ["loss"]


def _capture(at: AppTest, demo_run_dir: Path) -> object:
    return capture_first_example(at, demo_run_dir, max_new_tokens=3).session_state["attn.run"]


def test_attention_head_and_layers_round_trip(app_env: Path, demo_run_dir: Path) -> None:
    at = _arrive({})
    run = _capture(at, demo_run_dir)
    at.selectbox(key=f"attn.head.{run.result.n_heads}").set_value(1).run()
    if len(run.tokens) > 1:
        at.segmented_control(key=f"attn.token.{id(run)}").set_value(1).run()
    url = _url(at)
    assert url["head"] == "1" and url["layers"] == f"0-{run.result.n_layers - 1}"
    assert url["ex"] and url["cap"] == "1" and url["n"] == "3"
    # The same link in a new browser: the same example, length and capture, with token and head applied
    # at once (recomputed or from the shared cache), no clicks.
    fresh = _arrive({**url, "layers": "1-1"}).switch_page("pages/4_Attention.py").run()
    assert not fresh.exception, fresh.exception
    again = fresh.session_state["attn.run"]
    assert again.tokens == run.tokens and fresh.number_input(key="attn.max_new").value == 3
    assert fresh.selectbox(key=f"attn.head.{again.result.n_heads}").value == 1
    assert fresh.select_slider(key=f"attn.layers.{again.result.n_layers}").value == (1, 1)
    assert fresh.segmented_control(key=f"attn.token.{id(again)}").value == int(url["token"])
    bad = _arrive({**url, "head": "99", "layers": "5-0"}).switch_page("pages/4_Attention.py").run()
    warnings = " ".join(w.value for w in bad.warning)
    assert "head=" in warnings and "layers=" in warnings
    assert bad.selectbox(key=f"attn.head.{again.result.n_heads}").value == "mean"
