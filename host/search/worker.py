"""A search worker: runs trials of the study until the search has what it asked for.

One trial is one candidate, and keeps the search's order so that training (minutes) is spent only
on what can fit: (2) static facts for free — over a size/memory budget: pruned; (3) the untrained
INT8 file measured on a leased board (latency does not depend on weights) — over a latency/RSS
budget: pruned there, never trained; (4) training, reporting validation accuracy each epoch to the
successive-halving pruner of the rungs study (a run that falls behind stops: "halved"), then full
INT8, host accuracy, and the board again with the profile's normal settings; (5) a finalist that
could still win is re-validated on folds, jobs any worker takes before a new trial (folds.py).
The trial's values are (INT8 validation top-1, p50, peak RSS); the budgets are its constraints.

What a trial learns is kept in its user attributes as it goes ("cand": the leaderboard entry), so a
trial whose worker died is re-queued by Optuna with them and measures nothing again; the same
graph measured by another trial is reused too. Workers on any host run the same loop
(`make search-worker STORAGE=... NAME=...`); they read the request from the study.
"""
from __future__ import annotations

import json
import socket
import time
import zlib
from pathlib import Path

from deploy.boards.session import Options
from host.search import space as sp
from host.search import study as st
from host.search.board import BoardFailure, on_board
from host.search.candidate import Candidate
from host.search.decide import accuracy, broken, dominated_at_cut, out_of_reach, time_for_training
from host.search.folds import FoldJobs
from host.search.lease import Leases, holder_name
from host.search.stages import Request, Stages

FINISHED = ("COMPLETE", "PRUNED")
MAX_FAILURES = 3        # trials in a row that fail on this worker (a board down, a model it cannot run)


class CandidateFailed(Exception):
    """A candidate the board could not run (the trial fails; the search goes on)."""


def request_from(doc: dict, hosts: list[str] | None = None) -> Request:
    """The request a study was started with (HOSTS= of this worker replaces the pool)."""
    d = dict(doc)
    d["options"] = Options(**d.get("options", {}))
    d["space"] = Path(d["space"])
    if hosts:
        d["hosts"] = hosts
    return Request(**d)


