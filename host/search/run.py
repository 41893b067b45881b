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

This module holds the order and the decisions between stages; host/search/stages.py what each
stage does, host/search/decide.py the decisions as pure functions, host/search/outputs.py the
table and the winner's bundle.
"""
from __future__ import annotations

import json
import math
import time
from concurrent.futures import ThreadPoolExecutor

from deploy.boards.fleet import say
from deploy.settings import bars_off
from device.contract.fileio import atomic_write_text
from host.config import ARTIFACTS
from host.errors import HostError, Interrupted
from host.search import space as sp
from host.search.board import BoardRun, on_board
from host.search.candidate import Candidate, Leaderboard
from host.search.decide import broken, halve, most_compute, one_kind, pareto, rungs, val_at
from host.search.stages import Request, Stages


class NoWinner(HostError):
    """Nothing met every budget (one line naming the closest candidate): exit 1."""


__all__ = ["NoWinner", "Request", "Search", "run_search"]


class Search(Stages):
    """One `make search` run over one leaderboard directory: the stages in order, and the decisions."""

    def __init__(self, req: Request):
        super().__init__(req)
        self.budgets: dict = {}
        self.lb: Leaderboard | None = None
        self.this_run: dict = {}

    # ---- state
    def plan(self) -> dict:
        """What makes two runs the same search (budgets and boards may change between runs)."""
        return {"dataset": self.req.dataset, "space": str(self.req.space), "space_sha256": self.space.digest,
                "trials": self.req.trials, "max_trained": self.req.max_trained, "epochs": self.req.epochs,
                "threads": self.req.threads, "calibration": self.req.calibration}

    def load(self) -> Leaderboard:
        """The leaderboard of this search so far, or (1) a new one with freshly drawn candidates."""
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
            return Leaderboard.from_dict(lb)
        return Leaderboard.new(self.req.name, self.plan(), sp.draw(self.space, self.ds.input_shape, self.req.trials))

    def save(self, lb: Leaderboard) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.dir / "leaderboard.json", json.dumps(lb.to_dict(), indent=2))

    def keep(self) -> None:
        """Save the leaderboard with this run's counters: what is finished survives a Ctrl-C."""
        self.this_run.update(bench_calls=self.bench_calls, trained=self.trained,
                             wall_s=round(time.monotonic() - self.started, 1))
        self.save(self.lb)

    def over_budget(self, c: Candidate, stage: str, figures: dict) -> bool:
        """Judge figures against the budgets; a candidate that breaks one says which and stops here."""
        bad = broken(self.budgets, figures)
        if bad:
            c.stage, c.status, c.broken, c.why = stage, "over budget", bad, "; ".join(b["text"] for b in bad)
        return bool(bad)

    # ---- the whole thing
    def run(self) -> tuple[Leaderboard, Candidate | None]:
        self.start()
        alive = self.static_filter(self.lb.candidates)
        alive = self.measure_filter(alive)
        final = self.train_rungs(alive)
        self.finalise_all(final)
        winner = self.pick(final)
        self.close(final, winner)
        return self.lb, winner

    def start(self) -> None:
        """The boards and budgets, then (1) the leaderboard: drawn, or this search's so far."""
        self.board = self.boards_agree()
        self.budgets = dict(self.req.budgets)
        for key, value in self.board.profile["budgets"].items():
            self.budgets.setdefault(key, value)
        if not self.budgets:
            raise sp.SearchError(f"no budget set: give at least one of MAX_P50_US, MAX_P99_US, MAX_RSS_MB, "
                                 f"MAX_SIZE_KB, MIN_TOP1 (profile {self.board.profile['name']} has none)")
        self.lb = self.load()
        self.lb.doc.update(budgets=self.budgets, hosts=self.req.hosts, board=self.board.board,
                           runtime=self.board.runtime, profile=self.board.profile["name"],
                           selection="INT8 validation top-1")
        self.this_run = {"started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "bench_calls": 0,
                         "trained": 0, "complete": False}
        self.lb.doc["runs"].append(self.this_run)
        for c in self.lb.candidates:      # decisions are re-derived every run from the facts kept
            c.broken = None
            c.status, c.why = "pending", ""

    def static_filter(self, cands: list[Candidate]) -> list[Candidate]:
        """(2) static facts for every candidate; those over a size or memory budget stop here."""
        from tqdm import tqdm

        bar = tqdm(total=len(cands), desc="static", unit="cand", disable=bars_off(), leave=False)
        for c in cands:
            if c.static is None:
                self.static(c)
                self.keep()
            bar.update()
        bar.close()
        return [c for c in cands if not self.over_budget(
            c, "static", {"size_kb": c.static["int8_size_bytes"] / 1024, "peak_rss_mb": c.static["arena_bytes"] / 2**20})]

    def measure_filter(self, cands: list[Candidate]) -> list[Candidate]:
        """(3) the untrained INT8 files on the boards; over a latency/RSS budget or failed: stop here."""
        say(f"search {self.req.name}: {len(self.lb.candidates)} candidates, {len(cands)} pass the static filter; "
            f"measuring untrained INT8 on {', '.join(self.req.hosts)}")
        self.measure_untrained(cands)
        self.keep()
        alive = []
        for c in cands:
            fig = c.short or {}
            if "error" in fig:
                c.stage, c.status, c.why = "measured", "failed", f"bench failed: {fig['error']}"
            elif not self.over_budget(c, "measured", {k: fig.get(k) for k in ("p50_us", "p99_us", "peak_rss_mb")}):
                alive.append(c)
        return alive

    def train_rungs(self, cands: list[Candidate]) -> list[tuple[Candidate, int]]:
        """(4) the MAX_TRAINED with the most MACs, by successive halving: every survivor trains a few
        epochs, the better half goes on to the next rung (trained again from scratch on a longer
        schedule), the last rung is the default's recipe. Returns the finalists, each with the
        longest training it got (out of time: the pool is final as it stands)."""
        pool, spare = most_compute(cands, self.req.max_trained)
        for c in spare:
            c.stage, c.status = "measured", "not trained"
            c.why = f"within budget; MAX_TRAINED={self.req.max_trained} candidates with more MACs were trained"
        reached: dict[str, int] = {}
        schedule = rungs(self.req.epochs)
        for i, epochs in enumerate(schedule):
            for c in self._train_rung(pool, epochs, f"rung {i + 1}/{len(schedule)}"):
                reached[c.id] = epochs
            if i == len(schedule) - 1 or self.out_of_time():
                break
            pool, dropped = halve([c for c in pool if reached.get(c.id) == epochs], epochs)
            for c in dropped:
                c.stage, c.status = "trained", "halved"
                c.why = f"val top-1 {100 * val_at(c, epochs):.2f} % after {epochs} epochs: lower half"
        return [(c, reached[c.id]) for c in pool if c.id in reached]

    def _train_rung(self, cands: list[Candidate], epochs: int, desc: str) -> list[Candidate]:
        from tqdm import tqdm

        done = []
        bar = tqdm(total=len(cands), desc=f"{desc} ({epochs} ep)", unit="cand", disable=bars_off(), leave=False)
        for c in cands:
            if str(epochs) not in (c.train or {}):
                if self.out_of_time():
                    break
                self.train(c, epochs)
                self.keep()
            done.append(c)
            bar.update()
            best = max(done, key=lambda d: val_at(d, epochs))
            bar.set_postfix_str(f"best {best.id} val {100 * val_at(best, epochs):.1f}%")
        bar.close()
        for c in done:
            c.stage = "trained"
        return done

    def finalise_all(self, finalists: list[tuple[Candidate, int]]) -> None:
        """(4) full INT8 and host accuracy of each finalist (unless done at that training), then the
        final bench and on-board accuracy."""
        from tqdm import tqdm

        bar = tqdm(total=len(finalists), desc="finalise", unit="cand", disable=bars_off(), leave=False)
        for c, epochs in finalists:
            if (c.int8 or {}).get("epochs") != epochs or not (self.dir / "cands" / c.id / "bundle").is_dir():
                self.finalise(c, epochs)
                self.keep()
            bar.update()
        bar.close()
        self.measure_final([c for c, _ in finalists])
        self.keep()

    def pick(self, final: list[tuple[Candidate, int]]) -> Candidate | None:
        """(5) the most accurate finalist on validation whose re-measured figures meet every budget."""
        winner = None
        for c in sorted((c for c, _ in final), key=lambda c: (-c.int8["val_top1"], c.final.get("p50_us") or math.inf)):
            f = c.final
            if "error" in f:
                c.stage, c.status, c.why = "finalist", "failed", f"final bench failed: {f['error']}"
                continue
            figs = {"p50_us": f["p50_us"], "p99_us": f["p99_us"], "peak_rss_mb": f["peak_rss_mb"],
                    "size_kb": c.int8["size_bytes"] / 1024,
                    "top1": f["device_top1"] if f.get("device_top1") is not None else c.int8["host_top1"]}
            if self.over_budget(c, "finalist", figs):
                c.why = "re-measured: " + c.why
            elif winner is None:
                winner = c
                c.stage, c.status, c.why = "finalist", "winner", "most accurate within every budget"
            else:
                c.stage, c.status, c.why = "finalist", "finalist", f"within budget, val top-1 below {winner.id}'s"
        return winner

    def close(self, final: list[tuple[Candidate, int]], winner: Candidate | None) -> None:
        """What was never reached says so; the front, the winner and the reference; saved."""
        for c in self.lb.candidates:
            if c.status == "pending":
                c.status, c.why = "not reached", c.why or "time budget ran out"
        self.lb.doc["pareto"] = pareto([c for c, _ in final])
        self.lb.doc["winner"] = winner.id if winner else None
        self.lb.doc["reference"] = self.reference(self.lb.candidates[0])
        self.this_run["complete"] = not self.out_of_time()
        self.keep()

    def boards_agree(self) -> BoardRun:
        """Visit every board once (installing its runtime if needed); HOSTS= must be boards of one
        profile and runtime, or candidates measured on different boards could not be compared."""
        hosts = self.req.hosts
        with ThreadPoolExecutor(max_workers=min(8, len(hosts))) as pool:
            return one_kind(hosts, list(pool.map(lambda h: on_board(h, self.req.options), hosts)))

    def reference(self, default: Candidate) -> dict:
        """The default model as the picture's reference point: its measured latency, and its accuracy
        from this search (if it was trained) or from the trained default bundle artifacts/<dataset>/."""
        ref = {"id": default.id, "p50_us": default.figures().get("p50_us"),
               "top1": (default.int8 or {}).get("host_top1"), "source": "this search"}
        bundle = ARTIFACTS / self.req.dataset.replace("/", "_").replace(":", "_") / "manifest.json"
        if ref["top1"] is None and bundle.is_file():
            m = json.loads(bundle.read_text())
            if m.get("dataset", {}).get("spec") == self.req.dataset and "int8" in m.get("variants", {}):
                ref.update(top1=m["variants"]["int8"]["host_top1"], source=str(bundle.parent))
        return ref


def run_search(req: Request) -> int:
    """Run the search, print its table, write the winner's bundle; NoWinner when nothing fits."""
    from host.search import outputs
    from host.search.decide import closest

    search = Search(req)
    try:
        lb, winner = search.run()
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted: finished candidates are kept in {search.dir}/leaderboard.json; "
                          "run the same command to continue") from None
    doc = lb.to_dict()
    outputs.print_summary(doc, lb.candidates, search.dir)
    if winner is None:
        raise NoWinner(f"no candidate meets every budget; {closest(lb.candidates)}")
    out = outputs.write_winner(search, doc, winner)
    outputs.print_winner(winner, out, req.name)
    return 0
