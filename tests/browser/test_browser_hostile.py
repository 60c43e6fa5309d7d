"""Hostile input through the real server and browser: each case a clear message, the app still serving.

A dedicated server (module scope) runs on its own runs root: a copy of the demo run plus broken
runs (malformed / huge / NaN trainer_state, corrupt and pickle-only weights, remote-code configs,
symlinks escaping the root). Tests here may damage their runs root; the shared server is untouched.
"""

from __future__ import annotations

import json
import shutil
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser.browser_kit import (
    StreamlitServer,
    app_text,
    checkpoint_option,
    choose_select,
    exception_texts,
    fresh_page,
    goto,
    open_page,
    selected_value,
    settle,
    shot,
)
from tests.hostile.hostile_files import (
    huge_log_history,
    nan_inf_log_history,
    over_limit_file,
    trainer_state,
    write_upload_cases,
)

pytestmark = pytest.mark.browser

HUGE_ENTRIES = 200_000


def _checkpoint_copy(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def build_hostile_root(demo_run: Path, root: Path, outside: Path) -> Path:
    """The demo run plus one broken run per kind of damage; ``outside`` lies outside the root."""
    demo = root / "demo"
    shutil.copytree(demo_run, demo)
    good = sorted(demo.glob("checkpoint-*"), key=lambda p: int(p.name.rsplit("-", 1)[1]))[0]

    run = root / "malformed-state"
    _checkpoint_copy(good, run / "checkpoint-10")
    (run / "trainer_state.json").write_text('{"log_history": [{"loss": 1.0, "step": 1}, {"loss": ')
    (run / "checkpoint-10" / "trainer_state.json").write_text("not json at all")

    run = root / "huge-state"
    _checkpoint_copy(good, run / f"checkpoint-{HUGE_ENTRIES}")
    (run / "trainer_state.json").write_text(trainer_state(huge_log_history(HUGE_ENTRIES), global_step=HUGE_ENTRIES))
    (run / f"checkpoint-{HUGE_ENTRIES}" / "trainer_state.json").unlink(missing_ok=True)

    run = root / "nan-metrics"
    _checkpoint_copy(good, run / "checkpoint-5")
    (run / "trainer_state.json").write_text(trainer_state(nan_inf_log_history(), global_step=5))
    (run / "checkpoint-5" / "trainer_state.json").unlink(missing_ok=True)

    run = root / "broken-weights"
    truncated = _checkpoint_copy(good, run / "checkpoint-1")
    weights = truncated / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    garbage = _checkpoint_copy(good, run / "checkpoint-2")
    (garbage / "model.safetensors").write_bytes(b"\xff" * 64 + b"not a safetensors file")
    pickle_only = _checkpoint_copy(good, run / "checkpoint-3")
    import torch
    from safetensors.torch import load_file

    torch.save(load_file(pickle_only / "model.safetensors"), pickle_only / "pytorch_model.bin")
    (pickle_only / "model.safetensors").unlink()
    remote = _checkpoint_copy(good, run / "checkpoint-4")
    config = json.loads((remote / "config.json").read_text())
    config["auto_map"] = {"AutoModelForImageTextToText": "evil_model.EvilModel"}
    config["trust_remote_code"] = True
    (remote / "config.json").write_text(json.dumps(config))
    (remote / "evil_model.py").write_text("raise SystemExit('remote code ran')\n")

    outside.mkdir(parents=True, exist_ok=True)
    escaped = _checkpoint_copy(good, outside / "checkpoint-99")
    run = root / "escaping-links"
    _checkpoint_copy(good, run / "checkpoint-1")
    (run / "checkpoint-2").symlink_to(escaped, target_is_directory=True)
    (root / "linked-run").symlink_to(outside, target_is_directory=True)
    return root


@pytest.fixture(scope="module")
def hostile_root(demo_runs_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("hostile")
    return build_hostile_root(demo_runs_root / "demo", base / "runs", base / "outside")


@pytest.fixture(scope="module")
def hostile_server(hostile_root: Path, tmp_path_factory: pytest.TempPathFactory,
                   artifacts_dir: Path) -> Iterator[StreamlitServer]:
    srv = StreamlitServer(hostile_root, tmp_path_factory.mktemp("hostile-data"),
                          artifacts_dir / "streamlit-hostile-server.log", extra_env={"VLMLAB_MEMORY_BUDGET": "1GB"})
    yield srv
    srv.stop()


@pytest.fixture()
def hpage(browser, hostile_server: StreamlitServer) -> Iterator[object]:
    with fresh_page(browser) as pg:
        yield pg


def assert_serving(server: StreamlitServer) -> None:
    assert server.process.poll() is None, "streamlit process died"
    with urllib.request.urlopen(f"{server.url}/_stcore/health", timeout=10) as response:
        assert response.status == 200


def alerts(page) -> str:
    return "\n".join(a.inner_text() for a in page.locator('[data-testid="stMain"] [data-testid="stAlert"]').all())


def choose_run(page, name: str) -> None:
    choose_select(page, "Run", f"{name} ·", scope='[data-testid="stSidebar"]')


def generate(page, timeout: float = 120_000) -> None:
    """Press Generate and wait for an answer or an error message."""
    page.locator('[data-testid="stButton"] button').filter(has_text="Generate").first.click()
    page.locator('[data-testid="stMain"]').locator(
        '[data-testid="stAlert"], [data-testid="stMetric"]').first.wait_for(timeout=timeout)
    settle(page)


def click_first_example(page, run_dir: Path) -> str:
    example = json.loads((run_dir / "eval" / "demo.jsonl").read_text().splitlines()[0])["id"]
    page.locator('[data-testid="stButton"] button').filter(has_text=example).first.click()
    page.get_by_text(f"Example {example}").first.wait_for()
    settle(page)
    return example


def test_hostile_uploads_each_get_a_clear_message(hpage, hostile_server, tmp_path, artifacts_dir):
    page = hpage
    cases = write_upload_cases(tmp_path / "uploads")
    goto(page, hostile_server)
    choose_run(page, "demo")
    open_page(page, "Inference")
    page.locator('[data-testid="stButtonGroup"] button').filter(has_text="Upload").first.click()
    settle(page)
    upload = '[data-testid="stFileUploaderDropzoneInput"]'
    seen = {}
    for name, (path, expected) in cases.items():
        page.set_input_files(upload, str(path))
        if expected is None:
            page.get_by_text(f"{path.name} ·").first.wait_for()
        else:
            page.locator('[data-testid="stMain"] [data-testid="stAlert"]').filter(
                has_text=f"({path.name})").first.wait_for()
        settle(page)
        seen[name] = alerts(page)
        assert exception_texts(page) == [], f"{name}: {exception_texts(page)}"
        if expected is None:
            assert "Cannot use this file" not in seen[name], f"{name}: {seen[name]}"
        else:
            assert expected in seen[name], f"{name}: {seen[name]!r}"
            assert path.name in seen[name], f"{name}: message must name the file: {seen[name]!r}"
        assert_serving(hostile_server)
    shot(page, artifacts_dir, "hostile-uploads-last")

    # Over Streamlit's 25 MB maxUploadSize: refused by the uploader itself, with its own message.
    big = over_limit_file(tmp_path / "big.png")
    page.set_input_files(upload, str(big))
    chip = page.locator('[data-testid="stFileChip"][aria-invalid="true"]').filter(has_text=big.name)
    chip.first.wait_for()
    refusal = chip.first.locator('[role="alert"]').text_content()
    assert "File must be 25.0MB or smaller" in refusal, refusal
    shot(page, artifacts_dir, "hostile-upload-over-limit")
    assert exception_texts(page) == []
    assert_serving(hostile_server)

    # Nothing lost: a normal image still goes through, end to end.
    page.reload()
    settle(page)
    choose_run(page, "demo")
    open_page(page, "Inference")
    page.locator('[data-testid="stButtonGroup"] button').filter(has_text="Upload").first.click()
    settle(page)
    good = cases["cmyk-jpeg"][0]
    page.set_input_files(upload, str(good))
    page.get_by_text(f"{good.name} ·").first.wait_for()
    settle(page)
    page.get_by_label("Prompt", exact=True).fill("what colour is the square ?")
    page.get_by_label("Prompt", exact=True).press("Control+Enter")
    settle(page)
    generate(page)
    assert "Output tokens" in app_text(page), alerts(page)


@pytest.mark.parametrize("run_name, expected", [
    ("malformed-state", "trainer_state"),
    ("huge-state", None),
    ("nan-metrics", "nan"),
])
def test_hostile_runs_render_on_timeline(hpage, hostile_server, artifacts_dir, run_name, expected):
    page = hpage
    goto(page, hostile_server)
    choose_run(page, run_name)
    open_page(page, "Timeline")
    assert exception_texts(page) == [], exception_texts(page)
    text = app_text(page)
    assert run_name in text
    if expected is not None:
        page.get_by_text("problem(s) reading this run").first.click()  # expand the problem list
        settle(page)
        assert expected.lower() in app_text(page).lower(), app_text(page)[:3000]
    shot(page, artifacts_dir, f"hostile-timeline-{run_name}")
    for title in ("Inference", "Comparison", "Attention"):
        open_page(page, title)
        assert exception_texts(page) == [], f"{run_name}/{title}: {exception_texts(page)}"
    assert_serving(hostile_server)


def test_broken_checkpoints_are_refused_with_reasons(hpage, hostile_server, hostile_root, artifacts_dir):
    page = hpage
    goto(page, hostile_server)
    choose_run(page, "broken-weights")
    open_page(page, "Inference")
    sidebar = page.locator('[data-testid="stSidebar"]')
    messages = {}
    for step in (1, 2, 3, 4):
        name = f"checkpoint-{step}"
        combo = sidebar.get_by_role("combobox", name="Checkpoint", exact=True)
        if combo.count() == 0:
            messages[name] = "not offered: " + sidebar.inner_text()
            continue
        combo.first.click()
        option = page.locator('[role="option"]').filter(has_text=f"{name} ")
        if option.count() == 0:
            page.keyboard.press("Escape")
            messages[name] = "not offered"
            continue
        option.first.click()
        settle(page)
        assert name in selected_value(page, "Checkpoint", scope='[data-testid="stSidebar"]')
        messages[name] = _generate_on_upload(page, hostile_root)
        assert exception_texts(page) == [], f"{name}: {exception_texts(page)}"
        assert_serving(hostile_server)
    shot(page, artifacts_dir, "hostile-broken-checkpoints")
    for name, message in messages.items():
        assert "Output tokens" not in message, f"{name} should not generate: {message}"
    assert not (hostile_root / "broken-weights" / "checkpoint-4" / "ran").exists()
    (artifacts_dir / "hostile-broken-checkpoints.json").write_text(json.dumps(messages, indent=1))


def _generate_on_upload(page, hostile_root: Path) -> str:
    source = page.locator('[data-testid="stButtonGroup"] button').filter(has_text="Upload")
    if source.count():  # runs with an eval set offer a gallery first
        source.first.click()
        settle(page)
    image = next((hostile_root / "demo" / "eval" / "images").glob("*.png"))
    page.set_input_files('[data-testid="stFileUploaderDropzoneInput"]', str(image))
    page.get_by_text(f"{image.name} ·").first.wait_for()
    settle(page)
    page.get_by_label("Prompt", exact=True).fill("what colour is the square ?")
    page.get_by_label("Prompt", exact=True).press("Control+Enter")
    settle(page)
    generate(page)
    return alerts(page) + ("\nOutput tokens" if "Output tokens" in app_text(page) else "")


def test_links_escaping_the_runs_root_are_not_followed(hpage, hostile_server, artifacts_dir):
    page = hpage
    goto(page, hostile_server)
    sidebar = page.locator('[data-testid="stSidebar"]')
    sidebar.get_by_role("combobox", name="Run", exact=True).first.click()
    runs = [o.inner_text() for o in page.locator('[role="option"]').all()]
    page.keyboard.press("Escape")
    assert not any(r.startswith("linked-run") for r in runs), runs  # a run linked from outside is not offered
    choose_run(page, "escaping-links")
    sidebar.get_by_role("combobox", name="Checkpoint", exact=True).first.click()
    checkpoints = [o.inner_text() for o in page.locator('[role="option"]').all()]
    page.keyboard.press("Escape")
    assert not any("checkpoint-2" in c for c in checkpoints), checkpoints
    assert any("checkpoint-1" in c for c in checkpoints), checkpoints
    assert exception_texts(page) == []
    shot(page, artifacts_dir, "hostile-escaping-links")


def test_checkpoint_deleted_while_page_is_open(hpage, hostile_server, hostile_root, artifacts_dir):
    page = hpage
    victim_run = hostile_root / "demo"
    goto(page, hostile_server)
    choose_run(page, "demo")
    open_page(page, "Inference")
    names = sorted((p.name for p in victim_run.glob("checkpoint-*")), key=lambda n: int(n.rsplit("-", 1)[1]))
    victim, survivor = names[0], names[-1]
    choose_select(page, "Checkpoint", checkpoint_option(victim), scope='[data-testid="stSidebar"]')
    click_first_example(page, victim_run)
    shutil.rmtree(victim_run / victim)  # gone while the page still offers it
    page.get_by_label("Prompt", exact=True).press("Control+Enter")
    generate(page)
    assert exception_texts(page) == [], exception_texts(page)
    # Never a silent switch: the sidebar says the checkpoint is gone, and no answer claims to be from it.
    sidebar = page.locator('[data-testid="stSidebar"]').inner_text()
    assert f"{victim} is no longer available" in sidebar, sidebar
    assert f"Answer ({victim})" not in app_text(page)
    assert victim not in selected_value(page, "Checkpoint", scope='[data-testid="stSidebar"]')
    shot(page, artifacts_dir, "hostile-deleted-checkpoint")
    assert_serving(hostile_server)
    # The rest of the run still works.
    page.reload()
    settle(page)
    choose_run(page, "demo")
    open_page(page, "Inference")
    choose_select(page, "Checkpoint", checkpoint_option(survivor), scope='[data-testid="stSidebar"]')
    click_first_example(page, victim_run)
    generate(page)
    assert "Output tokens" in app_text(page), alerts(page)
    open_page(page, "Timeline")
    assert exception_texts(page) == []


HOSTILE_TEXT = ('<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script> **bold** '
                '[click](javascript:window.__pwned=3) <b>tag</b> $x^2$ :red[colour] # heading')


def _no_injection(page) -> None:
    assert page.evaluate("() => window.__pwned === undefined"), "model/user text was executed as HTML/JS"
    assert page.locator('[data-testid="stMain"] img[src="x"]').count() == 0
    assert page.locator('[data-testid="stMain"] a[href^="javascript"]').count() == 0
    assert page.locator('[data-testid="stMain"] b:text-is("tag")').count() == 0


def test_hostile_text_is_shown_as_text_everywhere(hpage, hostile_server, hostile_root, artifacts_dir):
    """HTML/JS/Markdown in outputs, prompts and prefills is shown literally on every page that shows it."""
    from PIL import Image

    from dashboard.history import HistoryRecord, HistoryStore

    checkpoint = sorted((hostile_root / "demo").glob("checkpoint-*"))[0]
    image = Image.open(next((hostile_root / "demo" / "eval" / "images").glob("*.png"))).convert("RGB")
    store = HistoryStore(hostile_server.data_dir / "history.sqlite")
    store.add(HistoryRecord.from_generation(
        checkpoint=checkpoint, prompt=f"prompt {HOSTILE_TEXT}", output=f"output {HOSTILE_TEXT}",
        settings={"max_new_tokens": 4}, timings={"latency_s": 0.1, "tokens_per_s": 1.0}, image=image,
        image_name="<svg onload=alert(1)>.png", run=hostile_root / "demo"))
    page = hpage
    goto(page, hostile_server)
    choose_run(page, "demo")

    # Inference: a generation whose answer starts with a hostile prefill, then the history view.
    open_page(page, "Inference")
    click_first_example(page, hostile_root / "demo")
    page.get_by_label("Assistant prefill (optional)", exact=True).fill(HOSTILE_TEXT)
    page.get_by_label("Assistant prefill (optional)", exact=True).press("Enter")
    settle(page)
    generate(page)
    text = app_text(page)
    assert "Output tokens" in text, alerts(page)
    assert "<script>window.__pwned=2</script>" in text and "**bold**" in text, text[-1500:]
    _no_injection(page)
    shot(page, artifacts_dir, "hostile-text-inference")
    page.locator('[data-testid="stButtonGroup"] button').filter(has_text="History").first.click()
    page.get_by_text("record(s) shown").first.wait_for()
    settle(page)
    choose_select(page, "Record", "prompt <img")
    assert "prompt <img src=x" in selected_value(page, "Record")
    _no_injection(page)
    shot(page, artifacts_dir, "hostile-text-history")

    # Comparison and Attention: pick the stored history entry as input.
    open_page(page, "Comparison")
    page.get_by_text("History item", exact=True).first.click()
    settle(page)
    choose_select(page, "History item", "prompt <img")
    # The prompt box takes the history item's prompt on the rerun that follows the choice.
    expect(page.get_by_label("Prompt", exact=True)).to_have_value(f"prompt {HOSTILE_TEXT}")
    _no_injection(page)
    shot(page, artifacts_dir, "hostile-text-comparison")
    open_page(page, "Attention")
    page.get_by_text("Inference history", exact=True).first.click()
    settle(page)
    choose_select(page, "History item", "prompt <img")
    assert "output <img" in selected_value(page, "History item")
    _no_injection(page)
    assert exception_texts(page) == []
    shot(page, artifacts_dir, "hostile-text-attention")
