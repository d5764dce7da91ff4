"""What a proposal delivers: its fenced code blocks, each with a language and maybe a file name.

Every check works on the same parsed artifacts. A proposal without fences is taken whole,
as one artifact whose language is guessed from its content.

Replies are not always well formed, and a broken fence must not lose the code:

- a block whose closing fence never comes (a reply cut off at its length limit, or a small
  model that stops early) runs to the end of the reply;
- a reply that starts with code (``def``, ``class``, ``import``, ``from … import``, a
  decorator or a ``#!`` line, perhaps after a ``File: name`` line) and later has a bare
  fence, never opened, is taken to close that code: the lines before the fence are an
  artifact, and parsing goes on after it.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, replace

import yaml

LANGUAGE_ALIASES: dict[str, str] = {
    "py": "python",
    "python3": "python",
    "py3": "python",
    "yml": "yaml",
    "sh": "shell",
    "bash": "shell",
    "zsh": "shell",
    "console": "shell",
    "shell-session": "shell",
    "docker": "dockerfile",
    "containerfile": "dockerfile",
    "postgres": "sql",
    "postgresql": "sql",
    "mysql": "sql",
    "sqlite": "sql",
    "js": "javascript",
    "ts": "typescript",
    "jsonc": "json",
    "tf": "terraform",
    "hcl": "terraform",
    "k8s": "yaml",
    "": "text",
    "txt": "text",
    "plaintext": "text",
}

EXTENSION_LANGUAGES: dict[str, str] = {
    ".py": "python",
    ".yaml": "yaml",
    ".yml": "yaml",
    ".json": "json",
    ".sql": "sql",
    ".sh": "shell",
    ".js": "javascript",
    ".ts": "typescript",
    ".tf": "terraform",
    ".rego": "rego",
    ".toml": "toml",
    ".go": "go",
    ".md": "markdown",
}
"""The language of a file by its name's ending, in the names :data:`LANGUAGE_ALIASES` leads to
(the checks', and the prompts' after :data:`agents_contrib.prompting.FENCE_TAGS`)."""

_FENCE_OPEN = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^\n`]*)$")
_FILE_NAME = re.compile(r"^[\w.\-/]+\.[A-Za-z0-9]+$|^Dockerfile(\.[\w-]+)?$")
_INFO_ATTRIBUTE = re.compile(r"""(?:title|file|filename|path)\s*=\s*["']?([^"'\s]+)["']?""")
_CODE_START = re.compile(r"^(?:(?:async\s+)?def\s|class\s|import\s|from\s+[\w.]+\s+import\s|@\w|#!)")
_FIRST_LINE_NAME = re.compile(r"^\s*(?:#|//|--)\s*(?:file(?:name)?\s*:\s*)?(?P<name>[\w.\-/]+\.[A-Za-z0-9]+)\s*$")


@dataclass(frozen=True)
class Artifact:
    """One deliverable of a proposal.

    ``index`` counts from 1 in the order of the proposal; ``line`` is where the artifact's
    content starts in the proposal (1-based), so a finding at line n of the artifact is at
    line ``line + n - 1`` of the proposal.
    """

    index: int
    language: str
    content: str
    filename: str = ""
    fenced: bool = True
    line: int = 1

    @property
    def label(self) -> str:
        """How diagnostics name the artifact, e.g. ``artifact 2 (python, app.py)``."""
        details = self.language if not self.filename else f"{self.language}, {self.filename}"
        return f"artifact {self.index} ({details})"

    @property
    def size(self) -> int:
        return len(self.content.encode("utf-8"))


def normalise_language(name: str) -> str:
    lowered = name.strip().lower()
    return LANGUAGE_ALIASES.get(lowered, lowered)


def extract_artifacts(text: str) -> tuple[Artifact, ...]:
    """The fenced code blocks of ``text``, or the whole text when it has none."""
    blocks = _fenced_blocks(text)
    if blocks:
        return tuple(blocks)
    stripped = text.strip()
    if not stripped:
        return ()
    return (Artifact(index=1, language=guess_language(stripped), content=stripped + "\n",
                     fenced=False, line=1),)


def _fenced_blocks(text: str) -> list[Artifact]:
    lines = text.splitlines()
    artifacts: list[Artifact] = []
    position = 0
    unopened = _unopened_block(lines)
    if unopened is not None:
        start, closing = unopened
        body = "\n".join(lines[start:closing])
        artifact = _artifact(1, "", body, lines[start - 1] if start else "", start + 1)
        artifacts.append(replace(artifact, fenced=False))
        position = closing + 1
    while position < len(lines):
        opening = _FENCE_OPEN.match(lines[position])
        if opening is None:
            position += 1
            continue
        fence = opening.group("fence")
        body_start = position + 1
        end = body_start
        while end < len(lines) and not _closes(lines[end], fence):
            end += 1
        body = "\n".join(lines[body_start:end])
        if body.strip():
            artifacts.append(_artifact(len(artifacts) + 1, opening.group("info"), body,
                                       lines[position - 1] if position else "", body_start + 1))
        position = end + 1
    return artifacts


def _unopened_block(lines: list[str]) -> tuple[int, int] | None:
    """Where code that opens the reply without a fence starts, and the bare fence closing it."""
    first_fence = next((i for i, line in enumerate(lines) if _FENCE_OPEN.match(line)), None)
    if first_fence is None:
        return None
    opening = _FENCE_OPEN.match(lines[first_fence])
    if opening is None or opening.group("info").strip():
        return None  # a fence with a language tag opens a block
    content = [i for i in range(first_fence) if lines[i].strip()]
    if content and not _CODE_START.match(lines[content[0]]) and _name_from_line_before(lines[content[0]]):
        content = content[1:]  # a "File: name" line before the code
    if not content or not _CODE_START.match(lines[content[0]]):
        return None
    return content[0], first_fence


def _closes(line: str, fence: str) -> bool:
    stripped = line.strip()
    return stripped.startswith(fence[0] * len(fence)) and set(stripped) == {fence[0]}


def _artifact(index: int, info: str, body: str, line_before: str, line: int) -> Artifact:
    words = info.split()
    language = ""
    filename = ""
    if words:
        first = words[0]
        if ":" in first and not first.startswith("{"):
            first, _, filename = first.partition(":")
        language = normalise_language(first.strip("{}."))
        for word in words[1:]:
            attribute = _INFO_ATTRIBUTE.search(word)
            if attribute:
                filename = attribute.group(1)
            elif not filename and _FILE_NAME.match(word):
                filename = word
    if not filename:
        filename = _name_from_first_line(body) or _name_from_line_before(line_before)
    if not language:
        language = language_of_file(filename) or guess_language(body)
    return Artifact(index=index, language=language, content=body.rstrip("\n") + "\n",
                    filename=filename, fenced=True, line=line)


def _name_from_first_line(body: str) -> str:
    first = body.lstrip("\n").split("\n", 1)[0]
    match = _FIRST_LINE_NAME.match(first)
    return match.group("name") if match else ""


def _name_from_line_before(line: str) -> str:
    """A name introducing the block, as in ``**`app.py`**:`` or ``File: app.py``."""
    candidates = re.findall(r"[\w.\-/]+\.[A-Za-z0-9]+|Dockerfile", line.strip(" *_:`#"))
    return candidates[-1] if len(candidates) == 1 else ""


def language_of_file(filename: str) -> str:
    """The language a file name says (``Dockerfile``, or its extension in any case), or ``""``."""
    if not filename:
        return ""
    base = filename.rsplit("/", 1)[-1]
    if base.startswith("Dockerfile"):
        return "dockerfile"
    lowered = base.lower()
    for extension, language in EXTENSION_LANGUAGES.items():
        if lowered.endswith(extension):
            return language
    return ""


def guess_language(content: str) -> str:
    """A best guess for an unlabelled artifact; ``text`` when nothing fits."""
    stripped = content.strip()
    if not stripped:
        return "text"
    if stripped[0] in "[{":
        try:
            json.loads(stripped)
        except ValueError:
            pass
        else:
            return "json"
    if re.match(r"(?i)^(#.*\n)*\s*FROM\s+\S+", stripped) and not _looks_like_python(stripped):
        return "dockerfile"  # not Python's ``from x import y``
    if stripped.startswith("#!") and ("sh" in stripped.split("\n", 1)[0]):
        return "shell"
    if _looks_like_python(stripped):
        return "python"
    if re.match(r"(?is)^\s*(select|insert|update|delete|create|alter|drop|with)\b", stripped):
        return "sql"
    if _looks_like_yaml(stripped):
        return "yaml"
    return "text"


def _looks_like_python(content: str) -> bool:
    try:
        tree = ast.parse(content)
    except (SyntaxError, ValueError):
        return False
    code = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef,
            ast.Assign, ast.If, ast.For, ast.While, ast.With, ast.Try)
    # ``key: value`` lines parse as bare annotations; YAML, not code, unless something else is.
    return any(isinstance(node, code) or (isinstance(node, ast.AnnAssign) and node.value is not None)
               for node in tree.body)


def _looks_like_yaml(content: str) -> bool:
    try:
        documents = [doc for doc in yaml.safe_load_all(content) if doc is not None]
    except yaml.YAMLError:
        return False
    return bool(documents) and all(isinstance(doc, dict | list) for doc in documents)
