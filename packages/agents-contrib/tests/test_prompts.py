"""Role prompts: packaged templates, short enough for small models, operator overrides, rendering."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agents_contrib.openai_compat import OpenAIBackend, OpenAISettings
from agents_contrib.openai_compat import register_agents as register_openai
from agents_contrib.prompting import PACKAGED_DIR, PromptBook, prompt_book
from orchestrator_core.models import AgentConfig, Critique, Phase, Proposal, Task, TaskConstraints, TaskTest

ROLES = ("DEV", "QA", "ARCHITECT", "DEVOPS", "DATA")
TASK = Task(
    role="DEV",
    description="Implement slugify(text).",
    constraints=TaskConstraints(
        rubric="Handles unicode.",
        requirements=("pure function",),
        tests=(TaskTest("tests/test_slug.py", "def test():\n    s = '```'\n"),),
    ),
)
PROPOSAL = Proposal("p-1", "dev-2", "DEV", "File: slug.py\n```python\ndef slugify(t): return t\n```")
CRITIQUE = Critique("dev-3", "p-1", "dev-2", "Lower-case the result.", 1)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("phase", [Phase.GENERATE, Phase.CRITIQUE, Phase.REVISE])
def test_every_role_has_its_own_system_prompt_and_every_phase_renders(role: str, phase: Phase) -> None:
    assert (PACKAGED_DIR / role.lower() / "system.md").is_file()
    prompt = PromptBook().render(role, phase, TASK, proposal=PROPOSAL, feedback=[CRITIQUE])

    assert f"council of {role} engineers" in prompt.system
    assert "Task: Implement slugify(text).\nJudged by: Handles unicode.\nRequirements:\n- pure function" in prompt.user
    assert "$" not in prompt.user.replace("$$", "")


@pytest.mark.parametrize("role", ROLES)
def test_generate_and_revise_ask_for_fenced_blocks_with_a_language_tag(role: str) -> None:
    book = PromptBook()
    for phase in (Phase.GENERATE, Phase.REVISE):
        user = book.render(role, phase, TASK, proposal=PROPOSAL, feedback=[CRITIQUE]).user
        assert "fenced code block" in user
        assert "language tag" in user
        assert "File: <relative path>" in user


def _task_with_test(content: str, path: str = "test_calc.py") -> Task:
    return Task("DEV", "Add two numbers.", TaskConstraints(tests=(TaskTest(path, content),)))


@pytest.mark.parametrize("phase", [Phase.GENERATE, Phase.REVISE])
def test_the_prompt_names_the_file_the_tests_import(phase: Phase) -> None:
    task = _task_with_test(
        "import os\nimport pytest\nfrom calc import add\n\ndef test_add():\n    assert add(1, 2) == 3\n"
    )
    user = PromptBook().render("DEV", phase, task, proposal=PROPOSAL, feedback=[CRITIQUE]).user

    assert "Write the complete file calc.py. Answer with the line `File: calc.py`" in user
    assert "```python fenced code block" in user
    assert "os.py" not in user
    assert "pytest.py" not in user


def test_several_imported_modules_are_all_named_and_the_tests_own_modules_are_not() -> None:
    task = Task("DEV", "Shapes.", TaskConstraints(tests=(
        TaskTest("tests/test_shapes.py", "import shapes.circle\nfrom units import metre\nimport test_helpers\n"),
        TaskTest("tests/test_helpers.py", "from shapes import square\n"),
    )))
    user = PromptBook().render("DEV", Phase.GENERATE, task).user
    assert "Write the complete files shapes.py and units.py." in user
    assert "test_helpers.py" not in user.split("Tests that must pass:")[0]


def test_a_task_without_constraints_shows_no_empty_sections() -> None:
    user = PromptBook().render("DEV", Phase.GENERATE, _task_with_test("from calc import add\n")).user
    assert user.startswith("Task: Add two numbers.\n\nTests that must pass:\n")
    assert "(none)" not in user
    assert "Judged by" not in user


@pytest.mark.parametrize(
    ("path", "tag"),
    [("tests/test_calc.py", "python"), ("check.sh", "bash"), ("infra/main.tf", "hcl"), ("app.yml", "yaml"),
     ("data.json", "json"), ("schema.sql", "sql"), ("main.go", "go"), ("README.md", "markdown"), ("notes", "")],
)
def test_a_tasks_files_are_shown_in_fences_tagged_as_before(path: str, tag: str) -> None:
    """The tags the prompts have always used; the artifacts name shell and terraform so, and
    models write them as bash and hcl."""
    task = Task("DEV", "Check it.", TaskConstraints(tests=(TaskTest(path, "x\n"),)))
    user = PromptBook().render("DEV", Phase.GENERATE, task).user
    assert f"File: {path}\n```{tag}\nx\n```" in user


def test_a_reply_in_the_asked_for_form_yields_named_artifacts() -> None:
    from agents_contrib.artifacts import extract_artifacts

    reply = (
        "File: slug.py\n```python\ndef slugify(t):\n    return t.lower()\n```\n\n"
        "File: k8s/app.yaml\n```yaml\na: 1\n```\n"
    )
    artifacts = extract_artifacts(reply)
    assert [(a.filename, a.language) for a in artifacts] == [("slug.py", "python"), ("k8s/app.yaml", "yaml")]


def test_the_peer_proposal_and_feedback_are_rendered() -> None:
    book = PromptBook()
    critique = book.render("DEV", Phase.CRITIQUE, TASK, proposal=PROPOSAL).user
    revise = book.render("DEV", Phase.REVISE, TASK, proposal=PROPOSAL, feedback=[CRITIQUE, CRITIQUE]).user

    assert "----- BEGIN PROPOSAL -----\nFile: slug.py\n```python\ndef slugify(t): return t\n```\n----- END" in critique
    assert "Code written by dev-2:" in critique
    assert "Critique 1 (from dev-3):\nLower-case the result.\n\nCritique 2 (from dev-3):" in revise


def test_task_tests_get_a_fence_longer_than_any_backticks_inside() -> None:
    user = PromptBook().render("DEV", Phase.GENERATE, TASK).user
    assert "File: tests/test_slug.py\n````python\ndef test():\n    s = '```'\n````" in user


def test_the_selection_prompt_numbers_candidates_and_asks_for_the_json_choice() -> None:
    other = Proposal("p-2", "architect-3", "ARCHITECT", "Option B")
    user = PromptBook().render("ARCHITECT", Phase.SELECT, TASK, candidates=[PROPOSAL, other]).user

    assert "Choose which of 2 candidate proposals" in user
    assert "===== Candidate 1 (by dev-2) =====\nFile: slug.py" in user
    assert "===== Candidate 2 (by architect-3) =====\nOption B\n===== End of candidate 2 =====" in user
    assert '{"choice": <the number of the chosen candidate, from 1 to 2>, "rationale": "' in user


def test_a_reply_to_the_selection_prompt_is_parsed_by_the_core() -> None:
    from orchestrator_core.models import RankedProposal
    from orchestrator_core.selection import parse_choice

    ranked = [RankedProposal(PROPOSAL, (), 0.9, 1), RankedProposal(PROPOSAL, (), 0.8, 2)]
    reply = 'Candidate 2 is safer.\n```json\n{"choice": 2, "rationale": "Fewer moving parts."}\n```'
    assert parse_choice(reply, ranked) == (1, "Fewer moving parts.")


def test_an_unknown_role_uses_the_default_templates() -> None:
    prompt = PromptBook().render("SECURITY", Phase.GENERATE, TASK)
    assert "council of SECURITY engineers" in prompt.system
    assert prompt.system == (PACKAGED_DIR / "default" / "system.md").read_text().replace("$role", "SECURITY").strip()


def _write(directory: Path, relative: str, text: str) -> None:
    path = directory / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_an_override_directory_replaces_files_one_by_one(tmp_path: Path) -> None:
    _write(tmp_path, "dev/generate.md", "Team rules. Do: $task (rubric: $rubric). Cost $$5.")
    _write(tmp_path, "security/system.md", "You guard the $role gate.")
    book = PromptBook(tmp_path)

    expected = "Team rules. Do: Implement slugify(text). (rubric: Handles unicode.). Cost $5."
    assert book.render("DEV", Phase.GENERATE, TASK).user == expected
    assert book.render("DEV", Phase.CRITIQUE, TASK, proposal=PROPOSAL).user == PromptBook().render(
        "DEV", Phase.CRITIQUE, TASK, proposal=PROPOSAL
    ).user
    assert book.render("SECURITY", Phase.GENERATE, TASK).system == "You guard the SECURITY gate."


@pytest.mark.parametrize(
    ("relative", "text", "says"),
    [
        ("dev/generate.md", "Do $tsak now", "unknown placeholder(s) $tsak"),
        ("dev/generate.md", "Costs $5", "malformed placeholder"),
        ("dev/summary.md", "Hello", "is for no known part"),
    ],
)
def test_a_broken_override_is_reported_when_loaded(tmp_path: Path, relative: str, text: str, says: str) -> None:
    _write(tmp_path, relative, text)
    with pytest.raises(ValueError, match="prompt template") as raised:
        PromptBook(tmp_path)
    assert says in str(raised.value)
    assert relative in str(raised.value)


def test_a_missing_override_directory_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        PromptBook(tmp_path / "nope")


def _create(backend: OpenAIBackend, **options: Any) -> Any:
    return backend.create(AgentConfig("dev-1", "DEV", 0, 1, options))


def test_a_council_can_name_its_own_prompts_directory(tmp_path: Path) -> None:
    _write(tmp_path, "dev/system.md", "Custom system for $role.")
    backend = OpenAIBackend(OpenAISettings(), prompts_dir="")
    agent = _create(backend, prompts_dir=str(tmp_path))
    assert agent.prompts.render("DEV", Phase.GENERATE, TASK).system == "Custom system for DEV."
    with pytest.raises(ValueError, match="does not exist"):
        _create(backend, prompts_dir=str(tmp_path / "missing"))


def test_orch_prompts_dir_applies_to_the_registered_backends(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(tmp_path, "default/system.md", "Operator-wide system for $role.")
    monkeypatch.setenv("ORCH_PROMPTS_DIR", str(tmp_path))
    registered: list[Any] = []
    register_openai(registered.append)
    agent = _create(registered[0])
    assert agent.prompts.render("SECURITY", Phase.GENERATE, TASK).system == "Operator-wide system for SECURITY."
    assert prompt_book(str(tmp_path)) is agent.prompts  # loaded once per directory
