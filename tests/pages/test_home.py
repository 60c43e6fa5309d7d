"""AppTest for the router, the shared sidebar and Home."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dashboard.ui import state

REPO_ROOT = Path(__file__).resolve().parents[2]


def _app() -> AppTest:
    at = AppTest.from_file(str(REPO_ROOT / "Home.py"), default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    return at


def test_home_shows_the_demo_run(app_env: Path, demo_run_dir: Path):
    at = _app()
    assert at.session_state[state.RUN_PATH] == str(demo_run_dir.resolve())
    assert "demo" in at.sidebar.selectbox[0].value
    checkpoints = sorted(demo_run_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    table = at.dataframe[0].value
    assert list(table["checkpoint"]) == [p.name for p in checkpoints]
    assert table["best"].sum() == 1
    # The sidebar defaults to the newest checkpoint.
    assert at.session_state[state.CHECKPOINT_PATH] == str(checkpoints[-1].resolve())
    accuracy = next(m for m in at.metric if m.label == "Last eval accuracy")
    log = json.loads((demo_run_dir / "trainer_state.json").read_text())["log_history"]
    last = [e["eval_accuracy"] for e in log if "eval_accuracy" in e][-1]
    assert accuracy.value == f"{last * 100:.1f}%"  # a percentage, as on every other page


def test_sidebar_choice_carries_to_another_page(app_env: Path, demo_run_dir: Path):
    at = _app()
    first = sorted(demo_run_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))[0]
    at.sidebar.selectbox[-1].set_value(str(first.resolve())).run()
    at.switch_page("pages/3_Timeline.py").run()
    assert not at.exception, at.exception
    assert at.session_state[state.CHECKPOINT_PATH] == str(first.resolve())


def test_empty_root_offers_to_build_the_demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("VLMLAB_RUNS_ROOT", str(tmp_path / "nothing-here"))
    monkeypatch.setenv("VLMLAB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.chdir(Path(__file__).resolve().parents[2])
    at = _app()
    assert any(b.label == "Build the demo run" for b in at.button)
    assert any("No training run found" in i.value for i in at.info)


def test_build_button_reports_the_built_run(tmp_path: Path, tiny_llava_dir: Path, monkeypatch: pytest.MonkeyPatch):
    """The success message read ``report.first_accuracy`` (no such field: the button crashed at the end)."""
    import shutil

    import dashboard.demo.build as build

    def fake_build(out: Path, progress=None, **kwargs) -> build.DemoReport:
        shutil.copytree(tiny_llava_dir, out / "checkpoint-1")
        return build.DemoReport(path=out, n_checkpoints=1, first_eval_accuracy=0.25, last_eval_accuracy=1.0,
                                seconds=1.0)

    monkeypatch.setattr(build, "build_demo_run", fake_build)
    monkeypatch.setenv("VLMLAB_RUNS_ROOT", str(tmp_path / "runs"))
    monkeypatch.setenv("VLMLAB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.chdir(REPO_ROOT)
    (tmp_path / "runs").mkdir()
    at = _app()
    next(b for b in at.button if b.label == "Build the demo run").click().run()
    assert not at.exception, at.exception
    # The build runs in the process-wide job's thread; the page's watcher polls it.
    from dashboard.demo.jobs import demo_build_job

    assert demo_build_job(tmp_path / "runs" / "demo").wait(60).state == "done"
    at.run()  # the watcher's next poll (a timer in the browser)
    assert not at.exception, at.exception
    assert at.session_state[state.RUN_PATH] == str((tmp_path / "runs" / "demo").resolve())
    assert any("Built the demo run: 1 checkpoints" in s.value for s in at.success), [s.value for s in at.success]


def test_malformed_trainer_state_is_reported_not_fatal(tmp_path: Path, tiny_llava_dir: Path,
                                                       monkeypatch: pytest.MonkeyPatch):
    import shutil

    run = tmp_path / "runs" / "broken"
    shutil.copytree(tiny_llava_dir, run / "checkpoint-10")
    (run / "checkpoint-20").mkdir()  # no weights
    (run / "trainer_state.json").write_text("{ not json", encoding="utf-8")
    monkeypatch.setenv("VLMLAB_RUNS_ROOT", str(tmp_path / "runs"))
    monkeypatch.setenv("VLMLAB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.chdir(Path(__file__).resolve().parents[2])
    at = _app()
    warnings = " ".join(w.value for w in at.warning).replace("\\", "")  # run-file text is Markdown-escaped
    assert "trainer_state.json" in warnings
    table = at.dataframe[0].value
    assert list(table["checkpoint"]) == ["checkpoint-10", "checkpoint-20"]
    assert table.loc[table["checkpoint"] == "checkpoint-20", "problems"].item() != ""
    # Only the loadable checkpoint is offered.
    assert at.session_state[state.CHECKPOINT_PATH].endswith("checkpoint-10")


def test_bad_configuration_is_a_clear_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("VLMLAB_DEVICE", "abacus")
    monkeypatch.chdir(Path(__file__).resolve().parents[2])
    at = AppTest.from_file(str(REPO_ROOT / "Home.py"), default_timeout=60).run()
    assert not at.exception
    assert "VLMLAB_DEVICE" in at.error[0].value


def test_run_outside_root_in_state_is_refused(app_env: Path, tmp_path: Path):
    at = _app()
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "trainer_state.json").write_text(json.dumps({"log_history": []}))
    at.session_state[state.RUN_PATH] = str(outside)
    at.run()
    assert not at.exception
    # The sidebar only offers runs under the root, so it snaps back to one of them.
    assert at.session_state[state.RUN_PATH] != str(outside)
