"""Role prompts: templates kept as files, one per role and phase, rendered for one call.

Templates live in ``agents_contrib/prompts/<role>/<part>.md``, where ``<role>`` is the
role in lower case (``dev``, ``qa``, ``architect``, ``devops``, ``data``, or ``default``
for any other role) and ``<part>`` is ``system`` (the role's standing instructions) or a
phase: ``generate``, ``critique``, ``revise``, ``select``. An operator's directory
(``ORCH_PROMPTS_DIR``) is laid over the packaged one file by file: a file there replaces
the packaged file at the same path, and every other file stays as shipped.

Templates use :class:`string.Template` placeholders (``$task``, ``${rubric}``); a literal
dollar sign is written ``$$``. An unknown placeholder is an error when the templates are
loaded, so a typo in an override is reported at startup rather than sent to a model.
"""

from __future__ import annotations

import functools
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from pydantic_settings import BaseSettings, SettingsConfigDict

from agents_contrib.artifacts import language_of_file
from agents_contrib.prompt_parts import constraints, deliverable
from orchestrator_core.models import Critique, Phase, Proposal, Task

PACKAGED_DIR = Path(__file__).parent / "prompts"
DEFAULT_ROLE = "default"
PARTS: tuple[str, ...] = ("system", *(phase.value for phase in Phase))

PLACEHOLDERS: Mapping[str, str] = {
    "role": "the council's role, e.g. DEV",
    "task": "the task's description",
    "rubric": "the constraints' rubric, or a note that there is none",
    "requirements": "the constraints' requirements as a bulleted list",
    "forbidden": "what the constraints forbid, as a bulleted list",
    "tests": "the task's test files, each in a fenced block",
    "proposal": "the proposal under critique or revision",
    "author": "the agent id of that proposal's author",
    "feedback": "the critiques a proposal received, numbered",
    "candidates": "the candidates of a selection, numbered from 1",
    "count": "how many candidates there are",
    "deliverable": "which files to write and in which form (named after the modules the tests import)",
    "constraints": "the rubric, requirements and forbidden items the task has; empty when it has none",
}

FENCE_TAGS: Mapping[str, str] = {"shell": "bash", "terraform": "hcl"}
"""The tag a test file's fence gets where it is not the language's name: the tag models see
(and write) most for these languages."""


@dataclass(frozen=True)
class Prompt:
    """The two messages of one model call."""

    system: str
    user: str

    def as_text(self) -> str:
        """Both parts as one text, for backends that take a single prompt."""
        return f"{self.system.strip()}\n\n{self.user.strip()}\n"


class PromptBook:
    """Every role's templates, loaded and checked once."""

    def __init__(self, override_dir: Path | None = None) -> None:
        if override_dir is not None and not override_dir.is_dir():
            raise ValueError(f"the prompts directory {str(override_dir)!r} does not exist")
        self.override_dir = override_dir
        self._templates: dict[str, string.Template] = {}
        for directory in (PACKAGED_DIR, override_dir):
            if directory is not None:
                self._templates.update(_load(directory))
        for part in PARTS:
            if f"{DEFAULT_ROLE}/{part}" not in self._templates:
                raise ValueError(f"the prompts lack {DEFAULT_ROLE}/{part}.md")

    def template(self, role: str, part: str) -> string.Template:
        role_dir = role.lower()
        return self._templates.get(f"{role_dir}/{part}") or self._templates[f"{DEFAULT_ROLE}/{part}"]

    def render(
        self,
        role: str,
        phase: Phase,
        task: Task,
        *,
        proposal: Proposal | None = None,
        feedback: Sequence[Critique] = (),
        candidates: Sequence[Proposal] = (),
    ) -> Prompt:
        values = {
            "role": role,
            "task": task.description.strip(),
            "rubric": task.constraints.rubric.strip() or "(no rubric given: judge by the task itself)",
            "requirements": _bullets(task.constraints.requirements),
            "forbidden": _bullets(task.constraints.forbidden),
            "tests": _tests(task),
            "proposal": proposal.content.strip() if proposal else "",
            "author": proposal.author_id if proposal else "",
            "feedback": _feedback(feedback),
            "candidates": _candidates(candidates),
            "count": str(len(candidates)),
            "deliverable": deliverable(task),
            "constraints": constraints(task),
        }
        return Prompt(
            system=self.template(role, "system").substitute(values).strip(),
            user=self.template(role, phase.value).substitute(values).strip(),
        )


