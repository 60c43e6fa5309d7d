"""AppTest: public mode as the pages show it (banner, capped controls, the gate's refusals, no server paths)."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dashboard.admission import GATE
from dashboard.public import LIMITS
from dashboard.ui.visitor import _K_TOKEN

REPO_ROOT = Path(__file__).resolve().parents[2]


def _home(public: bool, monkeypatch: pytest.MonkeyPatch, query: dict[str, str] | None = None) -> AppTest:
    monkeypatch.setenv("VLMLAB_PUBLIC", "1" if public else "0")
    at = AppTest.from_file(str(REPO_ROOT / "Home.py"), default_timeout=240)
    for key, value in (query or {}).items():
        at.query_params[key] = value
    at.run()
    assert not at.exception, at.exception
    return at


def _open(at: AppTest, page: str) -> AppTest:
    at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def _cookie_scripts(at: AppTest) -> list[str]:
    return [h.proto.body for h in at.get("html") if "document.cookie" in h.proto.body]


def test_public_mode_issues_an_identity_in_a_cookie_not_in_the_address(app_env, monkeypatch):
    at = _home(True, monkeypatch, {"visitor": "A" * 30})  # an old-style, client-chosen "identity"
    assert any("Public demo" in i.value for i in at.info), [i.value for i in at.info]
    assert "visitor" not in at.query_params  # dropped, never adopted
    (script,) = _cookie_scripts(at)  # no cookie came with the session: the server's token is written
    token = at.session_state[_K_TOKEN]
    assert token.startswith("v1.") and f"vlmlab_visitor={token};" in script and "A" * 30 not in script
    assert (app_env / "visitor_secret").is_file()


def test_public_controls_offer_only_what_the_gate_allows(app_env, monkeypatch):
    at = _open(_home(True, monkeypatch), "pages/1_Inference.py")
    assert at.number_input(key="inf.max_new_tokens").proto.max == LIMITS.max_new_tokens
    assert at.number_input(key="inf.num_beams").proto.max == LIMITS.max_beams
    shown = next(c.value for c in at.caption if c.value.startswith("Checkpoint"))
    assert shown.replace("\\", "").startswith("Checkpoint: demo/checkpoint-"), shown  # relative to the runs root
    _open(at, "pages/4_Attention.py")
    assert at.number_input(key="attn.max_new").proto.max == LIMITS.max_new_tokens


def test_the_eval_set_mode_offers_a_count_that_fits_and_runs(own_demo_root, monkeypatch):
    at = _open(_home(True, monkeypatch), "pages/2_Comparison.py")
    chosen = at.multiselect(key="cmp.checkpoints").value
    at.radio(key="cmp.mode").set_value("Eval set").run()
    assert not at.exception, at.exception
    count = next(n for n in at.number_input if n.label.startswith("First N examples"))
    assert count.value == count.proto.max == LIMITS.max_sweep_generations // len(chosen)
    at.button(key="cmp.eval.run").click().run()
    assert not at.exception, at.exception
    assert not any("Not run" in w.value for w in at.warning), [w.value for w in at.warning]
    summary = next(d.value for d in at.dataframe if "complete" in d.value.columns)
    assert summary["complete"].all() and GATE.running == 0


def test_local_mode_is_unchanged(app_env, monkeypatch):
    at = _home(False, monkeypatch)
    assert not any("Public demo" in i.value for i in at.info)
    assert "visitor" not in at.query_params and _cookie_scripts(at) == []
    at = _open(at, "pages/1_Inference.py")
    assert at.number_input(key="inf.max_new_tokens").proto.max == 4096
    assert at.number_input(key="inf.num_beams").proto.max == 16


def test_every_generating_action_passes_the_gate(own_demo_root, monkeypatch):
    """With this visitor's one job already running, every page's action is refused with the gate's message.

    On main the Attention page never asked the limits: its capture, across-checkpoints and pointing
    jobs ran beside a visitor's other job.
    """
    from dashboard.evalset import load_eval_set

    first = load_eval_set(own_demo_root / "eval" / "demo.jsonl").examples[0]
    at = _home(True, monkeypatch)
    visitor = at.session_state[_K_TOKEN].split(".")[1]  # v1.<id>.<mac>: the gate knows visitors by id

    def refused() -> bool:
        return any("already have a job running" in w.value for w in at.warning)

    _open(at, "pages/4_Attention.py")
    at.button(key=f"attn.pick.{first.id}").click().run()
    at.button(key="attn.go").click().run()  # a capture to work on (the visitor's slot is free)
    assert not at.exception and at.session_state["attn.run"] is not None
    with GATE.admit(visitor, "test-client"):
        for key in ("attn.go", "attn.across_go", "attn.point_go", "attn.faith_go"):
            at.button(key=key).click().run()
            assert not at.exception, at.exception
            assert refused(), (key, [w.value for w in at.warning])
        _open(at, "pages/1_Inference.py")
        at.button(key=f"inf.pick.{first.id}").click().run()
        at.button(key="inf.generate").click().run()
        assert refused(), [w.value for w in at.warning]
        _open(at, "pages/2_Comparison.py")
        at.radio(key="cmp.mode").set_value("Eval set").run()
        at.button(key="cmp.eval.run").click().run()
        assert refused(), [w.value for w in at.warning]
        assert not any("Stopped." in i.value for i in at.info)  # refused, not "stopped": nothing was saved
    assert GATE.running == 0


def test_visitors_get_no_live_scoring_switch(own_demo_root, monkeypatch):
    """A visitor's switch would start a server-wide scorer outside the gate: not offered in public mode
    (locally the switch is there; ``tests/live/test_live_page.py``)."""
    at = _open(_home(True, monkeypatch), "pages/3_Timeline.py")
    assert not any(t.label == "Live scoring" for t in at.toggle)
    assert any("not offered in this public demo" in c.value for c in at.caption)
