"""Artifacts: what every check reads out of a proposal."""

from __future__ import annotations

import pytest

from agents_contrib.artifacts import Artifact, extract_artifacts, guess_language, language_of_file


def test_fenced_blocks_keep_their_language_order_and_position() -> None:
    text = "Intro\n\n```python\nx = 1\n```\n\nthen\n\n~~~yml\na: 1\n~~~\n"
    artifacts = extract_artifacts(text)
    assert [(a.index, a.language, a.content, a.line, a.fenced) for a in artifacts] == [
        (1, "python", "x = 1\n", 4, True),
        (2, "yaml", "a: 1\n", 10, True),
    ]


@pytest.mark.parametrize(
    ("info", "language"),
    [("py", "python"), ("Python3", "python"), ("bash", "shell"), ("sh", "shell"), ("docker", "dockerfile"),
     ("Dockerfile", "dockerfile"), ("postgresql", "sql"), ("jsonc", "json"), ("yaml", "yaml"), ("rust", "rust")],
)
def test_languages_are_normalised(info: str, language: str) -> None:
    (artifact,) = extract_artifacts(f"```{info}\nsomething\n```\n")
    assert artifact.language == language


@pytest.mark.parametrize(
    ("text", "filename", "language"),
    [
        ("```python app/main.py\nx = 1\n```", "app/main.py", "python"),
        ("```python title=\"calc.py\"\nx = 1\n```", "calc.py", "python"),
        ("```python:calc.py\nx = 1\n```", "calc.py", "python"),
        ("```python\n# file: calc.py\nx = 1\n```", "calc.py", "python"),
        ("**`deploy.yaml`**:\n```\nkind: Service\n```", "deploy.yaml", "yaml"),
        ("```\n# settings.json\n{}\n```", "settings.json", "json"),
    ],
)
def test_file_names_come_from_the_info_string_a_first_line_or_the_line_before(
    text: str, filename: str, language: str
) -> None:
    (artifact,) = extract_artifacts(text)
    assert (artifact.filename, artifact.language) == (filename, language)


@pytest.mark.parametrize(
    ("filename", "language"),
    [("run.sh", "shell"), ("main.tf", "terraform"), ("APP.PY", "python"), ("k8s/app.yml", "yaml"),
     ("Dockerfile.dev", "dockerfile"), ("main.go", "go"), ("README.md", "markdown"), ("notes", "")],
)
def test_a_file_name_says_its_language(filename: str, language: str) -> None:
    assert language_of_file(filename) == language


def test_an_unlabelled_block_named_as_markdown_is_not_guessed_to_be_yaml() -> None:
    (artifact,) = extract_artifacts("File: README.md\n```\n- install\n- run\n```\n")
    assert (artifact.filename, artifact.language) == ("README.md", "markdown")


def test_a_longer_fence_contains_a_shorter_one() -> None:
    (artifact,) = extract_artifacts("````markdown\n```python\nx = 1\n```\n````\n")
    assert artifact.language == "markdown"
    assert artifact.content == "```python\nx = 1\n```\n"


def test_empty_blocks_are_dropped_and_an_unclosed_block_runs_to_the_end() -> None:
    artifacts = extract_artifacts("```python\n\n```\n```sql\nselect 1;\n")
    assert [(a.index, a.language, a.content) for a in artifacts] == [(1, "sql", "select 1;\n")]


def test_without_fences_the_whole_text_is_one_artifact() -> None:
    (artifact,) = extract_artifacts("  def f():\n    return 1\n".strip())
    assert artifact == Artifact(index=1, language="python", content="def f():\n    return 1\n",
                                fenced=False, line=1)


def test_an_empty_proposal_has_no_artifact() -> None:
    assert extract_artifacts(" \n\n") == ()


@pytest.mark.parametrize(
    ("content", "language"),
    [
        ('{"a": [1, 2]}', "json"),
        ("FROM python:3.11-slim\nRUN pip install x\n", "dockerfile"),
        ("#!/bin/sh\necho hi\n", "shell"),
        ("import os\nprint(os.getcwd())\n", "python"),
        ("SELECT id FROM users WHERE age > 3;", "sql"),
        ("apiVersion: v1\nkind: ConfigMap\n", "yaml"),
        ("Just prose, explaining the design.", "text"),
        ("hello", "text"),
    ],
)
def test_unlabelled_content_is_guessed(content: str, language: str) -> None:
    assert guess_language(content) == language


def test_labels_and_sizes_name_the_artifact() -> None:
    (artifact,) = extract_artifacts("```python calc.py\nx = 'é'\n```")
    assert artifact.label == "artifact 1 (python, calc.py)"
    assert artifact.size == len("x = 'é'\n".encode())


# -- broken fences: the code is kept -------------------------------------------------------


def test_a_block_never_closed_runs_to_the_end_of_the_reply() -> None:
    text = "File: add.py\n```python\ndef add(a, b):\n    return a + b\n"
    [artifact] = extract_artifacts(text)
    assert (artifact.language, artifact.filename, artifact.line) == ("python", "add.py", 3)
    assert artifact.content == "def add(a, b):\n    return a + b\n"


def test_a_reply_cut_off_mid_line_keeps_what_came() -> None:
    [artifact] = extract_artifacts("Here it is:\n\n```python\nimport math\n\ndef area(r):\n    return math.pi * r")
    assert artifact.content == "import math\n\ndef area(r):\n    return math.pi * r\n"
    assert artifact.language == "python"


@pytest.mark.parametrize(
    "opening",
    ["def add(a, b):", "import operator\ndef add(a, b):", "from operator import add as plus\ndef add(a, b):",
     "async def add(a, b):", "@staticmethod\ndef add(a, b):", "class Adder:\n def add(a, b):"],
)
def test_code_opening_the_reply_without_a_fence_is_closed_by_the_first_bare_fence(opening: str) -> None:
    text = f"{opening}\n    return a + b\n```\n\nThis adds two numbers."
    [artifact] = extract_artifacts(text)
    assert artifact.content == f"{opening}\n    return a + b\n"
    assert (artifact.language, artifact.line, artifact.fenced) == ("python", 1, False)


def test_after_an_unopened_block_the_rest_is_parsed_as_usual() -> None:
    text = ("File: calc.py\nimport math\n\ndef area(r):\n    return math.pi * r * r\n```\n"
            "And its test:\n```python\nfrom calc import area\n\ndef test_area():\n    assert area(1) > 3\n```\n")
    first, second = extract_artifacts(text)
    assert (first.filename, first.line, first.content.splitlines()[0]) == ("calc.py", 2, "import math")
    assert (second.line, second.content.splitlines()[0], second.fenced) == (9, "from calc import area", True)


def test_prose_before_a_bare_fence_is_not_taken_for_code() -> None:
    [artifact] = extract_artifacts("Here is the code:\n```\ndef add(a, b):\n    return a + b\n```\n")
    assert artifact.content == "def add(a, b):\n    return a + b\n"
    assert (artifact.line, artifact.fenced) == (3, True)
