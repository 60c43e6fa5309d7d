"""The one escaper for run-derived text in Streamlit arguments that render Markdown (issue 29 item 4).

Streamlit renders labels, help tooltips, captions, headings, alerts, button/expander/tab labels and
radio/pills options with react-markdown (CommonMark + GFM + directives + emoji/icon shortcodes). Escaped
run text must come out as exactly that text. The CommonMark renderer here (markdown-it-py, a dependency
of Streamlit's ``rich``) stands in for react-markdown's parser; the Streamlit-only extras (directives,
``:material/…:`` replaced in the source, ``:name:`` shortcodes replaced in parsed text) are checked on
the escaped source with the patterns Streamlit's frontend uses.

Fails on today's main: main's ``markdown_safe`` left ``:smile:``/``:material/face:`` intact after escapes
are resolved (the frontend turns them into an emoji/icon) and left a line's leading blanks, which start an
indented code block.
"""

from __future__ import annotations

import html
import re

from hypothesis import given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from dashboard.formatting import markdown_safe

MD = MarkdownIt("commonmark").enable(["table", "strikethrough"])
ALLOWED_TAGS = {"p", "/p", "br", "br /"}
TAG = re.compile(r"<(/?[a-zA-Z][^>]*)>")
# What Streamlit's frontend itself looks for in a Markdown source (StreamlitMarkdown.js, 1.67):
STREAMLIT_SOURCE = [
    re.compile(r"(?<!\\):material/"),                        # replaced in the raw source, before parsing
    re.compile(r"(?<!\\):[a-z][a-z0-9-]*(?<!\\)\["),         # :red[…], :small[…], :color[…] directives
    re.compile(r":(?!material\/|streamlit:)[\w+-][\w_+-]*:"),  # loads remark-emoji (text-node shortcodes)
]
# Live Markdown the issue names: image, link destination, HTML, code span, directive.
LIVE = re.compile(r"(?<!\\)!(?<!\\)\[|(?<!\\)\]\(|(?<!\\)<|(?<!\\)`|(?<!\\):[a-z]+(?<!\\)\[")
# After CommonMark resolves escapes, Streamlit replaces these patterns in text nodes.
TEXT_NODE_SHORTCODE = re.compile(r":(?:streamlit|material_[\w-]+|[\w+-][\w_+-]*):")
# GFM autolink literals, which remark finds in parsed text nodes (mdast-util-gfm-autolink-literal).
TEXT_NODE_AUTOLINK = re.compile(r"(?i)(https?://|www\.|mailto:|xmpp:)|[-.\w+]+@[-\w]+\.[-\w]+")

MARKDOWNISH = st.lists(st.sampled_from([*"\\`*_{}[]()<>#+-.!|~=:$&\"'/@ \t\nab1wx.;",
    "![i](http://127.0.0.1:9/x.png)", "<img src=x>", ":red[", ":material/face:", ":smile:", ":streamlit:",
    "www.", "http://", "HTTPS://", "a@b.co", "mailto:", "    ", "1. ", "```", "&amp;", "&#47;", "$x$", "$$",
    "[^1]", "<http://a.b>", "\r\n",
    "---\n", "===\n", "> ", "| a | b |\n|---|---|\n"]), max_size=40).map("".join)
TEXT = st.one_of(MARKDOWNISH, st.text(max_size=40))


def _words(text: str) -> list[str]:
    """Words between any whitespace (a renderer collapses and trims whitespace; words must survive)."""
    return text.split()


def rendered_text(source: str) -> tuple[set[str], str]:
    """(the tags CommonMark makes of ``source``, the text a reader sees, zero-width joiners removed)."""
    out = MD.render(source)
    tags = {m.group(1).strip() for m in TAG.finditer(out)}
    return tags, html.unescape(TAG.sub(" ", out)).replace("\u200c", "")


@settings(max_examples=400, deadline=None)
@given(TEXT)
def test_escaped_text_renders_as_exactly_that_text(text):
    text = text.replace("\x00", "")  # CommonMark turns NUL into U+FFFD: not a Markdown question
    tags, shown = rendered_text(markdown_safe(text))
    assert tags <= ALLOWED_TAGS, (text, MD.render(markdown_safe(text)))
    assert [w for w in _words(shown) if w] == [w for w in _words(text.replace("\u200c", "")) if w], (text, shown)


@settings(max_examples=300, deadline=None)
@given(TEXT, st.sampled_from(["**Answer** ({}): done", "Example **{}** · prompt: _{}_", "### Run {}",
                              "{}", ":warning: {}", "Checkpoint: {} · step 3"]))
def test_escaped_text_cannot_reach_out_of_its_template(text, template):
    """Inside the page's own Markdown (bold, emphasis, headings) run text changes nothing around it."""
    text = text.replace("\x00", "")
    source = template.format(*[markdown_safe(text)] * template.count("{}"))
    baseline = template.format(*["X"] * template.count("{}"))
    tags, _ = rendered_text(source)
    base_tags, _ = rendered_text(baseline)
    assert tags <= base_tags | ALLOWED_TAGS, (text, MD.render(source))


@settings(max_examples=400, deadline=None)
@given(TEXT)
def test_escaped_source_holds_nothing_streamlit_would_render(text):
    escaped = markdown_safe(text)
    assert not LIVE.search(escaped), escaped
    for pattern in STREAMLIT_SOURCE:
        assert not pattern.search(escaped), (pattern.pattern, escaped)
    _, shown = rendered_text(escaped.replace("\u200c", "\u2060"))  # keep the breaker visible to the check
    assert not TEXT_NODE_SHORTCODE.search(shown.replace(":material/", ":material_")), shown
    assert not TEXT_NODE_AUTOLINK.search(shown), shown


def test_named_payloads():
    for payload in ["![i](http://127.0.0.1:9/x.png)", "run `x` y", ":red[alarm]", ":material/face:",
                    "<img src=http://h/x>", "    indented", ":smile:", "a\r\nb", "see www.x.org",
                    "mail me@host.org"]:
        escaped = markdown_safe(payload)
        tags, shown = rendered_text(escaped)
        assert tags <= ALLOWED_TAGS and _words(shown) == _words(payload), (payload, escaped, shown)
        assert not LIVE.search(escaped) and not any(p.search(escaped) for p in STREAMLIT_SOURCE), escaped
        assert not TEXT_NODE_AUTOLINK.search(rendered_text(escaped.replace("\u200c", "\u2060"))[1]), escaped
