"""GetDeliberation and ListDeliberations: stored records, pages, filters and their errors."""

from __future__ import annotations

import grpc
import pytest
from grpc_test_support import request

from orchestrator.v1 import orchestrator_pb2 as pb
from orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc

Stub = pb_grpc.OrchestratorServiceStub


async def test_a_deliberation_is_stored_with_its_response(stub: Stub) -> None:
    response = await stub.Deliberate(request(request_id="retry-key-1"))

    record = await stub.GetDeliberation(pb.GetDeliberationRequest(deliberation_id=response.deliberation_id))

    assert record.deliberation_id == response.deliberation_id
    assert (record.kind, record.role, record.task) == ("deliberate", "DEV", "Write a function that adds two numbers")
    assert record.status == pb.DELIBERATION_STATUS_SUCCEEDED
    assert record.request_id == "retry-key-1"
    assert 0 < record.created_at <= record.finished_at
    assert record.response == response
    assert not record.HasField("orchestration")
    assert record.error == ""


async def test_a_failed_deliberation_is_stored_with_its_error(stub: Stub) -> None:
    with pytest.raises(grpc.aio.AioRpcError):
        await stub.Deliberate(request(role="DEVOPS"))

    page = await stub.ListDeliberations(pb.ListDeliberationsRequest(status=pb.DELIBERATION_STATUS_FAILED))

    [record] = page.deliberations
    assert (record.role, record.status) == ("DEVOPS", pb.DELIBERATION_STATUS_FAILED)
    assert "connection refused" in record.error
    assert not record.HasField("response")


async def test_unknown_id_is_not_found(stub: Stub) -> None:
    for deliberation_id in ("0" * 32, ""):
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await stub.GetDeliberation(pb.GetDeliberationRequest(deliberation_id=deliberation_id))
        assert error.value.code() is grpc.StatusCode.NOT_FOUND


async def test_records_come_newest_first_a_page_at_a_time(stub: Stub) -> None:
    ids = [(await stub.Deliberate(request(task=f"task {n}"))).deliberation_id for n in range(3)]

    first = await stub.ListDeliberations(pb.ListDeliberationsRequest(page_size=2))
    second = await stub.ListDeliberations(
        pb.ListDeliberationsRequest(page_size=2, page_token=first.next_page_token)
    )

    assert [r.deliberation_id for r in first.deliberations] == ids[:0:-1]
    assert first.next_page_token
    assert [r.deliberation_id for r in second.deliberations] == ids[:1]
    assert second.next_page_token == ""


async def test_records_filter_by_role_and_status(stub: Stub) -> None:
    await stub.Deliberate(request())
    await stub.Deliberate(request(role="ARCHITECT"))

    by_role = await stub.ListDeliberations(pb.ListDeliberationsRequest(role="architect"))
    succeeded = await stub.ListDeliberations(
        pb.ListDeliberationsRequest(status=pb.DELIBERATION_STATUS_SUCCEEDED)
    )
    running = await stub.ListDeliberations(pb.ListDeliberationsRequest(status=pb.DELIBERATION_STATUS_RUNNING))

    assert [r.role for r in by_role.deliberations] == ["ARCHITECT"]
    assert [r.role for r in succeeded.deliberations] == ["ARCHITECT", "DEV"]
    assert list(running.deliberations) == []


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"page_token": "not-a-token"}, "page_token"),
        ({"page_size": -1}, "page_size"),
        ({"status": 99}, "status 99 is not a DeliberationStatus value"),
    ],
)
async def test_bad_list_requests_are_invalid_argument(
    stub: Stub, fields: dict[str, object], message: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await stub.ListDeliberations(pb.ListDeliberationsRequest(**fields))  # type: ignore[arg-type]
    assert error.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert message in (error.value.details() or "")
