"""A stand-in for :func:`dashboard.ui.cancel.session_gone_check` whose browser session can "leave".

Page tests patch it into a view module: ``polls`` proves the page handed the check to its
generation, ``gone`` decides what the check answers.
"""

from __future__ import annotations

from collections.abc import Callable


class GoneSession:
    def __init__(self, gone: bool = True) -> None:
        self.gone = gone
        self.made = 0
        self.polls = 0

    def factory(self) -> Callable[[], bool]:
        """What the patched ``session_gone_check()`` returns: a check that counts its polls."""
        self.made += 1

        def check() -> bool:
            self.polls += 1
            return self.gone

        return check
