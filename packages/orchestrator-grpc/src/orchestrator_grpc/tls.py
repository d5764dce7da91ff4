"""TLS and mutual TLS from PEM files, for the server and for clients.

The server speaks TLS only when ``ORCH_TLS_CERT_FILE`` and ``ORCH_TLS_KEY_FILE`` are set
(then a plaintext client cannot connect). With ``ORCH_TLS_CLIENT_CA_FILE`` as well, every
client must present a certificate that CA signed (mutual TLS).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import grpc

from orchestrator_core.settings import Settings


class TLSFilesUnavailable(Exception):
    """A configured certificate, key or CA file cannot be read; the message names it."""


def _read(path: Path, what: str) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TLSFilesUnavailable(f"cannot read the {what} {path}: {exc.strerror or type(exc).__name__}") from None
    if not data.strip():
        raise TLSFilesUnavailable(f"the {what} {path} is empty")
    return data


def server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    """The server's TLS credentials, or None for plaintext (blocking file reads)."""
    if settings.tls_cert_file is None or settings.tls_key_file is None:
        return None
    chain = _read(settings.tls_cert_file, "certificate file (ORCH_TLS_CERT_FILE)")
    key = _read(settings.tls_key_file, "key file (ORCH_TLS_KEY_FILE)")
    client_ca = (
        _read(settings.tls_client_ca_file, "client CA file (ORCH_TLS_CLIENT_CA_FILE)")
        if settings.tls_client_ca_file is not None
        else None
    )
    return grpc.ssl_server_credentials(
        [(key, chain)], root_certificates=client_ca, require_client_auth=client_ca is not None
    )


@dataclass(frozen=True)
class ClientTLS:
    """What a client needs for TLS: the CA certificates that signed the server's certificate
    (None: the system's roots) and, for mutual TLS, its own certificate chain and key (PEM)."""

    root_certificates: bytes | None = None
    certificate_chain: bytes | None = None
    private_key: bytes | None = None

    @classmethod
    def from_files(
        cls, ca_file: Path | None = None, cert_file: Path | None = None, key_file: Path | None = None
    ) -> ClientTLS:
        """Reads the files now (blocking): call it before the event loop runs."""
        if (cert_file is None) != (key_file is None):
            raise TLSFilesUnavailable("a client certificate needs its key (--cert-file with --key-file)")
        return cls(
            root_certificates=_read(ca_file, "CA file") if ca_file else None,
            certificate_chain=_read(cert_file, "client certificate file") if cert_file else None,
            private_key=_read(key_file, "client key file") if key_file else None,
        )

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=self.root_certificates,
            private_key=self.private_key,
            certificate_chain=self.certificate_chain,
        )
