"""The model pool: byte budget, LRU order, pinning, shared concurrent loads, freeing memory."""

from __future__ import annotations

import gc
import threading
import time
import weakref
from pathlib import Path

import pytest
import torch

from dashboard.config import Settings
from dashboard.models.loading import load_checkpoint
from dashboard.models.pool import CheckpointLoadError, ModelPool, ModelTooLargeError, PoolBusyError, resolve_budget


@pytest.fixture(scope="module")
def model_bytes(tiny_checkpoints: list[Path]) -> int:
    return load_checkpoint(tiny_checkpoints[0], torch.device("cpu")).nbytes


def make_pool(budget: int, **kwargs) -> ModelPool:
    return ModelPool(budget, device="cpu", **kwargs)


def names(pool: ModelPool) -> list[str]:
    return [e.path.name for e in pool.entries()]


def test_budget_respected_and_lru_evicted(tiny_checkpoints, model_bytes):
    pool = make_pool(int(model_bytes * 2.5))  # room for two models
    a, b, c = tiny_checkpoints[:3]
    with pool.acquire(a):
        pass
    with pool.acquire(b):
        pass
    assert names(pool) == ["checkpoint-2", "checkpoint-1"]  # most recent first
    with pool.acquire(a):  # touch a → b is now least recently used
        pass
    with pool.acquire(c):
        pass
    assert names(pool) == ["checkpoint-3", "checkpoint-1"]
    assert pool.used_bytes <= pool.budget_bytes
    assert pool.used_bytes == 2 * model_bytes
    assert pool.load_count == 3


def test_pool_hit_does_not_reload(tiny_checkpoints):
    pool = make_pool(10**9)
    with pool.acquire(tiny_checkpoints[0]) as first:
        pass
    with pool.acquire(str(tiny_checkpoints[0]) + "/") as second:  # same folder spelled differently
        pass
    assert first is second
    assert pool.load_count == 1


def test_concurrent_acquires_of_one_checkpoint_load_once(tiny_checkpoints):
    pool = make_pool(10**9)
    loads = []
    real_loader = pool._loader

    def slow_loader(*args, **kwargs):
        loads.append(threading.get_ident())
        time.sleep(0.3)  # widen the race window: every thread arrives while the load runs
        return real_loader(*args, **kwargs)

    pool._loader = slow_loader
    barrier = threading.Barrier(6)
    got: list[object] = []
    errors: list[BaseException] = []

    def worker():
        try:
            barrier.wait()
            with pool.acquire(tiny_checkpoints[1]) as loaded:
                got.append(loaded)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert len(got) == 6
    assert len(loads) == 1 and pool.load_count == 1
    assert all(g is got[0] for g in got)


def test_eviction_frees_the_model(tiny_checkpoints, model_bytes):
    pool = make_pool(int(model_bytes * 1.5))
    with pool.acquire(tiny_checkpoints[0]) as loaded:
        ref = weakref.ref(loaded.model)
    del loaded
    with pool.acquire(tiny_checkpoints[1]):  # forces eviction of checkpoint-1
        pass
    gc.collect()
    assert ref() is None, "evicted model is still referenced somewhere"
    assert names(pool) == ["checkpoint-2"]


def test_explicit_evict_and_clear(tiny_checkpoints):
    pool = make_pool(10**9)
    for ckpt in tiny_checkpoints[:3]:
        with pool.acquire(ckpt):
            pass
    assert pool.evict(tiny_checkpoints[0]) is True
    assert pool.evict(tiny_checkpoints[0]) is False  # already gone
    assert names(pool) == ["checkpoint-3", "checkpoint-2"]
    pool.clear()
    assert pool.entries() == [] and pool.used_bytes == 0


def test_model_in_use_is_never_evicted(tiny_checkpoints, model_bytes):
    pool = make_pool(int(model_bytes * 1.5), busy_timeout_s=0.5)
    pinned = threading.Event()
    release = threading.Event()

    def generation_in_another_session():
        with pool.acquire(tiny_checkpoints[0]):
            pinned.set()
            release.wait(20)

    thread = threading.Thread(target=generation_in_another_session)
    thread.start()
    try:
        assert pinned.wait(20)
        assert pool.evict(tiny_checkpoints[0]) is False
        assert pool.entries()[0].in_use == 1
        started = time.monotonic()
        with pytest.raises(PoolBusyError, match="in use by running generations"), pool.acquire(tiny_checkpoints[1]):
            pass
        assert time.monotonic() - started >= 0.4  # it waited for the pin before giving up
        assert names(pool) == ["checkpoint-1"]
    finally:
        release.set()
        thread.join(20)
    with pool.acquire(tiny_checkpoints[1]):  # once released it can make room
        pass
    assert names(pool) == ["checkpoint-2"]


def test_same_thread_needing_two_models_over_budget_fails_fast(tiny_checkpoints, model_bytes):
    pool = make_pool(int(model_bytes * 1.5), busy_timeout_s=30)
    started = time.monotonic()
    with (pool.acquire(tiny_checkpoints[0]), pytest.raises(PoolBusyError, match="this same request"),
          pool.acquire(tiny_checkpoints[1])):
        pass
    assert time.monotonic() - started < 10  # no self-deadlock wait


