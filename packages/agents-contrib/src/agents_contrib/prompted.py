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

    async def generate(self, task: Task) -> AgentReply:
        prompt = await fit_prompt(self.prompts, self.role, Phase.GENERATE, task, await self.prompt_budget())
        return await self.complete(prompt, Phase.GENERATE)

    async def critique(self, task: Task, proposal: Proposal) -> AgentReply:
        prompt = await fit_prompt(self.prompts, self.role, Phase.CRITIQUE, task, await self.prompt_budget(),
                                  proposal=proposal)
        return await self.complete(prompt, Phase.CRITIQUE)

    async def revise(self, task: Task, proposal: Proposal, feedback: Sequence[Critique]) -> AgentReply:
        prompt = await fit_prompt(self.prompts, self.role, Phase.REVISE, task, await self.prompt_budget(),
                                  proposal=proposal, feedback=feedback)
        return await self.complete(prompt, Phase.REVISE)

    async def select(self, task: Task, candidates: Sequence[Proposal]) -> AgentReply:
        prompt = await fit_prompt(self.prompts, self.role, Phase.SELECT, task, await self.prompt_budget(),
                                  candidates=candidates)
        return await self.complete(prompt, Phase.SELECT)
