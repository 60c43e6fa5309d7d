"""Public mode: when it is on, the per-visitor limits, the visitor token."""

from __future__ import annotations

import threading

import pytest

from dashboard.generation import GenerationSettings
from dashboard.public import (
    LIMITS,
    GenerationSlots,
    VisitorLimitError,
    check_settings,
    check_sweep,
    is_visitor_token,
    new_visitor_token,
    public_mode,
)


@pytest.mark.parametrize(("env", "expected"), [
    ({}, False),
    ({"SPACE_ID": "someone/vlm-lab"}, True),
    ({"VLMLAB_PUBLIC": "1"}, True),
    ({"VLMLAB_PUBLIC": "true"}, True),
    ({"SPACE_ID": "someone/private-lab", "VLMLAB_PUBLIC": "0"}, False),  # a private Space turns it off
    ({"SPACE_ID": "  "}, False),
])
def test_public_mode_follows_the_environment(env, expected):
    assert public_mode(env) is expected


def test_visitor_tokens_are_unguessable_and_validated():
    tokens = {new_visitor_token() for _ in range(200)}
    assert len(tokens) == 200 and all(is_visitor_token(t) and len(t) >= 24 for t in tokens)
    for bad in ("", "abc", "x" * 100, "../../etc", "a b" * 10, None, 42):
        assert not is_visitor_token(bad)


def test_max_new_tokens_is_capped():
    check_settings(GenerationSettings(max_new_tokens=LIMITS.max_new_tokens))
    with pytest.raises(VisitorLimitError, match=f"caps max new tokens at {LIMITS.max_new_tokens}"):
        check_settings(GenerationSettings(max_new_tokens=LIMITS.max_new_tokens + 1))


def test_sweeps_are_capped_in_examples_times_checkpoints():
    check_sweep(LIMITS.max_sweep_generations // 4, 4)
    with pytest.raises(VisitorLimitError, match=r"200 × 8 = 1600"):
        check_sweep(200, 8)


def test_one_generation_at_a_time_per_visitor():
    slots = GenerationSlots(per_visitor=1)
    with slots.hold("visitor-a"):
        with pytest.raises(VisitorLimitError, match="already have a generation running"), slots.hold("visitor-a"):
            pass
        with slots.hold("visitor-b"):  # another visitor is not affected
            assert slots.running("visitor-b") == 1
    assert slots.running("visitor-a") == 0
    with slots.hold("visitor-a"):  # free again once the first ended
        pass


def test_slot_is_released_when_the_generation_fails():
    slots = GenerationSlots(per_visitor=1)
    with pytest.raises(RuntimeError), slots.hold("v"):
        raise RuntimeError("boom")
    assert slots.running("v") == 0


def test_concurrent_tabs_of_one_visitor_get_one_slot():
    slots = GenerationSlots(per_visitor=1)
    inside = threading.Event()
    release = threading.Event()
    outcomes: list[str] = []

    def tab() -> None:
        try:
            with slots.hold("v"):
                inside.set()
                release.wait(5)
                outcomes.append("ran")
        except VisitorLimitError:
            outcomes.append("refused")

    first = threading.Thread(target=tab)
    first.start()
    inside.wait(5)
    others = [threading.Thread(target=tab) for _ in range(3)]
    for t in others:
        t.start()
    for t in others:
        t.join(5)
    release.set()
    first.join(5)
    assert sorted(outcomes) == ["ran", "refused", "refused", "refused"]
