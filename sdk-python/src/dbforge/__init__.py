"""Python client for DB-Forge: spawn isolated databases on demand and use them over gRPC.

```python
import dbforge

with dbforge.Client() as client:          # DBFORGE_ENDPOINT / DBFORGE_API_KEY, or arguments
    client.create_database("scratch", labels={"task": "demo"})
    client.execute("scratch", "CREATE TABLE people (name TEXT, age INTEGER)")
    client.execute("scratch", "INSERT INTO people VALUES (?, ?)", ["Ada", 36])
    for name, age in client.query("scratch", "SELECT name, age FROM people WHERE age > ?", [30]):
        print(name, age)
    client.delete_database("scratch")
```

`AsyncClient` has the same methods for asyncio. `export_table` / `import_csv` / `dump_database` /
`import_sql` move files in and out; `get_schema` and `explain` describe tables and query plans;
`create_backup` / `restore_backup` / `set_backup_policy` back databases up and restore them.
Errors are subclasses of `DBForgeError` named after the gRPC status (`NotFound`, `AlreadyExists`,
`InvalidArgument`, ...). The generated messages and stubs are in `dbforge.v1`.
"""

from dbforge.admin import (
    ApiKey,
    AuditEvent,
    AuditVerdict,
    ConnectionCap,
    KeyGrant,
    Node,
    RpcStats,
    ServerStats,
)
from dbforge.aio import AsyncClient, AsyncTransaction
from dbforge.backup import (
    Backup,
    BackupManifest,
    BackupPolicy,
    BackupStatus,
    Restored,
    RestoreMode,
    TableRowCount,
)
from dbforge.client import Client, Transaction
from dbforge.policy import LifecyclePolicy
from dbforge.errors import (
    Aborted,
    AlreadyExists,
    Cancelled,
    DataLoss,
    DBForgeError,
    DeadlineExceeded,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    NotFound,
    OutOfRange,
    PermissionDenied,
    ProtocolError,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
    Unimplemented,
    Unknown,
)
from dbforge.options import DEFAULT_ENDPOINT, ClientOptions
from dbforge.preview import StatementPreview
from dbforge.rows import AsyncRows, Rows
from dbforge.summary import ColumnSummary, Summarized
from dbforge.semantic import Answer, Asked, Materialized, MaterializedTable
from dbforge.schema import (
    CheckSchema,
    ColumnSchema,
    ForeignKeySchema,
    IndexSchema,
    KeyPattern,
    GraphSummary,
    KeySpaceSummary,
    Plan,
    PlanNode,
    Schema,
    TableKind,
    TableSchema,
    UniqueSchema,
)
from dbforge.transfer import (
    AsyncExport,
    Export,
    ExportFormat,
    ImportCsvResult,
    ImportSqlResult,
    RejectedRow,
)
from dbforge.types import (
    Backend,
    Capabilities,
    Column,
    ColumnDef,
    ColumnType,
    Created,
    Database,
    DatabaseEvent,
    DatabaseEventType,
    DatabaseStatus,
    ExecResult,
    Filter,
    Forked,
    Grant,
    Role,
    Statement,
    Summary,
    Truncation,
    ValueKind,
)
from dbforge.values import Array, Json, from_value, to_value

__version__ = "0.1.0"

__all__ = [
    "Aborted",
    "AlreadyExists",
    "Answer",
    "ApiKey",
    "Array",
    "Asked",
    "AsyncClient",
    "AsyncExport",
    "AsyncRows",
    "AsyncTransaction",
    "AuditEvent",
    "AuditVerdict",
    "Backend",
    "Backup",
    "BackupManifest",
    "BackupPolicy",
    "BackupStatus",
    "Cancelled",
    "Capabilities",
    "CheckSchema",
    "Client",
    "ClientOptions",
    "Column",
    "ColumnSummary",
    "ColumnDef",
    "ColumnSchema",
    "ColumnType",
    "ConnectionCap",
    "Created",
    "DEFAULT_ENDPOINT",
    "DataLoss",
    "Database",
    "DatabaseEvent",
    "DatabaseEventType",
    "DatabaseStatus",
    "DBForgeError",
    "DeadlineExceeded",
    "ExecResult",
    "Export",
    "ExportFormat",
    "FailedPrecondition",
    "Filter",
    "Forked",
    "ForeignKeySchema",
    "Grant",
    "ImportCsvResult",
    "ImportSqlResult",
    "IndexSchema",
    "Internal",
    "InvalidArgument",
    "Json",
    "KeyGrant",
    "Node",
    "KeyPattern",
    "GraphSummary",
    "KeySpaceSummary",
    "LifecyclePolicy",
    "Materialized",
    "MaterializedTable",
    "NotFound",
    "OutOfRange",
    "PermissionDenied",
    "Plan",
    "PlanNode",
    "ProtocolError",
    "RejectedRow",
    "ResourceExhausted",
    "RestoreMode",
    "Restored",
    "Role",
    "Rows",
    "RpcStats",
    "Schema",
    "ServerStats",
    "Statement",
    "StatementPreview",
    "Summarized",
    "Summary",
    "TableKind",
    "TableRowCount",
    "TableSchema",
    "Transaction",
    "Truncation",
    "Unauthenticated",
    "Unavailable",
    "Unimplemented",
    "UniqueSchema",
    "Unknown",
    "ValueKind",
    "from_value",
    "to_value",
]
