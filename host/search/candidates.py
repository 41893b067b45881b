"""The work a search does on its candidates: the leaderboard state, static facts, board
measurements (through a cache shared by searches), training and finalising. Which candidates go
on is decided by host/search/run.py's stages and host/search/decisions.py."""
from __future__ import annotations

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from deploy.boards.session import Options
from deploy.settings import bars_off, cache_dir
from device.contract.fileio import atomic_write_bytes, atomic_write_text, sha256_file
from host.config import ARTIFACTS, DEFAULTS
from host.search import space as sp
from host.search.board import BoardRun, bench_settings, on_board, settings_key
from host.search.decisions import one_kind, val_at

SCHEMA = "edgekit/search-v1"
SHORT = {"num_runs": 30, "warmup_runs": 5, "min_secs": 0.0, "cooldown": 0.0}   # the pre-training measurement
UNTRAINED_CALIBRATION = 16      # images: enough for ranges of an untrained model (latency only)

@dataclass
class Request:
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


# --------------------------------------------------------------------------- measurement cache

class MeasurementCache:
    """Board figures by (graph hash, board, runtime, settings); one JSON file shared by searches."""

    def __init__(self, path: Path | None = None):
        folder = Path(os.environ.get("EDGEKIT_SEARCH_CACHE") or cache_dir() / "search")
        self.path = path or folder / "measurements.json"
        self.data = json.loads(self.path.read_text()) if self.path.is_file() else {}

    @staticmethod
    def key(kind: str, ident: str, board: str, runtime: str, settings: str) -> str:
        return f"{kind}|{ident}|{board}|{runtime}|{settings}"

    def get(self, key: str) -> dict | None:
        return self.data.get(key)

    def put(self, key: str, value: dict) -> None:
        self.data[key] = value
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, json.dumps(self.data, indent=1, sort_keys=True))


# --------------------------------------------------------------------------- the search

