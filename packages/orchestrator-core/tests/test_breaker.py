"""The circuit breaker per backend endpoint."""

from __future__ import annotations

import pytest

from orchestrator_core.breaker import CircuitBreaker, CircuitOpen, CircuitState
from orchestrator_core.council import build_councils
from orchestrator_core.errors import BackendRejected, BackendUnavailable, QuorumLost
from orchestrator_core.models import Phase, Task
from orchestrator_core.settings import CouncilSettings, Settings
from orchestrator_core.testing import ScriptedBackend


class ManualClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def fail_unreachable() -> None:
    raise BackendUnavailable("down")


async def succeed() -> str:
    return "ok"


async def test_repeated_failures_open_the_circuit_and_calls_fail_fast() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker("http://model:8000/v1", failure_threshold=3, cooldown_seconds=30, clock=clock)
    for _ in range(3):
        with pytest.raises(BackendUnavailable):
            await breaker.call(fail_unreachable)
    assert breaker.current_state() is CircuitState.OPEN
    attempts = 0

    async def counted() -> str:
        nonlocal attempts
        attempts += 1
        return "ok"

    with pytest.raises(CircuitOpen, match=r"circuit for http://model:8000/v1 is open after 3 consecutive failures"):
        await breaker.call(counted)
    assert attempts == 0


async def test_after_the_cooldown_one_trial_decides() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker("e", failure_threshold=1, cooldown_seconds=10, clock=clock)
    with pytest.raises(BackendUnavailable):
        await breaker.call(fail_unreachable)
    clock.now = 10
    assert breaker.current_state() is CircuitState.HALF_OPEN
    with pytest.raises(BackendUnavailable):
        await breaker.call(fail_unreachable)  # the trial fails: open again
    assert breaker.current_state() is CircuitState.OPEN
    clock.now = 20
    assert await breaker.call(succeed) == "ok"
    assert breaker.current_state() is CircuitState.CLOSED


async def test_refused_configuration_does_not_count_as_the_endpoint_being_down() -> None:
    breaker = CircuitBreaker("e", failure_threshold=1)

    async def refused() -> None:
        raise BackendRejected("credentials refused")

    with pytest.raises(BackendRejected):
        await breaker.call(refused)
    assert breaker.current_state() is CircuitState.CLOSED


async def test_agent_timeouts_count_as_failures_of_the_endpoint() -> None:
    from orchestrator_core.deliberation import DeliberationEngine
    from orchestrator_core.scoring import Scorer

    backend = ScriptedBackend(defaults={"hang_in": frozenset({Phase.GENERATE})})
    settings = Settings(councils={"DEV": CouncilSettings(backend="scripted", agents=2)}, breaker_failure_threshold=2)
    council = build_councils(settings, {"scripted": backend})["DEV"]
    engine = DeliberationEngine(checks=(), scorer=Scorer(), quorum=1, agent_timeout_seconds=0.01)
    with pytest.raises(QuorumLost, match="timed out"):
        await engine.deliberate(Task(role="DEV", description="x"), council.agents(2), rounds=0)
    assert council.info().circuit is CircuitState.OPEN


async def test_a_trial_call_that_times_out_reopens_the_circuit() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker("e", failure_threshold=1, cooldown_seconds=10, clock=clock)
    breaker.record_failure()
    clock.now = 10
    breaker.before_call()  # the trial goes out ...
    breaker.record_abandoned()  # ... is cancelled by the caller's timeout ...
    breaker.record_timeout()  # ... which the caller reports
    assert breaker.current_state() is CircuitState.OPEN


async def test_a_council_fails_fast_once_its_endpoint_circuit_opens() -> None:
    from orchestrator_core.deliberation import DeliberationEngine
    from orchestrator_core.scoring import Scorer

    backend = ScriptedBackend(defaults={"fail_in": {Phase.GENERATE: BackendUnavailable("no server at x")}})
    settings = Settings(
        councils={"DEV": CouncilSettings(backend="scripted", agents=3)}, breaker_failure_threshold=3
    )
    council = build_councils(settings, {"scripted": backend})["DEV"]
    engine = DeliberationEngine(checks=(), scorer=Scorer(), quorum=2)
    task = Task(role="DEV", description="x")
    with pytest.raises(QuorumLost, match="no server at x"):
        await engine.deliberate(task, council.agents(3), rounds=0)
    assert council.info().circuit is CircuitState.OPEN
    called_before = sum(len(a.calls) for a in backend.created)
    with pytest.raises(QuorumLost, match="circuit for the scripted backend's default endpoint is open"):
        await engine.deliberate(task, council.agents(3), rounds=0)
    assert sum(len(a.calls) for a in backend.created) == called_before  # nobody was called


