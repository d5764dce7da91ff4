"""A small typed async client of the OrchestratorService and its health service.

Deliberations come back as core models, or as the messages the server sent
(:meth:`~OrchestratorClient.stream_deliberation_messages`,
:meth:`~OrchestratorClient.orchestrate_response`); records and status as their protobuf
messages. Failed calls raise :class:`grpc.aio.AioRpcError` with the server's status code.
Every call takes a ``deadline`` in seconds from now; the server sees it as the call's
deadline and stops the work when it passes (DEADLINE_EXCEEDED). ``tls`` dials with TLS
(mutual TLS with a client certificate); ``token`` is sent as ``authorization: Bearer
<token>`` metadata.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator
from types import TracebackType
from typing import TYPE_CHECKING, TypedDict, Unpack

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from orchestrator.v1 import orchestrator_pb2 as pb
from orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc
from orchestrator_grpc.address import ADDRESS_ENV, DEFAULT_ADDRESS, default_address

if TYPE_CHECKING:  # the core and the conversions are imported by the calls that use them
    from pydantic import SecretStr

    from orchestrator_core.events import DeliberationEvent
    from orchestrator_core.models import DeliberationOutcome, Task
    from orchestrator_core.orchestrator import Orchestration
    from orchestrator_grpc.tls import ClientTLS

__all__ = ["ADDRESS_ENV", "DEFAULT_ADDRESS", "DeliberationOptions", "OrchestratorClient", "default_address"]

DEFAULT_MAX_MESSAGE_BYTES = 8 * 1024 * 1024


class DeliberationOptions(TypedDict, total=False):
    """What a deliberation call asks for besides its task; a key left out leaves it to the
    server (see ``DeliberateRequest`` in the .proto file)."""

    num_agents: int
    """How many agents deliberate; 0: the council's size."""
    rounds: int | None
    """Critique/revise rounds; None: the server's default; 0: none."""
    request_id: str
    """An id of the caller's choosing: a retry with the same id gets the first call's result."""