class Candidates:
    """The work on candidates of one search (one leaderboard directory): state, static facts,
    measuring, training, finalising. The stages that decide between them are host/search/run.py's."""

    def __init__(self, req: Request):
        from host.data.builtin import load_dataset

        self.req = req
        self.dir = ARTIFACTS / f"search-{req.name}"
        self.space = sp.load_space(req.space)
        self.ds = load_dataset(req.dataset, DEFAULTS.split_seed)
        self.cache = MeasurementCache()
        self.started = time.monotonic()
        self.deadline = self.started + 60 * req.time_budget_min if req.time_budget_min else None
        self.bench_calls = 0
        self.trained = 0
        self._data: dict = {}
        self.board: BoardRun | None = None

    # ---- state
    def plan(self) -> dict:
        """What makes two runs the same search (budgets and boards may change between runs)."""
        return {"dataset": self.req.dataset, "space": str(self.req.space), "space_sha256": self.space.digest,
                "trials": self.req.trials, "max_trained": self.req.max_trained, "epochs": self.req.epochs,
                "threads": self.req.threads, "calibration": self.req.calibration}

    def load(self) -> dict:
        path = self.dir / "leaderboard.json"
        if path.is_file():
            try:
                lb = json.loads(path.read_text())
            except ValueError:
                raise sp.SearchError(f"{path} is not valid JSON; remove {self.dir} to start over") from None
            if lb.get("plan") != self.plan():
                diff = sorted(k for k in self.plan() if lb.get("plan", {}).get(k) != self.plan()[k])
                raise sp.SearchError(f"{self.dir} holds another search (different {', '.join(diff)}); "
                                     f"choose another NAME= or remove {self.dir}")
            return lb
        configs = sp.draw(self.space, self.ds.input_shape, self.req.trials)
        return {"schema": SCHEMA, "name": self.req.name, "plan": self.plan(), "runs": [],
                "candidates": [{"id": f"c{i:02d}", "config": c, "default": i == 0} for i, c in enumerate(configs)]}

    def save(self, lb: dict) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.dir / "leaderboard.json", json.dumps(lb, indent=2))

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

    # ---- steps
    def static(self, c: dict) -> None:
        """(2) build untrained, count, convert to INT8 on a few images: size, arena, graph hash."""
        import keras

        from host.convert.quantize import convert_all
        from host.model.architecture import count_macs

        folder = self.dir / "cands" / c["id"]
        keras.utils.set_random_seed(DEFAULTS.seed)
        model = sp.build(c["config"], self.ds.num_classes)
        ds = self.data_at(c["config"]["input"])
        data = convert_all(model, self.calibration(ds, UNTRAINED_CALIBRATION), ("int8",))["int8"]
        atomic_write_bytes(folder / "untrained_int8.tflite", data)
        c["static"] = {"params": int(model.count_params()), "macs": count_macs(model), "int8_size_bytes": len(data),
                       **sp.graph_facts(data)}
        keras.backend.clear_session()

    def measure_untrained(self, todo: list[dict]) -> None:
        """(3) short bench of untrained INT8 files; cached; spread over the boards."""
        settings = bench_settings(self.board.profile["bench"], self.req.threads, **SHORT)
        self._bench(todo, "short", settings, lambda c: self.dir / "cands" / c["id"] / "untrained_int8.tflite",
                    lambda c: c["static"]["graph"])

    def _bench(self, todo: list[dict], kind: str, settings: dict, file_of, ident_of) -> None:
        hosts = self.req.hosts
        by_host: dict[str, list[dict]] = {}
        for c in todo:
            host = hosts[int(c["id"][1:]) % len(hosts)]
            key = self.cache.key(kind, ident_of(c), host, self.board.runtime, settings_key(settings))
            hit = self.cache.get(key)
            if hit:
                c[kind] = hit
            else:
                by_host.setdefault(host, []).append(c)

        def visit(host: str) -> BoardRun:
            return on_board(host, self.req.options, [file_of(c) for c in by_host[host]], settings)

        if not by_host:
            return
        with ThreadPoolExecutor(max_workers=len(by_host)) as pool:
            runs = dict(zip(by_host, pool.map(visit, by_host)))
        for host, run in runs.items():
            self.bench_calls += run.bench_calls
            for c in by_host[host]:
                figures = run.bench[sha256_file(file_of(c))]
                entry = {**figures, "board": run.board, "runtime": run.runtime, "emulated": run.emulated,
                         "settings": settings_key(settings), "measured_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
                c[kind] = entry
                if "error" not in figures:
                    self.cache.put(self.cache.key(kind, ident_of(c), host, self.board.runtime, settings_key(settings)), entry)

    def train(self, c: dict, epochs: int) -> None:
        """(4) train a candidate for `epochs` from scratch (a longer cosine schedule, not a resume)."""
        import keras

        from host.model.train import train

        out = self.dir / "cands" / c["id"] / f"e{epochs}"
        t0 = time.monotonic()
        cfg = c["config"]
        summary = train(self.data_at(cfg["input"]), out, epochs=epochs, seed=DEFAULTS.seed, verbose=0, **sp.arch(cfg))
        c.setdefault("train", {})[str(epochs)] = {"val_accuracy": summary["best_val_accuracy"],
                                                  "epochs_run": summary["epochs_run"],
                                                  "seconds": round(time.monotonic() - t0, 1)}
        self.trained += 1
        keras.backend.clear_session()

    def finalise(self, c: dict, epochs: int) -> None:
        """(4) full INT8 of the trained model, host accuracy (validation and test), a candidate bundle."""
        import keras

        from host.convert.quantize import convert_all, graph_summary
        from host.pipeline.evaluate import evaluate_variants
        from host.pipeline.trained import write_trained_bundle as write_bundle

        folder = self.dir / "cands" / c["id"]
        ds = self.data_at(c["config"]["input"])
        model = keras.models.load_model(folder / f"e{epochs}" / "model.keras")
        data = convert_all(model, self.calibration(ds, self.req.calibration), ("int8",))
        val = evaluate_variants(data, ds.x_val, ds.y_val)["int8"]
        test = evaluate_variants(data, ds.x_test, ds.y_test)
        manifest = write_bundle(folder / "bundle", f"{self.req.name}-{c['id']}", self.req.dataset, ds, data,
                                {"int8": graph_summary(data["int8"])}, test,
                                {"params": c["static"]["params"], "macs": c["static"]["macs"], "alpha": c["config"]["alpha"]})
        c["int8"] = {"epochs": epochs, "val_top1": val.top1, "host_top1": test["int8"].top1,
                     "size_bytes": manifest["variants"]["int8"]["size_bytes"],
                     "sha256": manifest["variants"]["int8"]["sha256"]}
        keras.backend.clear_session()

    def measure_final(self, todo: list[dict]) -> None:
        """(4) the finalists' trained INT8 on the board with the profile's normal settings + on-board eval."""
        settings = bench_settings(self.board.profile["bench"], self.req.threads)
        bundle = lambda c: self.dir / "cands" / c["id"] / "bundle"  # noqa: E731
        self._bench(todo, "final", settings, lambda c: bundle(c) / "int8.tflite", lambda c: c["int8"]["sha256"])
        for c in todo:
            host = self.req.hosts[int(c["id"][1:]) % len(self.req.hosts)]
            key = self.cache.key("eval", c["int8"]["sha256"], host, self.board.runtime, "eval.npz")
            hit = self.cache.get(key)
            if hit is None:
                b = bundle(c)
                run = on_board(host, self.req.options, evals=[(b / "int8.tflite", b / "eval.npz", b / "manifest.json")])
                hit = run.evals[c["int8"]["sha256"]]
                if "error" not in hit:
                    self.cache.put(key, hit)
            c["final"]["device_top1"] = hit.get("top1")

    def boards_agree(self) -> BoardRun:
        """Visit every board once (installing its runtime if needed); HOSTS= must be boards of one
        profile and runtime, or candidates measured on different boards could not be compared."""
        hosts = self.req.hosts
        with ThreadPoolExecutor(max_workers=min(8, len(hosts))) as pool:
            return one_kind(hosts, list(pool.map(lambda h: on_board(h, self.req.options), hosts)))

    def _train_rung(self, cands: list[dict], epochs: int, keep, desc: str) -> list[dict]:
        from tqdm import tqdm

        done = []
        bar = tqdm(total=len(cands), desc=f"{desc} ({epochs} ep)", unit="cand", disable=bars_off(), leave=False)
        for c in cands:
            if str(epochs) not in c.get("train", {}):
                if self.out_of_time():
                    break
                self.train(c, epochs)
                keep()
            done.append(c)
            bar.update()
            best = max(done, key=lambda d: val_at(d, epochs))
            bar.set_postfix_str(f"best {best['id']} val {100 * val_at(best, epochs):.1f}%")
        bar.close()
        for c in done:
            c.update(stage="trained")
        return done

    def reference(self, default: dict) -> dict:
        """The default model as the picture's reference point: its measured latency, and its accuracy
        from this search (if it was trained) or from the trained default bundle artifacts/<dataset>/."""
        ref = {"id": default["id"], "p50_us": (default.get("final") or default.get("short") or {}).get("p50_us"),
               "top1": (default.get("int8") or {}).get("host_top1"), "source": "this search"}
        bundle = ARTIFACTS / self.req.dataset.replace("/", "_").replace(":", "_") / "manifest.json"
        if ref["top1"] is None and bundle.is_file():
            m = json.loads(bundle.read_text())
            if m.get("dataset", {}).get("spec") == self.req.dataset and "int8" in m.get("variants", {}):
                ref.update(top1=m["variants"]["int8"]["host_top1"], source=str(bundle.parent))
        return ref
