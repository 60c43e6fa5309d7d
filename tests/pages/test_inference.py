"""AppTest for the Inference page: generate, stream stats, history persistence, bad inputs.

Most tests run the page file directly with the sidebar's selection put into session_state
(fast, and independent of the router); one test goes through Home.py on the demo run.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from dashboard.ui import state

REPO = Path(__file__).resolve().parents[2]
PAGE = str(REPO / "pages" / "1_Inference.py")
TIMEOUT = 120


def png(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def mini_root(tiny_llava_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """runs root with ``run/checkpoint-1`` (tiny LLaVA) and a 3-example eval set."""
    root = tmp_path_factory.mktemp("inference-runs")
    run = root / "run"
    shutil.copytree(tiny_llava_dir, run / "checkpoint-1")
    (run / "eval" / "images").mkdir(parents=True)
    rows = []
    for i, (colour, rgb) in enumerate([("red", (220, 20, 20)), ("green", (20, 200, 20)), ("blue", (20, 20, 220))]):
        Image.new("RGB", (64, 64), rgb).save(run / "eval" / "images" / f"{i:05d}.png")
        rows.append({"id": f"{i:05d}", "image": f"images/{i:05d}.png", "prompt": "what colour is the square ?",
                     "answer": colour, "task": "colour"})
    (run / "eval" / "mini.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return root


@pytest.fixture()
def env(mini_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    data = tmp_path / "data"
    monkeypatch.setenv("VLMLAB_RUNS_ROOT", str(mini_root))
    monkeypatch.setenv("VLMLAB_DATA_DIR", str(data))
    monkeypatch.setenv("VLMLAB_MEMORY_BUDGET", "1GB")
    monkeypatch.chdir(REPO)
    return data


def page(root: Path, checkpoint: Path | None = None) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT)
    at.session_state[state.RUN_PATH] = str(root / "run")
    at.session_state[state.CHECKPOINT_PATH] = str(checkpoint or root / "run" / "checkpoint-1")
    return at.run()


def errors(at: AppTest) -> str:
    assert not at.exception, [e.value for e in at.exception]
    return " | ".join(e.value for e in at.error).replace("\\", "")  # messages are Markdown-escaped


def use_upload(at: AppTest) -> AppTest:
    at.segmented_control(key="inf.source").set_value("Upload").run()
    return at


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_generate_from_example_then_history_survives_a_new_session(env, mini_root):
    at = page(mini_root)
    assert errors(at) == ""
    at.button(key="inf.pick.00001").click().run()
    assert at.text_area(key="inf.prompt").value == "what colour is the square ?"
    at.button(key="inf.generate").click().run()
    assert errors(at) == ""
    stats = metrics(at)
    assert set(stats) == {"Latency", "Preprocessing", "Time to first token", "Decode", "Input tokens", "Output tokens"}
    assert int(stats["Input tokens"]) > 64  # 64 image tokens + the templated prompt
    assert any(m.value.startswith("**Answer**") for m in at.markdown)
    assert len(at.session_state["inf.session_history"]) == 1
    assert (env / "history.sqlite").is_file()

    fresh = page(mini_root)  # a new browser session (same process, same data dir)
    fresh.segmented_control(key="inf.mode").set_value("History").run()
    assert errors(fresh) == ""
    table = fresh.dataframe[0].value
    assert len(table) == 1 and table.iloc[0]["prompt"] == "what colour is the square ?"
    assert table.iloc[0]["checkpoint"] == "checkpoint-1"
    assert [b.label for b in fresh.get("download_button")] == ["Export CSV", "Export JSON"]


def test_history_rerun_and_delete(env, mini_root):
    at = page(mini_root)
    at.button(key="inf.pick.00002").click().run()
    at.text_area(key="inf.prompt").input("what shape is the square ?")
    at.number_input(key="inf.max_new_tokens").set_value(3)
    at.button(key="inf.generate").click().run()
    assert errors(at) == ""
    at.segmented_control(key="inf.mode").set_value("History").run()
    at.button(key="inf.hist_rerun").click().run()
    assert errors(at) == ""
    assert at.segmented_control(key="inf.mode").value == "Single"
    assert at.text_area(key="inf.prompt").value == "what shape is the square ?"
    assert at.number_input(key="inf.max_new_tokens").value == 3
    assert at.button(key="inf.clear_rerun")  # the stored image is in the form
    at.button(key="inf.generate").click().run()
    assert errors(at) == ""
    assert int(metrics(at)["Output tokens"]) <= 3
    at.segmented_control(key="inf.mode").set_value("History").run()
    assert len(at.dataframe[0].value) == 2
    at.button(key="inf.hist_delete").click().run()
    assert len(at.dataframe[0].value) == 2  # asks first
    at.button(key="inf.hist_confirm").click().run()
    assert len(at.dataframe[0].value) == 1


def test_upload_unusual_modes_generate(env, mini_root):
    rgba = Image.new("RGBA", (30, 20), (0, 0, 255, 128))
    cmyk = Image.new("CMYK", (30, 20), (0, 255, 255, 0))
    sixteen = Image.fromarray(np.arange(600, dtype=np.uint16).reshape(20, 30) * 100)
    at = use_upload(page(mini_root))
    for name, data in [("a.png", png(rgba)), ("c.jpg", png(cmyk, "JPEG")), ("s.png", png(sixteen))]:
        at.file_uploader(key="inf.upload").set_value((name, data, "image/png")).run()
        at.text_area(key="inf.prompt").input("what colour is the square ?")
        at.button(key="inf.generate").click().run()
        assert errors(at) == "", name
        assert metrics(at)["Output tokens"]


@pytest.mark.parametrize(("name", "data", "message"), [
    ("notes.txt", b"just some text, not a picture", "not an image"),
    ("broken.png", png(Image.effect_noise((64, 64), 40).convert("RGB"))[:300], "corrupt or truncated"),
    ("empty.png", b"", "empty"),
])
def test_bad_uploads_show_a_message(env, mini_root, name, data, message):
    at = use_upload(page(mini_root))
    at.file_uploader(key="inf.upload").set_value((name, data, "application/octet-stream")).run()
    assert message in errors(at)
    at.text_area(key="inf.prompt").input("what colour ?")
    at.button(key="inf.generate").click().run()
    assert "No image" in errors(at)  # still alive, and says what is missing


def test_giant_image_is_refused(env, mini_root, monkeypatch):
    monkeypatch.setenv("VLMLAB_MAX_IMAGE_PIXELS", "10000")
    at = use_upload(page(mini_root))
    at.file_uploader(key="inf.upload").set_value(("big.png", png(Image.new("L", (200, 200))), "image/png")).run()
    assert "over the limit" in errors(at)


def test_no_image_and_empty_prompt(env, mini_root):
    at = use_upload(page(mini_root))
    at.text_area(key="inf.prompt").input("what colour ?")
    at.button(key="inf.generate").click().run()
    assert "No image" in errors(at)
    at.file_uploader(key="inf.upload").set_value(("ok.png", png(Image.new("RGB", (8, 8))), "image/png"))
    at.text_area(key="inf.prompt").input("   ")
    at.button(key="inf.generate").click().run()
    assert "prompt is empty" in errors(at)


def test_missing_and_corrupt_checkpoints(env, mini_root, tmp_path):
    broken = mini_root / "run" / "checkpoint-2"
    shutil.copytree(mini_root / "run" / "checkpoint-1", broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    for checkpoint, message in [(broken, "model.safetensors is truncated/corrupt"),
                                (mini_root / "run" / "checkpoint-404", "does not exist"),
                                (tmp_path, "outside")]:
        at = page(mini_root, checkpoint)
        if "outside" in message:
            assert "refused" in errors(at)
            continue
        at.button(key="inf.pick.00000").click().run()
        at.button(key="inf.generate").click().run()
        assert message in errors(at), checkpoint
    shutil.rmtree(broken)


def test_out_of_memory_is_reported_and_the_pool_recovers(env, mini_root, monkeypatch):
    import torch
    from transformers import LlavaForConditionalGeneration

    def oom(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 80.00 GiB")

    at = page(mini_root)
    at.button(key="inf.pick.00000").click().run()
    with monkeypatch.context() as patch:
        patch.setattr(LlavaForConditionalGeneration, "generate", oom)
        at.button(key="inf.generate").click().run()
        assert "out of memory while generating" in errors(at)
        assert "Unused models were evicted" in errors(at)
    at.button(key="inf.generate").click().run()
    assert errors(at) == ""
    assert metrics(at)["Output tokens"]


def test_batch_mode_table_and_exports(env, mini_root):
    at = page(mini_root)
    at.segmented_control(key="inf.mode").set_value("Batch").run()
    at.number_input(key="inf.batch.bcount").set_value(3)
    at.number_input(key="inf.batch.max_new_tokens").set_value(2)
    at.button(key="inf.batch_run").click().run()
    assert errors(at) == ""
    table = at.dataframe[0].value
    assert len(table) == 3
    assert {"image", "prompt", "output", "reference", "correct", "exact_match", "per_example_s", "batch_size",
            "tokens_per_s", "prompt_tokens", "output_tokens"} <= set(table.columns)
    assert set(table["correct"]) <= {"✓", "✗"}
    right = int((table["correct"] == "✓").sum())
    assert any(m.value.startswith(f"**{right} / 3 correct") for m in at.markdown), [m.value for m in at.markdown]
    saved = at.session_state["inf.batch_results"]
    assert saved["provenance"]["checkpoint"].startswith("checkpoint-") and saved["provenance"]["eval_set"]["sha256"]
    assert [b.label for b in at.get("download_button")] == ["Download CSV", "Download JSON"]
    at.segmented_control(key="inf.mode").set_value("History").run()
    assert len(at.dataframe[0].value) == 3


@pytest.fixture()
def decorated_root(tiny_llava_dir: Path, tmp_path: Path) -> Path:
    """One example whose reference is "The RED." — the same answer as "red" for every metric."""
    run = tmp_path / "runs" / "run"
    shutil.copytree(tiny_llava_dir, run / "checkpoint-1")
    (run / "eval" / "images").mkdir(parents=True)
    Image.new("RGB", (64, 64), (220, 20, 20)).save(run / "eval" / "images" / "00000.png")
    row = {"id": "00000", "image": "images/00000.png", "prompt": "what colour is the square ?", "answer": "The RED."}
    (run / "eval" / "one.jsonl").write_text(json.dumps(row) + "\n")
    return tmp_path / "runs"


def test_batch_scores_like_the_comparison_page(decorated_root, tmp_path, monkeypatch):
    """The batch table scores with the metric registry: output "red" against "The RED." is an exact match
    (as on the Comparison page); the page's own ``strip().lower()`` comparison called it wrong."""
    import torch
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    from dashboard.metrics import exact_match

    red = AutoProcessor.from_pretrained(decorated_root / "run" / "checkpoint-1").tokenizer.convert_tokens_to_ids("red")

    def says_red(self, **kwargs):
        ids = kwargs["input_ids"]
        return torch.cat([ids, torch.full((ids.shape[0], 1), red, dtype=ids.dtype)], dim=1)

    monkeypatch.setenv("VLMLAB_RUNS_ROOT", str(decorated_root))
    monkeypatch.setenv("VLMLAB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("VLMLAB_MEMORY_BUDGET", "1GB")
    monkeypatch.chdir(REPO)
    monkeypatch.setattr(LlavaForConditionalGeneration, "generate", says_red)
    at = page(decorated_root)
    at.segmented_control(key="inf.mode").set_value("Batch").run()
    at.number_input(key="inf.batch.bcount").set_value(1)
    at.button(key="inf.batch_run").click().run()
    assert errors(at) == ""
    row = at.dataframe[0].value.iloc[0]
    assert row["output"] == "red" and row["reference"] == "The RED."
    assert row["exact_match"] == exact_match("red", "The RED.") == 1.0


def test_generate_on_the_demo_run_through_home(app_env):
    at = AppTest.from_file(str(REPO / "Home.py"), default_timeout=TIMEOUT).run()
    at.switch_page("pages/1_Inference.py").run()
    assert errors(at) == ""
    first = next(b for b in at.button if b.key and b.key.startswith("inf.pick."))
    first.click().run()
    at.button(key="inf.generate").click().run()
    assert errors(at) == ""
    assert int(metrics(at)["Output tokens"]) >= 1


def test_delete_all_shown_asks_first_and_can_be_cancelled(env, mini_root):
    at = page(mini_root)
    at.segmented_control(key="inf.mode").set_value("Batch").run()
    at.number_input(key="inf.batch.bcount").set_value(3)
    at.number_input(key="inf.batch.max_new_tokens").set_value(2)
    at.button(key="inf.batch_run").click().run()
    at.segmented_control(key="inf.mode").set_value("History").run()
    assert len(at.dataframe[0].value) == 3
    at.button(key="inf.hist_delete_all").click().run()
    assert len(at.dataframe[0].value) == 3  # was: deleted at once, no confirmation, no undo
    assert any("Delete 3 record(s)" in w.value and "cannot be undone" in w.value for w in at.warning)
    at.button(key="inf.hist_cancel").click().run()
    assert len(at.dataframe[0].value) == 3 and not at.warning
    at.button(key="inf.hist_delete_all").click().run()
    at.button(key="inf.hist_confirm").click().run()
    assert errors(at) == ""
    assert any("Deleted 3 record(s)" in s.value for s in at.success)
    assert any("No generations recorded" in i.value for i in at.info)
