"""Requests no gRPC client sends, as raw HTTP/2 frames to the real server.

Two of them are answered by grpc-core itself, before any interceptor or handler of ours
runs, with grpc-status 13 (INTERNAL); see "Raw-transport statuses" in the README. These
tests pin what grpc-core answers today, so that a grpcio upgrade that changes it is noticed,
and show that the server serves on afterwards.
"""

from __future__ import annotations

import asyncio

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio  # type: ignore[attr-defined]
from raw_http2 import RawOutcome, framed, raw_call

from orchestrator.v1 import orchestrator_pb2 as pb
from orchestrator_grpc.server import RunningServer
from orchestrator_grpc.service import SERVICE_NAME

GET_STATUS = f"/{SERVICE_NAME}/GetStatus"
OK, INTERNAL = 0, 13
EMPTY_REQUEST = pb.GetStatusRequest().SerializeToString()


async def call(server: RunningServer, body: bytes, *headers: tuple[str, str]) -> RawOutcome:
    return await asyncio.to_thread(raw_call, server.address, GET_STATUS, body, headers)


async def test_a_well_formed_raw_request_is_answered(server: RunningServer) -> None:
    # The raw client itself is sound: the same frames, well formed, get OK and a reply.
    outcome = await call(server, framed(EMPTY_REQUEST))
    assert (outcome.grpc_status, outcome.reset_code) == (OK, None)
    outcome = await call(server, framed(EMPTY_REQUEST), ("grpc-encoding", "identity"))
    assert outcome.grpc_status == OK


@pytest.mark.parametrize(
    ("body", "headers", "status", "message"),
    [
        # What gRPC's compression spec requires: INTERNAL, naming the Compressed-Flag.
        (framed(EMPTY_REQUEST, compressed=True), (), INTERNAL, "Compression bit set but no encoding configured"),
        (framed(EMPTY_REQUEST, compressed=True), (("grpc-encoding", "identity"),),
         INTERNAL, "Compression bit set but no encoding configured"),
        # The spec asks for UNIMPLEMENTED here; grpc-core's header parser refuses the value
        # first, with INTERNAL, whatever the server's compression options.
        (framed(EMPTY_REQUEST), (("grpc-encoding", "evil"),), INTERNAL, "Error parsing 'grpc-encoding' metadata"),
        (framed(b"abc", compressed=True), (("grpc-encoding", "evil"),),
         INTERNAL, "Error parsing 'grpc-encoding' metadata"),
        # A known encoding whose bytes do not decompress.
        (framed(b"not gzip", compressed=True), (("grpc-encoding", "gzip"),),
         INTERNAL, "Decompression failed due to zlib error"),
    ],
    ids=["compressed-flag-no-encoding", "compressed-flag-identity", "unknown-encoding",
         "unknown-encoding-compressed", "gzip-not-gzip"],
)
async def test_grpc_core_answers_malformed_compression_with_internal(
    server: RunningServer, body: bytes, headers: tuple[tuple[str, str], ...], status: int, message: str
) -> None:
    outcome = await call(server, body, *headers)
    assert (outcome.grpc_status, outcome.reset_code) == (status, None)
    assert outcome.grpc_message == message


async def test_the_server_serves_on_after_malformed_compression(server: RunningServer) -> None:
    for headers in ((), (("grpc-encoding", "evil"),)):
        await call(server, framed(EMPTY_REQUEST, compressed=True), *headers)
    async with grpc.aio.insecure_channel(server.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        response = await health.Check(health_pb2.HealthCheckRequest(service=SERVICE_NAME), timeout=5)
    assert response.status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize(
    "options",
    [
        [("grpc.default_compression_algorithm", grpc.Compression.Gzip.value)],
        [("grpc.compression_enabled_algorithms_bitset", 0b111)],  # identity, deflate, gzip
        [("grpc.compression_enabled_algorithms_bitset", 0b001)],  # identity only
    ],
    ids=["default-gzip", "all-enabled", "identity-only"],
)
async def test_no_server_compression_option_changes_what_grpc_core_answers(options: list[tuple[str, int]]) -> None:
    bare = grpc.aio.server(options=options)
    health_pb2_grpc.add_HealthServicer_to_server(health_aio.HealthServicer(), bare)
    port = bare.add_insecure_port("127.0.0.1:0")
    await bare.start()
    try:
        path, body = "/grpc.health.v1.Health/Check", framed(health_pb2.HealthCheckRequest().SerializeToString())
        address = f"127.0.0.1:{port}"
        unknown = await asyncio.to_thread(raw_call, address, path, body, (("grpc-encoding", "evil"),))
        flagged = await asyncio.to_thread(raw_call, address, path, framed(b"", compressed=True), ())
    finally:
        await bare.stop(None)
    assert (unknown.grpc_status, unknown.grpc_message) == (INTERNAL, "Error parsing 'grpc-encoding' metadata")
    assert (flagged.grpc_status, flagged.grpc_message) == (INTERNAL, "Compression bit set but no encoding configured")
