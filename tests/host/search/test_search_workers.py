"""What a local worker trains with: its share of the cores, and the signal the pruner judges it on.

Two TensorFlow processes that each take every core fight over them (WORKERS=2 was no faster than
WORKERS=1 before the cores were shared out); a pruner fed each epoch's validation accuracy halted a
model for a one-epoch dip on 500 images. Both are checked on the real thing: TensorFlow in a fresh
process, and Optuna's own successive-halving pruner (the search's)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from host.search import study as st
from host.search.worker import TF_THREADS_ENV, report_epoch, tf_threads

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
            + "from host.search.worker import use_tf_threads\n"
              "use_tf_threads(1)\n"
              "import tensorflow as tf, os\n"
              "n = tf.config.threading.get_intra_op_parallelism_threads()\n"
              "print(n or os.environ['TF_NUM_INTRAOP_THREADS'])\n")
    env = {k: v for k, v in os.environ.items() if k != TF_THREADS_ENV}
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split()[-1] == "1"


def rungs_study():
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(direction="maximize", pruner=st.pruner(9))     # rungs at epochs 1, 3, 9


def train(study, curve: list[float]) -> int:
    """A 'training' with these validation accuracies per epoch: the epochs it ran."""
    from optuna.trial import TrialState

    rt, state = study.ask(), {"epochs": 0, "best": 0.0}
    for acc in curve:
        if report_epoch(rt, state, acc):
            study.tell(rt, state=TrialState.PRUNED)
            return state["epochs"]
    study.tell(rt, state["best"])
    return state["epochs"]


def test_a_one_epoch_dip_does_not_halt_a_model_that_had_reached_more():
    study = rungs_study()
    assert train(study, [0.970] * 9) == 9
    # ahead at epoch 2, a dip at the rung (epoch 3) below the first model: judged on its best so far
    assert train(study, [0.975, 0.985, 0.965, 0.986, 0.987, 0.987, 0.988, 0.988, 0.988]) == 9
    assert study.best_value == pytest.approx(0.988)


def test_a_model_that_never_reached_the_others_is_still_halted_at_a_rung():
    study = rungs_study()
    assert train(study, [0.970] * 9) == 9
    assert train(study, [0.900, 0.930, 0.950, 0.960, 0.960, 0.960, 0.960, 0.960, 0.960]) == 1
