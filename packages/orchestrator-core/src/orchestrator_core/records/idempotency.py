"""request_id: a retried request finds the first call's record instead of deliberating twice.

The database holds each request_id on one record at a time (a unique column), across
every replica sharing it. A call that finds the id held:

- by a record of a different request (role, task, constraints, size, rounds, kind or
  top_k differ) is refused as an invalid request, and nothing changes;
- by a succeeded record gets that record: the first call's outcome, same deliberation id;
- by a queued or running record waits for it, polling with backoff within its own deadline
  (a submit, :func:`hold`, returns that record at once instead);
- by a failed, cancelled or interrupted record of the same request takes the id over
  and runs the deliberation itself (the failed record stays, for the audit trail).
"""

from __future__ import annotations

import asyncio
import hashlib
import json

from pydantic import TypeAdapter

from orchestrator_core.errors import InvalidRequest
from orchestrator_core.models import Task
from orchestrator_core.records.model import RETRYABLE_STATUSES, DeliberationRecord, RecordStatus
from orchestrator_core.records.store import DeliberationStore

FIRST_POLL_SECONDS = 0.05
MAX_POLL_SECONDS = 1.0

_TASK = TypeAdapter(Task)


def request_fingerprint(kind: str, task: Task, *, num_agents: int, rounds: int, top_k: int) -> str:
    """A digest of what a request asks for, as the client sent it (after normalising)."""
    payload = {
        "kind": kind,
        "task": _TASK.dump_python(task, mode="json"),
        "num_agents": num_agents,
        "rounds": rounds,
        "top_k": top_k,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


async def claim(store: DeliberationStore, record: DeliberationRecord) -> DeliberationRecord | None:
    """Store ``record`` as the holder of its request_id and return None, or return the
    succeeded record that already answers the request (waiting while it runs).

    Raises InvalidRequest when the id belongs to a different request. The caller bounds
    the wait with its deadline.
    """
    holder = await store.create(record)
    delay = FIRST_POLL_SECONDS
    while holder is not None:
        if holder.request_fingerprint != record.request_fingerprint:
            raise InvalidRequest(
                f"request_id {record.request_id!r} was already used for a different request "
                f"(deliberation {holder.deliberation_id}); use a new request_id"
            )
        if holder.status is RecordStatus.SUCCEEDED:
            return holder
        if holder.status not in (RecordStatus.QUEUED, RecordStatus.RUNNING):
            holder = await store.create(record)
            continue
        await asyncio.sleep(delay)
        delay = min(delay * 1.5, MAX_POLL_SECONDS)
        current = await store.get_by_request(record.request_id)
        if current is None or current.status in RETRYABLE_STATUSES:
            holder = await store.create(record)
        else:
            holder = current
    return None


async def hold(store: DeliberationStore, record: DeliberationRecord) -> DeliberationRecord | None:
    """Store ``record`` as the holder of its request_id and return None, or return the record
    that holds it already (queued, running or succeeded: a submit answers with it at once).

    Raises InvalidRequest when the id belongs to a different request."""
    while True:
        holder = await store.create(record)
        if holder is None:
            return None
        if holder.request_fingerprint != record.request_fingerprint:
            raise InvalidRequest(
                f"request_id {record.request_id!r} was already used for a different request "
                f"(deliberation {holder.deliberation_id}); use a new request_id"
            )
        if holder.status not in RETRYABLE_STATUSES:
            return holder
        # it finished as a retryable failure between the release and the read: take it over
