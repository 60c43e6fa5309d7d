"""The worker-process cage of ``dashboard/chat_template.py`` and ``dashboard/template_worker.py``.

Normal templates render exactly as transformers' ``apply_chat_template`` does; a warm worker is
reused; a worker stuck in C is killed at the deadline and replaced while this process keeps
running; memory and CPU-time limits end a worker with a message; the worker sees no environment.
Each wait here polls a condition with a deadline.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from dashboard.chat_template import ChatTemplateError, TemplateWorkers, render_chat_template
from dashboard.demo.modeling import CHAT_TEMPLATE, QUESTION_FIRST_TEMPLATE, build_tokenizer
from dashboard.template_worker import MEMORY_HEADROOM_BYTES, WorkerProcess
from tests.liveness_kit import NORMAL_OUTPUT, Liveness
from tests.worker_stand_in import command as stand_in_command

GAP_LIMIT_S = 1.0
"""The issue's bar: the server answers within 1 s while a hostile template renders."""

CONVERSATIONS = [
    [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "where is the red object ?"}]}],
    [{"role": "user", "content": [{"type": "text", "text": "what colour ?"}, {"type": "image"}]},
     {"role": "assistant", "content": [{"type": "text", "text": "red"}]},
     {"role": "user", "content": "and the shape ?"}],
    [{"role": "user", "content": "plain text, \"quotes\" & <tags> … ünïcode"}],
]
TOJSON_TEMPLATE = ("{%- for m in messages -%}{%- if loop.index > 2 %}{% break %}{% endif -%}"
                   "<{{ m.role }}>{{ m.content | tojson }}{{ eos_token }}\n{%- endfor -%}"
                   "{%- if add_generation_prompt %}<assistant>{% endif %}")


