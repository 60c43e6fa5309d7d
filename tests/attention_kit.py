"""One Attention-page capture under ``AppTest``: the state the map-check tests (local and public) start from."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from dashboard.evalset import load_eval_set

HOME = Path(__file__).resolve().parents[1] / "Home.py"


def captured_first_example(run_dir: Path) -> AppTest:
    """The Attention page after capturing one answer token of the run's first eval example (env set by the caller)."""
    at = AppTest.from_file(str(HOME), default_timeout=240)
    at.run()
    at.switch_page("pages/4_Attention.py").run()
    first = load_eval_set(run_dir / "eval" / "demo.jsonl").examples[0]
    at.button(key=f"attn.pick.{first.id}").click().run()
    at.number_input(key="attn.max_new").set_value(1).run()
    at.button(key="attn.go").click().run()
    assert not at.exception, at.exception
    return at
