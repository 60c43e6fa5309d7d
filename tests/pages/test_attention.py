"""AppTest of the Attention page on the demo run: capture, token pick, overlays, lens, checkpoints, pointing."""

from __future__ import annotations

import json
from pathlib import Path

from streamlit.testing.v1 import AppTest

from dashboard.evalset import load_eval_set
from dashboard.ui.attention_token_view import LENS_IMAGE_COLUMNS

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
    image_captions = " ".join(img.caption for im in at.get("image") for img in im.proto.imgs)
    assert "max over heads" in image_captions and "colour bar" in image_captions  # captions say what is drawn
    assert "one colour scale for all layers" in " ".join(c.value for c in at.caption)
    # the lens over image tokens says the order its columns follow and how many it shows (the demo LLaVA:
    # one 10×10 grid, more than the chart's columns)
    at.radio(key="attn.lens_which").set_value("image tokens").run()
    assert not at.exception, at.exception
    rows, cols = run.layout.primary.shape
    shown = min(rows * cols, LENS_IMAGE_COLUMNS)
    head = f"All {rows * cols}" if shown == rows * cols else f"First {shown} of {rows * cols}"
    order = f"{head} image tokens, in prompt order: row-major over the {rows}×{cols} patch grid."
    assert any(c.value.startswith(order) for c in at.caption), [c.value for c in at.caption]
    at.radio(key="attn.lens_which").set_value("generated tokens").run()
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
    table = _pointing_table(at)
    assert {"pointing", "chance", "accuracy", "exact_match"} <= set(table.columns)
    assert len(table) == len(list(demo_run_dir.glob("checkpoint-*")))
    assert table["n"].eq(4).all()
    # pointing split by whether the answer was right: rows per checkpoint and verdict, n adding up to 4
    split = next(d.value for d in at.dataframe if "answer" in d.value.columns)
    assert set(split["answer"]) <= {"right", "wrong"}
    assert split.groupby("step")["n"].sum().eq(4).all()
    assert any(c.value.startswith("Scored on n = 4 examples") for c in at.caption)  # the real n (issue 36)
    split_chart = next(json.loads(c.proto.spec) for c in at.get("plotly_chart")
                       if "answer right" in c.proto.spec or "answer wrong" in c.proto.spec)
    parts = [t for t in split_chart["data"] if str(t.get("name", "")).startswith("answer ")]
    assert parts and all(t["error_y"]["visible"] and all(str(x).startswith("n=") for x in t["text"]) for t in parts)
    # the new views: heads grid (one image per head), spatial logit lens figure
    assert any("top-1 token per patch" in str(c.proto.spec) for c in at.get("plotly_chart"))
    json.dumps(run.to_json(0, None, "mean"))


def _pointing_table(at: AppTest):
    """The per-checkpoint pointing table (the split-by-correctness table below it has an "answer" column)."""
    return next(d.value for d in at.dataframe if "skipped" in d.value.columns)


def test_attention_page_without_image_says_so(app_env: Path, demo_run_dir: Path) -> None:
    at = _attention_page()
    at.button(key="attn.go").click().run()
    assert not at.exception, at.exception
    assert any("No image" in e.value for e in at.error)


