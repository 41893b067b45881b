"""Board leases: a board is one measurement's worth of CPU, so two workers never measure on it at once.

The leases are a table in the study's own database (every worker already reaches it): one row per
board, taken by a single conditional UPDATE (free, or its holder's lease expired) — an atomic
compare-and-set in SQLite and PostgreSQL alike, so under real concurrency exactly one worker wins
and the others wait. A holder renews its lease while it measures; a worker that dies leaves a lease
that expires after TTL_S seconds. Every lease taken is logged (board, holder, from, to): who
measured where, and the tests' proof that no two holders overlapped.

A lease keeps two measurements apart, not a measurement and a training: with HOST=local the board
is this machine, and a second worker training beside the first one's measurement made it read 43
us instead of 33 (mnist5k, 0.4x, WORKERS=2) and lose the model that fitted. So a measurement on
this machine also takes it from its own host work (ThisMachine below).
"""
from __future__ import annotations

import fcntl
import os
import socket
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

TTL_S = float(os.environ.get("EDGEKIT_SEARCH_LEASE_TTL_S", "60"))
POLL_S = 0.2


def holder_name(tag: str = "") -> str:
    """host:pid[:tag], unique among the workers of a study."""
    return f"{socket.gethostname()}:{os.getpid()}{':' + tag if tag else ''}"


def create_tables(meta, engine) -> None:
    """The tables of `meta` in the study's database, if missing."""
    try:
        meta.create_all(engine, checkfirst=True)
    except Exception:  # noqa: BLE001 - two workers creating the tables at once: one of them did
        time.sleep(0.5)
        meta.create_all(engine, checkfirst=True)


def insert_new(engine, table, rows: list[dict]) -> None:
    """Insert rows whose key is not there yet; one inserted by another worker meanwhile is no error."""
    dialect = engine.dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:
        from sqlalchemy.dialects.mysql import insert
    with engine.begin() as conn:
        for row in rows:
            stmt = insert(table).values(**row)
            conn.execute(stmt.prefix_with("IGNORE") if dialect == "mysql" else stmt.on_conflict_do_nothing())


@contextmanager
def renewing(renew) -> Iterator[None]:
    """Call `renew()` every TTL_S/4 seconds while the block runs (a claim kept alive by a live holder)."""
    stop = threading.Event()

    def keep_alive() -> None:
        while not stop.wait(TTL_S / 4):
            renew()

    renewer = threading.Thread(target=keep_alive, daemon=True)
    renewer.start()
    try:
        yield
    finally:
        stop.set()
        renewer.join()


