"""A picture of one deliberation: every agent call and check as a bar on a time axis.

One lane per agent (the council's order), then one lane per proposal for its checks. The x
axis is seconds since the deliberation started. An agent call's bar is coloured by its
phase; the phases themselves are shaded behind the bars, named along the top. A call that
did not end ``ok`` and a check that failed are edged in red, cross-hatched and followed by
"✕" and how they ended; a truncated reply is hatched with slashes and ends in "…". Each
call's tokens are written in its bar when they fit. Bars that overlap in time (an agent
critiquing two proposals at once, the checks of one proposal) share their lane in rows.

matplotlib is an optional extra (``orchestrator-grpc[timeline]``); it is imported when a
picture is drawn, never by importing this module. The figure is drawn on matplotlib's Agg
canvas, without pyplot: nothing global changes and no display is needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator_core.models import CallOutcome, Phase
from orchestrator_core.records import DeliberationRecord

if TYPE_CHECKING:
    from matplotlib.axes import Axes

INSTALL_HINT = "pip install 'orchestrator-grpc[timeline]'"
FORMATS = {".png": "png", ".svg": "svg"}
"""The picture's format, by the file's suffix."""

PHASE_COLOURS = {
    Phase.GENERATE.value: "#4c72b0",
    Phase.CRITIQUE.value: "#dd8452",
    Phase.REVISE.value: "#55a868",
    Phase.SELECT.value: "#8172b3",
    "check": "#8c8c8c",
}
FAILURE_COLOUR = "#c44e52"
NO_CALLS = "no agent call recorded (a record written before calls were kept, or one that failed before any call)"
MIN_BAR_FRACTION = 0.004
"""The narrowest bar drawn, as a share of the time axis, so that an instant call is seen."""
LANE_HEIGHT = 0.8
_TEXT_BOX = {"facecolor": FAILURE_COLOUR, "edgecolor": "none", "pad": 1.0}
DPI = 110


class TimelineUnavailable(Exception):
    """matplotlib is not installed; the message says how to install it."""


@dataclass(frozen=True)
class Bar:
    """One bar of a lane: seconds since the start, how to colour it, what to write on it."""

    start: float
    end: float
    colour: str
    label: str = ""
    failed: str = ""
    """How a failure ended ("timeout", "failed", ...); empty when it did not fail."""
    truncated: bool = False


@dataclass(frozen=True)
class Lane:
    name: str
    bars: tuple[Bar, ...]


def timeline_format(path: Path) -> str:
    """The format ``path`` asks for; ValueError for a suffix other than .png and .svg."""
    try:
        return FORMATS[path.suffix.lower()]
    except KeyError:
        raise ValueError(f"{path}: the timeline is drawn as .png or .svg, not {path.suffix or 'no suffix'!r}") from None


def require_matplotlib() -> None:
    """Raise TimelineUnavailable when matplotlib cannot be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise TimelineUnavailable(f"drawing a timeline needs matplotlib: {INSTALL_HINT}") from None


def lanes_of(record: DeliberationRecord) -> list[Lane]:
    """The agents' lanes (the council's order, then any other caller), then each proposal's
    checks (in the order their first check ended); checks kept without times are left out."""
    start = record.created_at
    agents = [seat.agent_id for seat in record.council]
    agents += [call.agent_id for call in record.calls if call.agent_id not in agents]
    agents = list(dict.fromkeys(agents))
    lanes = []
    for agent in agents:
        bars = tuple(
            Bar(
                start=call.started_at - start,
                end=call.finished_at - start,
                colour=PHASE_COLOURS[call.phase.value],
                label=_tokens(call.usage.prompt_tokens + call.usage.completion_tokens),
                failed="" if call.outcome is CallOutcome.OK else call.outcome.value,
                truncated=call.truncated,
            )
            for call in record.calls
            if call.agent_id == agent
        )
        lanes.append(Lane(agent, bars))
    proposals = list(dict.fromkeys(check.proposal_id for check in record.checks if check.started_at))
    for proposal in proposals:
        bars = tuple(
            Bar(
                start=check.started_at - start,
                end=check.finished_at - start,
                colour=PHASE_COLOURS["check"],
                label=check.result.name,
                failed="" if check.result.passed else "failed",
            )
            for check in record.checks
            if check.proposal_id == proposal and check.started_at
        )
        lanes.append(Lane(f"checks of {proposal}", bars))
    return lanes


def duration_of(record: DeliberationRecord) -> float:
    """Seconds from its start to its end, or to the last thing it recorded while running."""
    ends = [record.finished_at or 0.0, record.updated_at]
    ends += [call.finished_at for call in record.calls]
    ends += [check.finished_at for check in record.checks]
    ends += [phase.finished_at for phase in record.phases]
    return max(0.0, max(ends) - record.created_at)


def draw_timeline(record: DeliberationRecord, path: Path) -> None:
    """Draw ``record`` to ``path`` (.png or .svg). Raises TimelineUnavailable without
    matplotlib and ValueError for another suffix, in both cases before writing anything."""
    file_format = timeline_format(path)
    require_matplotlib()
    import matplotlib

    # SVG text stays text (searchable, selectable), not glyph outlines.
    with matplotlib.rc_context({"svg.fonttype": "none"}):
        _draw(record, path, file_format)


