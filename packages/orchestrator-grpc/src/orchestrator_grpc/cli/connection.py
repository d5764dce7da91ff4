"""How the client commands dial the server: address, deadline, TLS and a bearer token.

The token is never taken on the command line (other users could read it from the process
list): ``--token-file`` names a file whose first line is the token, else ``ORCH_TOKEN``
holds it.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from orchestrator_grpc.client import ADDRESS_ENV, DEFAULT_ADDRESS, OrchestratorClient, default_address
from orchestrator_grpc.tls import ClientTLS, TLSFilesUnavailable

TOKEN_ENV = "ORCH_TOKEN"


class ConnectionOptionsError(Exception):
    """A TLS or token file of the command line cannot be used; the message says which."""


def add_client_options(parser: argparse.ArgumentParser, timeout: float | None = None) -> None:
    parser.add_argument(
        "--address",
        default=default_address(),
        help=f"server host:port (default: {ADDRESS_ENV} or {DEFAULT_ADDRESS})",
    )
    parser.add_argument("--timeout", type=float, default=timeout, help="deadline of the call in seconds")
    tls = parser.add_argument_group("TLS and authentication")
    tls.add_argument("--tls", action="store_true", help="dial with TLS (implied by the file options below)")
    tls.add_argument("--ca-file", type=Path, help="PEM CA certificates of the server (default: the system's)")
    tls.add_argument("--cert-file", type=Path, help="PEM client certificate chain, for mutual TLS")
    tls.add_argument("--key-file", type=Path, help="PEM client private key, for mutual TLS")
    tls.add_argument(
        "--token-file", type=Path, help=f"file whose first line is the bearer token (default: {TOKEN_ENV})"
    )


@dataclass(frozen=True)
class Connection:
    """The parsed options, with their files read: build it before the event loop runs."""

    address: str
    tls: ClientTLS | None
    token: SecretStr | None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Connection:
        tls = None
        if args.tls or args.ca_file or args.cert_file or args.key_file:
            try:
                tls = ClientTLS.from_files(args.ca_file, args.cert_file, args.key_file)
            except TLSFilesUnavailable as exc:
                raise ConnectionOptionsError(str(exc)) from None
        return cls(args.address, tls, _token(args.token_file))

    def client(self) -> OrchestratorClient:
        return OrchestratorClient(self.address, tls=self.tls, token=self.token)


def _token(path: Path | None) -> SecretStr | None:
    if path is None:
        value = os.environ.get(TOKEN_ENV, "").strip()
        return SecretStr(value) if value else None
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConnectionOptionsError(f"cannot read the token file {path}: {type(exc).__name__}") from None
    token = lines[0].strip() if lines else ""
    if not token:
        raise ConnectionOptionsError(f"the token file {path} is empty")
    return SecretStr(token)
