"""The four agent calls on top of one "complete this prompt" primitive each backend provides."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Sequence

from agents_contrib.prompt_fit import PromptBudget, fit_prompt
from agents_contrib.prompting import Prompt, PromptBook
from orchestrator_core.models import AgentReply, Critique, Phase, Proposal, Task

# Reasoning models served by Ollama or vLLM (DeepSeek-R1, Qwen3, ...) may put their
# chain of thought in the reply itself; peers and checks want only the answer.
_THINKING = re.compile(r"^\s*<think>.*?</think>\s*", re.DOTALL)


def strip_thinking(text: str) -> str:
    return _THINKING.sub("", text, count=1)


class PromptedAgent(ABC):
    """An agent whose every call is one prompt rendered from the role's templates."""

    def __init__(self, agent_id: str, role: str, prompts: PromptBook) -> None:
        self.agent_id = agent_id
        self.role = role
        self.prompts = prompts

    @abstractmethod
    async def complete(self, prompt: Prompt, phase: Phase) -> AgentReply:
        """Send one prompt to the model and return its answer."""

    async def prompt_budget(self) -> PromptBudget | None:
        """The tokens a prompt may take, and how to count them; None when the model has no
        known window (then prompts are sent whole). Model backends override this."""
        return None

    async def prompt_for(
        self,
        phase: Phase,
        task: Task,
        *,
        proposal: Proposal | None = None,
        feedback: Sequence[Critique] = (),
        candidates: Sequence[Proposal] = (),
    ) -> Prompt:
        """The prompt for one call, fitted to the model's context window when it has one."""
        budget = await self.prompt_budget()
        if budget is None:
            return self.prompts.render(
                self.role, phase, task, proposal=proposal, feedback=feedback, candidates=candidates
            )
        return await fit_prompt(
            self.prompts, self.role, phase, task, budget,
            proposal=proposal, feedback=feedback, candidates=candidates,
        )

    async def generate(self, task: Task) -> AgentReply:
        return await self.complete(await self.prompt_for(Phase.GENERATE, task), Phase.GENERATE)

    async def critique(self, task: Task, proposal: Proposal) -> AgentReply:
        prompt = await self.prompt_for(Phase.CRITIQUE, task, proposal=proposal)
        return await self.complete(prompt, Phase.CRITIQUE)

    async def revise(self, task: Task, proposal: Proposal, feedback: Sequence[Critique]) -> AgentReply:
        prompt = await self.prompt_for(Phase.REVISE, task, proposal=proposal, feedback=feedback)
        return await self.complete(prompt, Phase.REVISE)

    async def select(self, task: Task, candidates: Sequence[Proposal]) -> AgentReply:
        prompt = await self.prompt_for(Phase.SELECT, task, candidates=candidates)
        return await self.complete(prompt, Phase.SELECT)
