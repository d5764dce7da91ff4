"""EVAL.md and its chart, from the result rows alone (so a rerun redraws them)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from orchestrator_grpc.evaluation.results import Row
from orchestrator_grpc.evaluation.statistics import ArmSummary, common_problems, summarise


@dataclass(frozen=True)
class RunContext:
    """What the report says about how its numbers were made."""

    commands: tuple[str, ...]
    """Every command whose results the report holds (a resumed run adds its own)."""
    date: str
    machine: str
    settings: tuple[str, ...]
    wall_seconds: float
    sample_note: str
    chart_name: str
    notes: str = ""
    """A reading of the numbers, written by whoever ran them (``humaneval-notes.md`` beside
    the results); the report's own text states only what was measured."""


def summaries(rows: Sequence[Row], arm_keys: Sequence[str], only: set[str] | None = None) -> list[ArmSummary]:
    return [summarise(rows, key, only) for key in arm_keys]


def _percent(value: float) -> str:
    return f"{100 * value:.1f} %"


def _table(items: Sequence[ArmSummary]) -> list[str]:
    lines = [
        "| arm | shape | problems | solved | pass@1 | 95 % interval | visible tests passed | "
        "a correct proposal ranked | oracle gap | tokens / problem | tokens / solved | s / problem | errors |",
        "| --- | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for s in items:
        low, high = s.interval
        per_solved = f"{s.tokens_per_solved:,.0f}" if s.tokens_per_solved is not None else "none solved"
        shape = s.arm_key.split(":", 1)[1].replace(":", ", ") if ":" in s.arm_key else ""
        lines.append(
            f"| {s.arm} | {shape} | {s.problems} | {s.solved} | {_percent(s.pass_at_1)} | "
            f"{_percent(low)} to {_percent(high)} | {s.visible_passed} | {s.oracle_solved} | {s.oracle_gap} | "
            f"{s.tokens_per_problem:,.0f} | {per_solved} | {s.seconds_per_problem:.1f} | {s.errors} |"
        )
    return lines


def render(rows: Sequence[Row], arm_keys: Sequence[str], context: RunContext) -> str:
    models = sorted({model for row in rows if row.arm_key in arm_keys for model in row.models})
    task_ids = {row.task_id for row in rows if row.arm_key in arm_keys and row.finished}
    common = common_problems(rows, arm_keys)
    lines = [
        "# HumanEval: what deliberation is worth",
        "",
        "Made by:",
        "",
        *(f"    {command}" for command in context.commands),
        "",
        f"Reported on {context.date}.",
        "",
        f"- **Machine:** {context.machine}",
        f"- **Model:** {', '.join(models) or 'unknown (no deliberation record named one)'}",
        f"- **Problems:** {len(task_ids)} of HumanEval's 164 ({context.sample_note})",
        f"- **Wall time:** {context.wall_seconds / 60:.1f} min over every run that wrote these results",
        f"- **Settings:** {', '.join(context.settings) or 'the service defaults'}",
        "",
        "## pass@1 per arm",
        "",
        "Each arm on every problem it finished. The arms may have run on different problems; "
        "the next table compares them like for like.",
        "",
        *_table(summaries(rows, arm_keys)),
        "",
        f"## Like for like: the {len(common)} problem{'' if len(common) == 1 else 's'} every arm finished",
        "",
        *(_table(summaries(rows, arm_keys, common)) if common else ["No problem was finished by every arm."]),
        "",
        f"![pass@1 per arm, and tokens per solved problem]({context.chart_name})",
        "",
        *(["## What these numbers say", "", context.notes.strip(), ""] if context.notes.strip() else []),
        "## How these numbers are made",
        "",
        "- The task is the problem's prompt (signature and docstring). The only tests the service "
        "sees are the docstring's examples, turned into visible tests that its dry-run check runs; "
        "they are what a user would have. HumanEval's own tests stay hidden until the service has "
        "answered, then run against the returned code in the same dry-run sandbox.",
        "- **single**: one agent, one call. **best-of-n**: N independent proposals, no critique, "
        "ranked by the checks. **council**: N agents, R critique/revise rounds, the checks; its "
        "top-ranked proposal. **orchestrate**: the same, then the selector (an ARCHITECT agent) "
        "chooses among the top viable candidates; with no viable proposal it returns no code, "
        "which counts as a failure.",
        "- **pass@1**: the share of problems whose returned code passed the hidden tests, with a "
        "95 % Wilson interval. **A correct proposal ranked**: problems where at least one of the "
        "council's ranked proposals passed the hidden tests. **Oracle gap**: those where such a "
        "proposal existed but was not the one returned — what better checks or selection could win "
        "without a better model.",
        "- **Tokens** are the service's counts for every agent call of the arm (the selector's "
        "included); **s / problem** is the time the service took to answer, seen by the client.",
        "- **Errors** are calls that failed for reasons that say nothing about the arm (the model "
        "server unreachable, ...): they are left out of pass@1, and a rerun asks again.",
        "",
    ]
    return "\n".join(lines)


def draw_chart(items: Sequence[ArmSummary], path: Path) -> None:
    """pass@1 with its interval per arm, beside tokens spent per solved problem."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [s.arm for s in items]
    rates = [100 * s.pass_at_1 for s in items]
    lows = [rate - 100 * s.interval[0] for rate, s in zip(rates, items, strict=True)]
    highs = [100 * s.interval[1] - rate for rate, s in zip(rates, items, strict=True)]
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.bar(names, rates, yerr=[lows, highs], capsize=6, color="#4c72b0")
    left.set_ylabel("pass@1 (%), 95 % Wilson interval")
    left.set_ylim(0, 100)
    left.set_title("pass@1 per arm")
    for index, s in enumerate(items):
        left.annotate(f"{s.solved}/{s.problems}", (index, rates[index]), ha="center", va="bottom",
                      xytext=(0, 3), textcoords="offset points")
    per_solved = [s.tokens_per_solved or 0.0 for s in items]
    right.bar(names, per_solved, color="#dd8452")
    right.set_ylabel("tokens per solved problem")
    right.set_title("cost of a solved problem")
    for index, s in enumerate(items):
        if s.tokens_per_solved is None:
            right.annotate("none solved", (index, 0), ha="center", va="bottom", xytext=(0, 3),
                           textcoords="offset points")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
