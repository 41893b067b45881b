"""What each stage of the search does to its candidates: build and count them untrained (2),
measure the untrained INT8 file on the boards (3), train, finalise and re-measure (4). The order
and the decisions between stages are host/search/run.py's; the figures are kept in each Candidate.

Each stage works on one candidate (a trial of the study, host/search/worker.py); the board a
measurement runs on is the one the worker leased for it.
"""
from __future__ import annotations

import time
from contextlib import nullcontext
from pathlib import Path
from dataclasses import dataclass, field

import numpy as np

from deploy.boards.session import Options
from device.contract.fileio import atomic_write_bytes, sha256_file
from host.config import ARTIFACTS, DEFAULTS
from host.search import space as sp
from host.search.board import BoardRun, bench_settings, on_board, settings_key
from host.search.candidate import Candidate
from host.search.lease import ThisMachine

SHORT = {"num_runs": 30, "warmup_runs": 5, "min_secs": 0.0, "cooldown": 0.0}   # the pre-training measurement
UNTRAINED_CALIBRATION = 16      # images: enough for ranges of an untrained model (latency only)


@dataclass
class Request:
    """What the user asked for: `python -m host search`'s flags."""
    dataset: str
    name: str
    hosts: list[str]
    budgets: dict                   # CLI budgets; the profile's fill the gaps
    options: Options = field(default_factory=Options)
    threads: int = 1
    trials: int = 36                # candidates drawn, filtered and measured (cheap: seconds each)
    max_trained: int = 8            # of those within budget, at most this many are trained (minutes each)
    epochs: int = DEFAULTS.epochs   # the last rung: the default model's training (rungs() gives the others)
    space: Path = sp.DEFAULT_SPACE
    time_budget_min: float | None = None
    calibration: int = DEFAULTS.calibration_samples
    storage: str | None = None      # SQLAlchemy URL of the study; None: artifacts/search-NAME/study.db
    workers: int = 1                # local worker processes
    sampler: str = "tpe"            # tpe, nsga2, random (host/search/study.py)
    folds: int = 3                  # finalists re-validated on this many folds (0: the validation split only)


