"""Inference's gallery: collapses to the chosen example; page numbers past the end are clamped."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from dashboard.ui.image_input import GALLERY_PAGE, clamp_page

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_clamp_page() -> None:
    assert [clamp_page(p, 3) for p in (0, 1, 3, 4, 99, -5, "x", None)] == [1, 1, 3, 3, 3, 1, 1, 1]


def _inference() -> AppTest:
    at = AppTest.from_file(str(REPO_ROOT / "Home.py"), default_timeout=120).run()
    at.switch_page("pages/1_Inference.py").run()
    assert not at.exception, at.exception
    return at


def _picks(at: AppTest) -> list[str]:
    return [b.key for b in at.button if b.key and b.key.startswith("inf.pick.")]


def test_gallery_collapses_to_the_chosen_example(app_env: Path) -> None:
    at = _inference()
    picks = _picks(at)
    assert len(picks) == GALLERY_PAGE
    at.button(key=picks[3]).click().run()
    assert _picks(at) == []  # was: all 12 thumbnails stayed open above the prompt and Generate
    assert any(picks[3].removeprefix("inf.pick.") in c.value for c in at.caption)
    at.button(key="inf.change").click().run()
    assert len(_picks(at)) == GALLERY_PAGE


def test_a_page_past_the_end_is_clamped(app_env: Path) -> None:
    at = _inference()
    pages = at.number_input(key="inf.page").max
    at.number_input(key="inf.page").set_value(pages + 40).run()
    assert not at.exception, at.exception
    # Streamlit 1.67 itself resets an out-of-range widget value here; either way a real page is shown.
    assert 1 <= at.number_input(key="inf.page").value <= pages
    assert _picks(at), "an empty gallery for a page that does not exist"
