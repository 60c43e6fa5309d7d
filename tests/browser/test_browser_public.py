"""Public mode in a real browser: a Streamlit-SDK Space's first visitors, and history per visitor.

The Space route: an empty runs root, public mode on (``SPACE_ID`` set as a Space sets it), the
demo run built on the first visit (``SPACE_ID`` implies autobuild). Two visitors arrive at the
same moment: one build runs, both watch it and both end on Home showing the demo, no error, no reload.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from dashboard.ui.visitor import COOKIE
from tests.browser.browser_kit import (
    StreamlitServer,
    app_text,
    exception_texts,
    fresh_page,
    goto,
    open_page,
    selected_value,
    settle,
    shot,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SIDEBAR_RUN_JS = """() => [...document.querySelectorAll('[data-testid="stSidebar"] [data-testid="stSelectbox"]')]
    .some(e => /demo.*\\d+ ckpt/.test((e.querySelector('input') || {}).value || ''))"""
SPACE_ENV = {"SPACE_ID": "vlmlab/test-space", "VLMLAB_DEMO_PRESET": "test", "VLMLAB_MEMORY_BUDGET": "1GB"}


@pytest.fixture()
def space_server(tmp_path, artifacts_dir):
    runs_root = tmp_path / "runs"
    runs_root.mkdir()
    srv = StreamlitServer(runs_root, tmp_path / "data", artifacts_dir / "public-build-server.log", extra_env=SPACE_ENV)
    yield srv
    srv.stop()


@pytest.fixture()
def public_server(demo_runs_root, tmp_path, artifacts_dir):
    srv = StreamlitServer(demo_runs_root, tmp_path / "data", artifacts_dir / "public-history-server.log",
                          extra_env={"VLMLAB_PUBLIC": "1", "VLMLAB_MEMORY_BUDGET": "1GB"})
    yield srv
    srv.stop()


def test_space_visitors_watch_one_build_that_their_first_visit_started(browser, space_server, artifacts_dir):
    """No button: the first visit starts the build (``SPACE_ID`` implies autobuild), a second visitor
    arriving at the same time watches the same one, checkpoints appear as they land, no reload."""
    with fresh_page(browser) as a, fresh_page(browser) as b:
        for page in (a, b):
            goto(page, space_server)
        assert "visitor=" not in a.url and "visitor=" not in b.url  # the identity is a cookie, not the address
        assert _wait_identity(a) != _wait_identity(b)
        for page in (a, b):
            page.get_by_text("one build for everyone").first.wait_for(timeout=60_000)
            build_buttons = page.locator('[data-testid="stButton"] button').filter(has_text="Build the demo run")
            assert build_buttons.count() == 0  # the progress is drawn where the button would be
        shot(b, artifacts_dir, "public-build-progress")
        a.wait_for_function(SIDEBAR_RUN_JS, timeout=600_000, polling=500)  # a checkpoint landed: listed, no reload
        for page in (a, b):  # the demo appears without a reload (while it trains, then finished)
            page.get_by_text("Built the demo run").first.wait_for(timeout=600_000)
            settle(page)
        for name, page in (("a", a), ("b", b)):
            text = app_text(page)
            assert "Checkpoints" in text and "Open a page" in text, text[:1500]
            assert exception_texts(page) == [], exception_texts(page)
            assert "AttributeError" not in text and "failed" not in text.lower(), text[:1500]
            assert selected_value(page, "Run", scope='[data-testid="stSidebar"]').startswith("demo")
            shot(page, artifacts_dir, f"public-build-done-{name}")
    log = space_server.log_path.read_text()
    assert len(re.findall(r"demo build started into", log)) == 1, log[-3000:]
    assert "missing ScriptRunContext" not in log  # the build's spawned worker no longer runs the app bare
    root = space_server.runs_root
    assert sorted(p.name for p in root.iterdir()) == ["demo"]  # no staging folder left behind
    assert (root / "demo" / "eval" / "demo.jsonl").is_file()


def _identity(page) -> str | None:
    """The visitor cookie this browser context holds (None until the page's script wrote it)."""
    return next((c["value"] for c in page.context.cookies() if c["name"] == COOKIE), None)


def _wait_identity(page) -> str:
    page.wait_for_function(f"() => document.cookie.includes('{COOKIE}=v1.')")
    value = _identity(page)
    assert value is not None
    return value


def _generate(page, server, example_id: str, marker: str) -> None:
    goto(page, server)
    open_page(page, "Inference")
    page.locator('[data-testid="stButton"] button').filter(has_text=example_id).first.click()
    page.get_by_text(f"Example {example_id}").first.wait_for()
    settle(page)
    box = page.get_by_label("Prompt", exact=True)
    box.fill(f"what colour is the square ? {marker}")
    box.press("Control+Enter")
    settle(page)
    page.locator('[data-testid="stButton"] button').filter(has_text="Generate").first.click()
    page.get_by_text("Output tokens").first.wait_for(timeout=120_000)
    settle(page)


def _history(page, expect_rows: bool = True) -> str:
    open_page(page, "Inference")
    page.locator('[data-testid="stButtonGroup"] button').filter(has_text="History").first.click()
    settle(page)
    page.get_by_text("record(s) shown" if expect_rows else "No generations recorded yet").first.wait_for()
    return app_text(page)


def _export_json(page) -> list[dict]:
    with page.expect_download() as info:
        page.locator('[data-testid="stDownloadButton"] button').filter(has_text="Export JSON").first.click()
    return json.loads(Path(info.value.path()).read_text())


def test_visitors_see_only_their_own_history(browser, public_server, demo_runs_root, artifacts_dir):
    example_id = json.loads((demo_runs_root / "demo" / "eval" / "demo.jsonl").read_text().splitlines()[0])["id"]
    with fresh_page(browser) as a, fresh_page(browser) as b:
        _generate(a, public_server, example_id, "a-secret")
        _generate(b, public_server, example_id, "b-asks")
        prompt_a, prompt_b = ("what colour is the square ? a-secret", "what colour is the square ? b-asks")
        text_a = _history(a)
        assert "Public demo" in text_a and "1 record(s) shown · 1 stored" in text_a, text_a[:1500]
        assert prompt_a in selected_value(a, "Record")
        assert [r["prompt"] for r in _export_json(a)] == [prompt_a]
        text_b = _history(b)
        assert "1 record(s) shown · 1 stored" in text_b, text_b[:1500]
        assert prompt_b in selected_value(b, "Record")
        search = b.get_by_label("Search prompt / output", exact=True)
        search.fill("a-secret")
        search.press("Enter")
        b.get_by_text("No generations recorded yet").first.wait_for()
        search.fill("")
        search.press("Enter")
        b.get_by_text("1 record(s) shown").first.wait_for()
        settle(b)
        exported = _export_json(b)
        assert [r["prompt"] for r in exported] == [prompt_b]
        assert all("visitor" not in r for r in exported)
        shot(b, artifacts_dir, "public-history-b")
        b.locator('[data-testid="stButton"] button').filter(has_text="Delete all 1 shown").first.click()
        b.locator('[data-testid="stButton"] button').filter(has_text="Yes, delete").first.click()  # confirm
        b.get_by_text("No generations recorded yet").first.wait_for()
        a.reload()  # A's row survived B's "delete all", and A's cookie brings A back after the refresh
        settle(a)
        assert "1 record(s) shown · 1 stored" in _history(a)
        assert [r["prompt"] for r in _export_json(a)] == [prompt_a]


def test_local_mode_keeps_one_shared_history(browser, server, demo_runs_root):
    example_id = json.loads((demo_runs_root / "demo" / "eval" / "demo.jsonl").read_text().splitlines()[0])["id"]
    with fresh_page(browser) as a, fresh_page(browser) as b:
        _generate(a, server, example_id, "shared-row")
        assert "visitor=" not in a.url
        goto(b, server)
        text = _history(b)
        assert "Public demo" not in text
        assert "shared-row" in selected_value(b, "Record")  # newest row, made by the other session


def test_forged_identity_and_copied_link_show_none_of_the_senders_history(browser, public_server, demo_runs_root,
                                                                          artifacts_dir):
    """Token fixation on main: any ``?visitor=<22–64 chars>`` was adopted, so a link carrying the sender's
    value (or a string the attacker chose) opened the sender's history. Now the identity is a cookie the
    server signed: a copied link carries only the view, a forged value gets a fresh, empty identity."""
    example_id = json.loads((demo_runs_root / "demo" / "eval" / "demo.jsonl").read_text().splitlines()[0])["id"]
    with fresh_page(browser) as sender, fresh_page(browser) as receiver, fresh_page(browser) as forger:
        _generate(sender, public_server, example_id, "sender-secret")
        token = _wait_identity(sender)
        cookie = next(c for c in sender.context.cookies() if c["name"] == COOKIE)
        assert cookie["sameSite"] == "Lax" and not cookie["httpOnly"]  # plain http here: Lax (README)
        link = sender.url
        assert "visitor" not in link and "run=" in link  # the address carries the view only
        receiver.goto(link)  # the colleague opens the copied link
        settle(receiver)
        assert "No generations recorded yet" in _history(receiver, expect_rows=False)
        assert _wait_identity(receiver) != token
        # The attacker's own (valid) identity in the address, and a forged cookie, adopt nothing.
        forger.context.add_cookies([{"name": COOKIE, "value": "v1." + "A" * 22 + "." + "B" * 22,
                                     "url": public_server.url}])
        forger.goto(f"{public_server.url}/?visitor={token.split('.')[1]}&visitor={token}")
        settle(forger)
        assert "visitor=" not in forger.url
        assert "No generations recorded yet" in _history(forger, expect_rows=False)
        fresh = _wait_identity(forger)
        assert fresh != token and fresh != "v1." + "A" * 22 + "." + "B" * 22
        shot(forger, artifacts_dir, "public-forged-identity")
        # The sender, after a reload (a new Streamlit session), is recognised by the cookie alone.
        sender.reload()
        settle(sender)
        assert "1 record(s) shown · 1 stored" in _history(sender)


@pytest.fixture()
def public_own_run(demo_run_dir, tmp_path, artifacts_dir):
    """Public mode on a private copy of the demo run (eval results are written next to the run)."""
    import shutil

    root = tmp_path / "runs"
    shutil.copytree(demo_run_dir, root / "demo", ignore=shutil.ignore_patterns("eval_results"))
    srv = StreamlitServer(root, tmp_path / "data", artifacts_dir / "public-eval-server.log",
                          extra_env={"VLMLAB_PUBLIC": "1", "VLMLAB_MEMORY_BUDGET": "1GB"})
    yield srv
    srv.stop()


def _eval_mode(page, server) -> None:
    goto(page, server)
    open_page(page, "Comparison")
    page.locator('[data-testid="stRadio"] label').filter(has_text="Eval set").first.click()
    settle(page)


def _upload_set(page, path: Path) -> None:
    page.locator('[data-testid="stRadio"] label').filter(has_text="Upload JSONL/CSV").first.click()
    settle(page)
    page.locator('[data-testid="stFileUploader"] input[type="file"]').first.set_input_files(str(path))
    page.get_by_text("usable examples in").first.wait_for(timeout=120_000)
    settle(page)


def _set_examples(page, count: int) -> None:
    box = page.get_by_label("First N examples", exact=True)
    box.fill(str(count))
    box.press("Enter")
    settle(page)


def _run_eval(page) -> str:
    page.locator('[data-testid="stButton"] button').filter(has_text="Run eval set").first.click()
    page.get_by_text("Scores with 95% confidence intervals").first.wait_for(timeout=600_000)
    settle(page, 600_000)
    return app_text(page)


def test_a_visitor_completes_an_eval_comparison_and_uploaded_scores_stay_theirs(browser, public_own_run,
                                                                                artifacts_dir):
    """main: the demo set (200 × N checkpoints) was over the 64-generation cap with no control to choose
    fewer, and uploading the run's own rows unchanged gave 'no usable examples'; an uploaded set's scores
    went into the shared run folder, on every visitor's pages."""
    run = public_own_run.runs_root / "demo"
    own_set = run / "eval" / "demo.jsonl"
    with fresh_page(browser) as a, fresh_page(browser) as b:
        _eval_mode(a, public_own_run)
        count = a.get_by_label("First N examples", exact=True)
        offered = int(count.input_value())
        # at most 64 ÷ (2 or more checkpoints chosen), never the whole set (AppTest checks the exact relation)
        assert 1 <= offered <= 32
        assert "Scores of the run's own eval set are shared" in app_text(a)
        _set_examples(a, 2)  # keep the machine's share small; the default runs as well
        text = _run_eval(a)
        assert "Not run" not in text and exception_texts(a) == [], text[-2000:]
        assert "Stopped." not in text
        shot(a, artifacts_dir, "public-eval-own-set")
        _upload_set(a, own_set)  # the run's own file, unchanged: its images are found
        assert "kept for you alone" in app_text(a)
        _set_examples(a, 2)
        text = _run_eval(a)
        assert "Not run" not in text and exception_texts(a) == [], text[-2000:]
        _eval_mode(b, public_own_run)  # another visitor uploads the same file: none of A's scores
        _upload_set(b, own_set)
        _set_examples(b, 2)
        b.get_by_text("No saved scores for these checkpoints and settings yet").first.wait_for()
        shot(b, artifacts_dir, "public-eval-other-visitor")
    saved = list((run / "eval_results").glob("*/*.json"))
    assert saved and all(json.loads(p.read_text())["total"] == 2 for p in saved)  # only the run's own set
    private = list((public_own_run.data_dir / "visitors").glob("*/*/eval_results/*/*.json"))
    assert private, "the uploaded set's scores were not kept per visitor"


def test_an_upload_over_the_public_limit_is_refused_in_the_browser_and_the_page_goes_on(
        browser, public_server, tmp_path, artifacts_dir):
    """Public mode: the uploader states the 8 MB limit and refuses a larger file with it before sending;
    the next file within the limit is used. main: the public server took 25 MB per file (the widget said
    "25.0MB"), and Streamlit kept each upload in memory per session (bench/RESULTS.md, issue 30)."""
    from dashboard.public import LIMITS

    own_set = public_server.runs_root / "demo" / "eval" / "demo.jsonl"
    rows = own_set.read_bytes()
    big = tmp_path / "big.jsonl"
    big.write_bytes(rows * (LIMITS.max_upload_mb * 2**20 // len(rows) + 2))
    assert big.stat().st_size > LIMITS.max_upload_mb * 2**20
    with fresh_page(browser) as page:
        _eval_mode(page, public_server)
        page.locator('[data-testid="stRadio"] label').filter(has_text="Upload JSONL/CSV").first.click()
        settle(page)
        page.locator('[data-testid="stFileUploader"] input[type="file"]').first.set_input_files(str(big))
        chip = page.locator('[data-testid="stFileChip"][aria-invalid="true"]').filter(has_text=big.name)
        chip.first.wait_for()
        refusal = chip.first.locator('[role="alert"]').text_content()
        assert f"File must be {LIMITS.max_upload_mb:.1f}MB or smaller" in refusal, refusal
        assert "usable examples in" not in app_text(page)
        shot(page, artifacts_dir, "public-upload-over-limit")
        assert exception_texts(page) == []
        page.locator('[data-testid="stFileUploader"] input[type="file"]').first.set_input_files(str(own_set))
        page.get_by_text("usable examples in").first.wait_for(timeout=120_000)
        assert exception_texts(page) == []