async def test_a_half_open_circuit_admits_its_trial_calls_and_refuses_the_rest_naming_the_setting() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker(
        "http://model:8000/v1", failure_threshold=1, cooldown_seconds=10, clock=clock, trial_calls=2
    )
    with pytest.raises(BackendUnavailable):
        await breaker.call(fail_unreachable)
    clock.now = 10
    breaker.before_call()
    breaker.before_call()
    with pytest.raises(CircuitOpen) as refused:
        breaker.before_call()
    message = str(refused.value)
    assert "circuit for http://model:8000/v1 is half-open" in message
    assert "2 trial call(s)" in message
    assert "ORCH_BREAKER_COOLDOWN_SECONDS" in message
    breaker.record_success()
    assert breaker.current_state() is CircuitState.CLOSED


async def test_an_open_circuit_repeats_the_last_failure_which_names_the_setting() -> None:
    breaker = CircuitBreaker("http://model:8000/v1", failure_threshold=1, cooldown_seconds=30, clock=ManualClock())

    async def refused_connection() -> None:
        raise BackendUnavailable("no server at http://model:8000/v1: connection refused; check ORCH_OPENAI_BASE_URL")

    with pytest.raises(BackendUnavailable):
        await breaker.call(refused_connection)
    with pytest.raises(CircuitOpen) as refused:
        await breaker.call(succeed)
    message = str(refused.value)
    assert "the last: no server at http://model:8000/v1: connection refused; check ORCH_OPENAI_BASE_URL" in message
    assert "calls fail fast for another 30s (cool-down: ORCH_BREAKER_COOLDOWN_SECONDS)" in message


async def recover_after_outage(trial_calls: int) -> tuple[object, CircuitState]:
    """A council of 3 with quorum 2 whose endpoint was down, then recovered after the cool-down."""
    from orchestrator_core.council import Breakers
    from orchestrator_core.deliberation import DeliberationEngine
    from orchestrator_core.scoring import Scorer

    clock = ManualClock()
    backend = ScriptedBackend(defaults={"fail_in": {Phase.GENERATE: BackendUnavailable("no server at x")}})
    settings = Settings(councils={"DEV": CouncilSettings(backend="scripted", agents=3)}, quorum=2)
    breakers = Breakers(failure_threshold=2, cooldown_seconds=30, trial_calls=trial_calls, clock=clock)
    council = build_councils(settings, {"scripted": backend}, breakers=breakers)["DEV"]
    engine = DeliberationEngine(checks=(), scorer=Scorer(), quorum=2)
    task = Task(role="DEV", description="x")
    with pytest.raises(QuorumLost):
        await engine.deliberate(task, council.agents(3), rounds=0)
    assert council.info().circuit is CircuitState.OPEN

    backend.defaults = {"delay_seconds": 0.01}  # the endpoint is back; its calls overlap
    clock.now = 30
    assert council.info().circuit is CircuitState.HALF_OPEN
    try:
        outcome: object = await engine.deliberate(task, council.agents(3), rounds=0)
    except QuorumLost as exc:
        outcome = exc
    return outcome, council.info().circuit


async def test_a_recovered_endpoint_gives_a_council_enough_trial_calls_for_its_quorum() -> None:
    from orchestrator_core.models import DeliberationOutcome

    outcome, circuit = await recover_after_outage(trial_calls=2)
    assert isinstance(outcome, DeliberationOutcome)
    assert sorted(r.proposal.author_id for r in outcome.results) == ["dev-1", "dev-2"]
    [refused] = outcome.failures
    assert "half-open" in refused.error
    assert circuit is CircuitState.CLOSED


async def test_with_a_single_trial_call_a_recovered_endpoint_would_lose_the_quorum() -> None:
    outcome, _ = await recover_after_outage(trial_calls=1)
    assert isinstance(outcome, QuorumLost)


def test_councils_get_as_many_trial_calls_as_the_quorum() -> None:
    settings = Settings(councils={"DEV": CouncilSettings(backend="scripted", agents=5)}, quorum=3)
    council = build_councils(settings, {"scripted": ScriptedBackend()})["DEV"]
    assert {agent.breaker.trial_calls for agent in council.agents(5)} == {3}