@functools.lru_cache(maxsize=16)
def prompt_book(override_dir: str | None = None) -> PromptBook:
    """The book for an override directory (or none), loaded once per process."""
    return PromptBook(Path(override_dir).expanduser() if override_dir else None)


def _load(directory: Path) -> dict[str, string.Template]:
    templates: dict[str, string.Template] = {}
    for path in sorted(directory.glob("*/*.md")):
        part = path.stem
        key = str(PurePosixPath(path.parent.name.lower(), part))
        if part not in PARTS:
            raise ValueError(
                f"prompt template {str(path)!r} is for no known part; name it one of "
                f"{', '.join(p + '.md' for p in PARTS)}"
            )
        template = string.Template(path.read_text(encoding="utf-8"))
        _check_placeholders(path, template)
        templates[key] = template
    return templates


def _check_placeholders(path: Path, template: string.Template) -> None:
    if not template.is_valid():
        raise ValueError(
            f"prompt template {str(path)!r} has a malformed placeholder; write a literal "
            f"dollar sign as $$"
        )
    unknown = sorted(set(template.get_identifiers()) - set(PLACEHOLDERS))
    if unknown:
        known = ", ".join(f"${name}" for name in PLACEHOLDERS)
        raise ValueError(
            f"prompt template {str(path)!r} uses unknown placeholder(s) "
            f"{', '.join('$' + name for name in unknown)}; known: {known}"
        )


def _bullets(items: Sequence[str]) -> str:
    lines = [f"- {item.strip()}" for item in items if item.strip()]
    return "\n".join(lines) if lines else "- (none)"


def _fence_for(content: str) -> str:
    """A fence longer than any backtick run inside the content, so the block cannot end early."""
    longest = run = 0
    for char in content:
        run = run + 1 if char == "`" else 0
        longest = max(longest, run)
    return "`" * max(3, longest + 1)


def language_for(path: str) -> str:
    """The language tag of the fence a task's file is shown in; ``""`` for an unknown kind."""
    language = language_of_file(path)
    return FENCE_TAGS.get(language, language)


def _tests(task: Task) -> str:
    if not task.constraints.tests:
        return "(no tests are given)"
    blocks = []
    for test in task.constraints.tests:
        fence = _fence_for(test.content)
        blocks.append(
            f"File: {test.path}\n{fence}{language_for(test.path)}\n{test.content.rstrip()}\n{fence}"
        )
    return "\n\n".join(blocks)


def _feedback(critiques: Sequence[Critique]) -> str:
    if not critiques:
        return "(no critique was received)"
    return "\n\n".join(
        f"Critique {number} (from {critique.critic_id}):\n{critique.content.strip()}"
        for number, critique in enumerate(critiques, start=1)
    )


def _candidates(candidates: Sequence[Proposal]) -> str:
    return "\n\n".join(
        f"===== Candidate {number} (by {candidate.author_id}) =====\n{candidate.content.strip()}\n"
        f"===== End of candidate {number} ====="
        for number, candidate in enumerate(candidates, start=1)
    )


class PromptSettings(BaseSettings):
    """``ORCH_PROMPTS_DIR``: a directory of templates laid over the packaged ones."""

    model_config = SettingsConfigDict(env_prefix="ORCH_", extra="ignore")

    prompts_dir: str | None = None
