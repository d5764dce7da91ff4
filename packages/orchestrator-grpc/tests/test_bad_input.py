"""Malformed and hostile requests against one real server: each gets its status code and a
message saying what is wrong, nothing crashes, and the server is healthy afterwards.

A table of hand-picked cases, then a property-based test (hypothesis) of generated
requests. Both run on one server with scripted agents that answer at once, on an event
loop of this module's own (hypothesis drives plain functions, so each call is run to
completion on that loop).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_test_support import HANG_GUARD, lint_score, make_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.v1 import orchestrator_pb2 as pb
from orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc
from orchestrator_core.plugins import PluginHost
from orchestrator_core.testing import ScriptedBackend, ScriptedCheck, ScriptedPlugin
from orchestrator_grpc.server import RunningServer, running_server
from orchestrator_grpc.service import SERVICE_NAME

T = TypeVar("T")
Code = grpc.StatusCode
MAX_TASK_CHARS = 2000
MAX_MESSAGE_BYTES = 64 * 1024
INT32_MAX = 2**31 - 1
INT32_MIN = -(2**31)


@dataclass
class Battery:
    """A running server, a channel to it, and the loop they live on."""

    loop: asyncio.AbstractEventLoop
    server: RunningServer
    channel: grpc.aio.Channel

    @property
    def stub(self) -> pb_grpc.OrchestratorServiceStub:
        return pb_grpc.OrchestratorServiceStub(self.channel)

    def run(self, call: Callable[[], Awaitable[T]]) -> T:
        async def guarded() -> T:
            async with asyncio.timeout(HANG_GUARD * 3):
                return await call()

        return self.loop.run_until_complete(guarded())

    def code_of(self, call: Callable[[], Awaitable[Any]]) -> tuple[Code, str]:
        try:
            self.run(call)
        except grpc.aio.AioRpcError as error:
            return error.code(), error.details() or ""
        return Code.OK, ""


@pytest.fixture(scope="module")
def battery(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Battery]:
    host = PluginHost()
    host.register(
        ScriptedPlugin(
            ScriptedBackend(),
            ScriptedCheck(name="policy", kind="policy"),
            ScriptedCheck(name="lint", kind="lint", score_of=lint_score),
        ),
        name="bad-input-doubles",
    )
    host.collect()
    settings_ = make_settings(
        tmp_path_factory.mktemp("bad-input"),
        councils={"DEV": {"backend": "scripted", "agents": 3}, "ARCHITECT": {"backend": "scripted", "agents": 1}},
        max_task_chars=MAX_TASK_CHARS,
        max_message_bytes=MAX_MESSAGE_BYTES,
        max_concurrent_deliberations=64,
    )
    loop = asyncio.new_event_loop()
    context = running_server(settings_, plugins=host)

    async def start() -> Battery:
        server = await context.__aenter__()
        return Battery(loop, server, grpc.aio.insecure_channel(server.address))

    battery = loop.run_until_complete(start())
    try:
        yield battery
    finally:
        loop.run_until_complete(battery.channel.close())
        loop.run_until_complete(context.__aexit__(None, None, None))
        loop.close()


# -- the table ------------------------------------------------------------------------------


def deliberate(role: str = "DEV", task: str = "Add two numbers", **fields: Any) -> pb.DeliberateRequest:
    return pb.DeliberateRequest(role=role, task=task, **fields)


def constraints(**fields: Any) -> pb.DeliberateRequest:
    return deliberate(constraints=pb.TaskConstraints(**fields))


def with_tests(*paths: str) -> pb.DeliberateRequest:
    return constraints(tests=[pb.TaskTest(path=p, content="def test_x():\n    pass\n") for p in paths])


VALID_ROLE = b"\x0a\x03DEV"  # field 1 (role) = "DEV", as raw protobuf


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    request: Any
    """A message, or bytes sent as they are (what a hostile client can put on the wire)."""
    code: Code
    fragment: str


CASES = [
    # the task
    Case("empty task", "Deliberate", deliberate(task=""), Code.INVALID_ARGUMENT, "task is required"),
    Case("blank task", "Deliberate", deliberate(task=" \n\t "), Code.INVALID_ARGUMENT, "task is required"),
    Case("task over the limit", "Deliberate", deliberate(task="x" * (MAX_TASK_CHARS + 1)),
         Code.INVALID_ARGUMENT, f"the limit is {MAX_TASK_CHARS} (ORCH_MAX_TASK_CHARS)"),
    Case("message over the limit", "Deliberate", deliberate(task="x" * (MAX_MESSAGE_BYTES + 1)),
         Code.RESOURCE_EXHAUSTED, f"vs. {MAX_MESSAGE_BYTES})"),
    # the role
    Case("empty role", "Deliberate", deliberate(role=""), Code.INVALID_ARGUMENT, "role is required"),
    Case("role with a space", "Deliberate", deliberate(role="DEV OPS"),
         Code.INVALID_ARGUMENT, "role must be a short name"),
    Case("role of symbols", "Deliberate", deliberate(role="💥;DROP TABLE"),
         Code.INVALID_ARGUMENT, "role must be a short name"),
    Case("huge role", "Deliberate", deliberate(role="A" * 10_000), Code.INVALID_ARGUMENT, "role must be a short name"),
    Case("unknown role", "Deliberate", deliberate(role="PHYSICS"),
         Code.FAILED_PRECONDITION, "ORCH_COUNCILS__PHYSICS__BACKEND"),
    Case("role of a council that cannot run", "Deliberate", deliberate(role="QA"),
         Code.FAILED_PRECONDITION, "which no installed plugin registers"),
    # agents and rounds
    Case("negative agents", "Deliberate", deliberate(num_agents=-1),
         Code.INVALID_ARGUMENT, "num_agents must be between 1 and 8"),
    Case("int32-min agents", "Deliberate", deliberate(num_agents=INT32_MIN),
         Code.INVALID_ARGUMENT, "num_agents must be between"),
    Case("huge agents", "Deliberate", deliberate(num_agents=INT32_MAX), Code.INVALID_ARGUMENT, f"got {INT32_MAX}"),
    Case("one agent over the limit", "Deliberate", deliberate(num_agents=9),
         Code.INVALID_ARGUMENT, "(ORCH_MAX_AGENTS)"),
    Case("negative rounds", "Deliberate", deliberate(rounds=-1),
         Code.INVALID_ARGUMENT, "rounds must be between 0 and 5"),
    Case("huge rounds", "Deliberate", deliberate(rounds=INT32_MAX), Code.INVALID_ARGUMENT, "(ORCH_MAX_ROUNDS)"),
    Case("negative max_rounds", "Deliberate", constraints(max_rounds=-3),
         Code.INVALID_ARGUMENT, "constraints.max_rounds must not be negative"),
    # timeouts
    Case("negative timeout", "Deliberate", constraints(timeout_seconds=-1),
         Code.INVALID_ARGUMENT, "constraints.timeout_seconds must be a non-negative number"),
    Case("NaN timeout", "Deliberate", constraints(timeout_seconds=math.nan),
         Code.INVALID_ARGUMENT, "constraints.timeout_seconds must be a non-negative number; got nan"),
    Case("infinite timeout", "Deliberate", constraints(timeout_seconds=math.inf),
         Code.INVALID_ARGUMENT, "got inf"),
    Case("negative agent timeout", "Deliberate", constraints(agent_timeout_seconds=-0.5),
         Code.INVALID_ARGUMENT, "constraints.agent_timeout_seconds must be a non-negative number"),
    Case("NaN agent timeout", "Deliberate", constraints(agent_timeout_seconds=math.nan),
         Code.INVALID_ARGUMENT, "constraints.agent_timeout_seconds must be a non-negative number; got nan"),
    Case("-inf agent timeout", "Deliberate", constraints(agent_timeout_seconds=-math.inf),
         Code.INVALID_ARGUMENT, "got -inf"),
    Case("a timeout too small to start", "Deliberate", constraints(timeout_seconds=1e-300),
         Code.DEADLINE_EXCEEDED, "did not finish within 1e-300s"),
    # oversized and hostile constraints
    Case("too many requirements", "Deliberate", constraints(requirements=["r"] * 201),
         Code.INVALID_ARGUMENT, "constraints.requirements has 201 items; the limit is 200"),
    Case("too many forbidden items", "Deliberate", constraints(forbidden=["f"] * 201),
         Code.INVALID_ARGUMENT, "constraints.forbidden has 201 items"),
    Case("too many test files", "Deliberate", with_tests(*(f"test_{i}.py" for i in range(51))),
         Code.INVALID_ARGUMENT, "constraints.tests has 51 files; the limit is 50"),
    Case("constraints over the size limit", "Deliberate", constraints(rubric="r" * (MAX_TASK_CHARS + 1)),
         Code.INVALID_ARGUMENT, f"constraints are {MAX_TASK_CHARS + 1} characters"),
    Case("test path escaping the task", "Deliberate", with_tests("../../etc/test_x.py"),
         Code.INVALID_ARGUMENT, "must be a relative path to a .py file inside the task"),
    Case("absolute test path", "Deliberate", with_tests("/etc/test_x.py"), Code.INVALID_ARGUMENT, "'/etc/test_x.py'"),
    Case("test path with a NUL", "Deliberate", with_tests("test_\x00.py"), Code.INVALID_ARGUMENT, "relative path"),
    Case("test path with a backslash", "Deliberate", with_tests("a\\test_x.py"),
         Code.INVALID_ARGUMENT, "relative path"),
    Case("test file that is not Python", "Deliberate", with_tests("notes.txt"), Code.INVALID_ARGUMENT, "a .py file"),
    Case("empty test path", "Deliberate", with_tests(""), Code.INVALID_ARGUMENT, "constraints.tests path ''"),
    Case("duplicate test path", "Deliberate", with_tests("test_a.py", "test_a.py"),
         Code.INVALID_ARGUMENT, "constraints.tests names 'test_a.py' twice"),
    # client regular expressions: RE2 runs them in linear time, or the request is refused
    *(Case(f"catastrophic pattern {pattern} in {field}", "Deliberate", constraints(**{field: ["re:" + pattern]}),
           Code.OK, "")
      for pattern in (r"(.*\s*)*Z$", "(a+)+$", "(a|aa)+$", "(x+x+)+y") for field in ("requirements", "forbidden")),
    Case("backreference in a requirement", "Deliberate", constraints(requirements=[r"re:(a)\1"]),
         Code.INVALID_ARGUMENT, r"constraints.requirements: pattern '(a)\\1' is not one the server can run"),
    Case("named backreference", "Deliberate", constraints(forbidden=["re:(?P<n>a)(?P=n)"]),
         Code.INVALID_ARGUMENT, "constraints.forbidden: pattern '(?P<n>a)(?P=n)' is not one the server can run"),
    Case("lookahead", "Deliberate", constraints(requirements=["re:def (?=main)"]),
         Code.INVALID_ARGUMENT, "pattern 'def (?=main)' is not one the server can run: invalid perl operator: (?="),
    Case("negative lookahead", "Deliberate", constraints(forbidden=["re:(?!x)y"]),
         Code.INVALID_ARGUMENT, "pattern '(?!x)y'"),
    Case("lookbehind", "Deliberate", constraints(forbidden=["re:(?<=a)b"]),
         Code.INVALID_ARGUMENT, "pattern '(?<=a)b'"),
    Case("negative lookbehind", "Deliberate", constraints(requirements=["re:(?<!a)b"]),
         Code.INVALID_ARGUMENT, "pattern '(?<!a)b'"),
    Case("repetition too large", "Deliberate", constraints(requirements=["re:((a{100}){100}){100}"]),
         Code.INVALID_ARGUMENT, "invalid repetition size"),
    Case("pattern that does not parse", "Deliberate", constraints(requirements=["re:(["]),
         Code.INVALID_ARGUMENT, "pattern '([' is not one the server can run: missing ]"),
    Case("stream with a backreference", "StreamDeliberation",
         deliberate(constraints=pb.TaskConstraints(forbidden=[r"re:(\w+)\s\1"])),
         Code.INVALID_ARGUMENT, "is not one the server can run"),
    # request ids
    Case("request id too long", "Deliberate", deliberate(request_id="r" * 129),
         Code.INVALID_ARGUMENT, "request_id must be at most 128 printable characters"),
    Case("request id with a control character", "Deliberate", deliberate(request_id="a\x07b"),
         Code.INVALID_ARGUMENT, "request_id must be at most 128 printable characters"),
    # bytes that are not a valid message
    Case("task not UTF-8", "Deliberate", VALID_ROLE + b"\x12\x02\xff\xfe",
         Code.INVALID_ARGUMENT, "is not a valid message: Error parsing message"),
    Case("role not UTF-8", "Deliberate", b"\x0a\x02\xc3\x28", Code.INVALID_ARGUMENT, "is not a valid message"),
    Case("truncated message", "Deliberate", VALID_ROLE + b"\x12\x40abc",
         Code.INVALID_ARGUMENT, "/orchestrator.v1.OrchestratorService/Deliberate is not a valid message"),
    Case("garbage bytes", "Deliberate", b"\xff\xff\xff\xff", Code.INVALID_ARGUMENT, "is not a valid message"),
    Case("stream of a task not UTF-8", "StreamDeliberation", VALID_ROLE + b"\x12\x01\x80",
         Code.INVALID_ARGUMENT, "StreamDeliberation is not a valid message"),
    Case("record id not UTF-8", "GetDeliberation", b"\x0a\x01\xfe", Code.INVALID_ARGUMENT, "is not a valid message"),
    # the other methods
    Case("stream of an empty task", "StreamDeliberation", deliberate(task=""),
         Code.INVALID_ARGUMENT, "task is required"),
    Case("orchestrate without a deliberation", "Orchestrate", pb.OrchestrateRequest(),
         Code.INVALID_ARGUMENT, "role is required"),
    Case("negative top_k", "Orchestrate", pb.OrchestrateRequest(deliberation=deliberate(), top_k=-1),
         Code.INVALID_ARGUMENT, "top_k must not be negative; got -1"),
    Case("empty record id", "GetDeliberation", pb.GetDeliberationRequest(),
         Code.NOT_FOUND, "no deliberation has id ''"),
    Case("unknown record id", "GetDeliberation", pb.GetDeliberationRequest(deliberation_id="../../etc/passwd"),
         Code.NOT_FOUND, "no deliberation has id '../../etc/passwd'"),
    Case("unknown status enum value", "ListDeliberations", pb.ListDeliberationsRequest(status=99),  # type: ignore[arg-type]
         Code.INVALID_ARGUMENT, "status 99 is not a DeliberationStatus value"),
    Case("negative page size", "ListDeliberations", pb.ListDeliberationsRequest(page_size=-1),
         Code.INVALID_ARGUMENT, "page_size must not be negative (got -1)"),
    Case("forged page token", "ListDeliberations", pb.ListDeliberationsRequest(page_token="not-a-token"),
         Code.INVALID_ARGUMENT, "page_token is not one this server issued"),
    Case("NaN time bound", "ListDeliberations", pb.ListDeliberationsRequest(created_after=math.nan),
         Code.INVALID_ARGUMENT, "created_after must be a finite number"),
    Case("inverted time range", "ListDeliberations",
         pb.ListDeliberationsRequest(created_after=200.0, created_before=100.0),
         Code.INVALID_ARGUMENT, "created_after (200) is later than created_before (100)"),
]


def _call(battery: Battery, method: str, message: Any) -> Callable[[], Awaitable[Any]]:
    if isinstance(message, bytes):
        path = f"/{SERVICE_NAME}/{method}"
        if method == "StreamDeliberation":
            stream = battery.channel.unary_stream(path)
            return lambda: _drain(stream(message, timeout=HANG_GUARD))
        unary = battery.channel.unary_unary(path)
        return lambda: unary(message, timeout=HANG_GUARD)
    if method == "StreamDeliberation":
        return lambda: _drain(battery.stub.StreamDeliberation(message, timeout=HANG_GUARD))
    stub_method = getattr(battery.stub, method)
    return lambda: stub_method(message, timeout=HANG_GUARD)


async def _drain(call: Any) -> list[Any]:
    return [item async for item in call]


def test_the_table_has_at_least_30_cases_each_named_once() -> None:
    assert len(CASES) >= 30
    assert len({case.name for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input_gets_its_status_code_and_message(battery: Battery, case: Case) -> None:
    code, details = battery.code_of(_call(battery, case.method, case.request))
    assert code is case.code, details
    assert case.fragment in details


def _assert_healthy(battery: Battery) -> None:
    health = health_pb2_grpc.HealthStub(battery.channel)
    for service in ("", SERVICE_NAME):
        response = battery.run(lambda s=service: health.Check(health_pb2.HealthCheckRequest(service=s)))  # type: ignore[misc]
        assert response.status == health_pb2.HealthCheckResponse.SERVING
    answered = battery.run(lambda: battery.stub.Deliberate(deliberate(), timeout=HANG_GUARD))
    assert [r.rank for r in answered.results] == [1, 2, 3]
    status = battery.run(lambda: battery.stub.GetStatus(pb.GetStatusRequest()))
    assert (status.status, status.statistics.in_flight) == ("SERVING", 0)


def test_after_the_table_the_server_still_answers(battery: Battery) -> None:
    _assert_healthy(battery)


# -- generated requests ---------------------------------------------------------------------

ALLOWED = {
    Code.OK,
    Code.INVALID_ARGUMENT,
    Code.FAILED_PRECONDITION,
    Code.DEADLINE_EXCEEDED,
    Code.UNAVAILABLE,
    Code.RESOURCE_EXHAUSTED,
    Code.NOT_FOUND,
}
int32 = st.integers(INT32_MIN, INT32_MAX)
# Valid values more often than not, so generated requests reach the engine too.
small_or_any_int = st.one_of(st.integers(0, 4), st.integers(-2, 9), int32)
seconds = st.one_of(
    st.just(0.0),
    st.floats(min_value=0.0, max_value=5.0),
    st.floats(allow_nan=True, allow_infinity=True),
)
roles = st.one_of(
    st.sampled_from(["DEV", "dev", " Dev ", "ARCHITECT"]),
    st.sampled_from(["QA", "", "PHYSICS", "dev-ops", "A" * 65, "DEV\x00"]),
    st.text(max_size=80),
)
short_text = st.text(max_size=40)
task_tests = st.lists(
    st.builds(pb.TaskTest, path=st.one_of(st.sampled_from(["test_a.py", "pkg/test_b.py"]), short_text),
              content=short_text),
    max_size=4,
)
task_constraints = st.builds(
    pb.TaskConstraints,
    rubric=short_text,
    requirements=st.lists(short_text, max_size=4),
    forbidden=st.lists(short_text, max_size=4),
    max_rounds=small_or_any_int,
    timeout_seconds=seconds,
    tests=task_tests,
    agent_timeout_seconds=seconds,
)
requests = st.builds(
    pb.DeliberateRequest,
    role=roles,
    task=st.one_of(
        st.text(min_size=1, max_size=200),
        st.text(max_size=200),
        st.text(min_size=MAX_TASK_CHARS - 5, max_size=MAX_TASK_CHARS + 5),
    ),
    constraints=st.one_of(st.just(pb.TaskConstraints()), task_constraints),
    num_agents=small_or_any_int,
    rounds=st.one_of(st.integers(0, 2), st.integers(-1, 6), int32),
    request_id=st.one_of(st.just(""), st.text(max_size=140)),
)


def test_generated_requests_never_get_unknown_or_internal(battery: Battery) -> None:
    codes: dict[Code, int] = {}

    @settings(max_examples=500, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
    @given(request=requests)
    def one_request(request: pb.DeliberateRequest) -> None:
        code, details = battery.code_of(lambda: battery.stub.Deliberate(request, timeout=HANG_GUARD))
        codes[code] = codes.get(code, 0) + 1
        assert code in ALLOWED, f"{code.name}: {details}"
        assert details or code is Code.OK

    one_request()

    assert sum(codes.values()) >= 500
    # Both paths were exercised: requests that ran, and requests refused.
    assert codes.get(Code.OK, 0) > 0
    assert codes.get(Code.INVALID_ARGUMENT, 0) > 0
    _assert_healthy(battery)


list_requests = st.builds(
    pb.ListDeliberationsRequest,
    role=roles,
    status=st.one_of(st.integers(0, 6), int32),
    page_size=small_or_any_int,
    page_token=st.one_of(st.just(""), st.text(max_size=60)),
    created_after=st.one_of(st.just(0.0), st.floats()),
    created_before=st.one_of(st.just(0.0), st.floats()),
)


def test_generated_record_queries_never_get_unknown_or_internal(battery: Battery) -> None:
    @settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
    @given(request=list_requests)
    def one_query(request: pb.ListDeliberationsRequest) -> None:
        code, details = battery.code_of(lambda: battery.stub.ListDeliberations(request, timeout=HANG_GUARD))
        assert code in (Code.OK, Code.INVALID_ARGUMENT), f"{code.name}: {details}"

    one_query()
    _assert_healthy(battery)
