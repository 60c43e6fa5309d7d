"""Logging setup: one handler however often the router reruns, the configured level applied."""

from __future__ import annotations

import logging

from dashboard.logs import configure_logging


def test_configure_logging_is_idempotent_and_sets_the_level() -> None:
    root = logging.getLogger("dashboard")
    before_level, before_handlers = root.level, list(root.handlers)
    try:
        configure_logging("DEBUG")
        configure_logging("INFO")
        ours = [h for h in root.handlers if h.get_name() == "vlmlab"]
        assert len(ours) == 1
        assert root.level == logging.INFO
        assert logging.getLogger("dashboard.compare.runner").getEffectiveLevel() == logging.INFO
    finally:
        root.setLevel(before_level)
        root.handlers[:] = before_handlers
