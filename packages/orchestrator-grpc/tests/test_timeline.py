"""The picture of one deliberation: an orchestration run through a real server (one agent's
critique fails, another's replies are truncated, a check fails a proposal), its record over
gRPC, and ``orchestrator deliberations show ID --timeline`` drawing it as PNG and SVG."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_test_support import make_settings, orchestrator_command, request

from orchestrator.v1 import orchestrator_pb2 as pb
from orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc
from orchestrator_core.errors import BackendUnavailable
from orchestrator_core.models import AgentCall, CallOutcome, CheckResult, Phase, Proposal, Task, TokenUsage
from orchestrator_core.records import CouncilSeat, DeliberationRecord, RecordedCheck, RecordStatus
from orchestrator_core.testing import PluginRegistrar, ScriptedBackend, ScriptedCheck, ScriptedPlugin
from orchestrator_grpc.cli import main
from orchestrator_grpc.server import running_server
from orchestrator_grpc.timeline import INSTALL_HINT, NO_CALLS, draw_timeline, lanes_of

CLI_GUARD = 120.0
"""Seconds a CLI process may take (it imports matplotlib) before the test fails."""
DOWN = "cannot reach the model server"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SVG = "{http://www.w3.org/2000/svg}"


@dataclass
class Orchestrated:
    address: str
    record: pb.DeliberationRecord
    backend: ScriptedBackend


def lint_score(proposal: Proposal) -> float:
    return 0.1 if proposal.author_id == "tl-1" else 0.9


@pytest.fixture
async def orchestrated(orchestrator_plugins: PluginRegistrar, tmp_path: Path) -> AsyncIterator[Orchestrated]:
    """A 3-agent, 1-round orchestration, tl-1 selecting: tl-2's replies are truncated, tl-3's
    critique fails (tl-3 takes no further part), the lint check fails tl-1's proposal. Each
    call takes 20 ms, so the bars have a width. The server stays up while the test runs."""
    backend = ScriptedBackend(
        name="timeline",
        defaults={"delay_seconds": 0.02},
        agents={1: {"truncated": True}, 2: {"fail_in": {Phase.CRITIQUE: BackendUnavailable(DOWN)}}},
    )
    orchestrator_plugins.register(
        ScriptedPlugin(backend, ScriptedCheck(name="policy", kind="policy"),
                       ScriptedCheck(name="lint", kind="lint", score_of=lint_score)),
        name="timeline-doubles",
    )
    settings = make_settings(tmp_path, councils={"TL": {"backend": "timeline", "agents": 3}}, selector_role="TL")
    async with running_server(settings, plugins=orchestrator_plugins.host) as server:
        async with grpc.aio.insecure_channel(server.address) as channel:
            stub = pb_grpc.OrchestratorServiceStub(channel)
            response = await stub.Orchestrate(pb.OrchestrateRequest(deliberation=request(role="TL", rounds=1)))
            record = await stub.GetDeliberation(pb.GetDeliberationRequest(deliberation_id=response.deliberation_id))
        yield Orchestrated(server.address, record, backend)


async def run_cli(*args: str) -> tuple[int, str]:
    """``orchestrator ARGS`` as a process; its exit status and stderr."""
    process = await asyncio.create_subprocess_exec(
        orchestrator_command(), *args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    async with asyncio.timeout(CLI_GUARD):
        _, stderr = await process.communicate()
    assert process.returncode is not None
    return process.returncode, stderr.decode()


def svg_text(path: Path) -> str:
    root = ElementTree.parse(path).getroot()
    return "\n".join("".join(element.itertext()) for element in root.iter(f"{SVG}text"))


async def test_the_record_holds_every_call_with_its_times(orchestrated: Orchestrated) -> None:
    record = orchestrated.record
    made = Counter((agent.agent_id, phase.value) for agent in orchestrated.backend.created for phase in agent.calls)

    assert record.status == pb.DELIBERATION_STATUS_SUCCEEDED
    assert Counter((call.agent_id, call.phase) for call in record.calls) == made
    # tl-1 critiques tl-2's proposal, tl-2 tl-3's; only tl-2 revises (tl-3 failed); tl-1 selects.
    assert [(call.agent_id, call.phase) for call in record.calls if call.phase in ("revise", "select")] == [
        ("tl-2", "revise"), ("tl-1", "select")
    ]
    assert Counter(call.phase for call in record.calls) == {"generate": 3, "critique": 3, "revise": 1, "select": 1}
    phases = {(p.phase, p.round): p for p in record.phases}
    for call in record.calls:
        assert record.created_at <= call.started_at <= call.finished_at <= record.finished_at
        phase = phases[(call.phase, call.round)]
        assert phase.started_at <= call.started_at, call
        assert call.finished_at <= phase.finished_at, call
    [failed] = [call for call in record.calls if call.outcome != "ok"]
    assert (failed.agent_id, failed.phase, failed.round, failed.outcome) == ("tl-3", "critique", 1, "error")
    assert DOWN in failed.error
    assert {call.agent_id for call in record.calls if call.truncated} == {"tl-2"}
    assert all(call.truncated for call in record.calls if call.agent_id == "tl-2" and call.phase == "generate")
    check_phase = phases[("check", 0)]
    assert len(record.checks) == 6  # policy and lint of each of the 3 latest proposals
    for check in record.checks:
        assert check_phase.started_at <= check.started_at <= check.finished_at <= check_phase.finished_at
    assert {c.proposal_id for c in record.checks if not c.result.passed} == {"tl-1-v0"}


async def test_the_cli_draws_the_timeline_as_png(orchestrated: Orchestrated, tmp_path: Path) -> None:
    from matplotlib.image import imread

    picture = tmp_path / "timeline.png"

    code, stderr = await run_cli(
        "deliberations", "show", orchestrated.record.deliberation_id, "--address", orchestrated.address,
        "--timeline", str(picture),
    )

    assert code == 0, stderr
    assert f"timeline: {picture}" in stderr
    assert "8 agent call(s)" in stderr
    assert "tl-3  critique 1  error" in stderr
    assert picture.read_bytes()[:8] == PNG_SIGNATURE
    pixels = imread(picture)
    height, width, channels = pixels.shape
    assert height > 300
    assert width > 800
    assert channels in (3, 4)
    colours = {tuple(pixel) for pixel in pixels.reshape(-1, channels)[::7].tolist()}
    assert len(colours) > 20  # bars, shading, hatching and text: not a blank canvas


async def test_the_cli_draws_the_timeline_as_svg_with_its_lanes_and_marks(
    orchestrated: Orchestrated, tmp_path: Path
) -> None:
    picture = tmp_path / "timeline.SVG"

    code, stderr = await run_cli(
        "--address", orchestrated.address, "deliberations", "show", orchestrated.record.deliberation_id,
        "--timeline", str(picture),
    )

    assert code == 0, stderr
    text = svg_text(picture)
    for lane in ("tl-1", "tl-2", "tl-3", "checks of tl-1-v0", "checks of tl-2-v1", "checks of tl-3-v0"):
        assert lane in text
    assert f"orchestrate {orchestrated.record.deliberation_id[:8]}… · TL · succeeded" in text
    lines = [line.strip() for line in text.splitlines()]
    assert lines.count("✕ error") == 1  # tl-3's critique
    assert lines.count("✕ failed") == 1  # lint of tl-1-v0
    assert lines.count("15 tok …") == 3  # tl-2's truncated replies, with their tokens
    assert lines.count("15 tok") == 4  # the other replies: tl-1's three, tl-3's proposal
    for phase in ("generate", "critique 1", "revise 1", "check", "select"):
        assert phase in lines


def test_a_record_without_calls_draws_a_chart_that_says_so(tmp_path: Path) -> None:
    record = DeliberationRecord("d" * 32, "deliberate", "DEV", Task("DEV", "x"), RecordStatus.FAILED, 1000.0, 1001.0,
                                error_kind="QuorumLost")
    picture = tmp_path / "empty.svg"

    draw_timeline(record, picture)

    text = svg_text(picture)
    assert NO_CALLS in text
    assert "deliberate dddddddd… · DEV · failed (QuorumLost) · 1.00 s" in text


def test_lanes_follow_the_council_and_leave_out_checks_kept_without_times() -> None:
    lint = CheckResult(name="lint", kind="lint", passed=True, score=1.0)
    record = DeliberationRecord(
        "d1", "deliberate", "DEV", Task("DEV", "x"), RecordStatus.SUCCEEDED, 1000.0, 1004.0,
        council=(CouncilSeat("dev-2", "scripted"), CouncilSeat("dev-1", "scripted")),
        calls=(AgentCall("dev-1", Phase.GENERATE, 0, 1000.5, 1002.0, CallOutcome.TIMEOUT),
               AgentCall("arch-1", Phase.SELECT, 0, 1003.0, 1003.5, CallOutcome.OK, TokenUsage(7, 3), truncated=True)),
        checks=(RecordedCheck("dev-1-v0", lint), RecordedCheck("dev-2-v0", lint, 1002.5, 1002.75)),
    )

    lanes = lanes_of(record)

    assert [lane.name for lane in lanes] == ["dev-2", "dev-1", "arch-1", "checks of dev-2-v0"]
    assert lanes[0].bars == ()
    [timed_out] = lanes[1].bars
    assert (timed_out.start, timed_out.end, timed_out.failed, timed_out.label) == (0.5, 2.0, "timeout", "")
    [selection] = lanes[2].bars
    assert (selection.failed, selection.truncated, selection.label) == ("", True, "10 tok")
    [check] = lanes[3].bars
    assert (check.start, check.end, check.label, check.failed) == (2.5, 2.75, "lint", "")


def test_without_matplotlib_the_cli_says_how_to_install_it_and_writes_nothing(tmp_path: Path) -> None:
    picture = tmp_path / "timeline.png"
    # Port 9 (discard) has no server: an answer other than the usage error would show the
    # command called a server before finding matplotlib missing.
    runner = (
        "import sys; sys.modules['matplotlib'] = None; from orchestrator_grpc.cli import main; "
        f"sys.exit(main(['deliberations', 'show', 'x', '--address', '127.0.0.1:9', '--timeline', {str(picture)!r}]))"
    )

    finished = subprocess.run([sys.executable, "-c", runner], capture_output=True, text=True, timeout=CLI_GUARD)

    assert finished.returncode == 2, finished.stderr
    assert INSTALL_HINT in finished.stderr
    assert finished.stdout == ""
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["timeline.pdf", "timeline", "png"])
def test_a_timeline_file_that_is_not_png_or_svg_is_a_usage_error(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["deliberations", "show", "x", "--timeline", str(tmp_path / name)])

    assert exit_.value.code == 2
    assert ".png or an .svg" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
