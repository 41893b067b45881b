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

import math
import sys
import time

from deploy.boards.fleet import say
from deploy.settings import bars_off
from host.search import space as sp
from host.search.decisions import broken, closest, halve, most_compute, pareto, rungs, val_at
from host.search.outputs import summary_table, write_winner
from host.search.candidates import Candidates, Request  # noqa: F401 (Request: the search's API)


class Search(Candidates):
    """One `make search` run: the stages of the module docstring over the candidates' work."""

    # ---- the whole thing: the stages of the module docstring, in order
    def run(self) -> tuple[dict, dict | None]:
        self.budgets = self.budgets_for_board()
        lb = self.start_run()
        cands = lb["candidates"]
        alive = self.static_stage(cands)
        say(f"search {self.req.name}: {len(cands)} candidates, {len(alive)} pass the static filter; "
            f"measuring untrained INT8 on {', '.join(self.req.hosts)}")
        alive = self.measure_stage(alive)
        alive, spare = most_compute(alive, self.req.max_trained)
        for c in spare:
            c.update(stage="measured", status="not trained",
                     why=f"within budget; MAX_TRAINED={self.req.max_trained} candidates with more MACs were trained")
        final = self.finalise_stage(self.training_stage(alive))
        winner = self.pick_winner(final)
        for c in cands:
            if c["status"] == "pending":
                c.update(status="not reached", why=c["why"] or "time budget ran out")
        lb["pareto"] = pareto(final)
        lb["winner"] = winner["id"] if winner else None
        lb["reference"] = self.reference(cands[0])
        self.this_run["complete"] = not self.out_of_time()
        self.keep()
        return lb, winner

    def budgets_for_board(self) -> dict:
        """The CLI's budgets, the board profile's filling the gaps; at least one must be set."""
        budgets = dict(self.req.budgets)
        self.board = self.boards_agree()
        for key, value in self.board.profile["budgets"].items():
            budgets.setdefault(key, value)
        if not budgets:
            raise sp.SearchError(f"no budget set: give at least one of MAX_P50_US, MAX_P99_US, MAX_RSS_MB, "
                                 f"MAX_SIZE_KB, MIN_TOP1 (profile {self.board.profile['name']} has none)")
        return budgets

    def start_run(self) -> dict:
        """The leaderboard as kept, with this run added; decisions are re-derived from the facts kept."""
        lb = self.lb = self.load()
        lb.update(budgets=self.budgets, hosts=self.req.hosts, board=self.board.board, runtime=self.board.runtime,
                  profile=self.board.profile["name"], selection="INT8 validation top-1")
        self.this_run = {"started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "bench_calls": 0,
                         "trained": 0, "complete": False}
        lb["runs"].append(self.this_run)
        for c in lb["candidates"]:
            c.pop("broken", None)
            c["status"], c["why"] = "pending", ""
        return lb

    def keep(self) -> None:
        """Save the leaderboard after every step: Ctrl-C loses at most the step in flight."""
        self.this_run.update(bench_calls=self.bench_calls, trained=self.trained,
                             wall_s=round(time.monotonic() - self.started, 1))
        self.save(self.lb)

    def stop(self, c: dict, stage: str, figs: dict) -> bool:
        """Mark `c` over budget at `stage` if `figs` break a budget; True when they do."""
        bad = broken(self.budgets, figs)
        if bad:
            c.update(stage=stage, status="over budget", broken=bad, why="; ".join(b["text"] for b in bad))
        return bool(bad)

    def static_stage(self, cands: list[dict]) -> list[dict]:
        """(2) free static facts; what cannot meet the size/memory budgets stops here."""
        from tqdm import tqdm

        bar = tqdm(total=len(cands), desc="static", unit="cand", disable=bars_off(), leave=False)
        for c in cands:
            if "static" not in c:
                self.static(c)
                self.keep()
            bar.update()
        bar.close()
        alive = []
        for c in cands:
            s = c["static"]
            figs = {"size_kb": s["int8_size_bytes"] / 1024, "peak_rss_mb": s["arena_bytes"] / 2**20}
            if not self.stop(c, "static", figs):
                alive.append(c)
        return alive

    def measure_stage(self, cands: list[dict]) -> list[dict]:
        """(3) untrained INT8 measured on the board; over a latency/RSS budget -> never trained."""
        self.measure_untrained(cands)
        self.keep()
        alive = []
        for c in cands:
            fig = c.get("short", {})
            if "error" in fig:
                c.update(stage="measured", status="failed", why=f"bench failed: {fig['error']}")
            elif not self.stop(c, "measured", {k: fig.get(k) for k in ("p50_us", "p99_us", "peak_rss_mb")}):
                alive.append(c)
        return alive

    def training_stage(self, alive: list[dict]) -> list[tuple[dict, int]]:
        """(4) successive halving: every survivor trains a few epochs, the better half goes on to the
        next rung (trained again from scratch on a longer schedule); the last rung is the default's
        recipe. Returns the finalists, each with the longest training it got."""
        pool, reached = alive, {}
        schedule = rungs(self.req.epochs)
        for i, epochs in enumerate(schedule):
            for c in self._train_rung(pool, epochs, self.keep, f"rung {i + 1}/{len(schedule)}"):
                reached[c["id"]] = epochs
            if i == len(schedule) - 1 or self.out_of_time():
                break        # out of time: the pool is final, each at the longest training it got
            pool, dropped = halve([c for c in pool if reached.get(c["id"]) == epochs], epochs)
            for c in dropped:
                c.update(stage="trained", status="halved",
                         why=f"val top-1 {100 * val_at(c, epochs):.2f} % after {epochs} epochs: lower half")
        return [(c, reached[c["id"]]) for c in pool if c["id"] in reached]

    def finalise_stage(self, finalists: list[tuple[dict, int]]) -> list[dict]:
        """Full INT8 and host accuracy for each finalist, then the board with the profile's settings."""
        from tqdm import tqdm

        bar = tqdm(total=len(finalists), desc="finalise", unit="cand", disable=bars_off(), leave=False)
        for c, epochs in finalists:
            if c.get("int8", {}).get("epochs") != epochs or not (self.dir / "cands" / c["id"] / "bundle").is_dir():
                self.finalise(c, epochs)
                self.keep()
            bar.update()
        bar.close()
        final = [c for c, _ in finalists]
        self.measure_final(final)
        self.keep()
        return final

    def pick_winner(self, final: list[dict]) -> dict | None:
        """(5) the best INT8 validation top-1 whose re-measured figures meet every budget."""
        winner = None
        for c in sorted(final, key=lambda c: (-c["int8"]["val_top1"], c["final"].get("p50_us") or math.inf)):
            f = c["final"]
            if "error" in f:
                c.update(stage="finalist", status="failed", why=f"final bench failed: {f['error']}")
                continue
            figs = {"p50_us": f["p50_us"], "p99_us": f["p99_us"], "peak_rss_mb": f["peak_rss_mb"],
                    "size_kb": c["int8"]["size_bytes"] / 1024,
                    "top1": f["device_top1"] if f.get("device_top1") is not None else c["int8"]["host_top1"]}
            if self.stop(c, "finalist", figs):
                c["why"] = "re-measured: " + c["why"]
            elif winner is None:
                winner = c
                c.update(stage="finalist", status="winner", why="most accurate within every budget")
            else:
                c.update(stage="finalist", status="finalist",
                         why=f"within budget, val top-1 below {winner['id']}'s")
        return winner

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
