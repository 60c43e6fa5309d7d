"""The app's settings as Streamlit sees them: environment, then ``.streamlit/secrets.toml``.

Its own module so that :mod:`dashboard.ui.visitor` (which needs the data directory) and
:mod:`dashboard.ui.resources` (which scopes history to the visitor) both read settings without
importing each other. Re-read on every call (cheap, and tests change the environment).
"""

from __future__ import annotations

import logging
import os

import streamlit as st

from dashboard.config import Settings, load_settings

logger = logging.getLogger(__name__)


def _secrets() -> dict[str, object]:
    try:
        return {k: v for k, v in st.secrets.items() if k.startswith("VLMLAB_")}
    except Exception:  # no secrets.toml: the normal case
        logger.debug("no usable .streamlit/secrets.toml", exc_info=True)
        return {}


def get_settings() -> Settings:
    return load_settings(secrets=_secrets())


def environment() -> dict[str, str]:
    """``VLMLAB_*`` values as the app sees them: ``secrets.toml`` overlaid by the environment."""
    return {**{k: str(v) for k, v in _secrets().items()}, **os.environ}
