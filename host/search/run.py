"""`make search`: the most accurate INT8 model that meets a board's budgets, found by measuring.

The order is chosen so that the expensive part (training) is spent only on candidates that can
fit: (1) draw candidates from the space, (2) static facts for free (params, MACs, INT8 size,
activation arena) discard what cannot meet size/memory budgets, (3) latency does not depend on
weights, so each untrained candidate is converted to INT8 and benchmarked on the board with a
short run; over latency/RSS budget -> discarded before training, (4) measuring costs seconds and
training minutes, so many candidates are measured and only the MAX_TRAINED survivors with the most
MACs are trained: successive halving over rungs of a ninth, a third and all of EPOCHS (the better
half by validation accuracy goes on; the last rung is the default model's training), then full
INT8, host accuracy, and on the board with the profile's normal settings, (5) the winner is the
finalist with the best INT8 *validation* top-1 (the test split never picks a model) whose
re-measured figures meet every budget.

Everything learnt is kept: the leaderboard after every step (Ctrl-C loses at most the step in
flight; the same command continues) and board measurements in a cache keyed by (graph hash,
board, runtime, settings), so a re-run measures nothing it has measured before.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from deploy.settings import bars_off, cache_dir
from device.contract.fileio import atomic_write_bytes, atomic_write_text, sha256_file
from host.search import space as sp
from host.config import ARTIFACTS, DEFAULTS
from host.search.board import BoardOptions, BoardRun, bench_settings, on_board, settings_key

SCHEMA = "edgekit/search-v1"
SHORT = {"num_runs": 30, "warmup_runs": 5, "min_secs": 0.0, "cooldown": 0.0}   # the pre-training measurement
UNTRAINED_CALIBRATION = 16      # images: enough for ranges of an untrained model (latency only)

# budget key -> (figure it limits, label, unit, "max" or "min"); the CLI/Makefile names map here.
BUDGETS = {"max_p50_us": ("p50_us", "p50", "us", "max"), "max_p99_us": ("p99_us", "p99", "us", "max"),
           "max_peak_rss_mb": ("peak_rss_mb", "peak RSS", "MB", "max"),
           "max_size_kb": ("size_kb", "INT8 size", "KB", "max"), "min_top1": ("top1", "on-device top-1", "", "min")}


class NoWinner(Exception):
    """Nothing met every budget (one line naming the closest candidate)."""


@dataclass
class Request:
    dataset: str
    name: str
    hosts: list[str]
    budgets: dict                   # CLI budgets; the profile's fill the gaps
    options: BoardOptions = field(default_factory=BoardOptions)
    threads: int = 1
    trials: int = 36                # candidates drawn, filtered and measured (cheap: seconds each)
    max_trained: int = 8            # of those within budget, at most this many are trained (minutes each)
    epochs: int = DEFAULTS.epochs   # the last rung: the default model's training (rungs() gives the others)
    space: Path = sp.DEFAULT_SPACE
    time_budget_min: float | None = None
    calibration: int = DEFAULTS.calibration_samples


def broken(budgets: dict, figures: dict) -> list[dict]:
    """Every budget the figures break: [{"budget", "value", "limit", "text"}]; unknown figures pass."""
    out = []
    for key, limit in budgets.items():
        fig, label, unit, kind = BUDGETS[key]
        value = figures.get(fig)
        if value is None:
            continue
        if (value > limit) if kind == "max" else (value < limit):
            shown = f"{100 * value:.2f} %" if fig == "top1" else f"{value:.1f} {unit}"
            limit_s = f"{100 * limit:.2f} %" if fig == "top1" else f"{limit:g} {unit}"
            out.append({"budget": key, "value": value, "limit": limit,
                        "text": f"{label} {shown} {'>' if kind == 'max' else '<'} budget {limit_s}"})
    return out


def excess(b: dict) -> float:
    """How far past its budget a figure is, relative (0.1 = 10 % over)."""
    return abs(b["value"] - b["limit"]) / abs(b["limit"]) if b["limit"] else math.inf


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

class Search:
    """One `make search` run over one leaderboard directory."""

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

        from host.model.architecture import count_macs
        from host.convert.quantize import convert_all

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

        from host.pipeline.trained import write_trained_bundle as write_bundle
        from host.pipeline.evaluate import evaluate_variants
        from host.convert.quantize import convert_all, graph_summary

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

    # ---- the whole thing
    def run(self) -> tuple[dict, dict | None]:
        budgets = dict(self.req.budgets)
        self.board = self.boards_agree()
        for key, value in self.board.profile["budgets"].items():
            budgets.setdefault(key, value)
        if not budgets:
            raise sp.SearchError(f"no budget set: give at least one of MAX_P50_US, MAX_P99_US, MAX_RSS_MB, "
                                 f"MAX_SIZE_KB, MIN_TOP1 (profile {self.board.profile['name']} has none)")
        lb = self.load()
        lb.update(budgets=budgets, hosts=self.req.hosts, board=self.board.board, runtime=self.board.runtime,
                  profile=self.board.profile["name"], selection="INT8 validation top-1")
        this_run = {"started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "bench_calls": 0,
                    "trained": 0, "complete": False}
        lb["runs"].append(this_run)
        cands = lb["candidates"]
        for c in cands:      # decisions are re-derived every run from the facts kept
            c.pop("broken", None)
            c["status"], c["why"] = "pending", ""

        def keep():
            this_run.update(bench_calls=self.bench_calls, trained=self.trained,
                            wall_s=round(time.monotonic() - self.started, 1))
            self.save(lb)

        def stop(c: dict, stage: str, figs: dict) -> bool:
            bad = broken(budgets, figs)
            if bad:
                c.update(stage=stage, status="over budget", broken=bad, why="; ".join(b["text"] for b in bad))
            return bool(bad)

        from tqdm import tqdm

        bar = tqdm(total=len(cands), desc="static", unit="cand", disable=bars_off(), leave=False)
        for c in cands:
            if "static" not in c:
                self.static(c)
                keep()
            bar.update()
        bar.close()
        alive = []
        for c in cands:
            s = c["static"]
            figs = {"size_kb": s["int8_size_bytes"] / 1024, "peak_rss_mb": s["arena_bytes"] / 2**20}
            if not stop(c, "static", figs):
                alive.append(c)

        say(f"search {self.req.name}: {len(cands)} candidates, {len(alive)} pass the static filter; "
            f"measuring untrained INT8 on {', '.join(self.req.hosts)}")
        self.measure_untrained(alive)
        keep()
        measured = alive
        alive = []
        for c in measured:
            fig = c.get("short", {})
            if "error" in fig:
                c.update(stage="measured", status="failed", why=f"bench failed: {fig['error']}")
            elif not stop(c, "measured", {k: fig.get(k) for k in ("p50_us", "p99_us", "peak_rss_mb")}):
                alive.append(c)

        alive, spare = most_compute(alive, self.req.max_trained)
        for c in spare:
            c.update(stage="measured", status="not trained",
                     why=f"within budget; MAX_TRAINED={self.req.max_trained} candidates with more MACs were trained")
        # successive halving: every survivor trains a few epochs, the better half goes on to the next
        # rung (trained again from scratch on a longer schedule), the last rung is the default's recipe
        pool, reached = alive, {}
        schedule = rungs(self.req.epochs)
        for i, epochs in enumerate(schedule):
            for c in self._train_rung(pool, epochs, keep, f"rung {i + 1}/{len(schedule)}"):
                reached[c["id"]] = epochs
            if i == len(schedule) - 1 or self.out_of_time():
                break        # out of time: the pool is final, each at the longest training it got
            pool, dropped = halve([c for c in pool if reached.get(c["id"]) == epochs], epochs)
            for c in dropped:
                c.update(stage="trained", status="halved",
                         why=f"val top-1 {100 * val_at(c, epochs):.2f} % after {epochs} epochs: lower half")
        finalists = [(c, reached[c["id"]]) for c in pool if c["id"] in reached]
        bar = tqdm(total=len(finalists), desc="finalise", unit="cand", disable=bars_off(), leave=False)
        for c, epochs in finalists:
            if c.get("int8", {}).get("epochs") != epochs or not (self.dir / "cands" / c["id"] / "bundle").is_dir():
                self.finalise(c, epochs)
                keep()
            bar.update()
        bar.close()
        final = [c for c, _ in finalists]
        self.measure_final(final)
        keep()

        winner = None
        for c in sorted(final, key=lambda c: (-c["int8"]["val_top1"], c["final"].get("p50_us") or math.inf)):
            f = c["final"]
            if "error" in f:
                c.update(stage="finalist", status="failed", why=f"final bench failed: {f['error']}")
                continue
            figs = {"p50_us": f["p50_us"], "p99_us": f["p99_us"], "peak_rss_mb": f["peak_rss_mb"],
                    "size_kb": c["int8"]["size_bytes"] / 1024,
                    "top1": f["device_top1"] if f.get("device_top1") is not None else c["int8"]["host_top1"]}
            if stop(c, "finalist", figs):
                c["why"] = "re-measured: " + c["why"]
            elif winner is None:
                winner = c
                c.update(stage="finalist", status="winner", why="most accurate within every budget")
            else:
                c.update(stage="finalist", status="finalist",
                         why=f"within budget, val top-1 below {winner['id']}'s")
        for c in cands:
            if c["status"] == "pending":
                c.update(status="not reached", why=c["why"] or "time budget ran out")
        lb["pareto"] = pareto(final)
        lb["winner"] = winner["id"] if winner else None
        lb["reference"] = self.reference(cands[0])
        this_run["complete"] = not self.out_of_time()
        keep()
        return lb, winner

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


def one_kind(hosts: list[str], runs: list[BoardRun]) -> BoardRun:
    """The first board, if every board has its profile and runtime; else one SearchError line naming
    each board's kind (figures from different kinds of boards cannot be compared)."""
    kinds = {(r.profile["name"], r.runtime) for r in runs}
    if len(kinds) > 1:
        raise sp.SearchError("HOSTS= must be boards of one profile and runtime: "
                             + ", ".join(f"{h} is {r.profile['name']} ({r.runtime})" for h, r in zip(hosts, runs))
                             + "; set PROFILE= or search one kind of board at a time")
    return runs[0]


