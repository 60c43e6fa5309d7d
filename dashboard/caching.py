"""The caching policy, and the one memo that logic outside Streamlit uses.

What is cached where, and what invalidates it:

===============================  =====================================  ===========================================
what                             where                                  invalidated by
===============================  =====================================  ===========================================
model pool, history store        ``st.cache_resource`` in               a changed setting (they are keyed by it);
                                 ``dashboard/ui/resources.py``          the pool evicts by its byte budget
parsed run (``RunData``)         ``st.cache_resource`` (≤ 8 runs)       ``run_signature``: any checkpoint, state or
                                                                        event file's mtime/size changing
eval sets                        ``st.cache_data`` (ui)                 the file's mtime
parsed trainer_state / event     :class:`FileMemo` here (LRU)           the file's (path, mtime_ns, size): a live
files, thumbnails                                                       run re-parses only the files that changed
Timeline figures                 :class:`Memo` ``timeline-figures``     the run's ``run_signature`` and every chart
                                 (``timeline/figure.cached_figure``)    input (options, overlays, saved scores, best)
per-visitor results (last        ``st.session_state``                   the browser session ending; new inputs
capture, comparison outputs)                                            (keys include checkpoint signature + settings)
large event files' parsed        disk (Parquet, ``event-columns/`` in   the file's path, size, mtime and first 4 KB;
columns                          the data dir), ``runs/column_cache``   a grown file is read only past the cached end
history, saved eval scores       disk (SQLite, ``eval_results/``)       never silently: scores carry settings key and
                                                                        checkpoint signature and are recomputed when
                                                                        either differs
===============================  =====================================  ===========================================

Nothing is cached that Streamlit's cache clearing cannot reach: a :class:`Memo` keeps its
entries in a store obtained from :func:`use_store_provider`; the app installs one backed by
``st.cache_resource`` (``dashboard/ui/resources.py``), so *Clear caches* (or
``st.cache_resource.clear()``) empties the memos too. Without Streamlit (CLI, tests, benches)
stores are plain per-process dicts and :func:`clear_all` empties them. No ``functools.lru_cache``
and no hand-written module-level dicts elsewhere.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any, Generic, ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")

StoreProvider = Callable[[str], "OrderedDict[Hashable, Any]"]
_LOCAL_STORES: dict[str, OrderedDict[Hashable, Any]] = {}
_LOCK = threading.Lock()


def _local_store(name: str) -> OrderedDict[Hashable, Any]:
    with _LOCK:
        return _LOCAL_STORES.setdefault(name, OrderedDict())


_provider: StoreProvider = _local_store


def use_store_provider(provider: StoreProvider | None) -> None:
    """Where memos keep their entries (``None``: plain per-process dicts)."""
    global _provider
    _provider = provider or _local_store


def clear_all() -> None:
    """Empty every memo's store (the per-process ones; Streamlit clears its own)."""
    with _LOCK:
        for store in _LOCAL_STORES.values():
            store.clear()


class Memo(Generic[P, R]):
    """A thread-safe LRU memo of ``func`` under the store named ``name``.

    ``key`` maps the call's arguments to the cache key (default: the arguments themselves).
    ``calls`` counts real computations (tests check that unchanged inputs are not recomputed).
    """

    def __init__(self, func: Callable[P, R], name: str, maxsize: int = 128,
                 key: Callable[..., Hashable | None] | None = None) -> None:
        self._func, self.name, self.maxsize = func, name, maxsize
        self._key = key or (lambda *args, **kwargs: (args, tuple(sorted(kwargs.items()))))
        self._lock = threading.Lock()
        self.calls = 0
        self.__doc__ = func.__doc__

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        key = self._key(*args, **kwargs)
        if key is None:  # uncacheable (e.g. the file cannot be stat'ed): compute, do not store
            return self._func(*args, **kwargs)
        store = _provider(self.name)
        with self._lock:
            if key in store:
                store.move_to_end(key)
                return store[key]  # type: ignore[no-any-return]
        result = self._func(*args, **kwargs)
        with self._lock:
            self.calls += 1
            store[key] = result
            while len(store) > self.maxsize:
                store.popitem(last=False)
        return result

    def clear(self) -> None:
        with self._lock:
            _provider(self.name).clear()


def memoize(name: str, maxsize: int = 128) -> Callable[[Callable[P, R]], Memo[P, R]]:
    """Decorator form of :class:`Memo` keyed by the call's (hashable) arguments."""
    return lambda func: Memo(func, name, maxsize)


def file_key(path: str | Path, *args: Hashable, **kwargs: Hashable) -> Hashable | None:
    """(path, mtime_ns, size, *args): a file's memo entry is dropped as soon as it changes."""
    try:
        info = Path(path).stat()
    except OSError:
        return None
    return (str(path), info.st_mtime_ns, info.st_size, args, tuple(sorted(kwargs.items())))


def file_memo(name: str, maxsize: int = 16) -> Callable[[Callable[P, R]], Memo[P, R]]:
    """Decorator: memoise a function whose first argument is a file, by the file's stat."""
    return lambda func: Memo(func, name, maxsize, key=file_key)
