"""Backups, restores and backup policies (BackupService), as the SDK's own frozen dataclasses
rather than the generated messages (the same shapes as Rust's `dbforge::Backup`, … and
TypeScript's `src/backup.ts`).

Field names are the proto's, so code written against the messages keeps reading the same
attributes; a `oneof` is flattened into its members (`BackupPolicy.database` / `.pattern` /
`.labels`, `BackupPolicy.every` / `.cron`), of which exactly one is set. The values are
Python's own: `datetime` (aware, UTC) for timestamps, `timedelta` for durations, `None` for a
time or duration that is not set.

```python
import datetime as dt
from dbforge import BackupPolicy, RestoreMode

backup = client.create_backup("app", labels={"why": "before-migration"})
restored = client.restore_backup(backup.id, RestoreMode.REPLACE)   # safety backup first
client.restore_backup(backup.id, "new", new_name="app-yesterday")   # or beside it
client.set_backup_policy(BackupPolicy("app-6h", database="app", every=dt.timedelta(hours=6), keep_last=10))
```
"""

from __future__ import annotations

import datetime as _dt
import enum
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Tuple, Type, Union

from google.protobuf import duration_pb2

from dbforge.admin import duration
from dbforge.errors import ProtocolError
from dbforge.types import Backend, Database, _enum, timestamp
from dbforge.v1 import access_pb2, backup_pb2

__all__ = [
    "Backup",
    "BackupManifest",
    "BackupPolicy",
    "BackupStatus",
    "Restored",
    "RestoreMode",
    "TableRowCount",
]


class BackupStatus(enum.IntEnum):
    """Where a backup stands. `list_backups` also takes "running", "completed" or "failed"."""

    UNSPECIFIED = 0
    RUNNING = 1
    COMPLETED = 2
    FAILED = 3


class RestoreMode(enum.IntEnum):
    """How `restore_backup` treats the database: REPLACE the database the backup came from
    (after a safety backup of it) or restore into a NEW one. The client methods also take
    "replace" or "new"."""

    UNSPECIFIED = 0
    REPLACE = 1
    NEW = 2


StatusLike = Union[BackupStatus, str]
RestoreModeLike = Union[RestoreMode, str]


def _named(cls: Type[enum.IntEnum], value: Union[enum.IntEnum, str], what: str) -> int:
    """The proto enum value of `value`, a member of `cls` or its name in any case."""
    if isinstance(value, cls):
        return int(value)
    if isinstance(value, str):
        try:
            return int(cls[value.upper()])
        except KeyError:
            pass
    names = ", ".join(repr(m.name.lower()) for m in cls if m.value)
    raise ValueError(f"unknown {what} {value!r}: use {cls.__name__} or one of {names}")


def status_pb(status: StatusLike) -> int:
    return _named(BackupStatus, status, "backup status")


def restore_mode_pb(mode: RestoreModeLike) -> int:
    return _named(RestoreMode, mode, "restore mode")


def duration_pb(d: _dt.timedelta) -> duration_pb2.Duration:
    out = duration_pb2.Duration()
    out.FromTimedelta(d)
    return out


@dataclass(frozen=True)
class TableRowCount:
    """The row (or key) count of one table in a backup.

    Attributes:
        table: the table.
        rows: rows it held at backup time.
    """

    table: str
    rows: int


@dataclass(frozen=True)
class BackupManifest:
    """What a backup holds, as its manifest says.

    Attributes:
        format_version: version of the backup format.
        engine: the engine's name.
        engine_version: the version its server reported, e.g. "15.4" or "10.11.6-MariaDB".
        gateway_version: the gateway version that wrote it.
        tables: tables at backup time.
        views: views at backup time.
        row_counts: rows per table (SQL engines), in table order.
        total_rows: rows in all tables, or keys for key-value engines.
        raw_bytes: bytes of the backup before compression.
    """

    format_version: int
    engine: str
    engine_version: str
    gateway_version: str
    tables: int
    views: int
    row_counts: List[TableRowCount]
    total_rows: int
    raw_bytes: int

    @classmethod
    def from_pb(cls, m: backup_pb2.BackupManifest) -> BackupManifest:
        return cls(
            format_version=m.format_version,
            engine=m.engine,
            engine_version=m.engine_version,
            gateway_version=m.gateway_version,
            tables=m.tables,
            views=m.views,
            row_counts=[TableRowCount(table=r.table, rows=r.rows) for r in m.row_counts],
            total_rows=m.total_rows,
            raw_bytes=m.raw_bytes,
        )