class OrchestratorClient:
    """One channel to one server. Use as ``async with OrchestratorClient(address) as client``."""

    def __init__(
        self,
        address: str | None = None,
        *,
        tls: ClientTLS | None = None,
        token: SecretStr | None = None,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        self.address = address or default_address()
        options = [
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
        ]
        if tls is None:
            self._channel = grpc.aio.insecure_channel(self.address, options=options)
        else:
            self._channel = grpc.aio.secure_channel(self.address, tls.credentials(), options=options)
        self._metadata: tuple[tuple[str, str], ...] = (
            (("authorization", f"Bearer {token.get_secret_value()}"),) if token is not None else ()
        )
        self._stub = pb_grpc.OrchestratorServiceStub(self._channel)  # type: ignore[no-untyped-call]
        self._health = health_pb2_grpc.HealthStub(self._channel)

    async def __aenter__(self) -> OrchestratorClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close(None)

    async def deliberate(
        self, task: Task, *, deadline: float | None = None, **options: Unpack[DeliberationOptions]
    ) -> DeliberationOutcome:
        from orchestrator_grpc import convert

        response = await self._stub.Deliberate(
            _deliberate_request(task, options), timeout=deadline, metadata=self._metadata
        )
        return convert.outcome_from_proto(response, task)

    async def stream_deliberation(
        self, task: Task, *, deadline: float | None = None, **options: Unpack[DeliberationOptions]
    ) -> AsyncGenerator[DeliberationEvent, None]:
        """The deliberation's events as they happen; the last one is its ``RankingReady``.
        Leaving the loop early cancels the deliberation on the server."""
        from orchestrator_grpc import convert

        messages = self.stream_deliberation_messages(task, deadline=deadline, **options)
        async with contextlib.aclosing(messages):  # closing this stream closes the call at once
            async for message in messages:
                event = convert.event_from_proto(message, task)
                if event is not None:
                    yield event

    async def stream_deliberation_messages(
        self, task: Task, *, deadline: float | None = None, **options: Unpack[DeliberationOptions]
    ) -> AsyncGenerator[pb.DeliberationEvent, None]:
        """The streamed messages as the server sent them, event kinds this client does not
        know included; the last one carries the ``ranking``. Leaving the loop early cancels
        the deliberation on the server."""
        call = self._stub.StreamDeliberation(
            _deliberate_request(task, options), timeout=deadline, metadata=self._metadata
        )
        try:
            async for message in call:
                yield message
        finally:
            call.cancel()

    async def orchestrate(
        self,
        task: Task,
        *,
        top_k: int = 0,
        deadline: float | None = None,
        **options: Unpack[DeliberationOptions],
    ) -> Orchestration:
        from orchestrator_grpc import convert

        response = await self.orchestrate_response(task, top_k=top_k, deadline=deadline, **options)
        return convert.orchestration_from_proto(response, task)

    async def orchestrate_response(
        self,
        task: Task,
        *,
        top_k: int = 0,
        deadline: float | None = None,
        **options: Unpack[DeliberationOptions],
    ) -> pb.OrchestrateResponse:
        """The response message as the server sent it."""
        request = pb.OrchestrateRequest(deliberation=_deliberate_request(task, options), top_k=top_k)
        response: pb.OrchestrateResponse = await self._stub.Orchestrate(
            request, timeout=deadline, metadata=self._metadata
        )
        return response

    async def submit(
        self,
        task: Task,
        *,
        top_k: int | None = None,
        deadline: float | None = None,
        **options: Unpack[DeliberationOptions],
    ) -> pb.SubmitDeliberationResponse:
        """Queue a deliberation (``top_k`` None) or an orchestration among ``top_k``
        candidates (0: the server's default); the answer names it at once. ``deadline``
        bounds this call, not the run (the task's ``timeout_seconds`` bounds that)."""
        from orchestrator_grpc import convert

        request = convert.submit_request_to_proto(_deliberate_request(task, options), top_k)
        response: pb.SubmitDeliberationResponse = await self._stub.SubmitDeliberation(
            request, timeout=deadline, metadata=self._metadata
        )
        return response

    async def watch_messages(
        self, deliberation_id: str, *, after_sequence: int = 0, deadline: float | None = None
    ) -> AsyncGenerator[pb.DeliberationEvent, None]:
        """A deliberation's events after ``after_sequence`` as the server sent them, from
        what its record already holds to the last one, ``finished``. Leaving the loop early
        ends the watch, not the deliberation."""
        request = pb.WatchDeliberationRequest(deliberation_id=deliberation_id, after_sequence=after_sequence)
        call = self._stub.WatchDeliberation(request, timeout=deadline, metadata=self._metadata)
        try:
            async for message in call:
                yield message
        finally:
            call.cancel()

    async def cancel(self, deliberation_id: str, *, deadline: float | None = None) -> pb.CancelDeliberationResponse:
        """Cancel a queued or running deliberation; FAILED_PRECONDITION once it finished."""
        request = pb.CancelDeliberationRequest(deliberation_id=deliberation_id)
        response: pb.CancelDeliberationResponse = await self._stub.CancelDeliberation(
            request, timeout=deadline, metadata=self._metadata
        )
        return response

    async def get_deliberation(
        self, deliberation_id: str, *, deadline: float | None = None
    ) -> pb.DeliberationRecord:
        request = pb.GetDeliberationRequest(deliberation_id=deliberation_id)
        record: pb.DeliberationRecord = await self._stub.GetDeliberation(
            request, timeout=deadline, metadata=self._metadata
        )
        return record

    async def list_deliberations(
        self,
        *,
        role: str = "",
        status: pb.DeliberationStatus = pb.DELIBERATION_STATUS_UNSPECIFIED,
        page_size: int = 0,
        page_token: str = "",
        created_after: float = 0.0,
        created_before: float = 0.0,
        deadline: float | None = None,
    ) -> pb.ListDeliberationsResponse:
        """Records newest first; ``created_after``/``created_before`` are seconds since the
        Unix epoch (0: no bound)."""
        request = pb.ListDeliberationsRequest(
            role=role,
            status=status,
            page_size=page_size,
            page_token=page_token,
            created_after=created_after,
            created_before=created_before,
        )
        page: pb.ListDeliberationsResponse = await self._stub.ListDeliberations(
            request, timeout=deadline, metadata=self._metadata
        )
        return page

    async def status(self, *, deadline: float | None = None) -> pb.GetStatusResponse:
        status: pb.GetStatusResponse = await self._stub.GetStatus(
            pb.GetStatusRequest(), timeout=deadline, metadata=self._metadata
        )
        return status

    async def health(self, service: str = "", *, deadline: float | None = None) -> str:
        """The serving status of ``service`` ("" for the whole server), e.g. ``SERVING``."""
        response = await self._health.Check(
            health_pb2.HealthCheckRequest(service=service),
            timeout=deadline,
            metadata=self._metadata,
            wait_for_ready=False,
        )
        name: str = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
        return name


def _deliberate_request(task: Task, options: DeliberationOptions) -> pb.DeliberateRequest:
    from orchestrator_grpc import convert

    return convert.deliberate_request_to_proto(task, **options)
