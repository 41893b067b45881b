"""What a local worker trains with: its share of the cores, and the signal the pruner judges it on.

Two TensorFlow processes that each take every core fight over them (WORKERS=2 was no faster than
WORKERS=1 before the cores were shared out); a pruner fed each epoch's validation accuracy halted a
model for a one-epoch dip on 500 images; with HOST=local, a worker training beside another's
measurement inflated it by a third. Each is checked on the real thing: TensorFlow in a fresh
process, Optuna's own successive-halving pruner (the search's), a real training and a measuring
process."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from host.search import study as st
from host.search import space as sp
from host.search.candidate import Candidate
from host.search.stages import Request, Stages
from host.search.run import TF_THREADS_ENV, tf_threads

ROOT = Path(__file__).resolve().parents[3]


def test_local_workers_share_the_cores_and_a_users_choice_stands(monkeypatch):
    monkeypatch.delenv(TF_THREADS_ENV, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    assert tf_threads(1) is None            # one worker: TensorFlow's own default
    assert tf_threads(2) == 4 and tf_threads(3) == 2 and tf_threads(16) == 1
    monkeypatch.setenv(TF_THREADS_ENV, "3")
    assert tf_threads(2) is None            # the user chose


@pytest.mark.parametrize("imported_first", [False, True])
def test_tensorflow_in_this_process_trains_on_the_given_threads(imported_first):
    """Before TensorFlow is imported (a worker process) and after (a leader that imported it
    for something else): its intra-op pool ends up with the given number of threads."""
    code = ("import sys\n"
            + ("import tensorflow as tf\n" if imported_first else "")
            + "from host.search.run import use_tf_threads\n"
              "use_tf_threads(1)\n"
              "import tensorflow as tf, os\n"
              "n = tf.config.threading.get_intra_op_parallelism_threads()\n"
              "print(n or os.environ['TF_NUM_INTRAOP_THREADS'])\n")
    env = {k: v for k, v in os.environ.items() if k != TF_THREADS_ENV}
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split()[-1] == "1"


EPOCHS = 27                                             # the first rung: epoch 3


def rungs_study():
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(direction="maximize", pruner=st.pruner(EPOCHS))


def train(study, curve: list[float]) -> int:
    """A 'training' with these validation accuracies per epoch, reported as the workers do: the
    epochs it ran."""
    from optuna.trial import TrialState

    rt, state = study.ask(), {"epochs": 0, "best": 0.0}
    for acc in curve:
        if st.report_epoch(rt, state, acc, st.first_rung(EPOCHS)):
            study.tell(rt, state=TrialState.PRUNED)
            return state["epochs"]
    study.tell(rt, state["best"])
    return state["epochs"]


def test_a_one_epoch_dip_at_the_rung_does_not_halt_a_model_that_had_reached_more():
    study = rungs_study()
    assert st.first_rung(EPOCHS) == 3
    assert train(study, [0.970] * 12) == 12
    # ahead at epoch 2, a dip at the rung (epoch 3) below the first model: judged on its best so far
    assert train(study, [0.975, 0.985, 0.965] + [0.988] * 9) == 12
    assert study.best_value == pytest.approx(0.988)


def test_a_model_behind_at_the_first_rung_is_halted_there():
    study = rungs_study()
    assert train(study, [0.970] * 12) == 12
    assert train(study, [0.900, 0.930, 0.950] + [0.960] * 9) == 3


def test_past_the_first_rung_a_slow_starter_trains_to_the_end():
    """(Optuna's halving has rungs at 3, 9, 27 here: the one at 9 is never asked.) Behind a faster
    starter at epoch 9 by far more than the noise, it still ends its training, and ends higher."""
    study = rungs_study()
    assert train(study, [0.96, 0.97, 0.975] + [0.985] * 24) == 27
    assert train(study, [0.96, 0.97, 0.976] + [0.976] * 6 + [0.99] * 18) == 27     # 0.976 < 0.985 at epoch 9
    assert study.best_value == pytest.approx(0.99)



def _with_rivals(study, cand: str, p50: float, curve: list[float]) -> tuple[bool, str]:
    """A run reported as train_pruned does: its p50 and size on the rungs trial, the runs already
    past the cut as rivals. (halted?, why)"""
    from host.search.decide import dominated_at_cut

    rt, state = study.ask(), {"epochs": 0, "best": 0.0}
    for k, v in (("candidate", cand), ("p50_us", p50), ("size_kb", 100.0)):
        rt.set_user_attr(k, v)
    rivals = lambda best: dominated_at_cut({"id": cand, "val": best, "p50_us": p50, "size_kb": 100.0},  # noqa: E731
                                           st.rung_rivals(study, rt, 3), 500)
    halted = [st.report_epoch(rt, state, acc, 3, None, rivals) for acc in curve][-1]
    return halted, state.get("why", "")


def test_the_pruner_lets_a_run_past_the_cut_but_a_faster_one_as_accurate_going_on_halts_it():
    study = rungs_study()
    assert _with_rivals(study, "c04", 33.4, [0.80, 0.90, 0.928]) == (False, "")      # first: goes on
    halted, why = _with_rivals(study, "c15", 36.8, [0.85, 0.93, 0.934])      # best so far for the pruner,
    assert halted and "c04" in why                                          # but slower and inside the noise
    assert _with_rivals(study, "c16", 36.8, [0.85, 0.93, 0.960]) == (False, "")      # clearly ahead
    # only runs that went on are rivals (c15, halted, is not)
    assert [r["id"] for r in st.rung_rivals(study, study.ask(), 3)] == ["c04", "c16"]

MEASURE = """
import json, sys, time
from host.search.lease import ThisMachine
flagged = time.monotonic()
with ThisMachine().measuring():
    locked = time.monotonic()
    time.sleep(float(sys.argv[1]))
    released = time.monotonic()
print(json.dumps({"flagged": flagged, "locked": locked, "released": released}))
"""


def test_a_search_training_steps_aside_while_this_machine_is_measured(tmp_path):
    """HOST=local: while another process measures on this machine, the search's training runs no
    batch; the measurement gets the machine within a batch or two, and the training goes on after."""
    import keras

    stages = Stages(Request(dataset="digits", name="aside", hosts=["local"], budgets={},
                            space=ROOT / "tests" / "host" / "fixtures" / "search-space-tiny.yaml"))
    stages.dir = tmp_path
    ends: list[float] = []
    started: dict = {}

    class Watch(keras.callbacks.Callback):      # ends are stamped before the batch lets go of the machine
        def on_train_batch_end(self, batch, logs=None):
            ends.append(time.monotonic())
            if len(ends) == 20:
                started["p"] = subprocess.Popen([sys.executable, "-c", MEASURE, "1.5"], cwd=ROOT, text=True,
                                                stdout=subprocess.PIPE, env=dict(os.environ, PYTHONPATH=str(ROOT)))

    c = Candidate("c00", sp.default_config(tuple(stages.ds.input_shape)), default=True)
    stages.train(c, 12, [Watch()])
    out, _ = started["p"].communicate(timeout=120)
    m = json.loads(out)
    inside = [t for t in ends if m["locked"] < t < m["released"]]
    assert not inside, f"{len(inside)} training batches ended while this machine was measured"
    assert m["locked"] - m["flagged"] < 1.0                         # not kept waiting by the training
    assert any(t > m["released"] for t in ends), "the training did not go on after the measurement"
    assert 1.0 < c.train["12"]["paused_s"] < c.train["12"]["seconds"]      # the pause is on its record


def _reach_rung(study, rt, curve: list[float], wait=None) -> bool:
    state = {"epochs": 0, "best": 0.0}
    return [st.report_epoch(rt, state, acc, st.first_rung(EPOCHS), wait) for acc in curve][-1]


def test_at_the_rung_a_run_is_judged_after_the_runs_started_before_it():
    """WORKERS=2: a small model reaching the rung first, beside a larger run started before it, is
    compared with that run's figure there, not promoted for being alone."""
    import threading

    study = rungs_study()
    first, state = study.ask(), {"epochs": 0, "best": 0.0}
    for acc in (0.95, 0.96):                                # at epoch 2 of 3 when the second gets there
        st.report_epoch(first, state, acc, 3)
    late = threading.Timer(1.0, lambda: st.report_epoch(first, state, 0.97, 3))
    late.start()
    second, t0 = study.ask(), time.monotonic()
    assert _reach_rung(study, second, [0.90, 0.92, 0.94], lambda: st.wait_at_rung(study, second, 3, t0))
    assert 0.8 < time.monotonic() - t0 < 20
    late.join()


def test_without_the_wait_the_run_alone_at_the_rung_goes_on():
    study = rungs_study()
    first = study.ask()
    _reach_rung(study, first, [0.95, 0.96])
    assert not _reach_rung(study, study.ask(), [0.90, 0.92, 0.94])


def test_a_run_started_before_that_never_reports_is_waited_for_a_bounded_time(monkeypatch):
    monkeypatch.setattr(st, "RUNG_WAIT_MIN_S", 3.0)
    study = rungs_study()
    dead = study.ask()                                      # its worker died: no report at the rung ever
    _reach_rung(study, dead, [0.95])
    second = study.ask()
    assert st.wait_at_rung(study, dead, 3, time.monotonic()) < 1        # later runs are not waited for
    waited = st.wait_at_rung(study, second, 3, time.monotonic() + 1e9)  # (cap: its floor)
    assert 2.9 < waited < 10


def test_a_run_whose_search_trial_failed_is_not_waited_for(monkeypatch):
    """After a worker died (its search trial failed by the heartbeat), its training run in the rungs
    study stays 'running' for ever: the runs after it do not wait for it."""
    import optuna
    from optuna.trial import TrialState

    monkeypatch.setattr(st, "RUNG_WAIT_MIN_S", 3.0)
    search = optuna.create_study(directions=["maximize", "minimize", "minimize"])
    dead, alive = search.ask(), search.ask()
    search.tell(dead, state=TrialState.FAIL)
    study = rungs_study()
    for cand in ("c00", "c01"):
        study.ask().set_user_attr("candidate", cand)
    mine = study.ask()
    t0 = time.monotonic()
    assert st.wait_at_rung(study, mine, 3, time.monotonic(), search) >= 2.9     # c01's worker is alive
    search.tell(alive, state=TrialState.FAIL)
    assert st.wait_at_rung(study, mine, 3, time.monotonic(), search) < 2
    assert time.monotonic() - t0 < 15
