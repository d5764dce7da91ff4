"""The record a deliberation starts with: what was asked, by whom, and the council that runs it
(its options and endpoints without secrets)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence

from orchestrator_core.council import Council
from orchestrator_core.hookspecs import Agent, identity_of
from orchestrator_core.records.idempotency import request_fingerprint
from orchestrator_core.records.model import CouncilSeat, DeliberationRecord, RecordStatus
from orchestrator_core.redaction import redact_url
from orchestrator_core.validation import Plan


def new_record(
    checked: Plan, council: Council, agents: Sequence[Agent], top_k: int | None, owner: str
) -> DeliberationRecord:
    """The RUNNING record of a deliberation (``top_k`` None) or an orchestration, owned by the
    process ``owner``."""
    kind = "deliberate" if top_k is None else "orchestrate"
    now = time.time()
    fingerprint = (  # what a retry of the same request id must match; without an id, nothing to match
        request_fingerprint(kind, checked.task, num_agents=checked.num_agents, rounds=checked.rounds, top_k=top_k or 0)
        if checked.request_id
        else ""
    )
    return DeliberationRecord(
        deliberation_id=uuid.uuid4().hex,
        kind=kind,
        role=checked.task.role,
        task=checked.task,
        status=RecordStatus.RUNNING,
        created_at=now,
        updated_at=now,
        request_id=checked.request_id,
        request_fingerprint=fingerprint,
        owner=owner,
        num_agents=checked.num_agents,
        rounds=checked.rounds,
        top_k=top_k or 0,
        council=tuple(council_seat(agent, council, i) for i, agent in enumerate(agents)),
    )


def council_seat(agent: Agent, council: Council, index: int) -> CouncilSeat:
    """A council seat as the record keeps it: options and endpoint without secrets."""
    identity = identity_of(agent)
    return CouncilSeat(
        agent.agent_id,
        council.settings.backend,
        council.seat(index).recorded_options,
        model=identity.model,
        endpoint=redact_url(identity.endpoint) if identity.endpoint else "",
        source=identity.source,
    )