def most_compute(cands: list[dict], n: int) -> tuple[list[dict], list[dict]]:
    """(the n candidates with the most MACs, the rest), in draw order. Training is the expensive
    step, so it goes to the candidates that use the most of the budget: within one family of
    models, the compute a latency budget allows is the best free predictor of accuracy (MCUNet's
    observation), and the untrained measurement has already made sure all of them fit."""
    chosen = {id(c) for c in sorted(cands, key=lambda c: -c["static"]["macs"])[:max(0, n)]}
    return [c for c in cands if id(c) in chosen], [c for c in cands if id(c) not in chosen]


def rungs(epochs: int) -> list[int]:
    """Epochs of successive halving's rungs: a ninth, a third, then all of them (40 -> 4, 13, 40);
    fewer rungs when the epochs are too few to tell apart (2 -> 1, 2)."""
    return sorted({max(1, round(epochs / 9)), max(1, round(epochs / 3)), epochs})


def val_at(c: dict, epochs: int) -> float:
    return c["train"][str(epochs)]["val_accuracy"]


def halve(trained: list[dict], epochs: int) -> tuple[list[dict], list[dict]]:
    """(the better half by validation top-1 after `epochs`, the rest); the better half is rounded
    up, and on a tie the earlier candidate goes on, so the draw order breaks ties, not chance."""
    ranked = sorted(trained, key=lambda c: -val_at(c, epochs))
    n = math.ceil(len(ranked) / 2)
    return ranked[:n], ranked[n:]


