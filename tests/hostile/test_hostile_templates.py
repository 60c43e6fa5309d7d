"""Chat templates that run in C: refused in bounded time while the server process keeps running.

Each case failed on main (commit 6295f64), where templates rendered in a thread of the server and
code running in C held the GIL; measured on the 2-core test machine with the heartbeat below:

* ``(((99999999999 ** 64) ** 64) ** 64) ** 8`` (the issue's): every thread stopped 2.2 s here
  (23.6 s on the issue's faster machine, where the third power finished before the 2 s check);
* ``(((99999999999 ** 64) ** 64) ** 7) ** 64``: one C call, everything stopped 60.4 s;
* ``'%0999999999d' % 1``: stopped 20.4 s of a 56.9 s render, peak RSS 3.93 GB;
* ``'{:0999999999d}'.format(1)``: stopped 1.8 s, 1.0 GB;
* ``('x' * 100000).replace('', 'y' * 20000)`` (a 2 GB result built in C, checked only after):
  stopped 4.0 s, 2.0 GB.

Now the sandbox refuses the first four before computing (clear message) and the worker process's
address-space limit refuses the last; the test process's heartbeat and another "session"'s normal
renders keep going (gap and render < 1 s), and this process's peak memory does not grow 512 MB.
The server-level version (health endpoint and another session's page) is
``test_hostile_template_server.py``.
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
    with Liveness(render_chat_template) as live, pytest.raises(ChatTemplateError, match=reason) as refused:
        render_chat_template(template, {"messages": []})
    took = live.ended - live.began
    assert took < REFUSED_WITHIN_S, f"{name}: refused after {took:.1f} s"
    assert live.max_gap_s < ANSWER_WITHIN_S, f"{name}: this process stood still {live.max_gap_s:.1f} s"
    assert live.slowest_render_s < ANSWER_WITHIN_S, f"{name}: a normal render took {live.slowest_render_s:.1f} s"
    assert live.outputs == {NORMAL_OUTPUT}, live.outputs
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before
    assert grown < MEMORY_BUDGET_KB, f"{name}: peak memory grew {grown / 1024:.0f} MB"
    assert "Traceback" not in str(refused.value) and len(str(refused.value)) < 300
