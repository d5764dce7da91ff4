"""One JSON line per (problem, arm), appended as each finishes, so that a rerun resumes.

The last line of a (problem, arm shape) wins. A line whose status is ``error`` (the call
failed for a reason that says nothing about the arm) is not finished: a rerun asks again.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from orchestrator_grpc.evaluation.asking import AnswerStatus


@dataclass(frozen=True)
class CandidateResult:
    """One proposal the council ranked, and how the hidden tests judged it."""

    author_id: str
    rank: int
    score: float
    viable: bool
    hidden_passed: bool


@dataclass(frozen=True)
class Row:
    task_id: str
    number: int
    arm: str
    arm_key: str
    status: str
    final_code: str | None
    hidden_passed: bool
    visible_passed: bool | None
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    deliberation_id: str = ""
    hidden_score: float = 0.0
    hidden_diagnostics: tuple[str, ...] = ()
    viable: int = 0
    selected_by: str = ""
    error: str = ""
    models: tuple[str, ...] = ()
    candidates: tuple[CandidateResult, ...] = field(default_factory=tuple)

    @property
    def finished(self) -> bool:
        return self.status != AnswerStatus.ERROR

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def oracle_passed(self) -> bool:
        """A correct proposal existed among the ranked ones (or the answer itself was correct)."""
        return self.hidden_passed or any(c.hidden_passed for c in self.candidates)

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_json(cls, line: str) -> Row:
        data: dict[str, Any] = json.loads(line)
        data["hidden_diagnostics"] = tuple(data.get("hidden_diagnostics", ()))
        data["models"] = tuple(data.get("models", ()))
        data["candidates"] = tuple(CandidateResult(**c) for c in data.get("candidates", ()))
        return cls(**data)


class ResultsFile:
    """The JSONL file of rows: read once when opened, appended to after."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: dict[tuple[str, str], Row] = {}
        self.added = 0
        """Rows appended since the file was opened."""
        if path.exists():
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
                if not line.strip():
                    continue
                try:
                    row = Row.from_json(line)
                except (ValueError, TypeError, KeyError) as exc:
                    raise ValueError(f"{path}:{number}: not a result line ({exc})") from None
                self.rows[(row.task_id, row.arm_key)] = row

    def finished(self, task_id: str, arm_key: str) -> bool:
        row = self.rows.get((task_id, arm_key))
        return row is not None and row.finished

    def add(self, row: Row) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as stream:
            stream.write(row.to_json() + "\n")
        self.rows[(row.task_id, row.arm_key)] = row
        self.added += 1
