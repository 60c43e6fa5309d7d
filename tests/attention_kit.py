"""Attention-page captures under ``AppTest``: the state the map-check and URL-state tests start from."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from dashboard.evalset import load_eval_set

HOME = Path(__file__).resolve().parents[1] / "Home.py"


def capture_first_example(at: AppTest, run_dir: Path, max_new_tokens: int = 1) -> AppTest:
    """On ``at``: open the Attention page and capture the run's first eval example (``max_new_tokens`` tokens)."""
    at.switch_page("pages/4_Attention.py").run()
    first = load_eval_set(run_dir / "eval" / "demo.jsonl").examples[0]
    at.button(key=f"attn.pick.{first.id}").click().run()
    at.number_input(key="attn.max_new").set_value(max_new_tokens).run()
    at.button(key="attn.go").click().run()
    assert not at.exception, at.exception
    return at


def captured_first_example(run_dir: Path) -> AppTest:
    """A fresh app on the Attention page after capturing one answer token (env set by the caller)."""
    at = AppTest.from_file(str(HOME), default_timeout=240)
    at.run()
    return capture_first_example(at, run_dir)