class Leases:
    """The lease table of one storage (created on first use)."""

    def __init__(self, engine):
        from sqlalchemy import Column, Float, Integer, MetaData, String, Table

        self.engine = engine
        meta = MetaData()
        self.table = Table("edgekit_board_lease", meta, Column("board", String(512), primary_key=True),
                           Column("holder", String(512), nullable=True), Column("expires", Float, nullable=True))
        self.log = Table("edgekit_board_lease_log", meta, Column("id", Integer, primary_key=True, autoincrement=True),
                         Column("board", String(512)), Column("holder", String(512)),
                         Column("taken", Float), Column("returned", Float, nullable=True))
        create_tables(meta, engine)

    def add(self, boards: list[str]) -> None:
        """Make sure every board has its row (a board added by a later worker's HOSTS= too)."""
        from sqlalchemy import select

        with self.engine.connect() as conn:
            have = {r[0] for r in conn.execute(select(self.table.c.board))}
        insert_new(self.engine, self.table, [{"board": b, "holder": None, "expires": None} for b in boards
                                             if b not in have])

    def try_take(self, board: str, holder: str) -> bool:
        """One compare-and-set: take the board if it is free or its lease has expired."""
        from sqlalchemy import or_

        now = time.time()
        t = self.table
        with self.engine.begin() as conn:
            res = conn.execute(t.update().where(t.c.board == board)
                               .where(or_(t.c.holder.is_(None), t.c.expires < now))
                               .values(holder=holder, expires=now + TTL_S))
            if res.rowcount == 1:     # stamped after the row is ours: never before the last holder let go
                conn.execute(self.log.insert().values(board=board, holder=holder, taken=time.time()))
                return True
        return False

    def renew(self, board: str, holder: str) -> bool:
        t = self.table
        with self.engine.begin() as conn:
            res = conn.execute(t.update().where(t.c.board == board).where(t.c.holder == holder)
                               .values(expires=time.time() + TTL_S))
            return res.rowcount == 1

    def give_back(self, board: str, holder: str) -> None:
        t, log = self.table, self.log
        returned = time.time()          # stamped before the row is free: never after the next holder took it
        with self.engine.begin() as conn:
            conn.execute(t.update().where(t.c.board == board).where(t.c.holder == holder)
                         .values(holder=None, expires=None))
            conn.execute(log.update().where(log.c.board == board).where(log.c.holder == holder)
                         .where(log.c.returned.is_(None)).values(returned=returned))

    @contextmanager
    def hold(self, boards: list[str], holder: str, wait_s: float | None = None) -> Iterator[str]:
        """The first free board of `boards` (waiting while all are busy), renewed while held."""
        self.add(boards)
        deadline = None if wait_s is None else time.monotonic() + wait_s
        while True:
            board = next((b for b in boards if self.try_take(b, holder)), None)
            if board is not None:
                break
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"no board of {', '.join(boards)} came free in {wait_s:g} s")
            time.sleep(POLL_S)
        try:
            with renewing(lambda: self.renew(board, holder)):
                yield board
        finally:
            self.give_back(board, holder)

    def history(self) -> list[dict]:
        """Every lease taken: board, holder, taken, returned (None while held or if its holder died)."""
        from sqlalchemy import select

        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(select(self.log).order_by(self.log.c.id))]


class ThisMachine:
    """This machine's CPU as a board: a measurement on it has the machine to itself.

    A file lock, machine-wide (every search on this machine, not one study): a measurement takes it
    exclusively, a piece of host work (one training batch, a conversion, an evaluation) shared. A
    measurement first leaves a flag naming its process, and work does not start while a live
    process's flag is there, so trainings that take the shared lock batch after batch cannot keep
    a measurement waiting; it waits only for the batches or conversions already running."""

    def __init__(self, folder: Path | None = None):
        self.folder = folder or Path(tempfile.gettempdir()) / "edgekit-this-machine"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.folder / "lock", os.O_RDONLY | os.O_CREAT, 0o644)   # flock needs no write
        self.paused_s = 0.0         # how long this process's work waited for measurements

    def measured_elsewhere(self) -> bool:
        """A live process other than this one is measuring (a dead one's flag is removed)."""
        for flag in self.folder.glob("measuring-*"):
            pid = int(flag.name.split("-", 1)[1])
            if pid == os.getpid():
                continue
            try:
                os.kill(pid, 0)
                return True
            except ProcessLookupError:
                flag.unlink(missing_ok=True)
            except PermissionError:         # alive, another user's
                return True
        return False

    @contextmanager
    def measuring(self) -> Iterator[None]:
        flag = self.folder / f"measuring-{os.getpid()}"
        flag.touch()
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self.fd, fcntl.LOCK_UN)
        finally:
            flag.unlink(missing_ok=True)

    @contextmanager
    def working(self) -> Iterator[None]:
        t0 = time.monotonic()
        while self.measured_elsewhere():
            time.sleep(POLL_S / 4)
        fcntl.flock(self.fd, fcntl.LOCK_SH)
        self.paused_s += time.monotonic() - t0
        try:
            yield
        finally:
            fcntl.flock(self.fd, fcntl.LOCK_UN)

    def keras_callback(self):
        """Training that steps aside, batch by batch, while this machine is measured."""
        import keras

        machine = self

        class StepAside(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.held = None

            def _begin(self, batch, logs=None):
                self.held = machine.working()
                self.held.__enter__()

            def release(self, *_args, **_kw):
                """Let go (also called after a training that raised mid-batch)."""
                if self.held is not None:
                    self.held.__exit__(None, None, None)
                    self.held = None

            on_train_batch_begin = on_test_batch_begin = on_predict_batch_begin = _begin
            on_train_batch_end = on_test_batch_end = on_predict_batch_end = release

        return StepAside()
