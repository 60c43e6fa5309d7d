"""A cancel flag raised *during* a pooled model's generation, for the should-stop wiring tests.

The flag goes up after ``after`` forward passes, i.e. mid-generation; ``calls`` then tells
whether the generation noticed (a few passes) or ran to ``max_new_tokens`` regardless.
"""

from __future__ import annotations

from typing import Any


class MidGenerationCancel:
    """Counts forward passes of ``loaded.model`` and sets the cancel flag after ``after`` of them."""

    def __init__(self, loaded: Any, after: int = 3) -> None:
        self.calls = 0
        self.flag = False
        self.after = after
        model = loaded.model
        model.generation_config.eos_token_id = None  # the untrained model must not stop by itself

        def count(_module: Any, _args: Any) -> None:  # a hook: generate inspects forward's signature
            self.calls += 1
            if self.calls >= self.after:
                self.flag = True

        model.register_forward_pre_hook(count)

    def should_stop(self) -> bool:
        return self.flag
