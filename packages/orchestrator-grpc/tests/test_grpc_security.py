"""TLS, mutual TLS and bearer tokens; no token or key in status, logs or errors."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_test_support import HANG_GUARD, ServerFactory, orchestrator_command, request
from pydantic import SecretStr, ValidationError
from tls_support import Certificates, make_certificates

from orchestrator.v1 import orchestrator_pb2 as pb
from orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc
from orchestrator_core.settings import Settings
from orchestrator_grpc.auth import INVALID, MISSING, BearerAuth, TokensUnavailable
from orchestrator_grpc.cli.commands import settings_problems
from orchestrator_grpc.client import OrchestratorClient
from orchestrator_grpc.tls import ClientTLS, TLSFilesUnavailable

Stub = pb_grpc.OrchestratorServiceStub
TOKEN = "tok-3f9a-SECRET-MARKER-e71c"
FILE_TOKEN = "tok-from-file-SECRET-MARKER-02bd"
Code = grpc.StatusCode


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certs"))


def _tls_channel(
    address: str, certificates: Certificates, *, client: bool = False, stranger: bool = False
) -> grpc.aio.Channel:
    issued = certificates.stranger if stranger else certificates.client if client or stranger else None
    tls = ClientTLS.from_files(
        certificates.ca.cert_file, issued.cert if issued else None, issued.key if issued else None
    )
    return grpc.aio.secure_channel(address, tls.credentials())


async def _status_code(channel: grpc.aio.Channel, metadata: Sequence[tuple[str, str]] = ()) -> Code:
    try:
        await Stub(channel).GetStatus(pb.GetStatusRequest(), timeout=HANG_GUARD, metadata=tuple(metadata))
    except grpc.aio.AioRpcError as error:
        return error.code()
    return Code.OK


# -- TLS ------------------------------------------------------------------------------------


async def test_a_tls_server_refuses_plaintext_and_serves_tls(
    serve_with: ServerFactory, certificates: Certificates
) -> None:
    tls = {"tls_cert_file": certificates.server.cert, "tls_key_file": certificates.server.key}
    async with (
        serve_with(**tls) as server,
        grpc.aio.insecure_channel(server.address) as plaintext,
    ):
        assert await _status_code(plaintext) is Code.UNAVAILABLE
        async with _tls_channel(server.address, certificates) as secure:
            assert await _status_code(secure) is Code.OK
            response = await Stub(secure).Deliberate(request(), timeout=HANG_GUARD)
            assert len(response.results) == 3


async def test_mutual_tls_refuses_a_client_without_a_trusted_certificate(
    serve_with: ServerFactory, certificates: Certificates
) -> None:
    mtls = {
        "tls_cert_file": certificates.server.cert,
        "tls_key_file": certificates.server.key,
        "tls_client_ca_file": certificates.ca.cert_file,
    }
    async with (
        serve_with(**mtls) as server,
        _tls_channel(server.address, certificates) as anonymous,
    ):
        assert await _status_code(anonymous) is Code.UNAVAILABLE
        async with _tls_channel(server.address, certificates, stranger=True) as stranger:
            assert await _status_code(stranger) is Code.UNAVAILABLE
        async with _tls_channel(server.address, certificates, client=True) as trusted:
            assert await _status_code(trusted) is Code.OK


async def test_unreadable_tls_files_fail_startup_naming_the_file(serve_with: ServerFactory, tmp_path: Path) -> None:
    missing = tmp_path / "missing.pem"
    with pytest.raises(TLSFilesUnavailable, match=r"cannot read the certificate file \(ORCH_TLS_CERT_FILE\)"):
        async with serve_with(tls_cert_file=missing, tls_key_file=missing):
            pass


def test_tls_settings_must_pair_up(certificates: Certificates) -> None:
    with pytest.raises(ValidationError, match="must be set together"):
        Settings(tls_cert_file=certificates.server.cert)
    with pytest.raises(ValidationError, match="needs tls_cert_file"):
        Settings(tls_client_ca_file=certificates.ca.cert_file)


# -- bearer tokens --------------------------------------------------------------------------


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "tokens"
    path.write_text(f"# one token a line\n\n{FILE_TOKEN}\n")
    return path


async def test_tokens_from_the_environment_and_a_file_are_accepted(serve_with: ServerFactory, token_file: Path) -> None:
    async with (
        serve_with(auth_tokens=[SecretStr(TOKEN)], auth_tokens_file=token_file) as server,
        grpc.aio.insecure_channel(server.address) as channel,
    ):
        assert await _status_code(channel, [("authorization", f"Bearer {TOKEN}")]) is Code.OK
        assert await _status_code(channel, [("authorization", f"bearer {FILE_TOKEN}")]) is Code.OK


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ((), MISSING),
        ((("authorization", "Basic dXNlcjpwYXNz"),), MISSING),
        ((("authorization", "Bearer "),), MISSING),
        ((("authorization", f"Bearer {TOKEN}x"),), INVALID),
        ((("authorization", f"Bearer {TOKEN[:-1]}"),), INVALID),
        ((("authorization", f"Bearer {TOKEN} {TOKEN}"),), INVALID),
    ],
)
async def test_a_call_without_a_valid_token_is_unauthenticated(
    serve_with: ServerFactory, metadata: tuple[tuple[str, str], ...], message: str
) -> None:
    async with (
        serve_with(auth_tokens=[SecretStr(TOKEN)]) as server,
        grpc.aio.insecure_channel(server.address) as channel,
    ):
        stub = Stub(channel)
        for call in (
            stub.GetStatus(pb.GetStatusRequest(), metadata=metadata),
            stub.Deliberate(request(), metadata=metadata),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as error:
                await call
            assert error.value.code() is Code.UNAUTHENTICATED
            assert error.value.details() == message
        stream = stub.StreamDeliberation(request(), metadata=metadata)
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await stream.read()
        assert (error.value.code(), error.value.details()) == (Code.UNAUTHENTICATED, message)
        # Nothing ran.
        status = await stub.GetStatus(pb.GetStatusRequest(), metadata=[("authorization", f"Bearer {TOKEN}")])
        assert status.statistics.deliberations == 0


async def test_health_and_reflection_need_no_token(serve_with: ServerFactory) -> None:
    async with (
        serve_with(auth_tokens=[SecretStr(TOKEN)]) as server,
        grpc.aio.insecure_channel(server.address) as channel,
    ):
        health = health_pb2_grpc.HealthStub(channel)
        response = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=HANG_GUARD)
        assert response.status == health_pb2.HealthCheckResponse.SERVING
        call = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo()
        await call.write(reflection_pb2.ServerReflectionRequest(list_services=""))
        listed = await call.read()
        await call.done_writing()
        assert "orchestrator.v1.OrchestratorService" in {s.name for s in listed.list_services_response.service}


async def test_the_client_sends_its_token_over_tls(
    serve_with: ServerFactory, certificates: Certificates
) -> None:
    settings = {
        "tls_cert_file": certificates.server.cert,
        "tls_key_file": certificates.server.key,
        "tls_client_ca_file": certificates.ca.cert_file,
        "auth_tokens": [SecretStr(TOKEN)],
    }
    tls = ClientTLS.from_files(certificates.ca.cert_file, certificates.client.cert, certificates.client.key)
    async with (
        serve_with(**settings) as server,
        OrchestratorClient(server.address, tls=tls, token=SecretStr(TOKEN)) as client,
    ):
        assert (await client.status(deadline=HANG_GUARD)).status == "SERVING"
        assert await client.health(deadline=HANG_GUARD) == "SERVING"
        async with OrchestratorClient(server.address, tls=tls) as tokenless:
            with pytest.raises(grpc.aio.AioRpcError) as error:
                await tokenless.status(deadline=HANG_GUARD)
            assert error.value.code() is Code.UNAUTHENTICATED


async def test_a_bad_token_file_fails_startup(serve_with: ServerFactory, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("# no tokens here\n\n")
    with pytest.raises(TokensUnavailable, match="holds no token"):
        async with serve_with(auth_tokens_file=empty):
            pass
    with pytest.raises(TokensUnavailable, match="cannot read the token file"):
        async with serve_with(auth_tokens_file=tmp_path / "absent"):
            pass


def test_tokens_are_compared_with_every_configured_one() -> None:
    auth = BearerAuth([SecretStr("first"), SecretStr("second")])
    assert auth.accepts("first")
    assert auth.accepts("second")
    assert not auth.accepts("firs")
    assert not auth.accepts("")
    assert not auth.accepts("second\n")


# -- secrets stay secret --------------------------------------------------------------------


async def test_tokens_appear_in_no_status_log_or_error(
    serve_with: ServerFactory, token_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []
    async with serve_with(auth_tokens=[SecretStr(TOKEN)], auth_tokens_file=token_file) as server:
        seen.append(repr(server.settings))
        async with grpc.aio.insecure_channel(server.address) as channel:
            stub = Stub(channel)
            good = [("authorization", f"Bearer {TOKEN}")]
            seen.append(str(await stub.GetStatus(pb.GetStatusRequest(), metadata=good)))
            response = await stub.Deliberate(request(), metadata=good)
            record = await stub.GetDeliberation(
                pb.GetDeliberationRequest(deliberation_id=response.deliberation_id), metadata=good
            )
            seen.append(str(record))
            for wrong in (f"Bearer {TOKEN}-wrong", f"Bearer {FILE_TOKEN}-wrong", f"Token {TOKEN}"):
                with pytest.raises(grpc.aio.AioRpcError) as error:
                    await stub.GetStatus(pb.GetStatusRequest(), metadata=[("authorization", wrong)])
                seen.append(error.value.details() or "")
                seen.append(error.value.debug_error_string())
            with pytest.raises(grpc.aio.AioRpcError) as error:
                await stub.Deliberate(request(task=""), metadata=good)
            seen.append(error.value.details() or "")
    seen += [record.getMessage() for record in caplog.records]
    seen += [caplog.text]
    assert any("refused a call" in line for line in seen)  # the refusals were logged
    for text in seen:
        assert TOKEN not in text
        assert FILE_TOKEN not in text


def test_invalid_settings_are_reported_without_their_values() -> None:
    with pytest.raises(ValidationError) as error:
        Settings(auth_tokens=TOKEN, tls_cert_file="cert.pem", database_url=f"postgresql://u:{TOKEN}@h/db")
    assert "MARKER-e71c" in str(error.value)  # pydantic's own message quotes the input...
    problems = settings_problems(error.value)
    assert "tls_cert_file and tls_key_file must be set together" in problems
    assert "MARKER-e71c" not in problems  # ...the one the command prints does not


# -- the command line -----------------------------------------------------------------------


async def _run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        orchestrator_command(), *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env
    )
    async with asyncio.timeout(HANG_GUARD * 3):
        out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_the_command_line_dials_mutual_tls_with_a_token_file(
    serve_with: ServerFactory, certificates: Certificates, token_file: Path
) -> None:
    settings = {
        "tls_cert_file": certificates.server.cert,
        "tls_key_file": certificates.server.key,
        "tls_client_ca_file": certificates.ca.cert_file,
        "auth_tokens_file": token_file,
    }
    client_token = token_file.parent / "client-token"
    client_token.write_text(f"{FILE_TOKEN}\n")
    tls = [
        "--ca-file", str(certificates.ca.cert_file),
        "--cert-file", str(certificates.client.cert),
        "--key-file", str(certificates.client.key),
    ]
    async with serve_with(**settings) as server:
        address = ["--address", server.address, "--timeout", str(HANG_GUARD)]
        code, out, err = await _run("status", *address, *tls, "--token-file", str(client_token))
        assert code == 0, err
        assert '"status": "SERVING"' in out

        code, out, err = await _run("health", *address, *tls)  # health needs no token
        assert code == 0, err

        code, out, err = await _run("status", *address, *tls)  # no token
        assert code == 1
        assert "UNAUTHENTICATED: the server requires a bearer token: give --token-file FILE" in err

        code, out, err = await _run("status", *address, "--ca-file", str(certificates.ca.cert_file))  # no cert
        assert code == 1
        assert "UNAVAILABLE" in err

        code, out, err = await _run("status", *address, "--cert-file", str(certificates.client.cert))
        assert code == 2
        assert "a client certificate needs its key" in err
