"""What the sync and asyncio clients share before any call: options resolved from arguments,
one channel, and the generated stubs of every service over it."""

from __future__ import annotations

from typing import Any, Optional

from dbforge.options import ClientOptions
from dbforge.v1 import (
    access_pb2_grpc,
    backup_pb2_grpc,
    database_pb2_grpc,
    operations_pb2_grpc,
    query_pb2_grpc,
    schema_pb2_grpc,
    semantic_pb2_grpc,
    table_pb2_grpc,
    transfer_pb2_grpc,
)

__all__ = ["Connection"]


class Connection:
    """Base of `SyncConnection` and `AsyncConnection`, which open the channel (`_open`)."""

    def __init__(
        self,
        endpoint: Optional[str] = None,
        *,
        api_key: Optional[str] = None,
        ca_file: Optional[str] = None,
        client_cert_file: Optional[str] = None,
        client_key_file: Optional[str] = None,
        tls_server_name: Optional[str] = None,
        timeout: Optional[float] = None,
        connect_timeout: Optional[float] = None,
        options: Optional[ClientOptions] = None,
    ) -> None:
        """Arguments override `options` (default: `ClientOptions()`); whatever stays unset
        comes from DBFORGE_ENDPOINT / DBFORGE_API_KEY, then the defaults. See `ClientOptions`."""
        opts = (options or ClientOptions()).with_overrides(
            endpoint=endpoint,
            api_key=api_key,
            ca_file=ca_file,
            client_cert_file=client_cert_file,
            client_key_file=client_key_file,
            tls_server_name=tls_server_name,
            timeout=timeout,
            connect_timeout=connect_timeout,
        )
        self.options = opts.resolved()
        self._metadata = self.options.metadata()
        self._timeout = self.options.timeout
        channel = self._open()
        self.databases = database_pb2_grpc.DatabaseServiceStub(channel)
        self.queries = query_pb2_grpc.QueryServiceStub(channel)
        self.tables = table_pb2_grpc.TableServiceStub(channel)
        self.access = access_pb2_grpc.AccessServiceStub(channel)
        self.operations = operations_pb2_grpc.OperationsServiceStub(channel)
        self.schema = schema_pb2_grpc.SchemaServiceStub(channel)
        self.semantic = semantic_pb2_grpc.SemanticServiceStub(channel)
        self.transfer = transfer_pb2_grpc.TransferServiceStub(channel)
        self.backups = backup_pb2_grpc.BackupServiceStub(channel)

    def _open(self) -> Any:
        """Opens the channel (sets `self.channel`) and returns it."""
        raise NotImplementedError
