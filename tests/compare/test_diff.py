"""Word diff: correct opcodes, and untrusted model output can never become live HTML/Markdown."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from dashboard.compare.diff import diff_html, escape_text, plain_html, similarity, tokenize, word_diff

ALLOWED_TAGS = {"div", "ins", "del", "br", "em"}

HOSTILE = [
    "<script>alert(1)</script>",
    '<img src=x onerror="alert(1)">',
    "<img src=x onerror=alert(1)//",
    "**bold** _em_ `code` [link](javascript:alert(1)) ![i](x)",
    "line one\n\n<script>alert(2)</script>\n\n# heading\n| a | b |\n|---|---|",
    "</div><div onclick=alert(1)>",
    "&lt;script&gt; already escaped? &amp;",
    "ünïcödé 日本語 😀 \u202eRTL\u200b zero-width",
    "it's \"quoted\" 'single' & ampersand",
]


class _TagCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))


def _tags(markup: str) -> list[tuple[str, list[tuple[str, str | None]]]]:
    parser = _TagCollector()
    parser.feed(markup)
    parser.close()
    return parser.tags


def _assert_inert(markup: str) -> None:
    for tag, attrs in _tags(markup):
        assert tag in ALLOWED_TAGS, f"unexpected tag <{tag}> in {markup!r}"
        assert all(name == "class" for name, _ in attrs), f"unexpected attribute on <{tag}>: {attrs}"


def test_tokenize_keeps_trailing_whitespace() -> None:
    assert [t.word for t in tokenize("  a  b\nc ")] == ["a", "b", "c"]
    assert tokenize("a  b\nc")[1].space == "\n"
    assert tokenize("") == []


def test_word_diff_opcodes() -> None:
    ops = word_diff("the red circle", "the blue circle")
    assert [op.tag for op in ops] == ["equal", "replace", "equal"]
    assert [t.word for t in ops[1].reference] == ["red"]
    assert [t.word for t in ops[1].output] == ["blue"]


def test_identical_texts_have_no_markup() -> None:
    assert diff_html("a b c", "a b c") == '<div class="vlm-diff">a b c</div>'
    assert similarity("a b c", "a b c") == 1.0
    assert similarity("", "") == 1.0
    assert similarity("a", "b") == 0.0


def test_insert_and_delete_are_marked() -> None:
    markup = diff_html("red circle", "big red square")
    assert "<ins>big</ins>" in markup
    assert "<del>circle</del>" in markup
    assert "<ins>square</ins>" in markup
    assert "circle" not in diff_html("red circle", "red", show_deleted=False)


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_output_is_escaped(hostile: str) -> None:
    for markup in (diff_html("a reference text", hostile), diff_html(hostile, "plain"),
                   diff_html(hostile, hostile + " extra"), plain_html(hostile)):
        assert "<script" not in markup.lower()
        assert "<img" not in markup.lower()
        _assert_inert(markup)


@pytest.mark.parametrize("hostile", HOSTILE)
def test_markdown_renderer_cannot_reinterpret_output(hostile: str) -> None:
    """Rendered as Markdown with raw HTML allowed (what st.markdown(unsafe_allow_html=True) does)."""
    rendered = MarkdownIt("commonmark", {"html": True}).render(diff_html("reference words", hostile))
    for tag, _attrs in _tags(rendered):
        assert tag in ALLOWED_TAGS | {"p"}, f"markdown produced <{tag}> from {hostile!r}: {rendered!r}"


def test_escaped_text_round_trips_to_the_original_characters() -> None:
    import html

    for text in HOSTILE:
        shown = html.unescape(escape_text(text).replace("<br>", "\n"))
        assert shown == text.replace("\r\n", "\n")


def test_unicode_words_are_compared_exactly() -> None:
    markup = diff_html("日本語 😀 café", "日本語 😀 cafe")
    assert "<ins>cafe</ins>" in markup and "<del>café</del>" in markup


@settings(max_examples=200, deadline=None)
@given(st.text(), st.text())
def test_any_text_yields_inert_markup(reference: str, output: str) -> None:
    _assert_inert(diff_html(reference, output))