def until(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


@pytest.mark.parametrize("template", [CHAT_TEMPLATE, QUESTION_FIRST_TEMPLATE, TOJSON_TEMPLATE],
                         ids=["llava-1.5", "demo", "tojson-loopcontrols"])
@pytest.mark.parametrize("conversation", range(len(CONVERSATIONS)))
@pytest.mark.parametrize("generation_prompt", [True, False])
def test_normal_templates_render_as_transformers_does(template, conversation, generation_prompt):
    tokenizer = build_tokenizer(["where", "is", "the", "red", "object", "?"], template)
    messages = CONVERSATIONS[conversation]
    special = {k: v for k, v in tokenizer.special_tokens_map.items() if isinstance(v, str)}
    ours = render_chat_template(template, {**special, "messages": messages, "add_generation_prompt": generation_prompt})
    assert ours == tokenizer.apply_chat_template(messages, add_generation_prompt=generation_prompt, tokenize=False)
    assert ours  # not vacuous


def test_a_warm_worker_is_reused():
    pool = TemplateWorkers(warm=2)
    try:
        assert pool.render("{{ a }}", {"a": 1}) == "1"
        until(lambda: len(pool.pids()) == 2)
        pids = set(pool.pids())
        for n in range(20):
            assert pool.render("{{ a + 1 }}", {"a": n}) == str(n + 1)
        assert set(pool.pids()) == pids and pool.started == 2
    finally:
        pool.close()


def test_refusals_and_errors_keep_the_worker():
    pool = TemplateWorkers(warm=1)
    try:
        pool.render("warm", {})
        pid = pool.pids()
        for template in ["{{ 'x' * 10**10 }}", "{{ ''.__class__ }}{{ ''.__class__.__mro__[1] }}", "{% if %}",
                         "{{ raise_exception('no system role') }}"]:
            with pytest.raises(ChatTemplateError):
                pool.render(template, {})
        assert pool.pids() == pid and pool.started == 1
    finally:
        pool.close()


def test_nested_loops_end_at_the_deadline_in_the_worker():
    pool = TemplateWorkers(warm=1)
    try:
        with pytest.raises(ChatTemplateError, match=r"longer than 0\.5 s"):
            pool.render("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", {},
                        timeout_s=0.5)
        assert pool.render("{{ 'still' }}", {}) == "still"
    finally:
        pool.close()


def test_a_worker_stuck_in_c_is_killed_at_the_deadline_while_this_process_runs():
    """The stand-in worker holds the GIL in one ~60 s big-integer power; it lives in another process,
    so this process's threads keep running, renders on a second pool complete meanwhile, and the
    worker is killed when its deadline passes (its replacement then serves)."""
    stuck = TemplateWorkers(warm=1, command=stand_in_command())
    normal = TemplateWorkers(warm=1)
    try:
        stuck.render("echo", {})  # started and warm
        first_pid = stuck.pids()
        with Liveness(normal.render) as live, pytest.raises(ChatTemplateError, match="longer than 5 s"):
            stuck.render("freeze-in-c", {}, timeout_s=5.0)
        assert live.max_gap_s < GAP_LIMIT_S, live.max_gap_s
        assert live.slowest_render_s < GAP_LIMIT_S and live.outputs == {NORMAL_OUTPUT}, live.outputs
        assert any(live.began < ended < live.ended for _, ended, _ in live.renders), "no render during the freeze"
        assert stuck.render("echo", {"n": 1}) == '{"n": 1}'
        assert stuck.started == 2 and stuck.pids() != first_pid
    finally:
        stuck.close()
        normal.close()


def test_the_memory_limit_ends_the_worker_with_a_message():
    pool = TemplateWorkers(warm=1, command=stand_in_command())
    try:
        with pytest.raises(ChatTemplateError, match=f"more than {MEMORY_HEADROOM_BYTES // 2**20} MB"):
            pool.render("allocate-1gb", {})
        assert pool.render("echo", {}) == "{}" and pool.started == 2
    finally:
        pool.close()


def test_a_real_template_over_the_memory_limit_is_stopped():
    """``str.replace`` builds its 1 GB result in C before any check can see it; the worker's
    address-space limit refuses the allocation instead (in-process it cost the server 1 GB)."""
    with pytest.raises(ChatTemplateError, match="MB of memory"):
        render_chat_template("{{ ('x' * 100000).replace('', 'y' * 10000) }}", {})
    assert render_chat_template("{{ 1 }}", {}) == "1"


def test_the_cpu_limit_ends_a_worker_the_wall_clock_has_not():
    pool = TemplateWorkers(warm=1, command=stand_in_command())
    try:
        with pytest.raises(ChatTemplateError, match="CPU-time limit"):
            pool.render("burn-cpu", {}, timeout_s=120)
    finally:
        pool.close()


def test_the_worker_sees_no_server_environment(monkeypatch):
    monkeypatch.setenv("VLMLAB_PLANTED", "canary-7d1e")
    pool = TemplateWorkers(warm=1, command=stand_in_command())
    try:
        seen = pool.render("environment", {})
    finally:
        pool.close()
    assert "canary-7d1e" not in seen and '"pid"' in seen


def test_a_full_pool_queues_a_render_until_a_worker_frees():
    pool = TemplateWorkers(warm=1, most=1, command=stand_in_command())
    errors: list[str] = []

    def stuck() -> None:
        try:
            pool.render("freeze-in-c", {}, timeout_s=1.0)
        except ChatTemplateError as exc:
            errors.append(str(exc))

    try:
        pool.render("echo", {})
        thread = threading.Thread(target=stuck, daemon=True)
        thread.start()
        until(lambda: pool.pids() == [])  # the only worker is taken
        assert pool.render("echo", {"after": True}) == '{"after": true}'
        thread.join(30)
        assert errors and "longer than 1 s" in errors[0]
    finally:
        pool.close()


def test_context_must_be_plain_data():
    with pytest.raises(ChatTemplateError, match="not plain data"):
        render_chat_template("{{ x }}", {"x": object()})


def test_a_worker_exits_when_the_server_closes_its_pipe():
    worker = WorkerProcess()
    worker.wait_ready(time.monotonic() + 60, time.monotonic)
    assert worker.process.stdin is not None
    worker.process.stdin.close()
    until(lambda: worker.process.poll() is not None)
    assert worker.process.returncode == 0
    worker.stop()


def test_a_parent_that_wakes_late_does_not_spend_the_workers_time():
    """The parent was starved (GIL/CPU) between taking the deadline and sending the request: the reply's time
    still counts from the send. Before, the clock had already passed the deadline when the request went out, the
    one poll past it came microseconds after the write, and a trivial template was killed (CI: "the chat template
    ran longer than 2 s" under the GIL-convoy test)."""
    from dashboard.chat_template import _encode_request

    worker = WorkerProcess()
    try:
        worker.wait_ready(time.monotonic() + 60, time.monotonic)
        readings = iter([0.0])  # the call starts at 0 with its deadline at 2.5; every later reading is 100 s on

        def late_clock() -> float:
            return next(readings, 100.0)

        reply = worker.call(_encode_request("{{ 6 * 7 }}", {}, 2.0), 2.5, late_clock)
        assert reply.get("text") == "42", reply
    finally:
        worker.stop()


def test_the_worker_runs_under_its_limits():
    worker = WorkerProcess()
    try:
        worker.wait_ready(time.monotonic() + 60, time.monotonic)
        with open(f"/proc/{worker.pid}/limits") as limits:
            rows = {line[:26].strip(): line[26:].split() for line in limits.read().splitlines()[1:]}
    finally:
        worker.stop()
    address_soft, address_hard = rows["Max address space"][:2]
    assert address_soft == address_hard and int(address_soft) <= 2**30 + MEMORY_HEADROOM_BYTES, rows
    assert rows["Max core file size"][:2] == ["0", "0"], rows


def test_a_worker_that_cannot_start_is_a_message():
    import sys

    pool = TemplateWorkers(warm=1, command=[sys.executable, "-c", "import sys; sys.exit(3)"])
    try:
        with pytest.raises(ChatTemplateError, match=r"worker process ended \(exit code 3\)"):
            pool.render("{{ 1 }}", {})
    finally:
        pool.close()


def test_concurrent_sessions_each_get_their_own_answer():
    pool = TemplateWorkers(warm=2, most=3)
    answers: dict[int, list[str]] = {}
    errors: list[BaseException] = []

    def session(n: int) -> None:
        try:
            answers[n] = [pool.render("{{ who }}:{{ i }}", {"who": f"s{n}", "i": i}) for i in range(15)]
        except BaseException as exc:  # re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=session, args=(n,)) for n in range(6)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
    finally:
        pool.close()
    assert not errors, errors
    assert answers == {n: [f"s{n}:{i}" for i in range(15)] for n in range(6)}
    assert pool.started <= 3
