"""Operator policies in Rego, compiled once at startup and evaluated in-process with regopy.

Every ``*.rego`` file under the policy directory is loaded (``*_test.rego`` files are OPA
unit tests and are skipped). Each package that defines ``deny`` is an entry point; its
input is the task, the proposal and the proposal's artifacts::

    package orchestrator.no_latest_tag
    import rego.v1

    deny contains msg if {
        some artifact in input.artifacts
        artifact.language == "yaml"
        contains(artifact.content, ":latest")
        msg := sprintf("%s pins an image to :latest", [artifact.label])
    }

A ``deny`` element is a message, or an object ``{"id": ..., "msg": ..., "artifact": n,
"line": n}`` when the policy wants its own rule id and location.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import regopy

from agents_contrib.artifacts import Artifact
from agents_contrib.checks.findings import Finding
from orchestrator_core.models import Proposal, Task

_PACKAGE = re.compile(r"^\s*package\s+([A-Za-z_][\w.]*)", re.MULTILINE)
_DENY_RULE = re.compile(r"^\s*deny\b", re.MULTILINE)


class PolicyLoadError(ValueError):
    """The policy directory cannot be used: missing, empty, or a policy does not compile."""


@dataclass(frozen=True)
class RegoPolicies:
    """The compiled policies of a directory: a regopy bundle and its ``deny`` entry points."""

    directory: Path
    files: tuple[Path, ...]
    bundle: Any
    entry_points: tuple[str, ...]

    @property
    def packages(self) -> tuple[str, ...]:
        return tuple(point.removesuffix("/deny").replace("/", ".") for point in self.entry_points)

    def evaluate(self, task: Task, proposal: Proposal, artifacts: Sequence[Artifact]) -> list[Finding]:
        """The ``deny`` findings of every policy; blocking (CPU-bound), run it in a thread."""
        document = json.dumps(policy_input(task, proposal, artifacts))
        by_index = {artifact.index: artifact for artifact in artifacts}
        findings: list[Finding] = []
        for point in self.entry_points:
            package = point.removesuffix("/deny").replace("/", ".")
            interpreter = regopy.Interpreter()
            try:
                interpreter.set_input_term(document)
                output = interpreter.query_bundle_entrypoint(self.bundle, point)
                result = json.loads(str(output))
            except (regopy.RegoError, ValueError) as exc:
                findings.append(Finding("REGO000", f"policy {package} failed to evaluate: {_first_line(exc)}"))
                continue
            for element in _deny_elements(result):
                findings.append(_finding(package, element, by_index))
        return findings


def load_policies(directory: Path) -> RegoPolicies:
    """Read and compile every policy of ``directory``; raise :class:`PolicyLoadError` if any is broken."""
    if not directory.is_dir():
        raise PolicyLoadError(f"policy directory {directory} does not exist (ORCH_POLICY_DIR)")
    files = tuple(sorted(p for p in directory.rglob("*.rego") if not p.name.endswith("_test.rego")))
    if not files:
        raise PolicyLoadError(f"policy directory {directory} holds no .rego file (ORCH_POLICY_DIR)")
    interpreter = regopy.Interpreter()
    entry_points: list[str] = []
    for path in files:
        source = path.read_text(encoding="utf-8")
        package = _PACKAGE.search(source)
        if package is None:
            raise PolicyLoadError(f"policy {path} declares no package")
        try:
            interpreter.add_module(str(path.relative_to(directory)), source)
        except regopy.RegoError as exc:
            raise PolicyLoadError(f"policy {path} does not compile: {_compile_errors(exc)}") from exc
        point = package.group(1).replace(".", "/") + "/deny"
        if _DENY_RULE.search(source) and point not in entry_points:
            entry_points.append(point)
    if not entry_points:
        raise PolicyLoadError(f"no policy under {directory} defines a deny rule")
    try:
        bundle = interpreter.build(None, entry_points)
    except regopy.RegoError as exc:
        raise PolicyLoadError(f"policies under {directory} do not compile: {_compile_errors(exc)}") from exc
    return RegoPolicies(directory=directory, files=files, bundle=bundle, entry_points=tuple(entry_points))


def policy_input(task: Task, proposal: Proposal, artifacts: Sequence[Artifact]) -> dict[str, Any]:
    """The ``input`` document of every policy."""
    constraints = task.constraints
    return {
        "task": {
            "role": task.role,
            "description": task.description,
            "constraints": {
                "rubric": constraints.rubric,
                "requirements": list(constraints.requirements),
                "forbidden": list(constraints.forbidden),
                "tests": [test.path for test in constraints.tests],
            },
        },
        "proposal": asdict(proposal),
        "artifacts": [
            {"index": a.index, "language": a.language, "filename": a.filename, "content": a.content,
             "fenced": a.fenced, "line": a.line, "size": a.size, "label": a.label}
            for a in artifacts
        ],
    }


def _deny_elements(result: Any) -> list[Any]:
    expressions = result.get("expressions", []) if isinstance(result, dict) else []
    elements: list[Any] = []
    for value in expressions:
        if isinstance(value, list):
            elements.extend(value)
        elif isinstance(value, dict):
            # A Rego v0 partial set (deny[msg] { ... }) comes back as {element: true}.
            if {"msg", "message"} & value.keys():
                elements.append(value)
            else:
                elements.extend(key for key, flag in value.items() if flag is True)
        elif isinstance(value, str):
            elements.append(value)
    return elements


def _finding(package: str, element: Any, artifacts: dict[int, Artifact]) -> Finding:
    if isinstance(element, dict):
        rule_id = str(element.get("id") or element.get("rule") or f"REGO:{package}")
        message = str(element.get("msg") or element.get("message") or json.dumps(element))
        index = element.get("artifact")
        line = element.get("line")
        artifact = artifacts.get(index) if isinstance(index, int) else None
        return Finding(rule_id, message, artifact, line if isinstance(line, int) else 0)
    return Finding(f"REGO:{package}", str(element))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _compile_errors(exc: BaseException) -> str:
    """regopy's error text is an s-expression; keep its messages and where they are."""
    text = str(exc)
    messages = re.findall(r"\(errormsg \d+:([^)]*)\)", text)
    places = re.findall(r"\(error \d+:([^|\s]+)\|", text)
    if messages:
        return "; ".join(f"{place}: {message}" for place, message in zip(places, messages, strict=False))
    return _first_line(exc)
