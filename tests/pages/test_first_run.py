"""Starting the app exactly as the README does: repo root, no VLMLAB_* variables, demo in ./runs/demo."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from dashboard.ui import state


def test_home_opens_on_the_demo_run_with_the_default_relative_root(readme_clone: Path):
    at = AppTest.from_file(str(readme_clone / "Home.py"), default_timeout=120).run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]  # was: "run directory not found: …/runs/runs/demo"
    demo = (readme_clone / "runs" / "demo").absolute()
    assert at.session_state[state.RUN_PATH] == str(demo)
    assert Path(at.session_state[state.CHECKPOINT_PATH]).parent == demo
    assert any(s.value == "Run demo" for s in at.subheader)  # the name is run text: escaped, no code span
    assert list(at.dataframe[0].value["checkpoint"]) == sorted(
        (p.name for p in demo.glob("checkpoint-*")), key=lambda n: int(n.split("-")[1]))
    # Every page opens on it too.
    for page in ("pages/1_Inference.py", "pages/2_Comparison.py", "pages/3_Timeline.py", "pages/4_Attention.py"):
        at.switch_page(page).run()
        assert not at.exception, (page, at.exception)
        assert not at.error, (page, [e.value for e in at.error])