@dataclass(frozen=True)
class Backup:
    """One backup.

    Attributes:
        id: its id, e.g. "bk-0192ab34cd56-7f3a09c1".
        database: the database it is a backup of.
        backend: that database's engine.
        created_at: when it started.
        size_bytes: bytes stored (compressed): final once COMPLETED, growing while RUNNING.
        sha256: lowercase hex SHA-256 of the stored bytes.
        format: what the stored object holds, e.g. "dbforge-backup/1 sqlite-file zstd".
        target: the server-side target it went to.
        location: where the stored object is, as a URL under the target.
        status: where it stands.
        duration: how long it took (so far, while RUNNING).
        labels: its labels; scheduled backups carry `dbforge.policy=<policy name>`.
        error: why it failed (empty unless FAILED).
        manifest: the manifest, once COMPLETED; None before.
    """

    id: str
    database: str
    backend: Backend
    created_at: _dt.datetime
    size_bytes: int
    sha256: str
    format: str
    target: str
    location: str
    status: BackupStatus
    duration: _dt.timedelta
    labels: Dict[str, str]
    error: str
    manifest: Optional[BackupManifest]

    @classmethod
    def from_pb(cls, b: backup_pb2.Backup) -> Backup:
        return cls(
            id=b.id,
            database=b.database,
            backend=_enum(Backend, b.backend),
            created_at=timestamp(b.created_at),
            size_bytes=b.size_bytes,
            sha256=b.sha256,
            format=b.format,
            target=b.target,
            location=b.location,
            status=_enum(BackupStatus, b.status),
            duration=duration(b.duration),
            labels=dict(b.labels),
            error=b.error,
            manifest=BackupManifest.from_pb(b.manifest) if b.HasField("manifest") else None,
        )


@dataclass(frozen=True)
class Restored:
    """The answer of `restore_backup`.

    Attributes:
        database: the restored database.
        safety_backup: for REPLACE, the backup taken of the database just before it was
            replaced (restore it to undo the restore); None for NEW.
        rows: rows (or keys) restored.
        duration: how long the restore took.
    """

    database: Database
    safety_backup: Optional[Backup]
    rows: int
    duration: _dt.timedelta

    @classmethod
    def from_pb(cls, r: backup_pb2.RestoreBackupResponse) -> Restored:
        if not r.HasField("database"):
            raise ProtocolError("the response carries no database")
        return cls(
            database=Database.from_pb(r.database),
            safety_backup=Backup.from_pb(r.safety_backup) if r.HasField("safety_backup") else None,
            rows=r.rows,
            duration=duration(r.duration),
        )