def _draw(record: DeliberationRecord, path: Path, file_format: str) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    lanes = lanes_of(record)
    duration = duration_of(record)
    span = max(duration, max((bar.end for lane in lanes for bar in lane.bars), default=0.0), 1e-3) * 1.04
    figure = Figure(figsize=(9, 1.6 + 0.55 * max(len(lanes), 3)), dpi=DPI)
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    axes.set_xlim(0, span)
    axes.set_ylim(max(len(lanes), 1) - 0.5, -0.5)
    _shade_phases(axes, record, span)
    for index, lane in enumerate(lanes):
        _draw_lane(axes, index, lane.bars, span, figure.get_figwidth() * DPI * 0.75)
    axes.set_yticks(range(len(lanes)), [lane.name for lane in lanes])
    axes.set_xlabel("seconds since the deliberation started")
    axes.grid(axis="x", linestyle=":", alpha=0.5)
    if not record.calls:
        axes.text(0.5, 0.5, NO_CALLS, transform=axes.transAxes, ha="center", va="center", fontsize=9, wrap=True)
    axes.set_title(_title(record, duration), fontsize=11, pad=18)
    axes.legend(handles=_legend_handles(), loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format=file_format, bbox_inches="tight")


def _draw_lane(axes: Axes, index: int, bars: Sequence[Bar], span: float, width_px: float) -> None:
    rows = _rows(bars)
    count = max(rows, default=-1) + 1
    height = LANE_HEIGHT / max(count, 1)
    seconds_per_px = span / width_px
    for bar, row in zip(bars, rows, strict=True):
        width = max(bar.end - bar.start, span * MIN_BAR_FRACTION)
        bottom = index - LANE_HEIGHT / 2 + row * height
        style: dict[str, Any] = {"facecolor": bar.colour, "edgecolor": "white", "linewidth": 0.5}
        if bar.failed:
            style.update(edgecolor=FAILURE_COLOUR, linewidth=1.6, hatch="xx")
        elif bar.truncated:
            style.update(edgecolor="black", linewidth=0.8, hatch="//")
        axes.barh(bottom + height / 2, width, height * 0.84, left=bar.start, **style)
        marks = _marks(bar)
        size = 7 if count < 3 else 6
        room = width / seconds_per_px - 4
        inside = next((text for text in (f"{bar.label} {marks}".strip(), marks, bar.label)
                       if text and len(text) * size * 0.6 * DPI / 72 < room), "")
        if inside:
            axes.text(bar.start + width / 2, bottom + height / 2, inside, ha="center", va="center", fontsize=size,
                      color="white", clip_on=True, bbox=_TEXT_BOX if marks in inside and bar.failed else None)
        if marks and marks not in inside:
            axes.text(bar.start + width, bottom + height / 2, " " + marks, ha="left", va="center", fontsize=size,
                      color=FAILURE_COLOUR if bar.failed else "black", clip_on=True)


def _marks(bar: Bar) -> str:
    """"✕ timeout" for a failure, "…" for a truncated reply, or both."""
    return " ".join(mark for mark in (f"✕ {bar.failed}" if bar.failed else "", "…" if bar.truncated else "") if mark)


def _rows(bars: Sequence[Bar]) -> list[int]:
    """A row for each bar, the first whose last bar has ended: overlapping bars never share one."""
    ends: list[float] = []
    rows = [0] * len(bars)
    for position in sorted(range(len(bars)), key=lambda i: bars[i].start):
        bar = bars[position]
        row = next((r for r, end in enumerate(ends) if end <= bar.start), len(ends))
        if row == len(ends):
            ends.append(bar.end)
        else:
            ends[row] = bar.end
        rows[position] = row
    return rows


def _shade_phases(axes: Axes, record: DeliberationRecord, span: float) -> None:
    for number, phase in enumerate(record.phases):
        start, end = phase.started_at - record.created_at, phase.finished_at - record.created_at
        colour = PHASE_COLOURS.get(phase.phase, "#999999")
        axes.axvspan(start, max(end, start + span * MIN_BAR_FRACTION), color=colour, alpha=0.08, linewidth=0)
        axes.axvline(start, color=colour, linestyle="--", linewidth=0.7, alpha=0.7)
        name = f"{phase.phase} {phase.round}" if phase.round else phase.phase
        axes.annotate(name, (start, 1.0), xycoords=("data", "axes fraction"), xytext=(2, 2 + 9 * (number % 2)),
                      textcoords="offset points", fontsize=7, color=colour, annotation_clip=False)


def _legend_handles() -> list[Any]:
    from matplotlib.patches import Patch

    handles: list[Any] = [Patch(color=colour, label=name) for name, colour in PHASE_COLOURS.items()]
    handles.append(Patch(facecolor="white", edgecolor=FAILURE_COLOUR, hatch="xx", linewidth=1.6,
                         label="✕ failed: error, timeout, bug,\ncancelled; a check not passed"))
    handles.append(Patch(facecolor="white", edgecolor="black", hatch="//", label="… truncated reply"))
    return handles


def _title(record: DeliberationRecord, duration: float) -> str:
    short = record.deliberation_id[:8] + ("…" if len(record.deliberation_id) > 8 else "")
    kind = f" ({record.error_kind})" if record.error_kind else ""
    return f"{record.kind} {short} · {record.role} · {record.status.value}{kind} · {duration:.2f} s"


def _tokens(count: int) -> str:
    if not count:
        return ""
    return f"{count / 1000:.1f}k tok" if count >= 10_000 else f"{count} tok"
