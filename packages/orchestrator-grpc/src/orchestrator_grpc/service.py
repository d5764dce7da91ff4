"""The ``orchestrator.v1.OrchestratorService`` servicer (grpc.aio).

Each method converts the request, calls the core :class:`Orchestrator` with the caller's
remaining deadline, and converts the answer back. Errors are mapped to status codes by
the decorators of :mod:`orchestrator_grpc.status`; nothing here chooses a status code.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from grpc.aio import ServicerContext as Context

from orchestrator.v1 import orchestrator_pb2 as pb
from orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc
from orchestrator_core.events import AgentCallFinished, DeliberationEvent, DeliberationStarted, RankingReady
from orchestrator_core.orchestrator import Orchestrator
from orchestrator_grpc import convert
from orchestrator_grpc.status import stream_errors, unary_errors

SERVICE_NAME: str = pb.DESCRIPTOR.services_by_name["OrchestratorService"].full_name


class _Finished:
    """Put on a stream's queue once the deliberation has ended, after its last event."""


_FINISHED = _Finished()


class OrchestratorServicer(pb_grpc.OrchestratorServiceServicer):
    """Serves one :class:`Orchestrator`."""

    def __init__(self, orchestrator: Orchestrator, max_message_bytes: int | None = None) -> None:
        self._orchestrator = orchestrator
        self._max_message_bytes = max_message_bytes
        self.draining = False
        """Set when the server is shutting down; GetStatus then reports NOT_SERVING."""

    @unary_errors
    async def Deliberate(
        self, request: pb.DeliberateRequest, context: Context[pb.DeliberateRequest, pb.DeliberateResponse]
    ) -> pb.DeliberateResponse:
        outcome = await self._orchestrator.deliberate(
            convert.deliberation_request_from_proto(request), timeout=context.time_remaining()
        )
        return convert.outcome_to_proto(outcome)

    @stream_errors
    async def StreamDeliberation(
        self, request: pb.DeliberateRequest, context: Context[pb.DeliberateRequest, pb.DeliberationEvent]
    ) -> AsyncIterator[pb.DeliberationEvent]:
        queue: asyncio.Queue[DeliberationEvent | _Finished] = asyncio.Queue()
        run = asyncio.create_task(
            self._orchestrator.deliberate(
                convert.deliberation_request_from_proto(request),
                on_event=queue.put_nowait,
                timeout=context.time_remaining(),
            )
        )
        # Runs after the deliberation's last event was queued, so it comes out last.
        run.add_done_callback(lambda _: queue.put_nowait(_FINISHED))
        deliberation_id = ""
        try:
            while not isinstance(event := await queue.get(), _Finished):
                # DeliberationStarted comes first (a replayed request_id: only its ranking);
                # it has no message of its own, its id goes on every event after it.
                if isinstance(event, DeliberationStarted):
                    deliberation_id = event.deliberation_id
                    continue
                if isinstance(event, AgentCallFinished):
                    continue  # the record keeps each call's timing; the stream shows its result
                if isinstance(event, RankingReady):
                    deliberation_id = event.outcome.deliberation_id
                yield convert.event_to_proto(deliberation_id, event)
            run.result()  # the deliberation's own error, if it failed
        finally:
            if not run.done():  # the client went away or the call was cancelled
                run.cancel()
                await asyncio.wait({run})

    @unary_errors
    async def Orchestrate(
        self, request: pb.OrchestrateRequest, context: Context[pb.OrchestrateRequest, pb.OrchestrateResponse]
    ) -> pb.OrchestrateResponse:
        orchestration = await self._orchestrator.orchestrate(
            convert.deliberation_request_from_proto(request.deliberation),
            top_k=request.top_k,
            timeout=context.time_remaining(),
        )
        return convert.orchestration_to_proto(orchestration)

    @unary_errors
    async def GetDeliberation(
        self, request: pb.GetDeliberationRequest, context: Context[pb.GetDeliberationRequest, pb.DeliberationRecord]
    ) -> pb.DeliberationRecord:
        record = await self._orchestrator.get_record(request.deliberation_id)
        return convert.record_to_proto(record)

    @unary_errors
    async def ListDeliberations(
        self,
        request: pb.ListDeliberationsRequest,
        context: Context[pb.ListDeliberationsRequest, pb.ListDeliberationsResponse],
    ) -> pb.ListDeliberationsResponse:
        page = await self._orchestrator.list_records(
            role=request.role,
            status=convert.record_status_from_proto(request.status),
            created_after=convert.time_bound_from_proto(request.created_after),
            created_before=convert.time_bound_from_proto(request.created_before),
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return convert.page_to_proto(page, self._max_message_bytes)

    @unary_errors
    async def GetStatus(
        self, request: pb.GetStatusRequest, context: Context[pb.GetStatusRequest, pb.GetStatusResponse]
    ) -> pb.GetStatusResponse:
        response = convert.status_to_proto(self._orchestrator.status())
        if self.draining:
            response.status = convert.NOT_SERVING
        return response
