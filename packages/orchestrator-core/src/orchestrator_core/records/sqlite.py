"""Records in one local SQLite file: the embedded default, nothing to install.

The file is in WAL mode with ``synchronous=FULL``: a record is on disk when a write
returns, so a killed process loses nothing it had finished writing. Every call runs on one
dedicated worker thread, so the event loop never waits on the disk.

Record writes (``create``, ``update``) commit in groups: those made while a commit is in
flight wait for it, then commit together in one transaction, one sync for all of them (each
in a savepoint of its own, so one that fails fails alone). Each returns once its group is
durable. Alone, a write is its own group and commits at once: the group costs nothing
until the writes come faster than the disk syncs them, and then it saves a sync per write.

By default one process owns the file: at startup every record another process left RUNNING
is interrupted. ``shared`` (``serve --processes N``, several processes on one file, which
WAL and the busy timeout allow) treats it as PostgreSQL is treated: each process renews a
lease and only the records of processes whose lease lapsed are interrupted.

Shared, the processes also queue for SQLite's one write lock: each write runs holding an
exclusive ``flock`` on a file beside the database (``<file>.lock``), taken on the worker
thread. A process that finds SQLite's lock held otherwise waits in SQLite's busy handler,
which sleeps (1 ms, then longer) instead of being woken when the lock frees: with a sync
per commit on disk, two processes wrote slower than one. The kernel wakes a process
waiting on the ``flock`` when it is released. The busy timeout stays, for other programs
that write the file without taking the ``flock``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from orchestrator_core.errors import RecordsUnavailable
from orchestrator_core.records import migrations, sql
from orchestrator_core.records.model import DeliberationRecord

if sys.platform != "win32":
    import fcntl

T = TypeVar("T")

BUSY_TIMEOUT_SECONDS = 10.0
"""How long a write waits for another process's write lock (SQLite's and the lock file's)."""
_Waiting = tuple[Callable[[sqlite3.Connection], Any], "asyncio.Future[Any]"]
"""A record write waiting for its group's commit, and where its outcome goes."""


