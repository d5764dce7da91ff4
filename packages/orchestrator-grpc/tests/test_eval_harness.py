"""``orchestrator eval humaneval`` against a real server whose agents are scripted, so that
each answer's correctness is known in advance.

The server runs the real dry-run check on the visible tests; the harness scores answers on
the hidden tests in the same sandbox. A recording agent backend and a recording check keep
every text they were given, to show that the hidden tests never reach either.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from agents_contrib.checks.dryrun import DryRunCheck
from agents_contrib.checks.settings import DryRunSettings
from orchestrator_core.errors import BackendRejected
from orchestrator_core.hookspecs import AgentReply
from orchestrator_core.models import AgentConfig, CheckResult, Critique, Proposal, Task, TokenUsage
from orchestrator_core.settings import Settings
from orchestrator_core.testing import PluginRegistrar, ScriptedCheck, ScriptedPlugin
from orchestrator_grpc.cli import main
from orchestrator_grpc.evaluation.examples import docstring_examples
from orchestrator_grpc.evaluation.humaneval import Problem, load_problems
from orchestrator_grpc.evaluation.problem_tests import HIDDEN_TEST_PATH, VISIBLE_TEST_PATH
from orchestrator_grpc.evaluation.results import ResultsFile
from orchestrator_grpc.evaluation.statistics import wilson_interval
from orchestrator_grpc.server import RunningServer, running_server

PROBLEMS = {p.number: p for p in load_problems()}
USAGE = TokenUsage(prompt_tokens=100, completion_tokens=20)
ENTRY_POINT = re.compile(r"function `(\w+)`")
SANDBOX_UIDS = 100_000 + (os.getpid() % 50_000) * 8
"""This test process's own sandbox uids (as the dry-run tests of agents-contrib choose them)."""

Behaviour = Callable[[int, Problem], str]
"""What the agent at a council position writes for a problem."""


def fenced(code: str) -> str:
    return f"```python\n{code.rstrip()}\n```\n"


def correct(problem: Problem) -> str:
    return fenced(problem.prompt + problem.canonical_solution)


def wrong(problem: Problem) -> str:
    return fenced(problem.prompt + "    return None\n")


def memorised(problem: Problem) -> str:
    """Answers the docstring's examples from a table and nothing else: passes the visible
    tests, fails the hidden ones."""
    try:
        table = "\n".join(
            f"    if repr(args) == {_args_repr(e.call, problem.entry_point)!r}:\n        return {e.expected}"
            for e in docstring_examples(problem)
        )
    except Exception:  # an example that is not a plain call of the entry point: no table
        return wrong(problem)
    if not table:
        return wrong(problem)
    header = problem.prompt.split(f"def {problem.entry_point}(")[0]
    return fenced(f"{header}def {problem.entry_point}(*args):\n{table}\n    return None\n")


def _args_repr(call: str, entry_point: str) -> str:
    inner = call[len(entry_point):] if call.startswith(entry_point + "(") else call
    values = eval(f"(lambda *a: a){inner[inner.index('('):]}")  # the dataset's own example text
    return repr(values)


def hostile(problem: Problem, target: Path) -> str:
    return fenced(
        f"import os\nopen({str(target)!r}, 'w').write('escaped')\nos.system('touch {target}.2')\n"
        f"{problem.prompt}{problem.canonical_solution}"
    )


def hidden_lines(problem: Problem) -> list[str]:
    """The lines of the hidden test that say something (not blank, not boilerplate)."""
    trivial = {"", "def check(candidate):", "METADATA = {}", "}"}
    return [
        line.strip() for line in problem.test.splitlines()
        if line.strip() not in trivial and not line.strip().startswith(("import ", "METADATA", "'"))
        and len(line.strip()) > 12
    ]


@dataclass
class Seen:
    """Every text the scripted agents and the recording check were given."""

    agent_texts: list[str] = field(default_factory=list)
    check_tests: list[tuple[str, str]] = field(default_factory=list)
    calls: int = 0