def pareto(cands: list[dict]) -> list[str]:
    """Finalists no other finalist beats on both INT8 test top-1 (host) and re-measured p50: a report,
    not a selection (the winner is picked on validation top-1)."""
    pts = [(c["id"], c["int8"]["host_top1"], c["final"].get("p50_us")) for c in cands if c["final"].get("p50_us")]
    return [i for i, acc, lat in pts
            if not any((a >= acc and l <= lat) and (a > acc or l < lat) for _, a, l in pts)]


def say(line: str) -> None:
    print(line, flush=True)


# --------------------------------------------------------------------------- outputs

def write_winner(search: Search, lb: dict, winner: dict) -> Path:
    """The winner as a normal bundle artifacts/<name>/ (all four variants; its INT8 file is the one
    measured), the manifest saying it came from a search and under which budgets."""
    import keras

    from host.pipeline.trained import write_trained_bundle as write_bundle
    from host.pipeline.evaluate import evaluate_variants
    from host.model.architecture import count_macs
    from host.convert.quantize import convert_all, graph_summary
    from host.model.train import normalise

    folder = search.dir / "cands" / winner["id"]
    ds = search.data_at(winner["config"]["input"])
    model = keras.models.load_model(folder / f"e{winner['int8']['epochs']}" / "model.keras")
    variants = convert_all(model, search.calibration(ds, search.req.calibration), ("fp32", "dynamic", "fp16"))
    variants["int8"] = (folder / "bundle" / "int8.tflite").read_bytes()
    evals = evaluate_variants(variants, ds.x_test, ds.y_test)
    specs = {v: graph_summary(b) for v, b in variants.items()}
    keras_top1 = float(np.mean(np.argmax(model.predict(normalise(ds.x_test), verbose=0), 1) == ds.y_test))
    info = {"params": winner["static"]["params"], "macs": count_macs(model), "alpha": winner["config"]["alpha"],
            "keras_top1": keras_top1, "calibration_samples": search.req.calibration,
            "search": {"leaderboard": str(search.dir / "leaderboard.json"), "candidate": winner["id"],
                       "config": winner["config"], "budgets": lb["budgets"], "board": lb["board"],
                       "runtime": lb["runtime"], "threads": search.req.threads,
                       "final": {k: winner["final"].get(k) for k in ("p50_us", "p99_us", "peak_rss_mb", "device_top1")}}}
    out = ARTIFACTS / search.req.name
    tmp = ARTIFACTS / f".{search.req.name}.search-tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    write_bundle(tmp, search.req.name, search.req.dataset, ds, variants, specs, evals, info)
    shutil.copyfile(folder / f"e{winner['int8']['epochs']}" / "model.keras", tmp / "model.keras")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


