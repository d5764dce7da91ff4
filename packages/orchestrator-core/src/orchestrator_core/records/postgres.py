"""Records in PostgreSQL, shared by every replica of the service.

psycopg 3 with an async connection pool: nothing blocks the event loop. The pool is opened
at its full size: grown on demand, it made a burst of deliberations wait for connections made
one at a time (several round trips each, on an event loop the burst keeps busy). A write
holds its connection for its round trips, each a turn of that loop, so a write is as few
round trips as it can be: a record without a request id is created by one INSERT
(autocommitted: durable when it returns). Leases in the
``replicas`` table use the database's clock, so replicas' clocks need not agree. Migrations
run under a transaction-scoped advisory lock, so replicas starting at once apply each one
once.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, LiteralString

from orchestrator_core.errors import InvalidRequest, RecordsUnavailable
from orchestrator_core.records import migrations, sql
from orchestrator_core.records.model import DeliberationRecord
from orchestrator_core.redaction import redact_url

try:
    import psycopg
    from psycopg_pool import AsyncConnectionPool
except ImportError:  # pragma: no cover - the `postgres` extra is not installed
    psycopg = None  # type: ignore[assignment]

_NOW = "extract(epoch from clock_timestamp())"
_MIGRATION_LOCK = "SELECT pg_advisory_xact_lock(hashtext('orchestrator-records:' || current_schema()))"


class PostgresStore(sql.SQLRecordStore):
    """Records in the PostgreSQL database at ``url`` (``postgresql://user@host:5432/db``)."""

    shared = True

    def __init__(self, url: str, *, pool_size: int = 10, connect_timeout: float = 10.0) -> None:
        if psycopg is None:  # pragma: no cover - the `postgres` extra is not installed
            raise RecordsUnavailable(
                "ORCH_DATABASE_URL names PostgreSQL, but psycopg is not installed: "
                "pip install 'orchestrator-core[postgres]'"
            )
        self._url = url
        self._where = redacted(url)
        self._pool_size = pool_size
        self._connect_timeout = connect_timeout
        self._pool: AsyncConnectionPool[Any] | None = None

    async def open(self) -> None:
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            self._url,
            min_size=self._pool_size,
            max_size=self._pool_size,
            open=False,
            timeout=self._connect_timeout,
            kwargs={"autocommit": True, "connect_timeout": max(1, round(self._connect_timeout))},
        )
        try:
            await pool.open(wait=True, timeout=self._connect_timeout)
            self._pool = pool
            await self._migrate()
        except BaseException as exc:
            self._pool = None
            await pool.close()
            if type(exc).__name__ == "PoolTimeout":  # every connection is opened at start
                raise RecordsUnavailable(
                    f"cannot open {self._pool_size} connections to the records database {self._where} within "
                    f"{self._connect_timeout:g}s (ORCH_DATABASE_URL; ORCH_DATABASE_POOL_SIZE sets how many, "
                    f"ORCH_DATABASE_CONNECT_TIMEOUT_SECONDS how long): {_reason(exc)}"
                ) from None
            if isinstance(exc, RecordsUnavailable | psycopg.Error):
                raise RecordsUnavailable(
                    f"cannot use the records database {self._where} (ORCH_DATABASE_URL): {_reason(exc)}"
                ) from None
            raise

    async def _migrate(self) -> None:
        async with self._connection() as connection, connection.transaction():
            await connection.execute(_MIGRATION_LOCK)
            await connection.execute(migrations.version_table("postgresql"))
            cursor = await connection.execute("SELECT coalesce(max(version), 0) FROM schema_version")
            row = await cursor.fetchone()
            current = int(row[0]) if row else 0
            migrations.check_not_newer(current, self._where)
            for version, statements in migrations.migrations("postgresql"):
                if version <= current:
                    continue
                for statement in statements:
                    await connection.execute(statement)
                await connection.execute("INSERT INTO schema_version VALUES (%s, %s)", (version, time.time()))

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def create(self, record: DeliberationRecord) -> DeliberationRecord | None:
        if not record.request_id:  # nothing to release or to conflict on: one statement, one round trip
            await self._execute(sql.INSERT_RECORD, sql.insert_params(record))
            return None
        async with self._connection() as connection, connection.transaction():
            await connection.execute(_pg(sql.RELEASE_REQUEST), (record.request_id, record.request_fingerprint))
            cursor = await connection.execute(
                _pg(sql.INSERT_RECORD + " ON CONFLICT (request_key) DO NOTHING RETURNING deliberation_id"),
                sql.insert_params(record),
            )
            if await cursor.fetchone() is not None:
                return None
            cursor = await connection.execute(_pg(f"{sql.SELECT_RECORD} WHERE request_key = ?"), (record.request_id,))
            row = await cursor.fetchone()
        if row is None:  # the holder gave the id up between the two statements
            return await self.create(record)
        return sql.decode_row(row)

    async def heartbeat(self, owner: str) -> None:
        await self._execute(
            f"INSERT INTO replicas (owner, started_at, heartbeat_at) VALUES (?, {_NOW}, {_NOW}) "
            "ON CONFLICT (owner) DO UPDATE SET heartbeat_at = excluded.heartbeat_at",
            (owner,),
        )

    async def interrupt_orphans(
        self, owner: str, lease_seconds: float | None, *, queue_redelivers: bool = False
    ) -> tuple[str, ...]:
        sweep = sql.orphan_sweep(
            owner,
            lease_seconds,
            now=time.time(),
            lease_cutoff=f"{_NOW} - ?",
            cutoff_value=lease_seconds or 0.0,
            queue_redelivers=queue_redelivers,
        )
        async with self._connection() as connection, connection.transaction():
            cursor = await connection.execute(_pg(sweep.interrupt), sweep.interrupt_params)
            rows = await cursor.fetchall()
            await connection.execute(_pg(sweep.forget), sweep.forget_params)
        return tuple(row[0] for row in rows)

    # -- plumbing -------------------------------------------------------------

    def _connection(self) -> Any:
        if self._pool is None:
            raise RecordsUnavailable("the record store is not open")
        return _Guarded(self._pool, self._where)

    async def _execute(self, statement: str, params: tuple[object, ...]) -> int:
        async with self._connection() as connection:
            cursor = await connection.execute(_pg(statement), params)
            changed: int = cursor.rowcount
            return changed

    async def _fetch(self, statement: str, params: tuple[object, ...]) -> Sequence[tuple[Any, ...]]:
        async with self._connection() as connection:
            cursor = await connection.execute(_pg(statement), params)
            rows: Sequence[tuple[Any, ...]] = await cursor.fetchall()
            return rows


class _Guarded:
    """A pooled connection whose database errors become :class:`RecordsUnavailable`."""

    def __init__(self, pool: AsyncConnectionPool[Any], where: str) -> None:
        self._context = pool.connection()
        self._where = where

    async def __aenter__(self) -> Any:
        try:
            return await self._context.__aenter__()
        except Exception as exc:
            raise RecordsUnavailable(f"the records database {self._where} is unreachable: {_reason(exc)}") from exc

    async def __aexit__(self, kind: Any, error: BaseException | None, traceback: Any) -> None:
        await self._context.__aexit__(kind, error, traceback)
        if isinstance(error, psycopg.DataError):  # a value PostgreSQL cannot hold, e.g. a NUL byte
            raise InvalidRequest(f"the request holds a value the records database cannot store: {_reason(error)}")
        if isinstance(error, psycopg.OperationalError):
            raise RecordsUnavailable(f"the records database {self._where} failed: {_reason(error)}") from error


def _pg(statement: str) -> LiteralString:
    """``?`` placeholders (the shared SQL's) as psycopg's ``%s``."""
    return statement.replace("?", "%s")


def _reason(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def redacted(url: str) -> str:
    """``url`` without its password (in the user part or the query), for messages and logs."""
    return redact_url(url)
