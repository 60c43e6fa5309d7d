"""AppTest of the Attention page on the demo run: capture, token pick, overlays, lens, checkpoints, pointing."""

from __future__ import annotations

import json
from pathlib import Path

from streamlit.testing.v1 import AppTest

from dashboard.evalset import load_eval_set

HOME = Path(__file__).resolve().parents[2] / "Home.py"  # from_file resolves relative paths against this file


def _attention_page() -> AppTest:
    at = AppTest.from_file(str(HOME), default_timeout=180)
    at.run()
    assert not at.exception, at.exception
    at.switch_page("pages/4_Attention.py").run()
    assert not at.exception, at.exception
    return at


def test_attention_page_end_to_end(app_env: Path, demo_run_dir: Path) -> None:
    at = _attention_page()
    assert at.title[0].value == "Attention"
    first = load_eval_set(demo_run_dir / "eval" / "demo.jsonl").examples[0]
    at.button(key=f"attn.pick.{first.id}").click().run()
    prompt = next(t for t in at.text_input if t.key.startswith("attn.prompt."))
    assert prompt.value == first.prompt
    at.number_input(key="attn.max_new").set_value(3).run()
    at.button(key="attn.go").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    run = at.session_state["attn.run"]
    assert 1 <= len(run.tokens) <= 3
    # overlay + one small multiple per layer (+ the picked image from the picker)
    n_layers = run.result.n_layers
    assert len(at.get("image")) >= 1 + n_layers
    assert len(at.get("plotly_chart")) >= 2  # share per layer + logit lens
    # choosing another head / layer range re-renders without error
    at.selectbox(key=f"attn.head.{run.result.n_heads}").set_value("max").run()
    assert not at.exception, at.exception
    # downloads carry the numbers of the chosen token
    downloads = at.get("download_button")
    assert len(downloads) == 2
    # across checkpoints: the same token's heatmap for every selected checkpoint
    chosen = at.multiselect(key="attn.ckpts").value
    assert len(chosen) >= 2
    before = len(at.get("image"))
    at.button(key="attn.across_go").click().run()
    assert not at.exception, at.exception
    assert len(at.get("image")) == before + len(chosen)
    # pointing score on a few examples of every checkpoint
    at.number_input(key="attn.point_n").set_value(4).run()
    at.button(key="attn.point_go").click().run()
    assert not at.exception, at.exception
    table = at.dataframe[-1].value
    assert {"pointing", "chance", "accuracy"} <= set(table.columns)
    assert len(table) == len(list(demo_run_dir.glob("checkpoint-*")))
    assert table["n"].eq(4).all()
    json.dumps(run.to_json(0, None, "mean"))


def test_attention_page_without_image_says_so(app_env: Path, demo_run_dir: Path) -> None:
    at = _attention_page()
    at.button(key="attn.go").click().run()
    assert not at.exception, at.exception
    assert any("No image" in e.value for e in at.error)
