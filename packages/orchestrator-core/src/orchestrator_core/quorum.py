"""Why a council lost its quorum, as the error a deliberation ends with.

The message says how many agents failed and the quorum; when every failure shares its
cause in kind (the backend is down, or it refused the configuration) that cause leads and
is kept on the error, so the client gets its status; when a failure was a bug in a backend's
code the error says so (INTERNAL, not the retryable UNAVAILABLE).
"""

from __future__ import annotations

from collections.abc import Sequence

from orchestrator_core.errors import AgentError, BackendRejected, BackendUnavailable, QuorumLost
from orchestrator_core.models import AgentFailure


def quorum_lost(
    failures: Sequence[AgentFailure],
    causes: Sequence[AgentError | None],
    bugs: Sequence[str],
    *,
    total: int,
    active: int,
    quorum: int,
) -> QuorumLost:
    """The error of a council of ``total`` agents left with ``active``, below ``quorum``:
    ``failures`` are the failures so far, ``causes`` the agents' own errors (None for a
    timeout, a bug, or a failure read back from the record), ``bugs`` the backends whose bug
    failed an agent."""
    summary = f"{total - active} of {total} agents failed, leaving {active}, below the quorum of {quorum}"
    details = "; ".join(f"{f.agent_id} in {f.phase.value}: {f.error}" for f in failures)
    if bugs:
        backends = ", ".join(repr(b) for b in sorted(set(bugs)))
        return QuorumLost(
            f"{summary}, because of a bug in the code of backend {backends}; see the service log: {details}",
            plugin_bug=True,
        )
    cause = common_cause(causes)
    if cause is not None:
        return QuorumLost(f"{cause} ({summary})", cause=cause)
    return QuorumLost(f"{summary}: {details}")


def common_cause(causes: Sequence[AgentError | None]) -> AgentError | None:
    """The error every failure shares in kind (e.g. the backend is down), if there is one."""
    if not causes or any(c is None for c in causes):
        return None
    for family in (BackendUnavailable, BackendRejected):
        if all(isinstance(c, family) for c in causes):
            return causes[0]
    return None