@dataclass
class EvalAgent:
    """A test double: writes what ``behaviour`` says for the problem named in the task."""

    agent_id: str
    index: int
    behaviour: Behaviour
    seen: Seen

    def _problem(self, task: Task) -> Problem:
        self.seen.calls += 1
        self.seen.agent_texts.append(task.description)
        self.seen.agent_texts.extend(t.content for t in task.constraints.tests)
        match = ENTRY_POINT.search(task.description)
        assert match, task.description
        return next(p for p in PROBLEMS.values() if p.entry_point == match.group(1))

    async def generate(self, task: Task) -> AgentReply:
        return AgentReply(self.behaviour(self.index, self._problem(task)), USAGE)

    async def critique(self, task: Task, proposal: Proposal) -> AgentReply:
        self._problem(task)
        self.seen.agent_texts.append(proposal.content)
        return AgentReply("Looks fine.", USAGE)

    async def revise(self, task: Task, proposal: Proposal, feedback: Sequence[Critique]) -> AgentReply:
        self._problem(task)
        self.seen.agent_texts.extend(c.content for c in feedback)
        return AgentReply(proposal.content, USAGE)

    async def select(self, task: Task, candidates: Sequence[Proposal]) -> AgentReply:
        self._problem(task)
        self.seen.agent_texts.extend(c.content for c in candidates)
        return AgentReply(json.dumps({"choice": 1, "rationale": "the first"}), USAGE)


@dataclass
class EvalBackend:
    behaviour: Behaviour
    seen: Seen
    name: str = "eval-scripted"

    def create(self, config: AgentConfig) -> EvalAgent:
        return EvalAgent(config.agent_id, config.index, self.behaviour, self.seen)


@dataclass
class RecordingCheck:
    """A test double check that keeps the test files it was given and decides nothing."""

    seen: Seen
    name: str = "audit"
    kind: str = "audit"

    async def run(self, task: Task, proposal: Proposal) -> CheckResult:
        self.seen.check_tests.extend((t.path, t.content) for t in task.constraints.tests)
        return CheckResult(self.name, self.kind, True, 1.0)


def prefer(author_suffix: str) -> Callable[[Proposal], float]:
    """A lint score that ranks one council position's proposals above the others'."""
    return lambda proposal: 1.0 if proposal.author_id.endswith(author_suffix) else 0.6


@pytest.fixture
def sandbox_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> DryRunSettings:
    """The harness's judge and the server's dry-run check share one uid range and work root."""
    values = {"SANDBOX_UID": str(SANDBOX_UIDS), "SANDBOX_UID_COUNT": "8", "WORK_ROOT": str(tmp_path / "work"),
              "TIMEOUT_SECONDS": "20", "CPU_SECONDS": "5"}
    for name, value in values.items():
        monkeypatch.setenv(f"ORCH_DRYRUN_{name}", value)
    return DryRunSettings()


@dataclass
class Harness:
    server: RunningServer
    seen: Seen
    out: Path

    def argv(self, *extra: str) -> list[str]:
        return ["eval", "humaneval", "--address", self.server.address, "--out-dir", str(self.out),
                "--report", str(self.out / "EVAL.md"), *extra]

    async def run(self, *extra: str) -> int:
        return await asyncio.to_thread(main, self.argv(*extra))

    def rows(self) -> list[dict[str, object]]:
        lines = (self.out / "humaneval.jsonl").read_text().splitlines()
        return [json.loads(line) for line in lines if line.strip()]


def harness_for(name: str, behaviour: Behaviour, *, lint_prefers: str = "-1") -> Callable[..., AsyncIterator[Harness]]:
    async def fixture(tmp_path: Path, orchestrator_plugins: PluginRegistrar,
                      sandbox_env: DryRunSettings) -> AsyncIterator[Harness]:
        seen = Seen()
        orchestrator_plugins.register(ScriptedPlugin(
            EvalBackend(behaviour, seen), DryRunCheck(sandbox_env), RecordingCheck(seen),
            ScriptedCheck(name="lint", kind="lint", score_of=prefer(lint_prefers)),
        ), name="eval-doubles")
        settings = Settings(
            host="127.0.0.1", port=0, database_path=tmp_path / "records.sqlite3", quorum=1,
            check_weights={"dryrun": 2.0, "lint": 1.0, "audit": 0.0},
            councils={"DEV": {"backend": "eval-scripted", "agents": 3},
                      "ARCHITECT": {"backend": "eval-scripted", "agents": 1}},
        )
        async with running_server(settings, plugins=orchestrator_plugins.host) as server:
            yield Harness(server, seen, tmp_path / "eval")

    return pytest.fixture(name=name)(fixture)


