"""Rollout runs one extra forward pass (seconds on CPU, longer while waiting for the model's turn): the
Attention page must say so while it runs (issue 37: "rollout takes 2.6 s with no spinner").

A browser cannot check this without depending on wall time (Streamlit shows a spinner only after
0.5 s, and how long the pass takes depends on the machine), so this checks the call site itself:
the forward pass, and the wait for the model's turn before it, run inside a spinner that names
rollout. It fails if the spinner is removed or wraps only part of the work.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np

from dashboard.ui import attention_tools


class _Recorder:
    def __init__(self) -> None:
        self.events: list[str] = []
        self.spinner_open = False
        self.spinner_texts: list[str] = []

    @contextmanager
    def spinner(self, text: str = "", *args, **kwargs):
        self.spinner_texts.append(text)
        self.spinner_open = True
        self.events.append("spinner shown")
        try:
            yield
        finally:
            self.spinner_open = False
            self.events.append("spinner cleared")

    @contextmanager
    def generation_turn(self, checkpoint, job):
        self.events.append(f"turn taken (spinner {'on' if self.spinner_open else 'off'})")
        yield "loaded model"


class _FakeRun:
    checkpoint = "/runs/demo/checkpoint-300"

    def __init__(self, recorder: _Recorder) -> None:
        self.recorder = recorder

    def rollout_grid(self, loaded, step, upto, view):
        assert loaded == "loaded model"
        self.recorder.events.append(f"forward pass (spinner {'on' if self.recorder.spinner_open else 'off'})")
        return np.full((2, 2), 0.25)


def test_rollout_runs_inside_a_spinner_that_names_it(monkeypatch):
    recorder = _Recorder()
    monkeypatch.setattr(attention_tools.st, "spinner", recorder.spinner)
    monkeypatch.setattr(attention_tools, "generation_turn", recorder.generation_turn)
    grid = attention_tools.rollout_grid(_FakeRun(recorder), step=0, upto=3, view=None, errors=())
    assert grid is not None and grid.shape == (2, 2)
    assert recorder.events == ["spinner shown", "turn taken (spinner on)", "forward pass (spinner on)",
                               "spinner cleared"]
    assert len(recorder.spinner_texts) == 1 and "rolling attention out" in recorder.spinner_texts[0].lower()
    assert "0–3" in recorder.spinner_texts[0]  # says how far it rolls out