class Stages:
    """The state the stages share (the request, the dataset, the cache, the board) and the stages."""

    def __init__(self, req: Request):
        from host.data.builtin import load_dataset

        self.req = req
        self.dir = ARTIFACTS / f"search-{req.name}"
        self.space = sp.load_space(req.space)
        self.ds = load_dataset(req.dataset, DEFAULTS.split_seed)
        self.started = time.monotonic()
        self.deadline = self.started + 60 * req.time_budget_min if req.time_budget_min else None
        self.bench_calls = 0
        self.trained = 0
        self._data: dict = {}
        self.board: BoardRun | None = None
        self.machine = ThisMachine()      # HOST=local: measurements and this machine's work take turns

    def out_of_time(self) -> bool:
        return self.deadline is not None and time.monotonic() > self.deadline

    # ---- data at a candidate's resolution
    def data_at(self, shape: list[int]):
        hw = tuple(shape[:2])
        if hw not in self._data:
            from host.data.builtin import Dataset

            ds = self.ds
            r = lambda x: sp.resize(x, hw)  # noqa: E731
            self._data[hw] = Dataset(ds.name, r(ds.x_train), ds.y_train, r(ds.x_val), ds.y_val, r(ds.x_test),
                                     ds.y_test, ds.class_names, ds.split_seed,
                                     ds.notes + ([f"resized to {hw[0]}x{hw[1]} by the model search"]
                                                 if hw != tuple(ds.input_shape[:2]) else []))
        return self._data[hw]

    def calibration(self, ds, n: int) -> np.ndarray:
        from host.model.train import normalise

        rng = np.random.default_rng(DEFAULTS.seed)
        return normalise(ds.x_train[rng.choice(len(ds.x_train), min(n, len(ds.x_train)), replace=False)])

    # ---- (2) static facts
    def static(self, c: Candidate) -> None:
        """(2) build untrained, count, convert to INT8 on a few images: size, arena, graph hash."""
        import keras

        from host.convert.quantize import convert_all
        from host.model.architecture import count_macs

        folder = self.dir / "cands" / c.id
        with self.machine.working():
            keras.utils.set_random_seed(DEFAULTS.seed)
            model = sp.build(c.config, self.ds.num_classes)
            ds = self.data_at(c.config["input"])
            data = convert_all(model, self.calibration(ds, UNTRAINED_CALIBRATION), ("int8",))["int8"]
        atomic_write_bytes(folder / "untrained_int8.tflite", data)
        c.static = {"params": int(model.count_params()), "macs": count_macs(model), "int8_size_bytes": len(data),
                    **sp.graph_facts(data)}
        keras.backend.clear_session()

    # ---- (3) the short untrained measurement
    def measure_untrained(self, c: Candidate, host: str) -> None:
        """(3) short bench of the untrained INT8 file on `host`."""
        settings = bench_settings(self.board.profile["bench"], self.req.threads, **SHORT)
        c.short = self._bench(host, self.dir / "cands" / c.id / "untrained_int8.tflite", settings)

    def _bench(self, host: str, path: Path, settings: dict) -> dict:
        """One file benched on one board: its figures, or {"error": ...}. On `local`, this machine is
        the board: the bench has it to itself (this machine's trainings pause meanwhile)."""
        with self.machine.measuring() if host == "local" else nullcontext():
            run = on_board(host, self.req.options, [path], settings)
        self.bench_calls += run.bench_calls
        figures = run.bench[sha256_file(path)]
        return {**figures, "board": run.board, "runtime": run.runtime, "emulated": run.emulated,
                "settings": settings_key(settings), "measured_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}

    # ---- (4) train, finalise, re-measure
    def train(self, c: Candidate, epochs: int, callbacks: list = ()) -> dict:
        """(4) train a candidate for `epochs` (the callbacks may stop it early: the pruner's)."""
        import keras

        out = self.dir / "cands" / c.id / f"e{epochs}"
        t0, paused = time.monotonic(), self.machine.paused_s
        summary = self._fit(c, self.data_at(c.config["input"]), out, epochs, callbacks)
        c.train = c.train or {}
        c.train[str(epochs)] = {"val_accuracy": summary["best_val_accuracy"], "epochs_run": summary["epochs_run"],
                                "seconds": round(time.monotonic() - t0, 1),     # pauses included:
                                "paused_s": round(self.machine.paused_s - paused, 1)}   # for this machine's benches
        self.trained += 1
        keras.backend.clear_session()
        return summary

    def finalise(self, c: Candidate, epochs: int) -> None:
        """(4) full INT8 of the trained model, host accuracy (validation and test), a candidate bundle."""
        import keras

        from host.convert.quantize import convert_all, graph_summary
        from host.pipeline.trained import write_trained_bundle as write_bundle
        from host.pipeline.evaluate import evaluate_variants

        folder = self.dir / "cands" / c.id
        ds = self.data_at(c.config["input"])
        with self.machine.working():
            model = keras.models.load_model(folder / f"e{epochs}" / "model.keras")
            data = convert_all(model, self.calibration(ds, self.req.calibration), ("int8",))
            val = evaluate_variants(data, ds.x_val, ds.y_val)["int8"]
            test = evaluate_variants(data, ds.x_test, ds.y_test)
        manifest = write_bundle(folder / "bundle", f"{self.req.name}-{c.id}", self.req.dataset, ds, data,
                                {"int8": graph_summary(data["int8"])}, test,
                                {"params": c.static["params"], "macs": c.static["macs"], "alpha": c.config["alpha"]})
        c.int8 = {"epochs": epochs, "val_top1": val.top1, "val_n": int(len(ds.y_val)), "host_top1": test["int8"].top1,
                  "size_bytes": manifest["variants"]["int8"]["size_bytes"],
                  "sha256": manifest["variants"]["int8"]["sha256"]}
        keras.backend.clear_session()

    def fold_accuracy(self, c: Candidate, k: int, i: int) -> float:
        """(5) INT8 top-1 of the candidate retrained on all but fold i of k folds of train+validation,
        scored on fold i: one validation split of a few hundred images has ~0.6 pp of noise, k folds
        see every image once. The folds are the same on every worker (seeded); the test split is not
        touched. Each fold is a job any worker of the study may take (host/search/folds.py)."""
        import keras
        from dataclasses import replace

        from host.convert.quantize import convert_all
        from host.pipeline.evaluate import evaluate_variants

        ds = self.data_at(c.config["input"])
        x, y = np.concatenate([ds.x_train, ds.x_val]), np.concatenate([ds.y_train, ds.y_val])
        parts = np.array_split(np.random.default_rng(DEFAULTS.split_seed).permutation(len(y)), k)
        rest = np.concatenate([p for j, p in enumerate(parts) if j != i])
        fold = replace(ds, x_train=x[rest], y_train=y[rest], x_val=x[parts[i]], y_val=y[parts[i]])
        folder = self.dir / "cands" / c.id / f"fold{i}"
        self._fit(c, fold, folder, self.req.epochs)
        with self.machine.working():
            model = keras.models.load_model(folder / "model.keras")
            data = convert_all(model, self.calibration(fold, self.req.calibration), ("int8",))
            top1 = float(evaluate_variants(data, fold.x_val, fold.y_val)["int8"].top1)
        keras.backend.clear_session()
        return top1

    def _fit(self, c: Candidate, ds, out: Path, epochs: int, callbacks: list = ()) -> dict:
        """Every search training: one that steps aside, batch by batch, for this machine's measurements."""
        from host.model.train import train

        aside = self.machine.keras_callback()
        try:
            return train(ds, out, epochs=epochs, seed=DEFAULTS.seed, verbose=0, callbacks=[*callbacks, aside],
                         **sp.arch(c.config))
        finally:
            aside.release()

    def measure_final(self, c: Candidate, host: str) -> None:
        """(4) the trained INT8 file on `host` with the profile's normal settings, and on-board eval."""
        settings = bench_settings(self.board.profile["bench"], self.req.threads)
        b = self.dir / "cands" / c.id / "bundle"
        c.final = self._bench(host, b / "int8.tflite", settings)
        if "error" not in c.final:
            run = on_board(host, self.req.options, evals=[(b / "int8.tflite", b / "eval.npz", b / "manifest.json")])
            c.final["device_top1"] = run.evals[c.int8["sha256"]].get("top1")
