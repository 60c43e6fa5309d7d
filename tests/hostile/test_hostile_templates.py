"""Chat templates that run in C: refused in bounded time while the server process keeps running.

Each case fails on main (6295f64), where templates rendered in a thread of the server and code
running in C held the GIL. This file run against main's code (``git archive main`` + this file,
busy 2-core machine): all 9 failed --

* ``(((99999999999 ** 64) ** 64) ** 64) ** 8`` (the issue's): this process stood still 4.8 s
  (23.6 s on the issue's faster machine, where the third power ends before the 2 s check);
* ``(((99999999999 ** 64) ** 64) ** 7) ** 64``: one C call, refused after 113 s (stood still 60 s
  in a separate run);
* ``'%0999999999d' % 1`` / ``'%0*d' % (999999999, 1)``: refused after 38 / 42 s (peak RSS 3.9 GB
  in a separate run);
* the ``format`` filter, ``str.format`` and a nested ``str.format`` width: stood still 3.2 / 1.9 / 2.0 s;
* ``('x' * 100000).replace('', 'y' * 20000)`` (a 2 GB result built in C, size-checked only
  after): stood still 5.1 s (2.0 GB);
* squaring a number in a loop (each ``*`` checked for time only before it runs): 5.3 s.

Now the sandbox refuses the number and width cases before computing (clear message) and the
worker process's address-space limit refuses the ``replace`` blow-up; the test process's heartbeat
and another "session"'s normal renders keep going (gap and render < 1 s), and this process's peak
memory does not grow 512 MB. The server-level version (health endpoint and another session's page)
is ``test_hostile_template_server.py``.
"""

from __future__ import annotations

import resource

import pytest

from dashboard.chat_template import MAX_SECONDS, ChatTemplateError, render_chat_template
from tests.liveness_kit import NORMAL_OUTPUT, Liveness

ANSWER_WITHIN_S = 1.0
REFUSED_WITHIN_S = MAX_SECONDS + 10.0  # the deadline plus a worker restart on a loaded machine
MEMORY_BUDGET_KB = 512 * 1024  # ru_maxrss is in KiB on Linux

HOSTILE = {
    "power-tower-issue": ("{{ (((99999999999 ** 64) ** 64) ** 64) ** 8 }}", "bits"),
    "power-tower-one-call": ("{{ (((99999999999 ** 64) ** 64) ** 7) ** 64 }}", "bits"),
    "percent-width": ("{{ '%0999999999d' % 1 }}", "characters wide"),
    "percent-star-width": ("{{ '%0*d' % (999999999, 1) }}", "characters wide"),
    "format-filter-width": ("{{ '%0999999999d'|format(1) }}", "characters wide"),
    "str-format-width": ("{{ '{:0999999999d}'.format(1) }}", "characters wide"),
    "str-format-nested-width": ("{{ '{:{}}'.format(1, '999999999') }}", "characters wide"),
    "replace-blow-up": ("{{ ('x' * 100000).replace('', 'y' * 20000) }}", "MB of memory"),
    "multiply-in-loop": ("{% set ns = namespace(n=7) %}{% for i in range(40) %}"
                         "{% set ns.n = ns.n * ns.n %}{% endfor %}{{ ns.n }}", "bits"),
}


@pytest.fixture(scope="module", autouse=True)
def warm_workers() -> None:
    assert render_chat_template("{{ 'warm' }}", {}) == "warm"


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_template_is_refused_while_this_process_keeps_running(name):
    template, reason = HOSTILE[name]
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with Liveness(render_chat_template) as live, pytest.raises(ChatTemplateError) as refused:
        render_chat_template(template, {"messages": []})
    took = live.ended - live.began
    assert took < REFUSED_WITHIN_S, f"{name}: refused after {took:.1f} s"
    assert live.max_gap_s < ANSWER_WITHIN_S, f"{name}: this process stood still {live.max_gap_s:.1f} s"
    assert live.slowest_render_s < ANSWER_WITHIN_S, f"{name}: a normal render took {live.slowest_render_s:.1f} s"
    assert live.outputs == {NORMAL_OUTPUT}, live.outputs
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before
    assert grown < MEMORY_BUDGET_KB, f"{name}: peak memory grew {grown / 1024:.0f} MB"
    message = str(refused.value)
    assert reason in message and "Traceback" not in message and len(message) < 300, message
