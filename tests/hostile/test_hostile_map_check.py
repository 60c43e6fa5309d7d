"""A public visitor's *Check this map* click: within the public limits, not ~3,200 full prefills in one turn.

On main the check entered the admission gate as one generation (``Job("Map faithfulness check")``) and then ran
the full local check: 3,202 pictures on the demo (99 random orders × 2 curves × 16 inner points + 2) in batches
of 32 inside one checkpoint turn, plus a deep copy of the model for the sanity check — ~50× the largest sweep a
visitor may run, every other visitor of that checkpoint waiting. Run against main (the fix stashed), the first
assertion below fails: batches of 32 > ``LIMITS.max_batch_size`` (4); the picture count (3,202) and the single
turn fail too.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from dashboard.admission import GATE, Job, check_job
from dashboard.attention import faithfulness as fa
from dashboard.models.turns import TurnQueue
from dashboard.public import LIMITS, VisitorLimitError
from tests.attention_kit import captured_first_example

HOME = Path(__file__).resolve().parents[2] / "Home.py"


def test_a_visitors_map_check_stays_within_the_public_limits(own_demo_root: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VLMLAB_PUBLIC", "1")
    at = captured_first_example(own_demo_root)

    batches: list[int] = []  # pictures in each forward pass the check makes
    turns: list[str] = []  # checkpoint turns taken while the check runs
    copies: list[Any] = []
    real_inputs, real_turn, real_copy = fa._batched_inputs, TurnQueue.turn, fa.private_copy

    def counting_inputs(loaded: Any, images: Any, prompt: str, forced: Any) -> dict[str, Any]:
        batches.append(len(images))
        return real_inputs(loaded, images, prompt, forced)

    @contextmanager
    def counting_turn(queue: TurnQueue, *args: Any, **kwargs: Any) -> Iterator[None]:
        with real_turn(queue, *args, **kwargs):
            turns.append(queue.name)
            yield

    def counting_copy(loaded: Any) -> Any:
        copies.append(loaded)
        return real_copy(loaded)

    monkeypatch.setattr(fa, "_batched_inputs", counting_inputs)
    monkeypatch.setattr(TurnQueue, "turn", counting_turn)
    monkeypatch.setattr(fa, "private_copy", counting_copy)
    at.button(key="attn.faith_go").click().run()
    assert not at.exception, at.exception
    assert not at.error and not at.warning, [m.value for m in (*at.error, *at.warning)]

    assert batches and max(batches) <= LIMITS.max_batch_size, batches
    assert sum(batches) <= LIMITS.max_map_check_pictures, sum(batches)
    assert len(turns) >= len(batches)  # a turn per batch: other visitors' generations run in between
    assert copies == []  # no private copy of the whole model for an anonymous click
    stored = next(iter(at.session_state["attn.faith"].values()))
    orders = len(stored.deletion.seeds)
    assert orders == fa.FEWEST_ORDERS and stored.sanity is None
    # the page says how many random orders it used and what that means for p
    assert any(f"{orders} random orders" in i.value and f"1 / {orders + 1}" in i.value for i in at.info), \
        [i.value for i in at.info]
    assert GATE.running == 0


def test_a_map_check_whose_visitor_left_stops_before_its_next_batch(own_demo_root: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """main: a closed tab's check ran all its ~100 batches, holding a place for nobody (new identities are free,
    so a script could click and leave over and over). Now it stops before the next batch and frees its place."""
    import dashboard.ui.attention_faithfulness_view as view

    monkeypatch.setenv("VLMLAB_PUBLIC", "1")
    at = captured_first_example(own_demo_root)

    batches: list[int] = []
    real_inputs = fa._batched_inputs

    def counting_inputs(loaded: Any, images: Any, prompt: str, forced: Any) -> dict[str, Any]:
        batches.append(len(images))
        return real_inputs(loaded, images, prompt, forced)

    monkeypatch.setattr(fa, "_batched_inputs", counting_inputs)
    monkeypatch.setattr(view, "session_gone_check", lambda: lambda: len(batches) >= 3)  # gone after 2 batches
    at.button(key="attn.faith_go").click().run()
    assert not at.exception, at.exception
    assert len(batches) == 3  # the third batch's pictures were made, its forward pass never ran
    assert not at.session_state["attn.faith"] and GATE.running == 0


def test_a_check_over_the_picture_limit_is_refused_before_it_runs() -> None:
    check_job(Job("Map faithfulness check", pictures=LIMITS.max_map_check_pictures))
    with pytest.raises(VisitorLimitError, match="pictures per map check"):
        check_job(Job("Map faithfulness check", pictures=3_202))  # the local check on the demo's grid