@dataclass(frozen=True)
class BackupPolicy:
    """A schedule of backups with its retention: what `set_backup_policy` takes and what the
    policy calls answer.

    ```python
    BackupPolicy("app-6h", database="app", every=dt.timedelta(hours=6), keep_last=10)
    BackupPolicy("nightly", labels={"tier": "prod"}, cron="0 3 * * *", keep_within=dt.timedelta(days=30))
    ```

    Attributes:
        name: its name: 1 to 63 characters `a-z 0-9 _ -`, starting with a letter.
        database, pattern, labels: which databases (exactly one is set): one database by name,
            names matching a pattern (`*` stands for any characters), or the databases carrying
            all of these labels. Patterns and labels need an admin key.
        every, cron: when (exactly one is set): at this interval (at least a minute), counted
            from the last run, or a cron expression in UTC, e.g. "0 3 * * *".
        keep_last: keep the newest N completed backups of each database; 0: no count rule.
        keep_within: keep the completed backups younger than this; None: no age rule. At least
            one of `keep_last` and `keep_within` must be set; a backup either keeps is kept.
        target: the server-side target; empty is the default target.
        updated_at, last_run_at, next_run_at, last_error: set by the server (when it was created
            or last replaced, last ran, runs next; the error of the last run), ignored when sent.
    """

    name: str
    database: str = ""
    pattern: str = ""
    labels: Dict[str, str] = field(default_factory=dict)
    every: Optional[_dt.timedelta] = None
    cron: str = ""
    keep_last: int = 0
    keep_within: Optional[_dt.timedelta] = None
    target: str = ""
    updated_at: Optional[_dt.datetime] = None
    last_run_at: Optional[_dt.datetime] = None
    next_run_at: Optional[_dt.datetime] = None
    last_error: str = ""

    @classmethod
    def from_pb(cls, p: backup_pb2.BackupPolicy) -> BackupPolicy:
        which = p.selector.WhichOneof("selector")
        return cls(
            name=p.name,
            database=p.selector.database,
            pattern=p.selector.pattern,
            labels=dict(p.selector.labels.labels) if which == "labels" else {},
            every=duration(p.every) if p.HasField("every") else None,
            cron=p.cron,
            keep_last=p.keep_last,
            keep_within=duration(p.keep_within) if p.HasField("keep_within") else None,
            target=p.target,
            updated_at=timestamp(p.updated_at) if p.HasField("updated_at") else None,
            last_run_at=timestamp(p.last_run_at) if p.HasField("last_run_at") else None,
            next_run_at=timestamp(p.next_run_at) if p.HasField("next_run_at") else None,
            last_error=p.last_error,
        )

    def to_pb(self) -> backup_pb2.BackupPolicy:
        """The policy as SetBackupPolicy takes it (without the fields the server sets).
        ValueError unless exactly one selector and one schedule are set."""
        selectors = [bool(self.database), bool(self.pattern), bool(self.labels)]
        if sum(selectors) != 1:
            raise ValueError(f"policy {self.name!r}: set exactly one of database, pattern and labels")
        if (self.every is None) == (not self.cron):
            raise ValueError(f"policy {self.name!r}: set exactly one of every and cron")
        if self.database:
            selector = backup_pb2.BackupSelector(database=self.database)
        elif self.pattern:
            selector = backup_pb2.BackupSelector(pattern=self.pattern)
        else:
            selector = backup_pb2.BackupSelector(labels=access_pb2.LabelSelector(labels=dict(self.labels)))
        policy = backup_pb2.BackupPolicy(
            name=self.name, selector=selector, keep_last=self.keep_last, target=self.target
        )
        if self.every is not None:
            policy.every.CopyFrom(duration_pb(self.every))
        else:
            policy.cron = self.cron
        if self.keep_within is not None:
            policy.keep_within.CopyFrom(duration_pb(self.keep_within))
        return policy


# ---- requests and answers, shared by `Client` and `AsyncClient` -----------------------------


def backup(resp: Union[backup_pb2.CreateBackupResponse, backup_pb2.GetBackupResponse]) -> Backup:
    if not resp.HasField("backup"):
        raise ProtocolError("the response carries no backup")
    return Backup.from_pb(resp.backup)


def list_backups(
    database: str,
    labels: Optional[Mapping[str, str]],
    status: StatusLike,
    page_size: int,
    page_token: str,
) -> backup_pb2.ListBackupsRequest:
    return backup_pb2.ListBackupsRequest(
        database=database,
        labels=dict(labels or {}),
        status=status_pb(status),  # type: ignore[arg-type]
        page_size=page_size,
        page_token=page_token,
    )


def backup_page(resp: backup_pb2.ListBackupsResponse) -> Tuple[List[Backup], Optional[str]]:
    return [Backup.from_pb(b) for b in resp.backups], resp.next_page_token or None


def restore_backup(
    backup_id: str, mode: RestoreModeLike, new_name: str, labels: Optional[Mapping[str, str]]
) -> backup_pb2.RestoreBackupRequest:
    return backup_pb2.RestoreBackupRequest(
        backup_id=backup_id,
        mode=restore_mode_pb(mode),  # type: ignore[arg-type]
        new_name=new_name,
        labels=dict(labels or {}),
    )


def policy_set(resp: backup_pb2.SetBackupPolicyResponse) -> Tuple[BackupPolicy, bool]:
    if not resp.HasField("policy"):
        raise ProtocolError("the response carries no policy")
    return BackupPolicy.from_pb(resp.policy), resp.created
