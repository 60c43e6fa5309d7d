"""Every page renders every hostile run of the corpus without an exception, never shows a secret
planted in the environment, and never renders a Markdown image or HTML from a run file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dashboard.ui import state
from tests.hostile.walls_corpus import SECRET, build_corpus, environment_secrets

REPO_ROOT = Path(__file__).resolve().parents[2]
PAGES = ["pages/1_Inference.py", "pages/2_Comparison.py", "pages/3_Timeline.py", "pages/4_Attention.py"]
REMOTE_MARKDOWN = re.compile(r"(?<!\\)\]\(https?:|(?<!\\)<img", re.IGNORECASE)


@pytest.fixture(scope="module")
def hostile_root(tmp_path_factory: pytest.TempPathFactory, tiny_llava_dir: Path) -> tuple[Path, list[Path]]:
    base = tmp_path_factory.mktemp("walls-pages")
    runs = build_corpus(base / "runs", base / "outside", tiny_llava_dir)
    return base / "runs", sorted(runs.values())


def _texts(at: AppTest) -> tuple[str, list[str]]:
    """(everything the page sent, as one string; the Markdown sources of text elements)."""
    everything: list[str] = []
    markdown: list[str] = []
    stack = [at._tree]
    while stack:
        node = stack.pop()
        stack.extend(getattr(node, "children", {}).values())
        proto = getattr(node, "proto", None)
        if proto is not None:
            everything.append(repr(proto))
        for attr in ("body", "value", "label", "caption", "help"):
            try:
                value = getattr(node, attr, None)
            except Exception:  # some element types compute values lazily and may not support it
                continue
            if isinstance(value, str):
                everything.append(value)
                if attr in ("body", "value") and type(node).__name__ in ("Markdown", "Caption", "Error", "Warning",
                                                                         "Info", "Success", "Alert"):
                    markdown.append(value)
    return "\n".join(everything), markdown


def test_every_page_renders_every_hostile_run(hostile_root, tmp_path, monkeypatch):
    root, runs = hostile_root
    monkeypatch.setenv("VLMLAB_PLANTED_SECRET", SECRET)
    monkeypatch.setenv("VLMLAB_RUNS_ROOT", str(root))
    monkeypatch.setenv("VLMLAB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("VLMLAB_MEMORY_BUDGET", "1GB")
    monkeypatch.chdir(REPO_ROOT)
    secrets = environment_secrets()
    assert len(secrets) > 3  # the scan has something to find
    failures: list[str] = []
    eval_views = 0
    for run in runs:
        at = AppTest.from_file(str(REPO_ROOT / "Home.py"), default_timeout=120)
        at.session_state[state.RUN_PATH] = str(run.resolve())
        at.run()
        views = [(None, None), *((page, None) for page in PAGES), ("pages/2_Comparison.py", "Eval set")]
        for page, comparison_mode in views:
            if page is not None:
                at.switch_page(page).run()
            if comparison_mode is not None:  # not only each page's default view: the eval-set chooser too
                mode = [r for r in at.radio if r.key == "cmp.mode"]
                if not mode:  # the page said why it can't compare this run (checked as text below)
                    continue
                mode[0].set_value(comparison_mode).run()
                eval_views += 1
            where = f"{run.name} on {page or 'Home'}" + (f" ({comparison_mode})" if comparison_mode else "")
            if at.exception:
                failures.append(f"{where}: exception {at.exception[0].message[:200]}")
            everything, markdown = _texts(at)
            leaked = [secret.split("=", 1)[0] for secret in secrets if secret in everything]
            if leaked:
                failures.append(f"{where}: environment entries on the page: {leaked[:5]}")
            for body in markdown:
                if REMOTE_MARKDOWN.search(body):
                    failures.append(f"{where}: Markdown image/HTML from a run file rendered: {body[:120]!r}")
    assert not failures, "\n".join(failures)
    assert eval_views >= 3, eval_views  # the eval-set view was really scanned, on several runs


def test_lfs_run_is_named_on_home_and_pages_say_why(hostile_root, tmp_path, monkeypatch):
    root, runs = hostile_root
    monkeypatch.setenv("VLMLAB_RUNS_ROOT", str(root))
    monkeypatch.setenv("VLMLAB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.chdir(REPO_ROOT)
    run = next(r for r in runs if r.name == "lfs-pointers")
    at = AppTest.from_file(str(REPO_ROOT / "Home.py"), default_timeout=120)
    at.session_state[state.RUN_PATH] = str(run.resolve())
    at.run()
    assert any("Git LFS pointer run" in e.value for e in at.error), [e.value for e in at.error]
    for page in ("pages/1_Inference.py", "pages/4_Attention.py"):
        at.switch_page(page).run()
        infos = " ".join(i.value for i in at.info)
        assert "Run lfs\\-pointers has no loadable checkpoint" in infos and "git lfs pull" in infos, infos