def right_on_odd(index: int, problem: Problem) -> str:
    """Right on problems 1, 3, 5 ..., wrong on the others, whoever writes."""
    return correct(problem) if problem.number % 2 else wrong(problem)


def memorising_first(index: int, problem: Problem) -> str:
    """The first agent memorises the examples, the others solve the problem."""
    return memorised(problem) if index == 0 else correct(problem)


def all_wrong(index: int, problem: Problem) -> str:
    return wrong(problem)


def rejected(index: int, problem: Problem) -> str:
    raise BackendRejected("the prompt does not fit the model's context window")


odd_harness = harness_for("odd_harness", right_on_odd)
memorising_harness = harness_for("memorising_harness", memorising_first)
wrong_harness = harness_for("wrong_harness", all_wrong)
rejected_harness = harness_for("rejected_harness", rejected)


async def test_hidden_tests_never_reach_agents_or_checks(memorising_harness: Harness) -> None:
    numbers = (0, 2, 32, 38)
    code = await memorising_harness.run("--problems", ",".join(map(str, numbers)), "--agents", "2")
    assert code == 0
    seen = memorising_harness.seen
    assert seen.calls > 0
    assert seen.check_tests
    assert {path for path, _ in seen.check_tests} == {VISIBLE_TEST_PATH}
    texts = "\n".join(seen.agent_texts + [content for _, content in seen.check_tests])
    for number in numbers:
        problem = PROBLEMS[number]
        assert f"def {problem.entry_point}(" in texts  # the task did arrive
        leaked = [line for line in hidden_lines(problem) if line in texts]
        assert not leaked, f"{problem.task_id}: hidden test lines reached the council: {leaked}"
    assert HIDDEN_TEST_PATH not in texts


async def test_pass_at_1_interval_outputs_and_resume(odd_harness: Harness) -> None:
    assert await odd_harness.run("--problems", "0-5", "--arms", "single") == 0
    rows = odd_harness.rows()
    assert sorted(r["number"] for r in rows) == [0, 1, 2, 3, 4, 5]
    assert {r["number"] for r in rows if r["hidden_passed"]} == {1, 3, 5}
    assert all(r["status"] == "answered" and r["final_code"] for r in rows)
    assert all(r["prompt_tokens"] == 100 and r["completion_tokens"] == 20 for r in rows)
    report = (odd_harness.out / "EVAL.md").read_text()
    low, high = wilson_interval(3, 6)
    interval = f"{100 * low:.1f} % to {100 * high:.1f} %"
    assert f"| single | agents=1, rounds=0, top_k=0 | 6 | 3 | 50.0 % | {interval} |" in report
    assert "    orchestrator eval humaneval --address" in report
    assert (odd_harness.out / "humaneval.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")

    calls = odd_harness.seen.calls
    assert await odd_harness.run("--problems", "0-5", "--arms", "single") == 0
    assert odd_harness.seen.calls == calls, "a rerun asked again for finished pairs"
    assert len(odd_harness.rows()) == 6
    assert await odd_harness.run("--problems", "0-6", "--arms", "single") == 0
    assert odd_harness.seen.calls == calls + 1  # only problem 6 was new
    assert "| single | agents=1, rounds=0, top_k=0 | 7 | 3 |" in (odd_harness.out / "EVAL.md").read_text()

    # --report-only redraws from the results alone, with the notes written beside them.
    (odd_harness.out / "humaneval-notes.md").write_text("Odd problems only.\n")
    (odd_harness.out / "EVAL.md").unlink()
    assert await odd_harness.run("--problems", "0-6", "--arms", "single", "--report-only") == 0
    assert odd_harness.seen.calls == calls + 1
    redrawn = (odd_harness.out / "EVAL.md").read_text()
    assert "| single | agents=1, rounds=0, top_k=0 | 7 | 3 |" in redrawn
    assert "## What these numbers say\n\nOdd problems only.\n" in redrawn


