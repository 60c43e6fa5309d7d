"""Logging setup: one logger per module (``logging.getLogger(__name__)``), one level for the app.

Modules only *create* loggers; the app (Streamlit router, CLI) calls :func:`configure_logging`
once per run with ``VLMLAB_LOG_LEVEL`` (default ``WARNING``). Every error the app recovers from
— a fallback taken, a broken file skipped, a row scored as a failure — is logged at WARNING with
its traceback, so ``VLMLAB_LOG_LEVEL=DEBUG`` shows the details the UI message leaves out.
"""

from __future__ import annotations

import logging
import sys

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
DEFAULT_LEVEL = "WARNING"
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_HANDLER_NAME = "vlmlab"


def configure_logging(level: str = DEFAULT_LEVEL) -> logging.Logger:
    """Set the ``dashboard`` loggers' level and give them one stderr handler (idempotent: the
    router runs on every rerun)."""
    root = logging.getLogger("dashboard")
    root.setLevel(level.upper())
    if not any(h.get_name() == _HANDLER_NAME for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.set_name(_HANDLER_NAME)
        handler.setFormatter(logging.Formatter(_FORMAT))
        root.addHandler(handler)
    return root
