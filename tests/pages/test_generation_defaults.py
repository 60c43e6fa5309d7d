"""One generation-settings default shared by every page (issue 11: it was 32 / 16 / 8)."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from dashboard.generation import GenerationSettings

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_every_page_starts_with_the_same_max_new_tokens(app_env: Path):
    at = AppTest.from_file(str(REPO_ROOT / "Home.py"), default_timeout=120).run()
    shared = GenerationSettings().max_new_tokens
    seen = {}
    for page, key in (("pages/1_Inference.py", "inf.max_new_tokens"), ("pages/2_Comparison.py", "cmp.max_new_tokens"),
                      ("pages/4_Attention.py", "attn.max_new")):
        at.switch_page(page).run()
        assert not at.exception, (page, at.exception)
        seen[page] = at.number_input(key=key).value
    assert set(seen.values()) == {shared}, seen