def _tiny_run_with_outside_link(tiny_llava_dir: Path, tmp_path: Path) -> Path:
    """runs/run: checkpoint-1 inside the root, checkpoint-2 a symlink to a checkpoint outside it,
    and an eval set of a 64×64 (4,096 px) and an 80×80 (6,400 px) image with object boxes."""
    import shutil

    from PIL import Image

    root = tmp_path / "runs"
    run = root / "run"
    shutil.copytree(tiny_llava_dir, run / "checkpoint-1")
    shutil.copytree(tiny_llava_dir, tmp_path / "outside" / "checkpoint-2")
    (run / "checkpoint-2").symlink_to(tmp_path / "outside" / "checkpoint-2", target_is_directory=True)
    (run / "eval" / "images").mkdir(parents=True)
    rows = []
    for i, side in enumerate((64, 80)):
        Image.new("RGB", (side, side), (220, 20, 20)).save(run / "eval" / "images" / f"{i}.png")
        rows.append({"id": str(i), "image": f"images/{i}.png", "prompt": "what colour is the square ?",
                     "answer": "red", "objects": [{"bbox": [0, 0, 32, 32]}], "target": 0})
    (run / "eval" / "boxes.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return root



def _capture_first_example(root: Path, tmp_path: Path, monkeypatch, max_new_tokens: int) -> AppTest:
    """The Attention page on ``root/run``'s checkpoint-1, after capturing its first gallery example."""
    from dashboard.ui import state

    monkeypatch.setenv("VLMLAB_RUNS_ROOT", str(root))
    monkeypatch.setenv("VLMLAB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("VLMLAB_MEMORY_BUDGET", "1GB")
    monkeypatch.chdir(HOME.parent)
    at = AppTest.from_file(str(HOME.parent / "pages" / "4_Attention.py"), default_timeout=180)
    at.session_state[state.RUN_PATH] = str(root / "run")
    at.session_state[state.CHECKPOINT_PATH] = str(root / "run" / "checkpoint-1")
    at.run()
    at.button(key="attn.pick.0").click().run()
    at.number_input(key="attn.max_new").set_value(max_new_tokens).run()
    at.button(key="attn.go").click().run()
    return at

def test_attention_lists_checkpoints_through_the_run_model(tiny_llava_dir: Path, tmp_path: Path,
                                                           monkeypatch) -> None:
    """A checkpoint symlinked out of the runs root is hidden by the sidebar and must not be offered
    (or loaded) here either; eval-set images obey the configured pixel limit."""

    root = _tiny_run_with_outside_link(tiny_llava_dir, tmp_path)
    monkeypatch.setenv("VLMLAB_MAX_IMAGE_PIXELS", "5000")
    at = _capture_first_example(root, tmp_path, monkeypatch, max_new_tokens=1)
    assert not at.exception, at.exception
    offered = at.multiselect(key="attn.ckpts").options
    assert [Path(p).name for p in offered] == ["checkpoint-1"], offered
    at.number_input(key="attn.point_n").set_value(2).run()
    at.button(key="attn.point_go").click().run()
    assert not at.exception, at.exception
    table = _pointing_table(at)
    assert list(table["name"]) == ["checkpoint-1"]
    assert table["n"].tolist() == [1] and table["skipped"].tolist() == [1]  # the 6,400 px image is over the limit


def test_captures_stop_when_the_session_is_gone(tiny_llava_dir: Path, tmp_path: Path, monkeypatch) -> None:
    """Every capture of the page (one checkpoint, across checkpoints, pointing) gets the page's
    session-gone check: once the tab is gone nothing is captured or stored."""
    import shutil

    from tests.pages.gone_session import GoneSession

    root = _tiny_run_with_outside_link(tiny_llava_dir, tmp_path)
    (root / "run" / "checkpoint-2").unlink()
    shutil.copytree(tiny_llava_dir, root / "run" / "checkpoint-2")
    session = GoneSession(gone=True)
    for view in ("attention_view", "attention_sweep_view"):
        monkeypatch.setattr(f"dashboard.ui.{view}.session_gone_check", session.factory)
    at = _capture_first_example(root, tmp_path, monkeypatch, max_new_tokens=2)
    assert not at.exception, at.exception
    assert session.made == 1 and session.polls >= 1 and "attn.run" not in at.session_state
    session.gone = False  # a capture the user stays for
    at.button(key="attn.go").click().run()
    assert "attn.run" in at.session_state and session.made == 2
    session.gone = True
    polls = session.polls
    at.button(key="attn.across_go").click().run()
    assert not at.exception, at.exception
    assert session.made == 3 and session.polls > polls and "attn.across" not in at.session_state
    polls = session.polls
    at.button(key="attn.point_go").click().run()
    assert not at.exception, at.exception
    assert session.made == 4 and session.polls > polls and "attn.pointing" not in at.session_state
