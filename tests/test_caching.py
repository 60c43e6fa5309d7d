"""The one memo: LRU by key, file entries dropped when the file changes, and clearable by Streamlit."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dashboard import caching


@pytest.fixture(autouse=True)
def local_stores():
    """Each test starts from plain per-process stores (the app installs Streamlit-backed ones)."""
    before = caching._provider
    caching.use_store_provider(None)
    caching.clear_all()
    yield
    caching.clear_all()
    caching.use_store_provider(before)


def test_memo_is_an_lru_that_counts_real_calls() -> None:
    memo = caching.memoize("test-lru", maxsize=2)(lambda x: x * 2)
    assert [memo(1), memo(1), memo(2)] == [2, 2, 4]
    assert memo.calls == 2
    memo(3)  # evicts 1 (least recently used)
    memo(1)
    assert memo.calls == 4
    caching.clear_all()
    memo(3)
    assert memo.calls == 5


def test_file_memo_reparses_only_a_changed_file(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_text("one")
    read = caching.file_memo("test-files")(lambda p: Path(p).read_text())
    assert read(path) == "one" and read(path) == "one" and read.calls == 1
    path.write_text("three")  # new size (and mtime)
    os.utime(path, ns=(1, 1))
    assert read(path) == "three" and read.calls == 2


def test_file_memo_does_not_store_what_it_cannot_stat(tmp_path: Path) -> None:
    seen = []
    memo = caching.file_memo("test-missing")(lambda p: seen.append(p) or "x")
    memo(tmp_path / "nope")
    memo(tmp_path / "nope")
    assert len(seen) == 2


def test_streamlit_cache_clearing_reaches_the_memos(tmp_path: Path) -> None:
    """With the app's provider (``dashboard/ui/resources.py``), ``st.cache_resource.clear()`` empties memos."""
    import streamlit as st

    from dashboard.ui import resources

    caching.use_store_provider(resources._memo_store)
    memo = caching.memoize("test-streamlit")(lambda x: x + 1)
    memo(1)
    memo(1)
    assert memo.calls == 1
    st.cache_resource.clear()
    memo(1)
    assert memo.calls == 2