def test_waiting_load_proceeds_when_pin_released(tiny_checkpoints, model_bytes):
    pool = make_pool(int(model_bytes * 1.5), busy_timeout_s=20)
    done: list[str] = []

    def second():
        with pool.acquire(tiny_checkpoints[1]):
            done.append("loaded")

    waiting = threading.Event()

    class ObservedCondition(threading.Condition):
        def wait(self, timeout=None):  # the pool waits here only when the budget is held by pins
            waiting.set()
            return super().wait(timeout)

    pool._cond = ObservedCondition(threading.RLock())
    with pool.acquire(tiny_checkpoints[0]):
        thread = threading.Thread(target=second)
        thread.start()
        assert waiting.wait(20), "the second load never waited for the pinned model"
        assert done == [] and pool.load_count == 1  # it waits instead of loading beside the pin
    thread.join(20)
    assert done == ["loaded"]
    assert names(pool) == ["checkpoint-2"]


def test_model_larger_than_budget_is_refused_before_loading(tiny_checkpoints, model_bytes):
    pool = make_pool(model_bytes // 2)
    with pytest.raises(ModelTooLargeError, match="whole model pool budget"), pool.acquire(tiny_checkpoints[0]):
        pass
    assert pool.load_count == 0
    assert pool.entries() == []


def test_failed_load_leaves_pool_usable(tiny_checkpoints, tmp_path):
    pool = make_pool(10**9)
    with pytest.raises(Exception, match="does not exist"), pool.acquire(tmp_path / "nope"):
        pass
    with pool.acquire(tiny_checkpoints[0]):
        pass
    assert pool.load_count == 1


def test_resolve_budget_forms():
    cpu = torch.device("cpu")
    assert resolve_budget("4GB", cpu) == 4 * 10**9
    assert resolve_budget("512MiB", cpu) == 512 * 2**20
    assert resolve_budget("123456", cpu) == 123456
    auto = resolve_budget("auto", cpu)
    half = resolve_budget("0.5", cpu)
    assert auto > 0 and half > 0
    assert abs(auto - half) / half < 0.2  # both ≈ half the available RAM (it moves a little)
    with pytest.raises(ValueError):
        resolve_budget("-1", cpu)


def test_from_settings_uses_settings():
    pool = ModelPool.from_settings(Settings(memory_budget="2GB", device="cpu", allow_pickle=True))
    assert pool.budget_bytes == 2 * 10**9
    assert pool.device.type == "cpu" and pool.dtype == torch.float32
    assert pool.allow_pickle is True and pool.trust_remote_code is False


def wait_for_prefetch(pool: ModelPool, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while pool._prefetch_thread is not None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert pool._prefetch_thread is None, "prefetch did not finish"


def test_prefetch_loads_in_the_background_and_the_request_reuses_it(tiny_checkpoints):
    pool = make_pool(10**9)
    assert pool.prefetch(tiny_checkpoints[0])
    wait_for_prefetch(pool)
    assert names(pool) == ["checkpoint-1"] and pool.prefetch_count == 1
    assert [e.in_use for e in pool.entries()] == [0]  # the prefetch left no pin behind: evictable
    with pool.acquire(tiny_checkpoints[0]):
        pass
    assert pool.load_count == 1  # the request found it loaded
    assert not pool.prefetch(tiny_checkpoints[0])  # already loaded: nothing scheduled


def test_prefetch_never_evicts(tiny_checkpoints, model_bytes):
    pool = make_pool(int(model_bytes * 1.5))  # room for one model
    with pool.acquire(tiny_checkpoints[0]):
        pass
    assert pool.prefetch(tiny_checkpoints[1])
    wait_for_prefetch(pool)
    assert names(pool) == ["checkpoint-1"] and pool.prefetch_count == 0 and pool.load_count == 1


def test_newest_prefetch_replaces_one_still_waiting(tiny_checkpoints):
    pool = make_pool(10**9)
    real_loader = pool._loader
    started = threading.Event()
    release = threading.Event()

    def slow_loader(*args, **kwargs):
        started.set()
        release.wait(10)
        return real_loader(*args, **kwargs)

    pool._loader = slow_loader
    a, b, c = tiny_checkpoints[:3]
    pool.prefetch(a)
    assert started.wait(10)
    pool.prefetch(b)  # waits behind a ...
    pool.prefetch(c)  # ... and is replaced by c, the user's latest choice
    release.set()
    wait_for_prefetch(pool)
    assert sorted(names(pool)) == ["checkpoint-1", "checkpoint-3"]


def test_failed_prefetch_is_silent_and_the_request_reports_it(tmp_path):
    pool = make_pool(10**9)
    broken = tmp_path / "checkpoint-9"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    assert pool.prefetch(broken)
    wait_for_prefetch(pool)
    assert names(pool) == []
    with pytest.raises(CheckpointLoadError), pool.acquire(broken):
        pass
