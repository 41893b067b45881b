"""A finalist's fold re-trainings as jobs that any worker of the study takes.

Re-validating a finalist on k folds is k full trainings. Run by the finalist's own worker, they
made one chain of k + 1 trainings that more workers could not shorten (mnist5k at 0.4x: 350 of
the search's 478 s with one worker; with two, the same chain took 422 s in one of them while the
other explored). So each fold is a row of a table in the study's database (every worker already
reaches it), posted as soon as the candidate's training has passed the pruner's cut — from there it
trains to the end, and is a finalist unless its re-measurement breaks a budget — and taken by a
compare-and-set, as a board lease is: by an idle worker before it starts a new trial, and by the
finalist's own worker once its training is done. A taker renews its claim while it trains; one that
dies leaves a claim that expires after TTL_S and another worker takes the fold again. The folds of a
candidate that turns out not to need them are cancelled (one already running ends and is kept).
A fold is the model's (its config's), not the trial's: a trial re-queued after its worker died, or
the same model drawn again, finds the folds done or under way.
"""
from __future__ import annotations

import hashlib
import json
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

from host.search.lease import TTL_S, create_tables, insert_new, renewing


@dataclass(frozen=True)
class Job:
    cand: str           # the id of the candidate that posted it (c04): where its files go
    fold: int           # which of the k folds is held out
    k: int
    config: dict        # the candidate's builder arguments: a worker that never saw it can train it


class FoldJobs:
    """The fold jobs of one study (`study`: a key unique to the study, not only its NAME, so a study
    deleted and made again under the same NAME does not find the old one's results)."""

    def __init__(self, engine, study: str):
        from sqlalchemy import Column, Float, Integer, MetaData, String, Table, Text

        self.engine, self.study = engine, study
        meta = MetaData()
        self.table = Table("edgekit_fold_job", meta, Column("study", String(256), primary_key=True),
                           Column("model", String(64), primary_key=True), Column("fold", Integer, primary_key=True),
                           Column("cand", String(64)), Column("k", Integer), Column("config", Text),
                           Column("state", String(16)),
                           Column("holder", String(512), nullable=True), Column("expires", Float, nullable=True),
                           Column("top1", Float, nullable=True), Column("seconds", Float, nullable=True))
        create_tables(meta, engine)

    def post(self, cand: str, config: dict, k: int) -> None:
        """The k folds of a model are needed: posted, or opened again if cancelled (posting twice is
        posting once; a fold done stays done)."""
        t = self.table
        insert_new(self.engine, t, [{"study": self.study, "model": model_key(config), "fold": i, "cand": cand,
                                     "k": k, "config": json.dumps(config), "state": "open"} for i in range(k)])
        with self.engine.begin() as conn:
            conn.execute(t.update().where(t.c.study == self.study).where(t.c.model == model_key(config))
                         .where(t.c.state == "cancelled").values(state="open", holder=None, expires=None))

    def _open(self, now: float):
        from sqlalchemy import or_

        t = self.table
        return ((t.c.study == self.study) & (t.c.state == "open")
                & or_(t.c.holder.is_(None), t.c.expires < now))

    def take(self, holder: str, prefer: dict | None = None) -> Job | None:
        """An open fold (those of the model `prefer` first, then the oldest candidate's), claimed by one
        compare-and-set so that two workers never take the same one; None if none is open."""
        from sqlalchemy import select

        t, now = self.table, time.time()
        with self.engine.connect() as conn:
            rows = [r._mapping for r in conn.execute(select(t).where(self._open(now)).order_by(t.c.cand, t.c.fold))]
        first = model_key(prefer) if prefer else None
        for r in sorted(rows, key=lambda r: r["model"] != first):
            with self.engine.begin() as conn:
                res = conn.execute(t.update().where(self._open(now)).where(t.c.model == r["model"])
                                   .where(t.c.fold == r["fold"]).values(holder=holder, expires=now + TTL_S))
            if res.rowcount == 1:
                return Job(r["cand"], r["fold"], r["k"], json.loads(r["config"]))
        return None

    def _where(self, job: Job):
        t = self.table
        return (t.c.study == self.study) & (t.c.model == model_key(job.config)) & (t.c.fold == job.fold)

    @contextmanager
    def held(self, job: Job, holder: str) -> Iterator[None]:
        """The claim renewed while the fold trains; given back if the training raises (Ctrl-C too)."""
        t = self.table

        def renew() -> None:
            with self.engine.begin() as conn:
                conn.execute(t.update().where(self._where(job)).where(t.c.holder == holder)
                             .where(t.c.state == "open").values(expires=time.time() + TTL_S))

        try:
            with renewing(renew):
                yield
        except BaseException:
            with self.engine.begin() as conn:
                conn.execute(t.update().where(self._where(job)).where(t.c.holder == holder)
                             .where(t.c.state == "open").values(holder=None, expires=None))
            raise

    def finish(self, job: Job, holder: str, top1: float, seconds: float) -> None:
        """The fold's result, kept once (a second taker of an expired claim finds it done)."""
        t = self.table
        with self.engine.begin() as conn:
            conn.execute(t.update().where(self._where(job)).where(t.c.top1.is_(None))
                         .values(state="done", holder=holder, expires=None, top1=top1, seconds=round(seconds, 1)))

    def cancel(self, config: dict) -> None:
        """The model's folds not done yet are not needed (one running ends; its result is kept)."""
        t = self.table
        with self.engine.begin() as conn:
            conn.execute(t.update().where(t.c.study == self.study).where(t.c.model == model_key(config))
                         .where(t.c.state == "open").values(state="cancelled"))

    def results(self, config: dict) -> list[dict]:
        """The model's folds in order: fold, state, holder (who trained it), top1, seconds."""
        from sqlalchemy import select

        t = self.table
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.c.fold, t.c.state, t.c.holder, t.c.top1, t.c.seconds)
                                .where(t.c.study == self.study).where(t.c.model == model_key(config))
                                .order_by(t.c.fold))
            return [dict(r._mapping) for r in rows]


def model_key(config: dict) -> str:
    """A model's key: its builder arguments' digest (the same config, seed and data: the same run)."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:32]
