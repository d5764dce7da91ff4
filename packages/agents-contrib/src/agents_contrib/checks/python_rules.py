"""Dangerous calls in Python artifacts, found in the syntax tree (not by text search).

Imports are followed, so ``from os import system as run; run(cmd)`` is found as
``os.system``, and a comment or a string that mentions ``eval(`` is not.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass

from agents_contrib.artifacts import Artifact
from agents_contrib.checks.findings import Finding


@dataclass(frozen=True)
class CallRule:
    rule_id: str
    calls: frozenset[str]
    why: str


CALL_RULES: tuple[CallRule, ...] = (
    CallRule("PY001", frozenset({"eval", "builtins.eval"}), "evaluates a string as code"),
    CallRule("PY002", frozenset({"exec", "builtins.exec"}), "executes a string as code"),
    CallRule("PY003", frozenset({"os.system", "os.popen", "os.execl", "os.execle", "os.execlp", "os.execv",
                                 "os.execve", "os.execvp", "os.spawnl", "os.spawnv", "os.spawnlp",
                                 "os.spawnvp", "commands.getoutput", "pty.spawn"}),
             "runs a shell command"),
    CallRule("PY005", frozenset({"pickle.loads", "pickle.load", "cPickle.loads", "cPickle.load",
                                 "marshal.loads", "marshal.load", "shelve.open", "dill.loads", "dill.load",
                                 "jsonpickle.decode"}),
             "deserialises untrusted data into code"),
    CallRule("PY007", frozenset({"__import__", "builtins.__import__"}), "imports a module by computed name"),
    CallRule("PY008", frozenset({"tempfile.mktemp"}), "creates a temporary file name open to races"),
)
SHELL_CALLS = frozenset({"subprocess.run", "subprocess.call", "subprocess.check_call", "subprocess.check_output",
                         "subprocess.Popen", "subprocess.getoutput", "subprocess.getstatusoutput",
                         "asyncio.create_subprocess_shell"})
"""PY004: these run a shell when called with ``shell=True`` (the last two always do)."""
ALWAYS_SHELL = frozenset({"subprocess.getoutput", "subprocess.getstatusoutput", "asyncio.create_subprocess_shell"})
UNSAFE_YAML = frozenset({"yaml.load", "yaml.load_all", "yaml.unsafe_load", "yaml.unsafe_load_all",
                         "yaml.full_load", "yaml.full_load_all"})
"""PY006: PyYAML loaders that build arbitrary objects unless given a safe loader."""
SAFE_LOADERS = frozenset({"SafeLoader", "CSafeLoader", "BaseLoader", "CBaseLoader"})

RULE_IDS: tuple[str, ...] = ("PY001", "PY002", "PY003", "PY004", "PY005", "PY006", "PY007", "PY008")


def find_dangerous_calls(artifacts: Iterable[Artifact], disabled: frozenset[str] = frozenset()) -> list[Finding]:
    """Findings in every Python artifact; one that does not parse is skipped (lint reports it)."""
    findings: list[Finding] = []
    for artifact in artifacts:
        if artifact.language != "python":
            continue
        try:
            tree = ast.parse(artifact.content)
        except (SyntaxError, ValueError):
            continue
        visitor = _CallVisitor(artifact)
        visitor.visit(tree)
        findings.extend(f for f in visitor.findings if f.rule_id not in disabled)
    return findings


class _CallVisitor(ast.NodeVisitor):
    def __init__(self, artifact: Artifact) -> None:
        self.artifact = artifact
        self.aliases: dict[str, str] = {}
        self.findings: list[Finding] = []

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.asname:
                self.aliases[alias.asname] = alias.name
            else:
                top = alias.name.split(".", 1)[0]
                self.aliases[top] = top

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.module and node.level == 0:
            for alias in node.names:
                self.aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"

    def visit_Call(self, node: ast.Call) -> None:
        name = self._qualified(node.func)
        if name:
            self._judge(name, node)
        self.generic_visit(node)

    def _qualified(self, func: ast.expr) -> str:
        parts: list[str] = []
        while isinstance(func, ast.Attribute):
            parts.append(func.attr)
            func = func.value
        if not isinstance(func, ast.Name):
            return ""
        head = self.aliases.get(func.id, func.id)
        return ".".join([head, *reversed(parts)])

    def _judge(self, name: str, node: ast.Call) -> None:
        for rule in CALL_RULES:
            if name in rule.calls:
                self._add(rule.rule_id, f"{name}() {rule.why}", node)
        if name in SHELL_CALLS and (name in ALWAYS_SHELL or _keyword_is_true(node, "shell")):
            self._add("PY004", f"{name}() runs a shell (shell=True)", node)
        if name in UNSAFE_YAML and not _has_safe_loader(node):
            self._add("PY006", f"{name}() without a safe loader can build arbitrary objects", node)

    def _add(self, rule_id: str, message: str, node: ast.AST) -> None:
        self.findings.append(Finding(rule_id, message, self.artifact, getattr(node, "lineno", 0)))


def _keyword_is_true(node: ast.Call, name: str) -> bool:
    for keyword in node.keywords:
        if keyword.arg == name:
            value = keyword.value
            return not (isinstance(value, ast.Constant) and not value.value)
    return False


def _has_safe_loader(node: ast.Call) -> bool:
    loaders = [kw.value for kw in node.keywords if kw.arg == "Loader"] + list(node.args[1:2])
    for loader in loaders:
        name = loader.attr if isinstance(loader, ast.Attribute) else getattr(loader, "id", "")
        if name in SAFE_LOADERS:
            return True
    return False