class SQLiteStore(sql.SQLRecordStore):
    """Records in the SQLite file at ``path``."""

    def __init__(self, path: Path | str, *, shared: bool = False, busy_timeout: float = BUSY_TIMEOUT_SECONDS) -> None:
        self._path = Path(path)
        self.shared = shared
        self._busy_timeout = busy_timeout
        self._connection: sqlite3.Connection | None = None
        self._executor: _Worker | None = None
        self._write_lock: _WriteLock | None = None
        """Shared: the lock the processes queue on for each write (see the module's docstring)."""
        self._group: list[_Waiting] = []
        """Record writes waiting for the commit in flight; they make the next group."""
        self._committing: asyncio.Future[None] | None = None
        """Done when the commit in flight ends (its writers are told by then)."""

    async def open(self) -> None:
        self._executor = _Worker("orchestrator-sqlite")
        try:
            self._connection = await self._call(self._connect)
        except BaseException:
            self._executor.stop()
            self._executor = None
            raise

    def _connect(self) -> sqlite3.Connection:
        try:
            if self._path.parent != Path():
                self._path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise RecordsUnavailable(f"cannot open the records file {self._path} (ORCH_DATABASE_PATH): {exc}") from None
        try:
            connection.execute(f"PRAGMA busy_timeout = {round(self._busy_timeout * 1000)}")
            if self.shared and sys.platform != "win32":
                self._write_lock = _WriteLock(self._path.with_name(f"{self._path.name}.lock"), self._busy_timeout)
            _set_up(connection, self._path, self._write_lock)
        except BaseException:
            connection.close()
            self._close_write_lock()
            raise
        return connection

    def _close_write_lock(self) -> None:
        lock, self._write_lock = self._write_lock, None
        if lock is not None:
            lock.close()

    async def close(self) -> None:
        if self._executor is None:
            return
        while self._committing is not None:  # the writes already made are committed first
            await asyncio.wait({self._committing})
        connection, self._connection = self._connection, None
        if connection is not None:
            await self._call(connection.close)
        await self._call(self._close_write_lock)
        executor, self._executor = self._executor, None
        executor.stop()

    async def create(self, record: DeliberationRecord) -> DeliberationRecord | None:
        params = sql.insert_params(record)

        def create(c: sqlite3.Connection) -> DeliberationRecord | None:
            if record.request_id:
                c.execute(sql.RELEASE_REQUEST, (record.request_id, record.request_fingerprint))
                row = c.execute(f"{sql.SELECT_RECORD} WHERE request_key = ?", (record.request_id,)).fetchone()
                if row is not None:
                    return sql.decode_row(row)
            c.execute(sql.INSERT_RECORD, params)
            return None

        created: DeliberationRecord | None = await self._grouped(create)
        return created

    async def update(self, record: DeliberationRecord) -> bool:
        params = sql.update_params(record)
        changed: int = await self._grouped(lambda c: c.execute(sql.UPDATE_RECORD, params).rowcount)
        return changed > 0

    async def heartbeat(self, owner: str) -> None:
        now = time.time()
        await self._execute(
            "INSERT INTO replicas (owner, started_at, heartbeat_at) VALUES (?, ?, ?) "
            "ON CONFLICT (owner) DO UPDATE SET heartbeat_at = excluded.heartbeat_at",
            (owner, now, now),
        )

    async def interrupt_orphans(
        self, owner: str, lease_seconds: float | None, *, queue_redelivers: bool = False
    ) -> tuple[str, ...]:
        now = time.time()
        sweep = sql.orphan_sweep(
            owner,
            lease_seconds,
            now=now,
            lease_cutoff="?",
            cutoff_value=now - (lease_seconds or 0.0),
            queue_redelivers=queue_redelivers,
        )

        def run(c: sqlite3.Connection) -> list[tuple[str]]:
            with _transaction(c, self._write_lock):
                rows = c.execute(sweep.interrupt, sweep.interrupt_params).fetchall()
                c.execute(sweep.forget, sweep.forget_params)
                return rows

        rows = await self._run(run)
        return tuple(row[0] for row in rows)

    # -- plumbing -------------------------------------------------------------

    async def _grouped(self, work: Callable[[sqlite3.Connection], Any]) -> Any:
        """``work``'s result once it is committed with its group (see the module's docstring).
        A caller cancelled while its write waits for the commit in flight withdraws the write
        (as a call not yet started on the worker thread is dropped); once its group is handed
        to the thread, the write is made."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._group.append((work, future))
        if self._committing is None:
            self._commit_next()
        return await future

    def _commit_next(self) -> None:
        """Hand the waiting writes to the worker thread as one group."""
        group, self._group = [waiting for waiting in self._group if not waiting[1].done()], []
        if not group:
            return
        if self._executor is None:
            self._resolve(group, RecordsUnavailable("the record store is not open"))
            return
        works = [work for work, _ in group]
        committing: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._executor.post(partial(self._commit_group, works), partial(self._committed, group, committing))
        self._committing = committing

    def _committed(
        self,
        group: list[_Waiting],
        committing: asyncio.Future[None],
        outcomes: list[Any] | None,
        error: BaseException | None,
    ) -> None:
        """The group's commit ended: tell its writers, then commit the writes made meanwhile."""
        self._committing = None
        committing.set_result(None)
        if error is not None:
            self._resolve(group, error)
        else:
            assert outcomes is not None  # the commit returned them
            self._resolve(group, *outcomes)
        if self._group:
            self._commit_next()

    @staticmethod
    def _resolve(group: list[_Waiting], *outcomes: object) -> None:
        """Each writer's outcome, or one for all of them (the transaction failed)."""
        for (_, future), outcome in zip(group, outcomes if len(outcomes) > 1 else outcomes * len(group), strict=True):
            if future.done():  # its caller was cancelled
                continue
            if isinstance(outcome, _Failed):
                future.set_exception(outcome.error)
            elif isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)

    def _commit_group(self, works: Sequence[Callable[[sqlite3.Connection], Any]]) -> list[Any]:
        """On the worker thread: ``works`` in one transaction, each in a savepoint, so a write
        that raises is undone alone and its error (a :class:`_Failed`) is its outcome. An
        operational error (the disk, a lock) fails the transaction, every write in it."""
        c = self._connection
        if c is None:
            raise RecordsUnavailable("the record store is not open")
        outcomes: list[Any] = []
        try:
            with _transaction(c, self._write_lock):
                if len(works) == 1:
                    return [works[0](c)]
                for work in works:
                    c.execute("SAVEPOINT grouped")
                    try:
                        outcomes.append(work(c))
                    except sqlite3.OperationalError:
                        raise
                    except Exception as exc:
                        c.execute("ROLLBACK TO grouped")
                        outcomes.append(_Failed(exc))
                    c.execute("RELEASE grouped")
        except sqlite3.OperationalError as exc:
            raise RecordsUnavailable(f"the records file {self._path} failed: {exc}") from exc
        return outcomes

    async def _fetch(self, statement: str, params: tuple[object, ...]) -> list[tuple[Any, ...]]:
        if statement.startswith("SELECT"):  # a read: WAL readers never wait on the writer
            return await self._run(lambda c: c.execute(statement, params).fetchall())
        return await self._run(lambda c: self._write(lambda: c.execute(statement, params).fetchall()))

    async def _execute(self, statement: str, params: tuple[object, ...]) -> int:
        return await self._run(lambda c: self._write(lambda: c.execute(statement, params).rowcount))

    def _write(self, work: Callable[[], T]) -> T:
        """``work`` (one statement, its own transaction) holding the write lock when shared."""
        if self._write_lock is None:
            return work()
        with self._write_lock:
            return work()

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        def run() -> T:
            if self._connection is None:
                raise RecordsUnavailable("the record store is not open")
            try:
                return work(self._connection)
            except sqlite3.OperationalError as exc:
                raise RecordsUnavailable(f"the records file {self._path} failed: {exc}") from exc

        return await self._call(run)

    async def _call(self, work: Callable[[], T]) -> T:
        if self._executor is None:
            raise RecordsUnavailable("the record store is not open")
        result: T = await self._executor.call(work)
        return result


