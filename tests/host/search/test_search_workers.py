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
        if report_epoch(rt, state, acc, st.first_rung(EPOCHS)):
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
