"""Every page, on a run whose names and texts carry Markdown payloads, shows them only as literal text.

The run (:mod:`tests.hostile.markdown_corpus`): a hostile folder name, eval-set file name, eval row ids,
prompts, answers and tasks, a trainer_state metric name and ``best_model_checkpoint``, TensorBoard scalar
tags and text summaries. Every string argument of every element that Streamlit renders as Markdown
(bodies, captions, alerts, headings, widget labels, help tooltips, button/expander/tab labels, radio and
pills options, image captions, metric values, progress text) is checked: where run text landed (a
payload marker is there), no image, link, HTML, code span or directive may be live.

Fails on today's main: the gallery buttons' labels and tooltips are the raw eval row ids and prompts
(``st.button(example.id, help=example.prompt)``), Home's subheader wraps the run name in a code span, the
Inference caption wraps the checkpoint path in one, and image captions carry raw file names.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dashboard.ui import state
from tests.hostile.markdown_corpus import MARKERS, build_markdown_run, live_markdown_with_marker

REPO_ROOT = Path(__file__).resolve().parents[2]
PAGES = ["pages/1_Inference.py", "pages/2_Comparison.py", "pages/3_Timeline.py", "pages/4_Attention.py"]
# Fields Streamlit renders as Markdown, and element types whose strings it shows as plain text or code.
MARKDOWN_FIELDS = {"label", "help", "body", "caption", "text", "content"}
PLAIN_TYPES = {"Text", "Code", "Json", "Html", "PlotlyChart", "Arrow", "Exception", "Empty", "DataFrame"}


def _walk(message, owner: str, out: list[tuple[str, str]]) -> None:
    for field, value in message.ListFields():
        if field.type == field.TYPE_MESSAGE:
            for item in ([value] if hasattr(value, "ListFields") else value):
                _walk(item, type(item).__name__, out)
        elif field.type == field.TYPE_STRING and owner not in PLAIN_TYPES:
            values = [value] if isinstance(value, str) else list(value)
            if field.name in MARKDOWN_FIELDS or (owner == "Radio" and field.name == "options"):
                out.extend((f"{owner}.{field.name}", v) for v in values)


def markdown_strings(at: AppTest) -> list[tuple[str, str]]:
    """(where, source) for every string the page sent that the browser renders as Markdown."""
    out: list[tuple[str, str]] = []
    stack = [at._tree]
    while stack:
        node = stack.pop()
        stack.extend(getattr(node, "children", {}).values())
        proto = getattr(node, "proto", None)
        if proto is not None:
            _walk(proto, type(proto).__name__, out)
    return out


@pytest.fixture(scope="module")
def markdown_root(demo_runs_root: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("markdown-runs")
    run = build_markdown_run(demo_runs_root / "demo", root, "127.0.0.1:9")
    return root, run


def _check(at: AppTest, where: str, failures: list[str], seen: set[str]) -> None:
    if at.exception:
        failures.append(f"{where}: exception {at.exception[0].message[:300]}")
    for field, source in markdown_strings(at):
        seen.update(m for m in MARKERS if m in source)
        live = live_markdown_with_marker(source)
        if live is not None:
            failures.append(f"{where}: {field} renders run text as Markdown: …{live!r}…")


def test_every_page_shows_markdown_payloads_as_text(markdown_root, tmp_path, monkeypatch):
    root, run = markdown_root
    monkeypatch.setenv("VLMLAB_RUNS_ROOT", str(root))
    monkeypatch.setenv("VLMLAB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("VLMLAB_MEMORY_BUDGET", "1GB")
    monkeypatch.chdir(REPO_ROOT)
    failures: list[str] = []
    seen: set[str] = set()
    at = AppTest.from_file(str(REPO_ROOT / "Home.py"), default_timeout=180)
    at.session_state[state.RUN_PATH] = str(run.resolve())
    at.run()
    _check(at, "Home", failures, seen)
    for page in PAGES:
        at.switch_page(page).run()
        _check(at, page, failures, seen)
        if page == "pages/1_Inference.py":  # the gallery, then a picked example (its caption and image)
            pick = next(b for b in at.button if str(b.key).startswith("inf.pick."))
            pick.click().run()
            _check(at, f"{page} after picking an example", failures, seen)
        if page == "pages/3_Timeline.py":  # the logged-text panel's series
            for box in at.selectbox:
                if box.label == "Text series":
                    box.set_value(box.options[-1]).run()
            _check(at, f"{page} text panel", failures, seen)
    at.switch_page("pages/2_Comparison.py").run()
    mode = [r for r in at.radio if r.key == "cmp.mode"]
    assert mode, "Comparison did not offer its modes on the markdown run"
    mode[0].set_value("Eval set").run()
    _check(at, "Comparison (eval set)", failures, seen)
    assert not failures, "\n".join(failures)
    # The check saw run text in Markdown positions (the payloads really reached those widgets).
    assert {"fimg", "idimg", "pimg", "eimg"} <= seen, seen