_Call = tuple[
    Callable[[], Any], Callable[[], bool], Callable[[Any, "BaseException | None"], None], asyncio.AbstractEventLoop
]
"""A call for the store's thread: the work, whether its caller gave up, where its outcome goes
and on which loop."""


class _Worker:
    """The store's one thread: runs the calls in the order they came and hands each result to
    the event loop that made the call. (A one-thread ``ThreadPoolExecutor`` does the same with
    a concurrent future per call chained to an asyncio one: a third more per call, twice per
    deliberation.) A call whose caller was cancelled before it started is dropped."""

    def __init__(self, name: str) -> None:
        self._calls: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        threading.Thread(target=self._serve, name=name, daemon=True).start()

    def call(self, work: Callable[[], Any]) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._calls.put((work, future.cancelled, partial(_deliver, future), future.get_loop()))
        return future

    def post(self, work: Callable[[], Any], done: Callable[[Any, BaseException | None], None]) -> None:
        """Run ``work``, then ``done(result, error)`` on the calling event loop: one callback
        there instead of a future whose callback then runs in a later turn of the loop. A
        record group's commit comes back this way (its writers' futures are its own)."""
        self._calls.put((work, _never, done, asyncio.get_running_loop()))

    def stop(self) -> None:
        """End the thread once the calls already made have run."""
        self._calls.put(None)

    def _serve(self) -> None:
        while (call := self._calls.get()) is not None:
            work, dropped, done, loop = call
            if dropped():
                continue
            try:
                result, error = work(), None
            except BaseException as exc:
                result, error = None, exc
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits
                loop.call_soon_threadsafe(done, result, error)