def summary_table(lb: dict) -> str:
    head = (f"{'id':<4} {'model':<28} {'params':>8} {'MMACs':>6} {'KB':>6} {'p50 us':>8} {'val %':>6} "
            f"{'test %':>6} {'dev %':>6}  status")
    lines = [head, "-" * len(head)]
    pct = lambda x: "–" if x is None else f"{100 * x:.2f}"  # noqa: E731
    for c in lb["candidates"]:
        s, i8, f = c.get("static", {}), c.get("int8") or {}, c.get("final") or {}
        p50 = f.get("p50_us") or (c.get("short") or {}).get("p50_us")
        val = i8.get("val_top1") or max((t["val_accuracy"] for t in c.get("train", {}).values()), default=None)
        lines.append(f"{c['id']:<4} {sp.describe(c['config']):<28} {s.get('params', 0):>8,} "
                     f"{s.get('macs', 0) / 1e6:>6.2f} {s.get('int8_size_bytes', 0) / 1024:>6.1f} "
                     f"{'–' if p50 is None else f'{p50:.1f}':>8} {pct(val):>6} {pct(i8.get('host_top1')):>6} "
                     f"{pct(f.get('device_top1')):>6}  {c['status']}{': ' + c['why'] if c['why'] else ''}")
    return "\n".join(lines)


def closest(lb: dict) -> str:
    """The candidate nearest to meeting every budget, and what it broke."""
    scored = [(max(excess(b) for b in c["broken"]), c) for c in lb["candidates"] if c.get("broken")]
    if not scored:
        return "no candidate got far enough to be judged"
    _, c = min(scored, key=lambda t: t[0])
    return f"closest: {c['id']} ({sp.describe(c['config'])}) broke {c['why']}"


def run_search(req: Request) -> int:
    search = Search(req)
    try:
        lb, winner = search.run()
    except KeyboardInterrupt:
        print(f"interrupted: finished candidates are kept in {search.dir}/leaderboard.json; "
              "run the same command to continue", file=sys.stderr)
        return 130
    from host.report.search import plot_pareto

    plot_pareto(lb, search.dir / "pareto.png")
    print(summary_table(lb))
    last = lb["runs"][-1]
    emulated = any((c.get("final") or c.get("short") or {}).get("emulated") for c in lb["candidates"])
    print(f"\n{len(lb['candidates'])} candidates, {last['bench_calls']} measured on the board in this run, "
          f"{last['trained']} trainings, {last['wall_s']:.0f} s; budgets "
          + ", ".join(f"{k}={v:g}" for k, v in lb["budgets"].items())
          + f" on {lb['board']}{' (EMULATED: not board latency)' if emulated else ''}")
    print(f"leaderboard: {search.dir / 'leaderboard.json'}, picture: {search.dir / 'pareto.png'}")
    if winner is None:
        print(f"error: no candidate meets every budget; {closest(lb)}", file=sys.stderr)
        return 1
    out = write_winner(search, lb, winner)
    f = winner["final"]
    board_top1 = "–" if f.get("device_top1") is None else f"{100 * f['device_top1']:.2f}"
    print(f"winner {winner['id']} ({sp.describe(winner['config'])}): p50 {f['p50_us']:.1f} us, "
          f"INT8 top-1 {100 * winner['int8']['host_top1']:.2f} % host / {board_top1} % board "
          f"-> {out}/ (ready for `make deploy bench report NAME={req.name}`)")
    return 0