class Worker(Stages):
    """Runs trials of one study with its own sampler, leasing boards from the study's database."""

    def __init__(self, req: Request, url: str, index: int = 0, leader: bool = False):
        super().__init__(req)
        self.url, self.leader = url, leader
        self.holder = holder_name(str(index) if index >= 0 else "")
        if index < 0:       # a worker joining from another host: a seed of its own
            index = 1 + zlib.crc32(self.holder.encode()) % 100_000
        self.study, self.rungs = st.open_studies(req, url, create=False,
                                                 sampler=st.sampler(req.sampler, self.space.seed, index))
        db = st.engine(url)
        self.leases = Leases(db)
        self.jobs = FoldJobs(db, self.study.user_attrs.get("uid") or req.name)      # finalists' folds
        # lease names: a board's spec, except `local`, which is a different board on every host
        self.boards = {(f"local@{socket.gethostname()}" if h == "local" else h): h for h in req.hosts}
        self.board = on_board(req.hosts[0], req.options)
        self.native = tuple(self.ds.input_shape)
        self.failures, self.last_error, self.down = 0, "", set()

    # ---- the loop
    def run(self) -> None:
        """Trials until the search has TRIALS finished or MAX_TRAINED trainings (or time is up); the
        leader also waits for the other workers' trials, and takes over those of dead workers."""
        import optuna
        from optuna.trial import TrialState

        while True:
            optuna.storages.fail_stale_trials(self.study)
            if self.fold_job():             # a finalist's fold before anything new
                continue
            trials = self.study.get_trials(deepcopy=False)
            waiting = any(t.state == TrialState.WAITING for t in trials)
            if self.out_of_time():
                break
            if waiting or not self.enough(trials):
                self.study.optimize(self.objective, n_trials=1, catch=(CandidateFailed, BoardFailure),
                                    gc_after_trial=True)
                if self.failures >= MAX_FAILURES:     # failed trials do not count: stop, not loop
                    raise BoardFailure(f"{MAX_FAILURES} trials in a row failed here; the last: {self.last_error}")
                continue
            if self.leader and any(t.state == TrialState.RUNNING for t in trials):
                time.sleep(1.0)
                continue
            break

    def enough(self, trials: list) -> bool:
        live = [t for t in trials if t.state.name in FINISHED + ("RUNNING",)]
        trained = sum(1 for t in live if t.user_attrs.get("trained"))
        return len(live) >= self.req.trials or trained >= self.req.max_trained

    # ---- one trial
    def objective(self, trial) -> tuple[float, float, float]:
        """One candidate; its constraints are set when it ends, pruned or complete."""
        import optuna

        try:
            values = self.candidate(trial)
        except optuna.TrialPruned:
            st.constrain(trial, self.req.budgets)
            self.failures = 0
            raise
        except (CandidateFailed, BoardFailure) as e:
            self.failures, self.last_error = self.failures + 1, str(e)
            raise
        st.constrain(trial, self.req.budgets)
        self.failures = 0
        return values

    def candidate(self, trial) -> tuple[float, float, float]:
        import optuna

        cfg = st.suggest(trial, self.space, self.native)
        c = Candidate(f"c{trial.number:02d}", cfg, default=bool(trial.user_attrs.get("default")))
        known = trial.user_attrs.get("cand") or {}          # a re-queued trial's facts
        other = self.known(cfg, trial.number)
        trial.set_user_attr("worker", self.holder)
        trial.set_user_attr("measured", [])     # what this trial itself measured on a board
        trial.set_user_attr("trained", False)   # (a re-queued trial inherits its predecessor's attrs)
        larger = self.larger_step_fits(trial)
        if larger:                              # a smaller scaled default: not worth a measurement
            c.status, c.why = "skipped", f"a smaller step of the scaled default model than {larger}, which fits"
            self.keep(trial, c)
            raise optuna.TrialPruned(c.why)
        if other.get("training") and not other.get("trained"):      # drawn again while another worker trains it
            c.status, c.why = "skipped", f"the same model as {other['training']}, which another worker is training"
            self.keep(trial, c)
            raise optuna.TrialPruned(c.why)
        # (2) static facts
        c.static = known.get("static") or other.get("static")
        untrained = self.dir / "cands" / c.id / "untrained_int8.tflite"
        if c.static is None:
            self.static(c)
        self.keep(trial, c, "static", {"size_kb": c.static["int8_size_bytes"] / 1024,
                                       "peak_rss_mb": c.static["arena_bytes"] / 2**20})
        # (3) the untrained INT8 file on a board
        c.short = known.get("short") or other.get("short")
        if c.short is None:
            if not untrained.is_file():
                self.static(c)
            self.on_a_board(lambda host: self.measure_untrained(c, host))
            trial.set_user_attr("measured", ["short"])
        if "error" in c.short:
            c.stage, c.status, c.why = "measured", "failed", f"bench failed: {c.short['error']}"
            self.keep(trial, c)
            raise CandidateFailed(c.why)
        self.keep(trial, c, "measured", {k: c.short.get(k) for k in ("p50_us", "p99_us", "peak_rss_mb")})
        if other.get("trained"):        # the sampler drew a model another trial has trained: its results
            return self.same_as(trial, c, other["trained"])
        # (4) training under the pruner, unless MAX_TRAINED trainings are already under way
        if sum(1 for t in self.study.get_trials(deepcopy=False)
               if t.user_attrs.get("trained") and t.state.name in FINISHED + ("RUNNING",)) >= self.req.max_trained:
            c.status, c.why = "not trained", f"within budget; MAX_TRAINED={self.req.max_trained} trainings were made"
            self.keep(trial, c)
            raise optuna.TrialPruned(c.why)
        if not time_for_training(self.time_left(), self.full_training_seconds(), self.req.folds):
            self.deadline = time.monotonic()        # this worker stops after this trial: no training fits
            c.status, c.why = "not trained", "within budget; its training would not end before TIME_BUDGET_MIN"
            self.keep(trial, c)
            raise optuna.TrialPruned(c.why)
        trial.set_user_attr("trained", True)
        halted = self.train_pruned(c)
        self.keep(trial, c, "trained")
        if halted:
            c.status, c.why = "halved", halted
            self.keep(trial, c)
            raise optuna.TrialPruned(c.why)
        self.finalise(c, self.req.epochs)
        self.on_a_board(lambda host: self.measure_final(c, host))
        trial.set_user_attr("measured", trial.user_attrs.get("measured", []) + ["final"])
        if "error" in c.final:
            c.stage, c.status, c.why = "finalist", "failed", f"final bench failed: {c.final['error']}"
            self.keep(trial, c)
            raise CandidateFailed(c.why)
        return self.judge_final(trial, c)

    def larger_step_fits(self, trial) -> str | None:
        """For a step of the scaled default model (study.py ladder; step 0 is the default): a larger
        step measured within every budget. One still being measured (seconds) is waited for, so that
        with any number of workers only the largest step that fits is trained."""
        from optuna.storages import fail_stale_trials
        step = trial.user_attrs.get("ladder")
        if not step:
            return None
        while True:
            waiting = False
            for t in self.study.get_trials(deepcopy=False):
                d = t.user_attrs.get("cand") or {}
                if (t.user_attrs.get("ladder") is None or t.user_attrs["ladder"] >= step
                        or d.get("status") in ("over budget", "skipped", "failed")):
                    continue
                if d.get("short") and "error" not in d["short"]:
                    return d["id"]
                waiting = waiting or (t.state.name == "RUNNING" and not d.get("short"))
            if not waiting or self.out_of_time():
                return None
            time.sleep(0.5)
            fail_stale_trials(self.study)       # a larger step whose worker died: not waited for

    def same_as(self, trial, c: Candidate, d: dict) -> tuple[float, float, float]:
        """A trial of a model already trained (same config, same seed: the same run) takes that
        trial's training, files' figures and verdict instead of training it again."""
        import optuna

        trial.set_user_attr("same_as", d["id"])
        c.extra["same_as"] = d["id"]
        c.train = d.get("train")
        if d.get("status") == "halved":
            c.stage, c.status, c.why = "trained", "halved", f"the same model as {d['id']}: {d.get('why', '')}"
            self.keep(trial, c)
            raise optuna.TrialPruned(c.why)
        c.int8, c.final = d["int8"], d["final"]
        return self.judge_final(trial, c)

    def judge_final(self, trial, c: Candidate) -> tuple[float, float, float]:
        """The re-measured figures against every budget; a finalist within them re-validated on folds."""
        top1 = c.final.get("device_top1")
        c.stage, c.status = "finalist", "finalist"
        self.keep(trial, c, "finalist", {"p50_us": c.final["p50_us"], "p99_us": c.final["p99_us"],
                                         "peak_rss_mb": c.final["peak_rss_mb"], "size_kb": c.int8["size_bytes"] / 1024,
                                         "top1": top1 if top1 is not None else c.int8["host_top1"]})
        behind = c.status == "finalist" and out_of_reach(c, self.finalists())
        if (c.status != "finalist" or behind) and "same_as" not in c.extra:    # its folds (posted at
            self.jobs.cancel(c.config)                                         # its first rung): not needed
        if c.status == "finalist" and self.req.folds >= 2 and not c.int8.get("folds"):   # a contender: steadier
            if behind:
                c.extra["no_folds"] = behind
            else:
                runs = self.folds_of(c)
                data = self.data_at(c.config["input"])
                c.int8["folds"] = [r["top1"] for r in runs]
                c.int8["folds_n"] = len(data.y_train) + len(data.y_val)
                c.int8["fold_runs"] = [{"worker": r["holder"], "seconds": r["seconds"]} for r in runs]
            self.keep(trial, c)
        return accuracy(c)[0], c.final["p50_us"], c.final["peak_rss_mb"] or 0.0

    def finalists(self) -> list[Candidate]:
        """The study's finalists so far (within every budget), as their trials saved them."""
        cands = [t.user_attrs.get("cand") for t in self.study.get_trials(deepcopy=False)]
        return [Candidate.from_dict(d) for d in cands if d and d.get("status") == "finalist"]

    def folds_of(self, c: Candidate) -> list[dict]:
        """The finalist's fold results, each trained by whichever worker took it: this one takes
        them too (its own first) and waits for those other workers are training."""
        while True:
            runs = self.jobs.results(c.config)
            if runs and all(r["state"] == "done" for r in runs):
                return runs
            if not runs or any(r["state"] == "cancelled" for r in runs):
                self.jobs.post(c.id, c.config, self.req.folds)      # (posted at its first rung, unless a
                continue                                            # trial that needed them no more cancelled)
            if not self.fold_job(prefer=c.config):
                time.sleep(0.5)

    def fold_job(self, prefer: dict | None = None) -> bool:
        """Train one open fold of the study's finalists, if there is one (True)."""
        job = self.jobs.take(self.holder, prefer)
        if job is None:
            return False
        t0 = time.monotonic()
        with self.jobs.held(job, self.holder):
            top1 = self.fold_accuracy(Candidate(job.cand, job.config), job.k, job.fold)
        self.jobs.finish(job, self.holder, top1, time.monotonic() - t0)
        return True

    def on_a_board(self, measure) -> None:
        """Run `measure(host)` on a free board of the pool (leased); a board that fails is left out
        by this worker from then on and the measurement moves to another one."""
        while True:
            pool = [b for b in self.boards if b not in self.down]
            if not pool:
                raise BoardFailure(f"every board failed: {self.last_error}")
            with self.leases.hold(pool, self.holder) as board:
                try:
                    return measure(self.boards[board])
                except BoardFailure as e:
                    self.down.add(board)
                    self.last_error = f"{board}: {e}"

    def keep(self, trial, c: Candidate, stage: str | None = None, figures: dict | None = None) -> None:
        """Save what the trial knows; with figures, judge them: over a budget -> pruned here."""
        import optuna

        if stage:
            c.stage = stage
        if figures is not None:
            trial.set_user_attr("figures", {k: v for k, v in figures.items() if v is not None})
            bad = broken(self.req.budgets, figures)
            if bad:
                c.status, c.broken = "over budget", bad
                c.why = ("re-measured: " if stage == "finalist" else "") + "; ".join(b["text"] for b in bad)
        trial.set_user_attr("cand", c.to_dict())
        if figures is not None and c.status == "over budget" and stage != "finalist":
            raise optuna.TrialPruned(c.why)

    def time_left(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()

    def full_training_seconds(self) -> list[float]:
        """How long each training of this study that ran to its end took (halved runs stopped early)."""
        cands = [t.user_attrs.get("cand") or {} for t in self.study.get_trials(deepcopy=False)]
        return [d["train"][str(self.req.epochs)]["seconds"] for d in cands
                if d.get("int8") and not d.get("same_as") and str(self.req.epochs) in (d.get("train") or {})]

    def known(self, cfg: dict, number: int) -> dict:
        """Facts another trial of the study already has for the same model: static facts by config,
        the untrained bench by graph hash (latency does not depend on weights); "training": the id
        of a running trial training this very model."""
        key = json.dumps(cfg, sort_keys=True)
        out: dict = {}
        trials = [t for t in self.study.get_trials(deepcopy=False) if t.number != number and t.user_attrs.get("cand")]
        cands = [t.user_attrs["cand"] for t in trials]
        for t, d in zip(trials, cands):
            if json.dumps(d["config"], sort_keys=True) == key and d.get("static"):
                out["static"] = d["static"]
                if not d.get("same_as") and (d.get("status") == "halved" or (d.get("final") and d.get("int8") and
                                                                          "error" not in d["final"])):
                    out.setdefault("trained", d)
                elif t.state.name == "RUNNING" and t.user_attrs.get("trained"):
                    out.setdefault("training", d["id"])
        graph = (out.get("static") or {}).get("graph")
        for d in filter(None, cands):
            short = d.get("short")
            if graph and (d.get("static") or {}).get("graph") == graph and short and "error" not in short:
                out["short"] = short
        return out

    def train_pruned(self, c: Candidate) -> str:
        """Train with a Keras callback that reports validation accuracy each epoch to a trial of the
        rungs study and stops the run when the pruner (or a faster run as accurate) says so: why it
        was halted, or "" if it trained to the end."""
        import keras
        from optuna.trial import TrialState

        rt, me = self.rungs.ask(), {"p50_us": c.short["p50_us"], "size_kb": c.static["int8_size_bytes"] / 1024}
        for k, v in {"candidate": c.id, **me}.items():
            rt.set_user_attr(k, v)
        state, last = {"why": "", "epochs": 0, "best": 0.0}, st.first_rung(self.req.epochs)
        jobs, folds, rungs, study, since = self.jobs, self.req.folds, self.rungs, self.study, time.monotonic()
        rivals = lambda best: dominated_at_cut({"id": c.id, "val": best, **me},  # noqa: E731
                                               st.rung_rivals(rungs, rt, last), len(self.ds.y_val))

        class Report(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                if st.report_epoch(rt, state, float((logs or {}).get("val_accuracy", 0.0)), last,
                                   lambda: st.wait_at_rung(rungs, rt, last, since, study), rivals):
                    self.model.stop_training = True
                elif state["epochs"] == last and folds >= 2:      # past the cut: it trains to the end,
                    jobs.post(c.id, c.config, folds)              # so its folds can start on idle workers

        summary = self.train(c, self.req.epochs, [Report()])
        c.train = {str(self.req.epochs): c.train[str(self.req.epochs)]}
        if state["why"]:
            self.rungs.tell(rt, state=TrialState.PRUNED)
        else:
            self.rungs.tell(rt, summary["best_val_accuracy"])
        return state["why"]


def work(storage: str | None, name: str, hosts: list[str] | None = None, index: int = -1) -> int:
    """`python -m host search-worker`: join the study NAME in STORAGE and run trials."""
    url = st.storage_url(name, storage)
    if url.startswith("sqlite:///") and not Path(url.split(":///", 1)[1]).is_file():
        raise sp.SearchError(f"no study {name} in {st.shown(url)}: start it with `make search NAME={name}` first")
    st.check_reachable(url)
    import optuna

    try:
        doc = optuna.load_study(study_name=name, storage=url).user_attrs.get("request")
    except KeyError:
        raise sp.SearchError(f"no study {name} in {st.shown(url)}: start it with `make search NAME={name}` "
                             "first") from None
    if not doc:
        raise sp.SearchError(f"study {name} in {st.shown(url)} is not a model search")
    Worker(request_from(doc, hosts), url, index).run()
    return 0
