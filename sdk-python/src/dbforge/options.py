"""How to reach a gateway: endpoint, API key, TLS and timeouts."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Any, List, Optional, Tuple, Union

import grpc

__all__ = ["ClientOptions", "DEFAULT_ENDPOINT"]

DEFAULT_ENDPOINT = "http://127.0.0.1:50051"

# Requests and responses may be as large as the server allows; the server enforces its limit.
_CHANNEL_OPTIONS: List[Tuple[str, Any]] = [
    ("grpc.max_receive_message_length", -1),
    ("grpc.max_send_message_length", -1),
]


def _read(path: Optional[str]) -> Optional[bytes]:
    if path is None:
        return None
    with open(path, "rb") as f:
        return f.read()


@dataclass(frozen=True)
class ClientOptions:
    """Connection settings. Every field has a default; `from_env()` reads the environment.

    Attributes:
        endpoint: `http://host:port`, or `https://host:port` for TLS (a bare `host:port` is
            plaintext). Default: `DBFORGE_ENDPOINT`, else `http://127.0.0.1:50051`.
        api_key: sent as `authorization: Bearer <key>` on every call. Default: `DBFORGE_API_KEY`.
        ca_file: PEM file of the CA that signed the server's certificate (TLS); without it the
            system roots are used.
        client_cert_file, client_key_file: PEM certificate and key for mutual TLS.
        tls_server_name: the name to check the server's certificate against, when it differs
            from the endpoint's host.
        timeout: deadline of each call in seconds (streams: of the whole stream). None: none.
        connect_timeout: seconds to wait for the connection when the client is created; None
            connects lazily on the first call.
    """

    endpoint: str = ""
    api_key: Optional[str] = None
    ca_file: Optional[str] = None
    client_cert_file: Optional[str] = None
    client_key_file: Optional[str] = None
    tls_server_name: Optional[str] = None
    timeout: Optional[float] = None
    connect_timeout: Optional[float] = None

    @classmethod
    def from_env(cls, **overrides: Any) -> ClientOptions:
        """Options from `DBFORGE_ENDPOINT` and `DBFORGE_API_KEY`, then `overrides`."""
        base = cls(
            endpoint=os.environ.get("DBFORGE_ENDPOINT") or DEFAULT_ENDPOINT,
            api_key=os.environ.get("DBFORGE_API_KEY") or None,
        )
        return replace(base, **overrides)

    def with_overrides(self, **fields: Any) -> ClientOptions:
        """These options with every field given (and not None) replaced."""
        return replace(self, **{k: v for k, v in fields.items() if v is not None})

    def resolved(self) -> ClientOptions:
        """These options with the environment's defaults filled in where unset."""
        out = self
        if not out.endpoint:
            out = replace(out, endpoint=os.environ.get("DBFORGE_ENDPOINT") or DEFAULT_ENDPOINT)
        if out.api_key is None and os.environ.get("DBFORGE_API_KEY"):
            out = replace(out, api_key=os.environ["DBFORGE_API_KEY"])
        return out

    @property
    def uses_tls(self) -> bool:
        return self.endpoint.startswith("https://")

    @property
    def target(self) -> str:
        """The gRPC target: the endpoint without its scheme."""
        for scheme in ("http://", "https://"):
            if self.endpoint.startswith(scheme):
                return self.endpoint[len(scheme) :].rstrip("/")
        return self.endpoint

    def metadata(self) -> Tuple[Tuple[str, Union[str, bytes]], ...]:
        if self.api_key:
            return (("authorization", f"Bearer {self.api_key}"),)
        return ()

    def _credentials(self) -> grpc.ChannelCredentials:
        if (self.client_cert_file is None) != (self.client_key_file is None):
            raise ValueError("client_cert_file and client_key_file go together (mutual TLS)")
        return grpc.ssl_channel_credentials(
            root_certificates=_read(self.ca_file),
            private_key=_read(self.client_key_file),
            certificate_chain=_read(self.client_cert_file),
        )

    def _channel_options(self) -> List[Tuple[str, Any]]:
        opts = list(_CHANNEL_OPTIONS)
        if self.tls_server_name:
            opts.append(("grpc.ssl_target_name_override", self.tls_server_name))
        return opts

    def channel(self) -> grpc.Channel:
        """A synchronous channel."""
        if self.uses_tls:
            return grpc.secure_channel(self.target, self._credentials(), self._channel_options())
        return grpc.insecure_channel(self.target, self._channel_options())

    def aio_channel(self) -> grpc.aio.Channel:
        """An asyncio channel."""
        if self.uses_tls:
            return grpc.aio.secure_channel(
                self.target, self._credentials(), self._channel_options()
            )
        return grpc.aio.insecure_channel(self.target, self._channel_options())