def _never() -> bool:
    return False


def _deliver(future: asyncio.Future[Any], result: object, error: BaseException | None) -> None:
    if future.done():  # its caller was cancelled meanwhile
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)


class _Failed:
    """A grouped write that raised: its error, for its caller alone."""

    __slots__ = ("error",)

    def __init__(self, error: Exception) -> None:
        self.error = error


class _WriteLock:
    """An exclusive ``flock`` on ``path`` (made if missing), held by one write at a time across
    the processes that share the database. Used on the store's worker thread only.

    A waiter polls it every 0.2 ms (a sleep that releases the GIL; SQLite's busy handler backs
    off to tens of milliseconds) for at most ``timeout`` seconds, as long as SQLite's own busy
    timeout: a process that stopped while holding it (SIGSTOP, a debugger) makes writes fail
    with "database is locked" rather than hang the store's thread for good."""

    POLL_SECONDS = 0.0002

    def __init__(self, path: Path, timeout: float = BUSY_TIMEOUT_SECONDS) -> None:
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        self._path = path
        self._timeout = timeout

    def __enter__(self) -> None:
        give_up = time.monotonic() + self._timeout
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= give_up:
                    raise sqlite3.OperationalError(
                        f"database is locked: another process held {self._path} for {self._timeout:g}s"
                    ) from None
                time.sleep(self.POLL_SECONDS)

    def __exit__(self, *_: object) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        os.close(self._fd)


class _transaction:
    """``BEGIN IMMEDIATE`` … ``COMMIT`` (``ROLLBACK`` on error) on an autocommit connection,
    holding ``lock`` (shared: the processes' write lock) from before the BEGIN to after the end."""

    def __init__(self, connection: sqlite3.Connection, lock: _WriteLock | None = None) -> None:
        self._connection = connection
        self._lock = lock

    def __enter__(self) -> None:
        if self._lock is not None:
            self._lock.__enter__()
        try:
            self._connection.execute("BEGIN IMMEDIATE")
        except BaseException:
            self._unlock()
            raise

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        try:
            self._connection.execute("COMMIT" if kind is None else "ROLLBACK")
        except BaseException:
            if self._connection.in_transaction:  # a failed COMMIT can leave it open: end it
                self._connection.execute("ROLLBACK")
            raise
        finally:
            self._unlock()

    def _unlock(self) -> None:
        if self._lock is not None:
            self._lock.__exit__()


def _set_up(connection: sqlite3.Connection, path: Path, lock: _WriteLock | None, attempts: int = 50) -> None:
    """WAL, full sync, the schema. Switching to WAL can report "locked" at once, without
    waiting, while another connection opens the same new file; that is retried."""
    for attempt in range(attempts):
        try:
            connection.execute("PRAGMA journal_mode = WAL")
            connection.execute("PRAGMA synchronous = FULL")
            _migrate(connection, path, lock)
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == attempts - 1:
                raise RecordsUnavailable(f"cannot set up the records file {path}: {exc}") from None
            time.sleep(0.1)  # on the store's worker thread, never the event loop


def _migrate(connection: sqlite3.Connection, path: Path, lock: _WriteLock | None) -> None:
    with _transaction(connection, lock):
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "deliberations" in tables and "schema_version" not in tables:
            raise RecordsUnavailable(
                f"{path} holds records in an unversioned layout from a development build; "
                "move it away or set ORCH_DATABASE_PATH to a new file"
            )
        connection.execute(migrations.version_table("sqlite"))
        current = connection.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0]
        migrations.check_not_newer(current, str(path))
        for version, statements in migrations.migrations("sqlite"):
            if version <= current:
                continue
            for statement in statements:
                connection.execute(statement)
            connection.execute("INSERT INTO schema_version VALUES (?, ?)", (version, time.time()))
