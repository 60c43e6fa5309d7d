"""Word-level diff of a model output against a reference output, rendered as safe HTML.

Model output is untrusted text. Every token is passed through :func:`html.escape` *before*
any highlighting markup is added, newlines become ``<br>`` (so no blank line can end an
HTML block and let a Markdown renderer take over), and characters Markdown treats specially
are written as numeric entities. The result is inert whether it is shown with ``st.html``
(no Markdown at all, DOMPurify on top) or ``st.markdown(..., unsafe_allow_html=True)``.
"""

from __future__ import annotations

import difflib
import html
import re
from dataclasses import dataclass
from typing import Literal

_WORD = re.compile(r"(\S+)(\s*)")
# Characters with a meaning in Markdown (emphasis, links, code, headings, tables, escapes).
_MARKDOWN_CHARS = {c: f"&#{ord(c)};" for c in "\\`*_{}[]()#+-.!|~$:"}

DIFF_CSS = (
    ".vlm-diff{white-space:normal;line-height:1.6;font-family:inherit;overflow-wrap:anywhere}"
    ".vlm-diff ins{background:#c8f7c5;color:#0b3d0b;text-decoration:none;border-radius:3px;padding:0 2px}"
    ".vlm-diff del{background:#f9c9c9;color:#5c0b0b;text-decoration:line-through;border-radius:3px;padding:0 2px}"
)


@dataclass(frozen=True)
class Token:
    """A word and the whitespace that followed it (kept so line breaks survive rendering)."""

    word: str
    space: str = ""


@dataclass(frozen=True)
class DiffOp:
    """One opcode of the diff: words of the reference replaced by words of the output."""

    tag: Literal["equal", "insert", "delete", "replace"]
    reference: tuple[Token, ...]
    output: tuple[Token, ...]


def tokenize(text: str) -> list[Token]:
    """Split on whitespace, keeping each word's trailing whitespace (leading blanks dropped)."""
    return [Token(m.group(1), m.group(2)) for m in _WORD.finditer(text or "")]


def word_diff(reference: str, output: str) -> list[DiffOp]:
    """Opcodes turning ``reference`` into ``output``, comparing words exactly."""
    ref, out = tokenize(reference), tokenize(output)
    matcher = difflib.SequenceMatcher(None, [t.word for t in ref], [t.word for t in out], autojunk=False)
    return [DiffOp(tag, tuple(ref[i1:i2]), tuple(out[j1:j2]))  # type: ignore[arg-type]
            for tag, i1, i2, j1, j2 in matcher.get_opcodes()]


def similarity(reference: str, output: str) -> float:
    """Word-level similarity in [0, 1] (1.0 for two empty texts)."""
    ref, out = [t.word for t in tokenize(reference)], [t.word for t in tokenize(output)]
    if not ref and not out:
        return 1.0
    return difflib.SequenceMatcher(None, ref, out, autojunk=False).ratio()


def escape_text(text: str) -> str:
    """HTML-escape ``text`` and neutralise Markdown; newlines become ``<br>``."""
    # Per character, so the entities html.escape emits (``&#x27;``) are never re-escaped.
    escaped = "".join(_MARKDOWN_CHARS.get(ch) or html.escape(ch, quote=True) for ch in text)
    return escaped.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "<br>")


def _render_tokens(tokens: tuple[Token, ...]) -> tuple[str, str]:
    """(escaped words joined with their inner whitespace, escaped trailing whitespace)."""
    if not tokens:
        return "", ""
    inner = "".join(t.word + t.space for t in tokens[:-1]) + tokens[-1].word
    return escape_text(inner), escape_text(tokens[-1].space)


def diff_html(reference: str, output: str, *, show_deleted: bool = True) -> str:
    """The output with words not in the reference in ``<ins>`` and missing ones in ``<del>``.

    Returns one ``<div class="vlm-diff">`` with no raw model text in it.
    """
    parts: list[str] = []
    for op in word_diff(reference, output):
        if op.tag == "equal":
            body, tail = _render_tokens(op.output)
            parts.append(body + tail)
            continue
        if op.reference and show_deleted:
            body, _ = _render_tokens(op.reference)
            parts.append(f"<del>{body}</del> ")
        if op.output:
            body, tail = _render_tokens(op.output)
            parts.append(f"<ins>{body}</ins>{tail or ' '}")
    content = "".join(parts).rstrip() or "<em>(empty output)</em>"
    return f'<div class="vlm-diff">{content}</div>'


def plain_html(text: str) -> str:
    """The same safe container for an output shown without a diff (e.g. the reference)."""
    return f'<div class="vlm-diff">{escape_text(text).strip() or "<em>(empty output)</em>"}</div>'


def style_block() -> str:
    return f"<style>{DIFF_CSS}</style>"


def diff_text(reference: str, output: str) -> str:
    """Plain-text word diff in ``git diff --word-diff`` style: ``[-removed-]{+added+}``."""
    parts: list[str] = []
    for op in word_diff(reference, output):
        ref = " ".join(t.word for t in op.reference)
        out = " ".join(t.word for t in op.output)
        if op.tag == "equal":
            parts.append(out)
            continue
        if ref:
            parts.append(f"[-{ref}-]")
        if out:
            parts.append(f"{{+{out}+}}")
    return " ".join(parts)


def ops_as_dicts(reference: str, output: str) -> list[dict[str, str]]:
    """The diff opcodes as JSON-friendly dicts (for export)."""
    return [{"tag": op.tag, "reference": " ".join(t.word for t in op.reference),
             "output": " ".join(t.word for t in op.output)} for op in word_diff(reference, output)]
