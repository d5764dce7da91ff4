"""The task's own constraints (requirements, forbidden items) and size bounds.

Constraints are prose for the agents, so only their machine-checkable forms are enforced:

- ``re:PATTERN`` — a regular expression over the artifacts, in RE2 syntax, matched in linear
  time (``orchestrator_core.patterns``; the request was refused if RE2 cannot compile it);
- ``import:NAME`` — a Python module imported by some Python artifact;
- ``call:NAME`` — a function called by some Python artifact (``eval``, ``os.system``);
- ``lang:NAME`` — an artifact in that language;
- any other forbidden item — the phrase itself, whole words, case-insensitive.

A requirement in prose ("use type hints") cannot be checked by a machine; it is listed as
not checked (REQ000) rather than failed.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence

from agents_contrib.artifacts import Artifact
from agents_contrib.checks.findings import Finding
from orchestrator_core.errors import InvalidRequest
from orchestrator_core.patterns import Pattern, compiled, escaped


def check_requirements(requirements: Sequence[str], artifacts: Sequence[Artifact]) -> tuple[list[Finding], list[str]]:
    """Violations (REQ001) for unmet checkable requirements, and notes for prose ones."""
    violations: list[Finding] = []
    notes: list[str] = []
    for requirement in requirements:
        kind, _, value = requirement.partition(":")
        if kind.strip() not in _MATCHERS or not value.strip():
            notes.append(f"REQ000 not machine-checkable, left to the agents: {requirement!r}")
            continue
        try:
            found = _first_match(kind.strip(), value.strip(), artifacts)
        except InvalidRequest as refused:
            violations.append(Finding("REQ001", f"requirement cannot be checked: {refused}"))
            continue
        if found is None:
            violations.append(Finding("REQ001", f"requirement not met: {requirement!r}"))
    return violations, notes


def check_forbidden(forbidden: Sequence[str], artifacts: Sequence[Artifact]) -> list[Finding]:
    """Violations (FORBID001) for each forbidden item found, with where it was found."""
    violations: list[Finding] = []
    for item in forbidden:
        kind, _, value = item.partition(":")
        try:
            if kind.strip() in _MATCHERS and value.strip():
                found = _first_match(kind.strip(), value.strip(), artifacts)
            elif item.strip():
                found = _match_phrase(item.strip(), artifacts)
            else:
                continue
        except InvalidRequest as refused:
            violations.append(Finding("FORBID001", f"forbidden item cannot be checked: {refused}"))
            continue
        if found is not None:
            artifact, line = found
            violations.append(Finding("FORBID001", f"forbidden item {item!r} found", artifact, line))
    return violations


def check_sizes(artifacts: Sequence[Artifact], total_bytes: int, *, max_artifact: int,
                max_proposal: int) -> list[Finding]:
    findings = [Finding("SIZE001", f"artifact is {a.size} bytes, more than the {max_artifact} allowed", a)
                for a in artifacts if a.size > max_artifact]
    if total_bytes > max_proposal:
        findings.append(Finding("SIZE002", f"proposal is {total_bytes} bytes, more than the {max_proposal} allowed"))
    return findings


Match = tuple[Artifact | None, int]


def _first_match(kind: str, value: str, artifacts: Sequence[Artifact]) -> Match | None:
    return _MATCHERS[kind](value, artifacts)


def _match_regex(pattern: str, artifacts: Sequence[Artifact]) -> Match | None:
    return _search(compiled(pattern), artifacts)


def _match_phrase(phrase: str, artifacts: Sequence[Artifact]) -> Match | None:
    """The phrase as whole words, case-insensitive (RE2 has no lookarounds, hence the group)."""
    return _search(compiled(rf"(?i)(?:^|{_NOT_WORD})(" + escaped(phrase) + rf")(?:{_NOT_WORD}|$)"), artifacts,
                   group=1)


_NOT_WORD = r"[^\p{L}\p{N}_]"  # Unicode-aware, as Python's \W; RE2's \W is ASCII only


def _search(pattern: Pattern, artifacts: Sequence[Artifact], group: int = 0) -> Match | None:
    for artifact in artifacts:
        found = pattern.search(artifact.content)
        if found:
            return artifact, artifact.content.count("\n", 0, found.start(group)) + 1
    return None


def _match_language(language: str, artifacts: Sequence[Artifact]) -> Match | None:
    for artifact in artifacts:
        if artifact.language == language.lower():
            return artifact, 0
    return None


def _match_import(module: str, artifacts: Sequence[Artifact]) -> Match | None:
    for artifact, tree in _python_trees(artifacts):
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            if any(name == module or name.startswith(module + ".") for name in names):
                return artifact, getattr(node, "lineno", 0)
    return None


def _match_call(function: str, artifacts: Sequence[Artifact]) -> Match | None:
    """``call:system`` matches ``system(...)`` and ``os.system(...)``; ``call:os.system`` the latter."""
    for artifact, tree in _python_trees(artifacts):
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                dotted = _dotted(node.func)
                if dotted == function or dotted.endswith("." + function):
                    return artifact, node.lineno
    return None


def _dotted(func: ast.expr) -> str:
    parts: list[str] = []
    while isinstance(func, ast.Attribute):
        parts.append(func.attr)
        func = func.value
    if isinstance(func, ast.Name):
        parts.append(func.id)
    return ".".join(reversed(parts))


def _python_trees(artifacts: Sequence[Artifact]) -> list[tuple[Artifact, ast.AST]]:
    trees: list[tuple[Artifact, ast.AST]] = []
    for artifact in artifacts:
        if artifact.language == "python":
            try:
                trees.append((artifact, ast.parse(artifact.content)))
            except (SyntaxError, ValueError):
                continue
    return trees


_MATCHERS = {
    "re": _match_regex,
    "lang": _match_language,
    "import": _match_import,
    "call": _match_call,
}
