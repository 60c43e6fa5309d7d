"""Public mode: when it is on, the server-issued identity, the limits and the one admission gate."""

from __future__ import annotations

import os
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from dashboard.admission import AdmissionGate, Job, check_job, client_key
from dashboard.generation import GenerationSettings
from dashboard.identity import SECRET_ENV, SECRET_FILE, SecretError, VisitorSigner, deployment_secret
from dashboard.public import LIMITS, VisitorLimitError, proxy_hops, public_mode


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


# -- identity ----------------------------------------------------------------------------------


def test_issued_tokens_verify_and_are_unguessable():
    signer = VisitorSigner(b"s" * 32)
    tokens = [signer.issue() for _ in range(200)]
    ids = {signer.verify(t) for t in tokens}
    assert len(ids) == 200 and None not in ids


def test_a_client_chosen_or_altered_value_verifies_to_nobody():
    """The old ``?visitor=`` accepted any 22–64 character string: a fixation attack."""
    signer = VisitorSigner(b"s" * 32)
    token = signer.issue()
    visitor_id = token.split(".")[1]
    flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
    forged = ["A" * 22, "x" * 40, visitor_id, f"v1.{visitor_id}.{'A' * 22}", flipped, token + "x", "",
              None, 42, "../../etc/passwd", f"v2.{visitor_id}.{token.split('.')[2]}"]
    assert all(signer.verify(value) is None for value in forged)
    other_deployment = VisitorSigner(b"t" * 32)
    assert other_deployment.verify(token) is None


def test_short_secrets_are_refused():
    with pytest.raises(SecretError):
        VisitorSigner(b"short")


def test_the_secret_is_created_once_private_and_reused(tmp_path):
    first = deployment_secret(tmp_path, env={})
    mode = stat.S_IMODE((tmp_path / SECRET_FILE).stat().st_mode)
    assert mode == 0o600
    assert deployment_secret(tmp_path, env={}) == first
    assert [p.name for p in tmp_path.iterdir()] == [SECRET_FILE]  # no temporary file left


def test_the_environment_secret_wins(tmp_path):
    assert deployment_secret(tmp_path, env={SECRET_ENV: "x" * 40}) == b"x" * 40
    assert not (tmp_path / SECRET_FILE).exists()


def test_a_secret_file_others_can_read_is_refused(tmp_path):
    deployment_secret(tmp_path, env={})
    os.chmod(tmp_path / SECRET_FILE, 0o644)
    with pytest.raises(SecretError, match="readable by others"):
        deployment_secret(tmp_path, env={})


