"""How the client commands dial the server: address, deadline, TLS and a bearer token.

The token is never taken on the command line (other users could read it from the process
list): ``--token-file`` names a file whose first line is the token, else ``ORCH_TOKEN``
holds it.

The options are accepted before the command (``orchestrator --address X status``) and
after it. Both copies default to nothing (``argparse.SUPPRESS``), so one given after the
command overrides one given before, and neither erases the other; the defaults are filled
in by :func:`fill_defaults` once the line is parsed. gRPC, TLS and pydantic are imported
only when a connection is made, so ``--help`` starts quickly.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator_grpc.address import ADDRESS_ENV, DEFAULT_ADDRESS, default_address

if TYPE_CHECKING:
    from pydantic import SecretStr

    from orchestrator_grpc.client import OrchestratorClient
    from orchestrator_grpc.tls import ClientTLS

TOKEN_ENV = "ORCH_TOKEN"
TOKEN_FILE_OPTION = "--token-file"
OPTION_NAMES = ("address", "timeout", "tls", "ca_file", "cert_file", "key_file", "token_file")
"""The attributes the client options set on the parsed arguments."""


class ConnectionOptionsError(Exception):
    """A TLS or token file of the command line cannot be used; the message says which."""


def add_client_options(parser: argparse.ArgumentParser) -> None:
    """The client options, without defaults (see the module's docstring)."""
    unset = argparse.SUPPRESS
    parser.add_argument(
        "--address", default=unset, help=f"server host:port (default: {ADDRESS_ENV} or {DEFAULT_ADDRESS})"
    )
    parser.add_argument("--timeout", type=float, default=unset, help="deadline of the call in seconds")
    tls = parser.add_argument_group("TLS and authentication")
    tls.add_argument(
        "--tls", action="store_true", default=unset, help="dial with TLS (implied by the file options below)"
    )
    tls.add_argument(
        "--ca-file", type=Path, default=unset, help="PEM CA certificates of the server (default: the system's)"
    )
    tls.add_argument("--cert-file", type=Path, default=unset, help="PEM client certificate chain, for mutual TLS")
    tls.add_argument("--key-file", type=Path, default=unset, help="PEM client private key, for mutual TLS")
    tls.add_argument(
        TOKEN_FILE_OPTION, type=Path, default=unset,
        help=f"file whose first line is the bearer token (default: {TOKEN_ENV})",
    )


def given_options(args: argparse.Namespace) -> list[str]:
    """The client options given on the command line, as ``--name``."""
    return ["--" + name.replace("_", "-") for name in OPTION_NAMES if hasattr(args, name)]


def fill_defaults(args: argparse.Namespace, timeout: float | None = None) -> None:
    """Set every client option not given to its default (``timeout``: the command's)."""
    defaults: dict[str, object] = {
        "address": default_address(), "timeout": timeout, "tls": False,
        "ca_file": None, "cert_file": None, "key_file": None, "token_file": None,
    }
    for name, value in defaults.items():
        if not hasattr(args, name):
            setattr(args, name, value)


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
            from orchestrator_grpc.tls import ClientTLS, TLSFilesUnavailable

            try:
                tls = ClientTLS.from_files(args.ca_file, args.cert_file, args.key_file)
            except TLSFilesUnavailable as exc:
                raise ConnectionOptionsError(str(exc)) from None
        return cls(args.address, tls, _token(args.token_file))

    def client(self) -> OrchestratorClient:
        from orchestrator_grpc.client import OrchestratorClient

        return OrchestratorClient(self.address, tls=self.tls, token=self.token)


def _token(path: Path | None) -> SecretStr | None:
    if path is None:
        token = os.environ.get(TOKEN_ENV, "").strip()
        if not token:
            return None
    else:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConnectionOptionsError(f"cannot read the token file {path}: {type(exc).__name__}") from None
        token = lines[0].strip() if lines else ""
        if not token:
            raise ConnectionOptionsError(f"the token file {path} is empty")
    from pydantic import SecretStr

    return SecretStr(token)
