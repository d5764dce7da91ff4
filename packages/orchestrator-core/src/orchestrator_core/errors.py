"""Typed errors of the core. The transport maps each to one status code, in one place.

Plugins raise only the documented ones: an agent raises :class:`AgentError` or one of its
subclasses (:class:`BackendUnavailable`: UNAVAILABLE, :class:`BackendRejected`:
FAILED_PRECONDITION; a plain AgentError: UNAVAILABLE once it costs the quorum). Anything
else a plugin raises (a KeyError in an agent, any exception from a check), and a return value
the contract does not allow (not an AgentReply or a CheckResult, a score outside [0, 1]), is
a bug in the plugin: logged with its traceback, naming the plugin object and the call, and
counted against it. An agent's bug that costs the quorum is INTERNAL (:class:`QuorumLost`
with ``plugin_bug``), not the retryable UNAVAILABLE.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from orchestrator_core.models import DeliberationOutcome


class OrchestratorError(Exception):
    """Base of every error the core raises on purpose."""


class InvalidRequest(OrchestratorError):
    """The request itself is wrong; retrying it unchanged cannot succeed."""


class NotFound(OrchestratorError):
    """A record the request names does not exist."""


class AlreadyFinished(OrchestratorError):
    """The request needs a deliberation still queued or running, and the one named is final."""


class NoCouncil(OrchestratorError):
    """No council can serve the requested role; the message says what to configure."""


class AtCapacity(OrchestratorError):
    """The service is running as many deliberations as it may."""


class AgentError(OrchestratorError):
    """An agent call failed. Backends raise its subclasses so the cause reaches the client."""


class BackendUnavailable(AgentError):
    """The agents' backend could not be reached; the message names the endpoint."""


class BackendRejected(AgentError):
    """The backend refused the configuration (credentials, model); retrying cannot help."""


class QuorumLost(OrchestratorError):
    """Too few agents remain for the council to go on. ``cause`` is the error every failure
    shared, if any; ``plugin_bug`` says a failure was a bug in a backend's code (INTERNAL)."""

    def __init__(self, message: str, cause: AgentError | None = None, *, plugin_bug: bool = False) -> None:
        super().__init__(message)
        self.cause = cause
        self.plugin_bug = plugin_bug


def cause_kind(error: BaseException) -> str:
    """What a record keeps of why a quorum was lost, so a call that reads the record back (a
    queued run) answers the status code the run itself would have: "PluginBug", the common
    cause's class name (e.g. "BackendRejected"), or "" for anything else."""
    if not isinstance(error, QuorumLost):
        return ""
    if error.plugin_bug:
        return "PluginBug"
    return type(error.cause).__name__ if error.cause is not None else ""


class NoViableProposal(OrchestratorError):
    """Every proposal failed a check that counts (or no such check judged any), so there is
    no winner to return; ``outcome`` keeps the ranking for the record."""

    def __init__(self, message: str, outcome: DeliberationOutcome | None = None) -> None:
        super().__init__(message)
        self.outcome = outcome


class DeadlineExceeded(OrchestratorError):
    """The deliberation ran past its time budget (the caller's deadline or the task's timeout)."""


class RecordsUnavailable(OrchestratorError):
    """The deliberation records' database cannot be reached or used; the message says which."""