async def test_visible_pass_hidden_fail_is_failing_and_oracle_gap_counted(memorising_harness: Harness) -> None:
    # The lint double prefers the first agent, the memoriser: it passes the visible tests,
    # ranks first, and fails the hidden ones, while the other agents' correct code ranked below.
    assert await memorising_harness.run("--problems", "0,2", "--arms", "single,best-of-n,council",
                                        "--agents", "3") == 0
    rows = {(r["number"], r["arm"]): r for r in memorising_harness.rows()}
    for number in (0, 2):
        for arm in ("single", "best-of-n", "council"):
            row = rows[(number, arm)]
            assert row["visible_passed"] is True
            assert row["hidden_passed"] is False, (number, arm)
        assert any(c["hidden_passed"] for c in rows[(number, "best-of-n")]["candidates"])
    report = (memorising_harness.out / "EVAL.md").read_text()
    assert re.search(r"\| best-of-n \| agents=3, rounds=0, top_k=0 \| 2 \| 0 \| 0\.0 % \| [^|]+ \| 2 \| 2 \| 2 \|",
                     report), report


async def test_orchestrate_without_a_viable_proposal_gives_no_answer(wrong_harness: Harness) -> None:
    assert await wrong_harness.run("--problems", "0", "--arms", "orchestrate", "--agents", "2") == 0
    (row,) = wrong_harness.rows()
    assert row["status"] == "no-answer"
    assert row["final_code"] is None
    assert not row["hidden_passed"]
    assert "FAILED_PRECONDITION" in row["error"]
    assert len(row["candidates"]) == 2  # the ranking, from the record
    assert row["deliberation_id"]
    assert row["prompt_tokens"] > 0


async def test_a_failure_of_the_run_is_an_error_asked_again_not_a_result(
    rejected_harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    # FAILED_PRECONDITION without a record (the model's configuration, not the arm's answer).
    assert await rejected_harness.run("--problems", "0", "--arms", "single") == 1
    assert "run the same command again" in capsys.readouterr().err
    (row,) = rejected_harness.rows()
    assert row["status"] == "error"
    assert "context window" in row["error"]
    assert "| single | agents=1, rounds=0, top_k=0 | 0 | 0 |" in (rejected_harness.out / "EVAL.md").read_text()
    calls = rejected_harness.seen.calls
    assert await rejected_harness.run("--problems", "0", "--arms", "single") == 1
    assert rejected_harness.seen.calls > calls  # asked again


async def test_a_hostile_answer_is_contained(tmp_path: Path, sandbox_env: DryRunSettings) -> None:
    from orchestrator_grpc.evaluation.judging import HiddenTestJudge

    target = tmp_path / "escaped.txt"
    problem = PROBLEMS[0]
    verdict = await HiddenTestJudge(DryRunCheck(sandbox_env)).judge(problem, hostile(problem, target))
    assert not target.exists()
    assert not Path(f"{target}.2").exists()
    assert not verdict.passed


def test_wilson_interval_matches_published_values() -> None:
    assert wilson_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson_interval(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError, match="3 of 2"):
        wilson_interval(3, 2)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--arms", "single,bogus"], "unknown arm(s) bogus"),
        (["--problems", "3,x"], "'x' is not a number"),
        (["--problems", "400"], "400"),
        (["--agents", "0"], "--agents must be at least 1"),
        (["--concurrency", "0"], "--concurrency must be at least 1"),
    ],
)
def test_bad_options_are_usage_errors_and_write_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    out = tmp_path / "eval"
    code = main(["eval", "humaneval", "--address", "127.0.0.1:9", "--out-dir", str(out), *extra])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_a_corrupt_results_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "humaneval.jsonl"
    path.write_text('{"task_id": "HumanEval/0"}\n')
    with pytest.raises(ValueError, match="humaneval.jsonl:1"):
        ResultsFile(path)
