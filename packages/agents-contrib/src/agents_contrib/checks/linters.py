"""One linter per language; each turns an artifact into weighted problems.

Weights: ``error`` 1.0 (the code is wrong: a syntax error, an undefined name, a manifest
the Kubernetes schema rejects), ``warning`` 0.5 (likely bugs), ``style`` 0.1. An artifact
scores ``1 / (1 + sum of weights)``, and 0 when it does not even parse.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import kubernetes_validate
import yaml
from kubernetes_validate.utils import SchemaNotFoundError, ValidationError, VersionNotSupportedError
from yamllint import linter as yamllint_linter
from yamllint.config import YamlLintConfig

from agents_contrib.artifacts import Artifact
from agents_contrib.checks.settings import LintSettings

WEIGHTS = {"error": 1.0, "warning": 0.5, "style": 0.1}

# Ruff codes that mean the code is wrong, not merely unidiomatic.
RUFF_ERRORS = ("E9", "F63", "F7", "F82", "invalid-syntax")
RUFF_WARNINGS = ("F", "B")


@dataclass(frozen=True)
class Problem:
    code: str
    message: str
    line: int
    severity: str

    def describe(self, artifact: Artifact) -> str:
        at = f" at line {self.line}" if self.line else ""
        return f"{self.code} {self.message}{at} of {artifact.label} [{self.severity}]"


@dataclass(frozen=True)
class LintReport:
    """What one linter said about one artifact."""

    tool: str
    problems: tuple[Problem, ...] = ()
    unparsable: bool = False
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def passed(self) -> bool:
        return not self.unparsable and not any(p.severity == "error" for p in self.problems)

    @property
    def score(self) -> float:
        if self.unparsable:
            return 0.0
        return 1.0 / (1.0 + sum(WEIGHTS[p.severity] for p in self.problems))


class RuffLinter:
    """Ruff on a Python artifact, through its JSON output.

    The proposal cannot silence it: no configuration file is read (``--isolated``) and
    ``noqa`` comments are ignored.
    """

    tool = "ruff"

    def __init__(self, settings: LintSettings) -> None:
        from ruff.__main__ import find_ruff_bin

        self.binary = os.fsdecode(find_ruff_bin())
        self.settings = settings

    async def lint(self, artifact: Artifact) -> LintReport:
        args = [self.binary, "check", "--isolated", "--no-cache", "--no-fix", "--ignore-noqa",
                "--output-format", "json",
                "--select", ",".join(self.settings.ruff_select),
                "--line-length", str(self.settings.ruff_line_length),
                "--stdin-filename", artifact.filename or f"artifact_{artifact.index}.py", "-"]
        process = await asyncio.create_subprocess_exec(
            *args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, cwd=tempfile.gettempdir(),
        )
        try:
            stdout, stderr = await process.communicate(artifact.content.encode("utf-8"))
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        if process.returncode not in (0, 1):
            raise RuntimeError(f"ruff exited {process.returncode}: {stderr.decode(errors='replace')[:500]}")
        problems = tuple(_ruff_problem(item) for item in json.loads(stdout or b"[]"))
        return LintReport(self.tool, problems, unparsable=any(p.code == "invalid-syntax" for p in problems))


def _ruff_problem(item: dict[str, Any]) -> Problem:
    code = item.get("code") or "invalid-syntax"
    if code.startswith(RUFF_ERRORS):
        severity = "error"
    elif code.startswith(RUFF_WARNINGS):
        severity = "warning"
    else:
        severity = "style"
    line = int((item.get("location") or {}).get("row") or 0)
    return Problem(code, str(item.get("message", "")), line, severity)


class YamlLinter:
    """yamllint, then every Kubernetes object of the file against the Kubernetes schemas."""

    tool = "yamllint+kubernetes-validate"

    def __init__(self, settings: LintSettings) -> None:
        self.config = YamlLintConfig(settings.yamllint_config)
        self.kubernetes_version = settings.kubernetes_version or kubernetes_validate.utils.latest_version()
        self.strict = settings.kubernetes_strict

    async def lint(self, artifact: Artifact) -> LintReport:
        return await asyncio.to_thread(self._lint, artifact)

    def _lint(self, artifact: Artifact) -> LintReport:
        problems: list[Problem] = []
        unparsable = False
        for found in yamllint_linter.run(artifact.content, self.config):
            if found.rule is None:  # a syntax error
                unparsable = True
                problems.append(Problem("yaml-syntax", found.desc, found.line, "error"))
            else:
                severity = "error" if found.level == "error" else "style"
                problems.append(Problem(f"yamllint:{found.rule}", found.desc, found.line, severity))
        notes: list[str] = []
        if not unparsable:
            kube_problems, notes = self._kubernetes(artifact)
            problems += kube_problems
        return LintReport(self.tool, tuple(problems), unparsable, tuple(notes))

    def _kubernetes(self, artifact: Artifact) -> tuple[list[Problem], list[str]]:
        problems: list[Problem] = []
        notes: list[str] = []
        try:
            documents = list(yaml.safe_load_all(artifact.content))
        except yaml.YAMLError:
            return problems, notes
        for number, document in enumerate(documents, start=1):
            if not (isinstance(document, dict) and "apiVersion" in document and "kind" in document):
                continue
            name = f"{document['kind']}/{(document.get('metadata') or {}).get('name', '?')}"
            try:
                kubernetes_validate.validate(document, self.kubernetes_version, strict=self.strict)
            except ValidationError as exc:
                path = ".".join(str(part) for part in exc.path) or "(root)"
                problems.append(Problem("K8S001", f"{name} (document {number}): {path}: {exc.message}",
                                        0, "error"))
            except (SchemaNotFoundError, VersionNotSupportedError) as exc:
                notes.append(f"{artifact.label} document {number} ({name}) not validated: "
                             f"no Kubernetes {self.kubernetes_version} schema ({exc})")
            else:
                notes.append(f"{artifact.label} document {number} ({name}) valid for Kubernetes "
                             f"{self.kubernetes_version}")
        return problems, notes


class JsonLinter:
    """JSON must at least parse; there is no style to judge."""

    tool = "json"

    async def lint(self, artifact: Artifact) -> LintReport:
        try:
            json.loads(artifact.content)
        except ValueError as exc:
            line = getattr(exc, "lineno", 0)
            return LintReport(self.tool, (Problem("JSON001", f"invalid JSON: {exc}", line, "error"),), True)
        return LintReport(self.tool)


Linter = RuffLinter | YamlLinter | JsonLinter


def linters_by_language(settings: LintSettings) -> dict[str, Linter]:
    return {"python": RuffLinter(settings), "yaml": YamlLinter(settings), "json": JsonLinter()}


def summarise(problems: Sequence[str], limit: int = 40) -> list[str]:
    if len(problems) <= limit:
        return list(problems)
    return [*problems[:limit], f"... and {len(problems) - limit} more problems"]
