"""AppTest: public mode as the pages show it (banner, capped settings, shared controls hidden)."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dashboard.public import LIMITS

REPO_ROOT = Path(__file__).resolve().parents[2]


def _home(public: bool, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv("VLMLAB_PUBLIC", "1" if public else "0")
    at = AppTest.from_file(str(REPO_ROOT / "Home.py"), default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    return at


def _inference(at: AppTest) -> AppTest:
    at.switch_page("pages/1_Inference.py").run()
    assert not at.exception, at.exception
    return at


def test_public_mode_caps_tokens_shows_banner_and_a_token(app_env, monkeypatch):
    at = _home(True, monkeypatch)
    assert any("Public demo" in i.value for i in at.info), [i.value for i in at.info]
    token = at.query_params["visitor"]
    assert len(token[0] if isinstance(token, list) else token) >= 24
    assert _inference(at).number_input(key="inf.max_new_tokens").proto.max == LIMITS.max_new_tokens


def test_local_mode_is_unchanged(app_env, monkeypatch):
    at = _home(False, monkeypatch)
    assert not any("Public demo" in i.value for i in at.info)
    assert "visitor" not in at.query_params
    assert _inference(at).number_input(key="inf.max_new_tokens").proto.max == 4096
