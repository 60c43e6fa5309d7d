"""The pool panel (sidebar/Home): shows what the pool holds and evicts on request."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

SCRIPT = """
from dashboard.ui.pool_panel import render_pool_panel
from dashboard.ui.resources import get_pool
render_pool_panel(get_pool())
"""


def test_panel_lists_models_and_evicts(tiny_checkpoints: list[Path], tmp_path, monkeypatch):
    monkeypatch.setenv("VLMLAB_MEMORY_BUDGET", "123MB")  # a configuration no other test uses: a fresh pool
    monkeypatch.setenv("VLMLAB_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("VLMLAB_RUNS_ROOT", str(tiny_checkpoints[0].parent))  # the app's pool is confined to it
    from dashboard.ui.resources import get_pool

    pool = get_pool()
    assert pool.budget_bytes == 123 * 10**6
    for ckpt in tiny_checkpoints[:2]:
        with pool.acquire(ckpt):
            pass
    at = AppTest.from_string(SCRIPT, default_timeout=60).run()
    assert not at.exception
    text = " ".join(m.value for m in at.markdown)
    # Folder names are run text: shown escaped (markdown_safe), so "-" arrives as "\\-".
    assert "run/checkpoint\\-1" in text and "run/checkpoint\\-2" in text and "llava" in text
    assert "of 123.0 MB budget" in at.get("progress")[0].proto.text
    evict = [b for b in at.button if b.label == "Evict"]
    assert len(evict) == 2
    evict[0].click().run()  # the most recently used one (checkpoint-2) is listed first
    assert [e.path.name for e in pool.entries()] == ["checkpoint-1"]
    at.run()
    assert len([b for b in at.button if b.label == "Evict"]) == 1
