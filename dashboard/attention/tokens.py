"""How the Attention page names tokens: the way the answer text shows them, special tokens marked.

The answer is decoded with ``skip_special_tokens=True``, so control tokens (``</s>``, Qwen's
``<|im_end|>`` / ``<|video_pad|>`` / ``<|image_pad|>``) are not in it. Token buttons, captions and
logit-lens labels name every token, so a token that decoding drops is shown by its name with
:data:`SPECIAL_MARK`; every other token is shown as its decoded text (``" red"``, not a byte-level
BPE piece like ``"Ġred"``), with whitespace-only tokens made visible.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

SPECIAL_MARK = " (special)"
"""Appended to a special token's name: the answer text leaves these tokens out."""

_VISIBLE_WHITESPACE = str.maketrans({" ": "␣", "\n": "↵", "\t": "⇥", "\r": "␍"})


class TokenNames:
    """Callable ``ids -> labels`` for one tokenizer (each distinct id is decoded once)."""

    def __init__(self, processor: Any) -> None:
        self.tokenizer = getattr(processor, "tokenizer", processor)
        self._labels: dict[int, str] = {}
        self._special: dict[int, bool] = {}

    def is_special(self, token_id: int) -> bool:
        """True when the answer text would not show this token (decoding skips it as special)."""
        token_id = int(token_id)
        if token_id not in self._special:
            shown = self.tokenizer.decode([token_id], skip_special_tokens=True)
            self._special[token_id] = shown == "" and self.tokenizer.decode([token_id]) != ""
        return self._special[token_id]

    def label(self, token_id: int) -> str:
        token_id = int(token_id)
        if token_id not in self._labels:
            self._labels[token_id] = self._make_label(token_id)
        return self._labels[token_id]

    def _make_label(self, token_id: int) -> str:
        raw = str(self.tokenizer.convert_ids_to_tokens(token_id))
        if self.is_special(token_id):
            return raw + SPECIAL_MARK
        text = self.tokenizer.decode([token_id])
        if text == "" or "\ufffd" in text:  # part of a multi-byte character: the piece says more
            return raw
        return text.translate(_VISIBLE_WHITESPACE) if text.isspace() else text

    def __call__(self, ids: Sequence[int]) -> list[str]:
        return [self.label(i) for i in ids]


__all__ = ["SPECIAL_MARK", "TokenNames"]
