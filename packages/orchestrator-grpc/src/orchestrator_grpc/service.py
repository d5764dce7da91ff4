"""The ``orchestrator.v1.OrchestratorService`` servicer (grpc.aio).

Each method converts the request, calls the core :class:`Orchestrator` with the caller's
remaining deadline, and converts the answer back. Errors are mapped to status codes by
the decorators of :mod:`orchestrator_grpc.status`; nothing here chooses a status code.

With ``ORCH_NATS_URL`` set, Deliberate, Orchestrate and StreamDeliberation go through the
work queue like SubmitDeliberation (:mod:`orchestrator_grpc.queued`); without it they run
the deliberation in this process.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from grpc.aio import ServicerContext as Context

from orchestrator.v1 import orchestrator_pb2 as pb
from orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc
from orchestrator_core.errors import InvalidRequest
from orchestrator_core.events import AgentCallFinished, DeliberationEvent, DeliberationStarted, RankingReady
from orchestrator_core.orchestrator import Orchestration, Orchestrator
from orchestrator_grpc import convert, queued
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
        self._through_queue = orchestrator.settings.nats_url is not None
        """Deliberate, Orchestrate and StreamDeliberation submit and watch (a queue is shared)."""

    @unary_errors
    async def Deliberate(
        self, request: pb.DeliberateRequest, context: Context[pb.DeliberateRequest, pb.DeliberateResponse]
    ) -> pb.DeliberateResponse:
        deliberation = convert.deliberation_request_from_proto(request)
        if self._through_queue:
            record = await queued.final_record(
                self._orchestrator, deliberation, top_k=None, timeout=context.time_remaining()
            )
            assert record.outcome is not None  # a succeeded record has its ranking
            return convert.outcome_to_proto(record.outcome)
        outcome = await self._orchestrator.deliberate(deliberation, timeout=context.time_remaining())
        return convert.outcome_to_proto(outcome)

    @stream_errors
    async def StreamDeliberation(
        self, request: pb.DeliberateRequest, context: Context[pb.DeliberateRequest, pb.DeliberationEvent]
    ) -> AsyncIterator[pb.DeliberationEvent]:
        if self._through_queue:
            events = queued.submitted_events(
                self._orchestrator, convert.deliberation_request_from_proto(request),
                top_k=None, timeout=context.time_remaining(),
            )
            async with contextlib.aclosing(events):
                async for deliberation_id, sequence, watched in events:
                    yield convert.event_to_proto(deliberation_id, watched, sequence)
            return
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
        deliberation = convert.deliberation_request_from_proto(request.deliberation)
        if self._through_queue:
            if request.top_k < 0:
                raise InvalidRequest(f"top_k must not be negative; got {request.top_k}")
            record = await queued.final_record(
                self._orchestrator, deliberation, top_k=request.top_k, timeout=context.time_remaining()
            )
            assert record.outcome is not None
            assert record.selection is not None
            return convert.orchestration_to_proto(
                Orchestration(record.deliberation_id, record.outcome, record.selection)
            )
        orchestration = await self._orchestrator.orchestrate(
            deliberation, top_k=request.top_k, timeout=context.time_remaining()
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
        response = convert.status_to_proto(await self._orchestrator.status_with_queue())
        if self.draining:
            response.status = convert.NOT_SERVING
        return response

    @unary_errors
    async def SubmitDeliberation(
        self,
        request: pb.SubmitDeliberationRequest,
        context: Context[pb.SubmitDeliberationRequest, pb.SubmitDeliberationResponse],
    ) -> pb.SubmitDeliberationResponse:
        # The call's deadline bounds the submission, not the run: the run's budget is the
        # task's timeout or the server's, counted from now.
        deliberation, top_k = convert.submission_from_proto(request)
        record = await self._orchestrator.submit(deliberation, top_k=top_k)
        return pb.SubmitDeliberationResponse(
            deliberation_id=record.deliberation_id, status=convert.STATUS_TO_PROTO[record.status]
        )

    @stream_errors
    async def WatchDeliberation(
        self,
        request: pb.WatchDeliberationRequest,
        context: Context[pb.WatchDeliberationRequest, pb.DeliberationEvent],
    ) -> AsyncIterator[pb.DeliberationEvent]:
        after = convert.after_sequence_from_proto(request)
        events = self._orchestrator.watch(request.deliberation_id, after)
        deliberation_id = request.deliberation_id.strip()
        async with contextlib.aclosing(events):  # type: ignore[type-var]
            async for sequence, event in events:
                yield convert.event_to_proto(deliberation_id, event, sequence)

    @unary_errors
    async def CancelDeliberation(
        self,
        request: pb.CancelDeliberationRequest,
        context: Context[pb.CancelDeliberationRequest, pb.CancelDeliberationResponse],
    ) -> pb.CancelDeliberationResponse:
        record = await self._orchestrator.cancel(request.deliberation_id)
        return pb.CancelDeliberationResponse(
            deliberation_id=record.deliberation_id, status=convert.STATUS_TO_PROTO[record.status]
        )
