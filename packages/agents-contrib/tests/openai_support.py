"""What the openai backend's tests share: the task, backends and agents."""

from __future__ import annotations

from typing import Any

from backend_support import Sleeps

from agents_contrib.openai_compat import OpenAIAgent, OpenAIBackend, OpenAISettings
from orchestrator_core.models import AgentConfig, Task, TaskConstraints, TaskTest

KEY = "sk-test-0123456789abcdef"
TASK = Task(
    role="DEV",
    description="Write a function add(a, b) that returns the sum.",
    constraints=TaskConstraints(
        rubric="Correct, typed and documented.",
        requirements=("Python 3.11", "No third-party imports"),
        forbidden=("eval",),
        tests=(TaskTest("test_add.py", "from add import add\n\ndef test_add():\n    assert add(1, 2) == 3\n"),),
    ),
)


def backend_for(base_url: str, sleeps: Sleeps | None = None, **settings: Any) -> OpenAIBackend:
    values: dict[str, Any] = {"base_url": base_url, "model": "test-model", "backoff_base_seconds": 0.01}
    values.update(settings)
    return OpenAIBackend(OpenAISettings(**values), prompts_dir="", sleep=sleeps or Sleeps())


def agent_of(backend: OpenAIBackend, index: int = 0, size: int = 1, role: str = "DEV", **options: Any) -> OpenAIAgent:
    return backend.create(AgentConfig(f"{role.lower()}-{index + 1}", role, index, size, options))
