"""AppTest: two images in one prompt on the Attention page; the user picks which image the heatmaps are drawn on."""

from __future__ import annotations

import io
import json
from pathlib import Path

from PIL import Image
from streamlit.testing.v1 import AppTest

from tests.attention import family_checkpoints as fc

HOME = Path(__file__).resolve().parents[2] / "Home.py"


def _png(size: tuple[int, int], colour: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, format="PNG")
    return out.getvalue()


def test_pick_which_image_the_heatmap_is_drawn_on(tmp_path: Path, monkeypatch) -> None:
    from dashboard.ui import state

    root = tmp_path / "runs"
    run = root / "run"
    fc.qwen2_vl(run / "checkpoint-1")
    (run / "eval" / "images").mkdir(parents=True)
    (run / "eval" / "images" / "0.png").write_bytes(_png((200, 100), (220, 20, 20)))
    row = {"id": "0", "image": "images/0.png", "prompt": "what is it ?", "answer": "red"}
    (run / "eval" / "one.jsonl").write_text(json.dumps(row) + "\n")
    monkeypatch.setenv("VLMLAB_RUNS_ROOT", str(root))
    monkeypatch.setenv("VLMLAB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("VLMLAB_MEMORY_BUDGET", "1GB")
    monkeypatch.chdir(HOME.parent)
    at = AppTest.from_file(str(HOME.parent / "pages" / "4_Attention.py"), default_timeout=180)
    at.session_state[state.RUN_PATH] = str(run)
    at.session_state[state.CHECKPOINT_PATH] = str(run / "checkpoint-1")
    at.run()
    at.button(key="attn.pick.0").click().run()
    at.file_uploader(key="attn.more").set_value([("tall.png", _png((100, 230), (20, 20, 220)), "image/png")]).run()
    at.number_input(key="attn.max_new").set_value(2).run()
    at.button(key="attn.go").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    captured = at.session_state["attn.run"]
    assert [im.size for im in captured.images] == [(200, 100), (100, 230)]
    notes = [layout.note.split(" (")[0] for layout in captured.layouts]  # "4×7 merged cells" (captions escape "(")
    assert notes[0] != notes[1]  # the two images have different grids

    def captions() -> str:
        return " ".join(img.caption for im in at.get("image") for img in im.proto.imgs)

    assert notes[0] in captions() and notes[1] not in captions()  # drawn on image 1 by default
    picker = at.get("button_group")[-1]  # "Draw on image" (the segmented control after "Generated token")
    assert "Draw on image" in str(picker.proto)
    picker.set_value(1).run()
    assert not at.exception, at.exception
    assert notes[1] in captions() and notes[0] not in captions()
    assert any("attention to image 2's tokens" in c.value for c in at.caption)
