"""The arms of the comparison: the same problem, model and token budget, asked four ways.

``single`` is one agent's one call (the pass@1 baseline); ``best-of-n`` is N independent
proposals ranked by the checks, with no critique, which separates "selection by tests" from
"deliberation"; ``council`` is the full deliberation (N agents, R critique/revise rounds, the
checks) and its top-ranked proposal; ``orchestrate`` adds the selector's choice (an
ARCHITECT agent) among the top candidates.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Arm(StrEnum):
    SINGLE = "single"
    BEST_OF_N = "best-of-n"
    COUNCIL = "council"
    ORCHESTRATE = "orchestrate"

    @property
    def deliberates(self) -> bool:
        """True for the arms that run critique/revise rounds (the expensive ones)."""
        return self in (Arm.COUNCIL, Arm.ORCHESTRATE)


ALL_ARMS = tuple(Arm)


@dataclass(frozen=True)
class ArmPlan:
    """What one arm asks the service for."""

    arm: Arm
    num_agents: int
    rounds: int
    orchestrate: bool = False
    top_k: int = 0

    @property
    def key(self) -> str:
        """Names the arm with its shape, so results of another shape are not taken as its own."""
        return f"{self.arm}:agents={self.num_agents}:rounds={self.rounds}:top_k={self.top_k}"


def plan_arm(arm: Arm, *, agents: int, rounds: int, top_k: int = 0) -> ArmPlan:
    if agents < 1:
        raise ValueError(f"--agents must be at least 1, got {agents}")
    if rounds < 0:
        raise ValueError(f"--rounds must be 0 or more, got {rounds}")
    if arm is Arm.SINGLE:
        return ArmPlan(arm, num_agents=1, rounds=0)
    if arm is Arm.BEST_OF_N:
        return ArmPlan(arm, num_agents=agents, rounds=0)
    if arm is Arm.COUNCIL:
        return ArmPlan(arm, num_agents=agents, rounds=rounds)
    return ArmPlan(arm, num_agents=agents, rounds=rounds, orchestrate=True, top_k=top_k)


def parse_arms(text: str) -> tuple[Arm, ...]:
    """``--arms single,council``: known names, in the order given, each once."""
    names = [name.strip().lower() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in {arm.value for arm in Arm}]
    if unknown or not names:
        known = ", ".join(arm.value for arm in Arm)
        raise ValueError(f"unknown arm(s) {', '.join(unknown) or '(none given)'}; choose from {known}")
    return tuple(dict.fromkeys(Arm(name) for name in names))