def test_servers_starting_together_share_one_secret(tmp_path):
    results: list[bytes] = []
    threads = [threading.Thread(target=lambda: results.append(deployment_secret(tmp_path, env={})))
               for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(results) == 8 and len(set(results)) == 1


# -- limits ------------------------------------------------------------------------------------


def test_max_new_tokens_and_beams_are_capped():
    check_job(Job.generating("Inference", GenerationSettings(max_new_tokens=LIMITS.max_new_tokens,
                                                             num_beams=LIMITS.max_beams)))
    with pytest.raises(VisitorLimitError, match=f"caps max new tokens at {LIMITS.max_new_tokens}"):
        check_job(Job.generating("Inference", GenerationSettings(max_new_tokens=LIMITS.max_new_tokens + 1)))
    with pytest.raises(VisitorLimitError, match=f"at most {LIMITS.max_beams} beam"):
        check_job(Job.generating("Inference", GenerationSettings(num_beams=LIMITS.max_beams + 1)))


def test_jobs_are_capped_in_examples_times_checkpoints():
    check_job(Job("Eval set", examples=LIMITS.max_sweep_generations // 4, checkpoints=4))
    with pytest.raises(VisitorLimitError, match=r"Pointing score: .* 200 × 9 = 1800"):
        check_job(Job("Pointing score", examples=200, checkpoints=9))


# -- client key --------------------------------------------------------------------------------


def test_client_key_believes_only_the_trusted_proxy_entry():
    spoofed = {"X-Forwarded-For": "1.2.3.4, 9.9.9.9"}  # the client wrote 1.2.3.4, the proxy appended 9.9.9.9
    assert client_key("10.0.0.1", spoofed, proxy_hops=1) == "9.9.9.9"
    assert client_key("10.0.0.1", spoofed, proxy_hops=0) == "10.0.0.1"  # no proxy: the header is ignored
    assert client_key(None, {}, proxy_hops=0) == "local"
    assert client_key("2001:db8::1", {}, 0) == client_key("2001:db8::ffff", {}, 0) == "2001:db8::/64"


def test_proxy_hops_default_to_one_on_a_space():
    assert proxy_hops({}) == 0
    assert proxy_hops({"SPACE_ID": "a/b"}) == 1
    assert proxy_hops({"SPACE_ID": "a/b", "VLMLAB_PROXY_HOPS": "2"}) == 2


# -- the gate ----------------------------------------------------------------------------------


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached before the deadline")
        time.sleep(0.005)


class Holder:
    """A job in its own thread: enters the gate, records when it got in, holds until released."""

    def __init__(self, gate: AdmissionGate, visitor: str, client: str, order: list[str]) -> None:
        self.release = threading.Event()
        self.error: BaseException | None = None
        self.visitor = visitor

        def run() -> None:
            try:
                with gate.admit(visitor, client, wait_limit_s=30):
                    order.append(visitor)
                    self.release.wait(30)
            except BaseException as exc:
                self.error = exc

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def finish(self) -> None:
        self.release.set()
        self.thread.join(10)


def test_one_job_at_a_time_per_visitor():
    gate = AdmissionGate(capacity=4, poll_s=0.01)
    with gate.admit("a", "c1"):
        with pytest.raises(VisitorLimitError, match="already have a job running"), gate.admit("a", "c2"):
            pass
        with gate.admit("b", "c3"):  # another visitor is not affected
            assert gate.running_for("b") == 1
    assert gate.running == 0
    with gate.admit("a", "c1"):  # free again once the first ended
        pass


def test_a_failing_job_gives_its_place_back():
    gate = AdmissionGate(capacity=1, poll_s=0.01)
    with pytest.raises(RuntimeError), gate.admit("v", "c"):
        raise RuntimeError("boom")
    assert gate.running == 0 and gate.waiting == 0


def test_the_global_cap_holds_with_many_visitors():
    gate = AdmissionGate(capacity=2, poll_s=0.01)
    order: list[str] = []
    holders = {f"v{i}": Holder(gate, f"v{i}", f"client{i}", order) for i in range(6)}
    wait_until(lambda: gate.running == 2 and gate.waiting == 4)
    for finished in range(6):  # end the oldest running job; the next waiter takes its place, never a third
        holders[order[finished]].finish()
        wait_until(lambda n=finished: len(order) == min(6, n + 3) and gate.running == min(2, 5 - n))
        assert gate.running <= 2
    assert gate.admitted_total == 6 and gate.waiting == 0
    assert all(h.error is None for h in holders.values())


def test_many_identities_from_one_client_get_one_turn():
    """20 identities of one client queued first; a visitor of another client is next after one of theirs."""
    gate = AdmissionGate(capacity=1, poll_s=0.01)
    order: list[str] = []
    abusive = [Holder(gate, f"bot{i}", "6.6.6.6", order) for i in range(20)]
    wait_until(lambda: gate.running == 1 and gate.waiting == 19)
    normal = Holder(gate, "alice", "1.1.1.1", order)
    wait_until(lambda: gate.waiting == 20)
    first = next(h for h in abusive if h.visitor == order[0])
    first.finish()  # one of the client's jobs ends: the other client is served next
    wait_until(lambda: len(order) == 2)
    assert order[1] == "alice"
    normal.finish()
    for h in abusive:
        h.finish()
    assert len(order) == 21


def test_one_client_never_holds_every_place():
    """Twenty identities of one address with long jobs: one runs, the other place stays for other clients
    (with two places for one client, a stranger waited for a whole eval-set job to end)."""
    gate = AdmissionGate(capacity=2, poll_s=0.01)
    order: list[str] = []
    bots = [Holder(gate, f"bot{i}", "6.6.6.6", order) for i in range(5)]
    wait_until(lambda: gate.running == 1 and gate.waiting == 4)
    alice = Holder(gate, "alice", "1.1.1.1", order)
    wait_until(lambda: "alice" in order)  # admitted at once, no bot job had to end
    assert gate.running == 2 and order == [order[0], "alice"]
    for holder in [alice, *bots]:
        holder.release.set()
    wait_until(lambda: len(order) == 6 and gate.running == 0 and gate.waiting == 0)
    wide = AdmissionGate(capacity=2, poll_s=0.01, per_client=2)  # the share is a setting
    more = [Holder(wide, f"w{i}", "6.6.6.6", order) for i in range(3)]
    wait_until(lambda: wide.running == 2 and wide.waiting == 1)
    for holder in more:
        holder.release.set()
    wait_until(lambda: wide.running == 0 and wide.waiting == 0)


def test_clients_are_served_round_robin_and_fifo_within_a_client():
    gate = AdmissionGate(capacity=1, poll_s=0.01)
    order: list[str] = []
    blocker = Holder(gate, "blocker", "z", order)
    wait_until(lambda: gate.running == 1)
    holders = []
    for visitor, client in [("a1", "A"), ("a2", "A"), ("a3", "A"), ("b1", "B"), ("c1", "C"), ("b2", "B")]:
        holders.append(Holder(gate, visitor, client, order))
        wait_until(lambda n=len(holders): gate.waiting == n)  # arrival order is the order above
    blocker.finish()
    for admitted in range(len(holders)):  # finish each job as it is admitted
        wait_until(lambda n=admitted: len(order) == n + 2)
        next(h for h in holders if h.visitor == order[-1]).finish()
    assert order[1:] == ["a1", "b1", "c1", "a2", "b2", "a3"]


def test_a_waiter_that_gives_up_leaves_the_queue():
    gate = AdmissionGate(capacity=1, poll_s=0.01, report_every_s=0.0)
    order: list[str] = []
    blocker = Holder(gate, "blocker", "z", order)
    wait_until(lambda: gate.running == 1)

    class Stop(Exception):
        pass

    def on_wait(ahead: int, waited: float) -> None:
        raise Stop  # Streamlit stopping the script while it waits

    with pytest.raises(Stop), gate.admit("quitter", "q", on_wait=on_wait):
        pass
    assert gate.waiting == 0
    with pytest.raises(VisitorLimitError, match="busy"), gate.admit("late", "l", wait_limit_s=0.0):
        pass
    assert gate.waiting == 0
    blocker.finish()
    with gate.admit("quitter", "q"):  # the visitor is not stuck with a phantom job
        pass


def test_the_wait_reports_the_place_in_line():
    gate = AdmissionGate(capacity=1, poll_s=0.01, report_every_s=0.0)
    order: list[str] = []
    blocker = Holder(gate, "blocker", "z", order)
    wait_until(lambda: gate.running == 1)
    first = Holder(gate, "first", "A", order)
    wait_until(lambda: gate.waiting == 1)
    seen: list[int] = []
    done = threading.Event()

    def second() -> None:
        with gate.admit("second", "B", on_wait=lambda ahead, _: seen.append(ahead)):
            done.set()

    t = threading.Thread(target=second, daemon=True)
    t.start()
    wait_until(lambda: 1 in seen)
    blocker.finish()
    wait_until(lambda: 0 in seen or done.is_set())
    first.finish()
    t.join(10)
    assert done.is_set() and seen[0] == 1


def test_pages_show_paths_relative_to_the_runs_root_in_public_mode(tmp_path):
    from dashboard.public import shown_path

    runs = tmp_path / "runs"
    checkpoint = runs / "demo" / "checkpoint-600"
    assert shown_path(checkpoint, [runs], env={"VLMLAB_PUBLIC": "1"}) == "demo/checkpoint-600"
    assert shown_path(tmp_path / "data" / "history.sqlite", [runs], env={"VLMLAB_PUBLIC": "1"}) == "history.sqlite"
    assert shown_path(checkpoint, [runs], env={}) == str(checkpoint)  # local use: the whole path


def test_public_mode_runs_each_generation_on_one_torch_thread():
    from dashboard.public import torch_threads

    assert torch_threads({"VLMLAB_PUBLIC": "1"}) == 1
    assert torch_threads({"SPACE_ID": "me/demo"}) == 1
    assert torch_threads({"VLMLAB_PUBLIC": "1", "OMP_NUM_THREADS": "2"}) is None  # the operator's choice
    assert torch_threads({}) is None  # local use: torch's default


def test_readme_quotes_the_public_map_check_as_the_code_runs_it():
    """One number, one truth: the picture limit, the random orders and the pictures a visitor's check runs."""
    from dashboard.attention.faithfulness import FEWEST_ORDERS, CheckPlan

    readme = " ".join((Path(__file__).resolve().parents[1] / "README.md").read_text().split())
    plan = CheckPlan.within(36, LIMITS.max_map_check_pictures, LIMITS.max_batch_size)
    assert plan.pictures(36) == CheckPlan.within(10_000, LIMITS.max_map_check_pictures, 4).pictures(10_000)
    assert f"more than {LIMITS.max_map_check_pictures} pictures for one *Check this map*" in readme
    assert f"runs {FEWEST_ORDERS} random orders" in readme
    assert f"fit {LIMITS.max_map_check_pictures} pictures ({plan.points} points, {plan.pictures(36)} pictures" in readme
    assert f"in batches of {LIMITS.max_batch_size} with one checkpoint turn per batch" in readme
