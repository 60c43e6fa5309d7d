"""Process-wide objects shared by every page and browser session (``st.cache_resource``).

Settings are re-read on every call (cheap, and tests change the environment); the pool and
the history store are cached per configuration so a changed setting gets a fresh object. The
stores of :mod:`dashboard.caching`'s memos live here too, so Streamlit's cache clearing reaches
every cache (the whole policy is in that module's docstring).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import streamlit as st

from dashboard import caching
from dashboard.config import Settings
from dashboard.ui.settings_source import get_settings
from dashboard.ui.visitor import current_visitor

if TYPE_CHECKING:
    from dashboard.history import HistoryStore
    from dashboard.models.pool import ModelPool
    from dashboard.runs.run import RunData


@st.cache_resource(show_spinner=False)
def _memo_store(name: str) -> OrderedDict[Hashable, Any]:
    """One memo's entries; dropped by ``st.cache_resource.clear()`` like every other cache."""
    return OrderedDict()


caching.use_store_provider(_memo_store)


@st.cache_resource(show_spinner=False)
def _pool_for(memory_budget: str, device: str, allow_pickle: bool, trust_remote_code: bool,
              runs_roots: tuple[str, ...] = ()) -> ModelPool:
    from dashboard.models.pool import ModelPool
    from dashboard.public import torch_threads

    threads = torch_threads()
    if threads is not None:  # before the first generation: one process-wide setting
        import torch

        torch.set_num_threads(threads)
    return ModelPool.from_settings(Settings(memory_budget=memory_budget, device=device,
                                            allow_pickle=allow_pickle, trust_remote_code=trust_remote_code,
                                            runs_roots=tuple(Path(r) for r in runs_roots) or (Path("runs"),)))


def get_pool() -> ModelPool:
    """The one memory-budgeted model pool of this process (per configuration)."""
    s = get_settings()
    return _pool_for(s.memory_budget, s.device, s.allow_pickle, s.trust_remote_code,
                     tuple(str(r) for r in s.runs_roots))


@st.cache_resource(show_spinner=False)
def _history_for(db_path: str) -> HistoryStore:
    from dashboard.history import HistoryStore

    return HistoryStore(Path(db_path))


def get_history() -> HistoryStore:
    """The persistent (SQLite) generation history in the configured data directory.

    Public mode: scoped to this browser's server-issued visitor (nobody sees another visitor's rows)
    and rows past the retention period are dropped.
    """
    store = _history_for(str(get_settings().data_dir / "history.sqlite"))
    visitor = current_visitor()
    if visitor is None:  # local use: one shared history
        return store
    _purge_daily(store)
    return store.scoped(visitor)


_last_purge: dict[str, float] = {}


def _purge_daily(store: HistoryStore) -> None:
    """Public-mode retention, applied at most once a day per database and process."""
    import time

    from dashboard.public import LIMITS

    now = time.time()
    if now - _last_purge.get(str(store.path), 0.0) >= 24 * 3600:
        _last_purge[str(store.path)] = now
        store.purge_older_than(LIMITS.retention_days * 24 * 3600)


@st.cache_resource(show_spinner=False, max_entries=8)
def _run_for(run_path: str, roots: tuple[str, ...], signature: tuple) -> RunData:
    from dashboard.runs.run import load_run

    return load_run(Path(run_path), [Path(r) for r in roots])


def get_run(run_path: str | Path) -> RunData:
    """The parsed run, re-read only when its files change (keyed by ``run_signature``).

    Shared, not copied (``cache_resource``): a million-entry log is ~100 MB, so callers must
    treat the returned ``RunData`` as read-only.

    Raises ``PathOutsideRoots`` / ``RunNotFoundError`` like :func:`dashboard.runs.run.load_run`.
    """
    from dashboard.paths import resolve_within
    from dashboard.runs.run import run_signature

    roots = get_settings().runs_roots
    resolved = resolve_within(run_path, roots)
    return _run_for(str(resolved), tuple(str(r) for r in roots), run_signature(resolved))
