"""What each backend's agents say they run (``describe()``), as records keep it."""

from __future__ import annotations

import sys

from agents_contrib.anthropic_backend import AnthropicBackend, AnthropicSettings
from agents_contrib.command import CommandBackend, CommandSettings
from agents_contrib.openai_compat import OpenAIBackend, OpenAISettings
from orchestrator_core.hookspecs import DescribedAgent, identity_of
from orchestrator_core.models import AgentConfig, AgentIdentity


def config(**options: object) -> AgentConfig:
    return AgentConfig("dev-1", "DEV", 0, 1, options)


def test_openai_agents_name_model_and_endpoint_from_settings_without_credentials() -> None:
    settings = OpenAISettings(base_url="http://user:s3cret@llm.example:8000/v1?key=k3y", model="qwen")
    agent = OpenAIBackend(settings, prompts_dir="").create(config())
    assert isinstance(agent, DescribedAgent)
    assert identity_of(agent) == AgentIdentity("qwen", "http://llm.example:8000/v1?key=***", "settings")


def test_openai_agents_say_when_the_council_options_named_them() -> None:
    backend = OpenAIBackend(OpenAISettings(), prompts_dir="")
    assert identity_of(backend.create(config(model="llama3"))).source == "options"
    named_url = identity_of(backend.create(config(base_url="http://10.0.0.2:11434/v1")))
    assert (named_url.endpoint, named_url.source) == ("http://10.0.0.2:11434/v1", "options")


def test_anthropic_agents_describe_themselves_too() -> None:
    settings = AnthropicSettings(api_key="sk-secret", model="claude-x")
    backend = AnthropicBackend(settings, prompts_dir="")
    identity = identity_of(backend.create(config()))
    assert (identity.model, identity.source) == ("claude-x", "settings")
    assert identity.endpoint.startswith("https://")
    assert identity_of(backend.create(config(model="claude-y"))) == AgentIdentity(
        "claude-y", identity.endpoint, "options"
    )


def test_command_agents_name_their_program_not_its_arguments() -> None:
    settings = CommandSettings(program=[sys.executable, "-c", "print(1)", "--token=abc"])
    from_settings = identity_of(CommandBackend(settings, prompts_dir="").create(config()))
    assert from_settings == AgentIdentity("", sys.executable, "settings")
    from_options = identity_of(
        CommandBackend(CommandSettings(), prompts_dir="").create(config(program=[sys.executable, "x"]))
    )
    assert from_options == AgentIdentity("", sys.executable, "options")
