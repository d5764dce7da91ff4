"""A gRPC call made of raw HTTP/2 frames, for what no gRPC client will send.

grpcio's client always sends well-formed requests; a hostile client need not. This sends
one request stream exactly as given (headers and the message bytes, length prefix and
flags included) with the ``h2`` state machine over a plain socket, and reports how the
server ended the stream: its grpc-status and grpc-message, or the RST_STREAM error code.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass, field
from urllib.parse import unquote

import h2.config
import h2.connection
import h2.events

READ_TIMEOUT_SECONDS = 10.0


@dataclass
class RawOutcome:
    """How the server ended one stream."""

    headers: dict[str, str] = field(default_factory=dict)
    """Response headers and trailers together (a trailers-only response has one block)."""
    reset_code: int | None = None
    """The HTTP/2 error code of a RST_STREAM, when the server reset the stream."""

    @property
    def grpc_status(self) -> int | None:
        value = self.headers.get("grpc-status")
        return None if value is None else int(value)

    @property
    def grpc_message(self) -> str:
        return unquote(self.headers.get("grpc-message", ""))


def framed(message: bytes, *, compressed: bool = False) -> bytes:
    """A gRPC length-prefixed message: the compressed flag, the length, the bytes."""
    return struct.pack(">BI", 1 if compressed else 0, len(message)) + message


def raw_call(address: str, path: str, body: bytes, extra_headers: tuple[tuple[str, str], ...] = ()) -> RawOutcome:
    """One unary call to ``host:port`` over cleartext HTTP/2 (blocking: run it in a thread)."""
    host, _, port = address.rpartition(":")
    with socket.create_connection((host.strip("[]"), int(port)), timeout=READ_TIMEOUT_SECONDS) as sock:
        connection = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        connection.initiate_connection()
        stream = connection.get_next_available_stream_id()
        headers = [
            (":method", "POST"), (":scheme", "http"), (":path", path), (":authority", address),
            ("content-type", "application/grpc"), ("te", "trailers"), *extra_headers,
        ]
        connection.send_headers(stream, headers)
        connection.send_data(stream, body, end_stream=True)
        sock.sendall(connection.data_to_send())
        return _read_until_closed(sock, connection, stream)


def _read_until_closed(sock: socket.socket, connection: h2.connection.H2Connection, stream: int) -> RawOutcome:
    outcome = RawOutcome()
    while True:
        data = sock.recv(65536)
        if not data:
            return outcome
        for event in connection.receive_data(data):
            if isinstance(event, h2.events.ResponseReceived | h2.events.TrailersReceived):
                outcome.headers.update(_text(event.headers))
            elif isinstance(event, h2.events.DataReceived):
                connection.acknowledge_received_data(event.flow_controlled_length, stream)
            elif isinstance(event, h2.events.StreamReset) and event.stream_id == stream:
                outcome.reset_code = int(event.error_code)
                return outcome
            if isinstance(event, h2.events.StreamEnded) and event.stream_id == stream:
                return outcome
        sock.sendall(connection.data_to_send())


def _text(headers: object) -> dict[str, str]:
    pairs: list[tuple[bytes | str, bytes | str]] = list(headers)  # type: ignore[call-overload]
    return {_decoded(name): _decoded(value) for name, value in pairs}


def _decoded(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
