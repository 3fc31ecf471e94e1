"""The synchronous client.

Generated from aio.py by scripts/gen-sync-client: edit aio.py, rerun the tool, commit both.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any, Iterator, Iterable, List, Mapping, Optional, Sequence, Tuple

import grpc

from dbforge import _requests as rq
from dbforge._sync_io import SyncConnection, Transaction
from dbforge import backup as bk
from dbforge.admin import ApiKey, AuditEvent, AuditVerdict, ServerStats
from dbforge.errors import from_rpc_error
from dbforge.backup import Backup, BackupPolicy, BackupStatus, Restored, RestoreModeLike, StatusLike
from dbforge.policy import LifecyclePolicy, policy_set
from dbforge.preview import StatementPreview, preview_request, previews
from dbforge.rows import Rows
from dbforge.summary import Summarized, summarize_request, summarized
from dbforge.schema import Plan, Schema, explain_request, get_schema_request
from dbforge.semantic import (
    Answer,
    Asked,
    Materialized,
    ask_request,
    ask_stream_request,
    materialize_request,
)
from dbforge.transfer import (
    DEFAULT_CHUNK_SIZE,
    Export,
    Source,
    CreateLike,
    Destination,
    FormatLike,
    ImportCsvResult,
    ImportSqlResult,
    RequestStream,
    csv_chunk,
    export_query_request,
    export_table_request,
    import_csv_header,
    import_ndjson_header,
    import_rdf_header,
    import_sql_header,
    ndjson_chunk,
    rdf_chunk,
    rdf_format,
    sql_chunk,
)
from dbforge.types import (
    Backend,
    ColumnDef,
    Created,
    Database,
    DatabaseEvent,
    ExecResult,
    Forked,
    Grant,
    StatementLike,
    TtlLike,
    Where,
)
from dbforge.v1 import (
    access_pb2,
    backup_pb2,
    database_pb2,
    operations_pb2,
    schema_pb2,
    transfer_pb2,
)

__all__ = ["Client", "Transaction"]


class Client(SyncConnection):
    """A DB-Forge client over one HTTP/2 connection. `Client` is safe to share between
    threads; `AsyncClient` is its asyncio twin, with the same methods and options, awaited.

    ```python
    with dbforge.Client() as client:          # DBFORGE_ENDPOINT, DBFORGE_API_KEY
        client.create_database("scratch")
        client.execute("scratch", "CREATE TABLE t (x INTEGER)")
        for (x,) in client.query("scratch", "SELECT x FROM t"):
            ...
    ```

    Every call raises a subclass of `DBForgeError` named after the status code on failure.
    """

    # ---- control plane ----------------------------------------------------------------------

    def create_database(
        self,
        name: str,
        *,
        backend: Backend = Backend.UNSPECIFIED,
        if_not_exists: bool = False,
        labels: Optional[Mapping[str, str]] = None,
        ttl: Optional[TtlLike] = None,
        idle_ttl: Optional[_dt.timedelta] = None,
        backup_before_prune: bool = False,
    ) -> Created:
        """Spawns a database (SQLite unless `backend` says otherwise). AlreadyExists when the
        name is taken, unless `if_not_exists` (then `created` is False).

        `ttl` (a timedelta from now, or an aware datetime) and `idle_ttl` (a timedelta without
        a data-plane call) make the gateway prune the database by itself; with
        `backup_before_prune` it backs the database up first and keeps it if that fails."""
        req = rq.create_database(
            name, backend, if_not_exists, labels, ttl, idle_ttl, backup_before_prune
        )
        return rq.created(self._unary(self.databases.CreateDatabase, req))

    def update_database(
        self,
        name: str,
        *,
        labels: Optional[Mapping[str, str]] = None,
        ttl: Optional[TtlLike] = None,
        clear_ttl: bool = False,
        idle_ttl: Optional[_dt.timedelta] = None,
        clear_idle_ttl: bool = False,
        backup_before_prune: Optional[bool] = None,
        max_bytes: Optional[int] = None,
        clear_max_bytes: bool = False,
    ) -> Database:
        """Changes a database's labels (replaced as a whole), lifecycle settings and size quota
        (`max_bytes`, or `clear_max_bytes`; a policy's quota still applies, the smaller wins);
        what is not given keeps its value. Needs the owner role. InvalidArgument for a TTL not
        in the future or a quota of 0; NotFound; PermissionDenied."""
        req = rq.update_database(
            name,
            labels,
            ttl,
            clear_ttl,
            idle_ttl,
            clear_idle_ttl,
            backup_before_prune,
            max_bytes,
            clear_max_bytes,
        )
        return rq.database(self._unary(self.databases.UpdateDatabase, req), "database")

    def watch_databases(
        self,
        *,
        labels: Optional[Mapping[str, str]] = None,
        backend: Backend = Backend.UNSPECIFIED,
        since: Optional[int] = None,
    ) -> Iterator[DatabaseEvent]:
        """Lifecycle events (created, deleted, forked, expired, pruned_idle, backed_up,
        restored, updated) of the databases this key can see, as they happen; runs until the caller
        stops iterating. With `since` (the last `sequence` seen), every later event first, each
        once and in order; OutOfRange when the gateway no longer keeps them."""
        req = rq.watch_databases(labels, backend, since)
        # No deadline: a watch lasts as long as the caller wants it.
        call = self.databases.WatchDatabases(req, metadata=self._metadata)
        try:
            for resp in call:
                yield DatabaseEvent.from_pb(resp.event)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None
        finally:
            call.cancel()  # type: ignore[no-untyped-call,unused-ignore]

    def get_database(self, name: str) -> Database:
        """Looks a database up. NotFound when it does not exist."""
        req = database_pb2.GetDatabaseRequest(name=name)
        return rq.database(self._unary(self.databases.GetDatabase, req), "database")

    def list_databases(
        self,
        *,
        backend: Backend = Backend.UNSPECIFIED,
        labels: Optional[Mapping[str, str]] = None,
        page_size: int = 0,
    ) -> List[Database]:
        """Every database that matches, in name order, following pages for you."""
        return [
            d for d in self.iter_databases(backend=backend, labels=labels, page_size=page_size)
        ]

    def iter_databases(
        self,
        *,
        backend: Backend = Backend.UNSPECIFIED,
        labels: Optional[Mapping[str, str]] = None,
        page_size: int = 0,
    ) -> Iterator[Database]:
        """Like `list_databases`, fetching each page when the previous one is used up."""
        token: Optional[str] = ""
        while token is not None:
            page, token = self.list_databases_page(
                backend=backend, labels=labels, page_size=page_size, page_token=token
            )
            for d in page:
                yield d

    def list_databases_page(
        self,
        *,
        backend: Backend = Backend.UNSPECIFIED,
        labels: Optional[Mapping[str, str]] = None,
        page_size: int = 0,
        page_token: str = "",
    ) -> Tuple[List[Database], Optional[str]]:
        """One page of databases and the token of the next page (None on the last page)."""
        req = rq.list_databases(page_size, page_token, backend, labels)
        return rq.database_page(self._unary(self.databases.ListDatabases, req))

    def delete_database(self, name: str, *, allow_missing: bool = False) -> bool:
        """Prunes a database and all its data. NotFound when it does not exist, unless
        `allow_missing`; returns whether it deleted one."""
        req = database_pb2.DeleteDatabaseRequest(name=name, allow_missing=allow_missing)
        resp: database_pb2.DeleteDatabaseResponse = self._unary(
            self.databases.DeleteDatabase, req
        )
        return resp.deleted

    def fork_database(
        self,
        source: str,
        name: str,
        *,
        labels: Optional[Mapping[str, str]] = None,
        from_backup: str = "",
        ttl: Optional[TtlLike] = None,
        idle_ttl: Optional[_dt.timedelta] = None,
        backup_before_prune: bool = False,
    ) -> Forked:
        """Forks `source` into the new database `name`: a copy of its data as it is now (or as
        the backup `from_backup` holds it), independent from then on and owned by this key.
        `ttl`, `idle_ttl` and `backup_before_prune` are the fork's own, as in
        `create_database` (the source's are not copied).

        Needs the read role on `source` (the owner role with `from_backup`) and the right to
        create `name`. AlreadyExists when `name` is taken; NotFound; PermissionDenied;
        FailedPrecondition for a backup of another database; Unavailable while the source is
        being restored; ResourceExhausted past a lifecycle policy's per-key limit."""
        req = rq.fork_database(
            source, name, labels, from_backup, ttl, idle_ttl, backup_before_prune
        )
        return Forked.from_pb(self._unary(self.databases.ForkDatabase, req))

    def set_lifecycle_policy(self, policy: LifecyclePolicy) -> Tuple[LifecyclePolicy, bool]:
        """Creates or replaces (by name) a lifecycle policy; returns it as stored and whether it
        is new. Needs an admin key (PermissionDenied otherwise); InvalidArgument for a policy
        without selector or rules, or a duration that is not positive."""
        req = database_pb2.SetLifecyclePolicyRequest(policy=policy.to_pb())
        return policy_set(self._unary(self.databases.SetLifecyclePolicy, req))

    def list_lifecycle_policies(self) -> List[LifecyclePolicy]:
        """The lifecycle policies, by name: all for an admin key; for other keys those selecting
        a database the key can see."""
        resp: database_pb2.ListLifecyclePoliciesResponse = self._unary(
            self.databases.ListLifecyclePolicies, database_pb2.ListLifecyclePoliciesRequest()
        )
        return [LifecyclePolicy.from_pb(p) for p in resp.policies]

    def delete_lifecycle_policy(self, name: str, *, allow_missing: bool = False) -> bool:
        """Deletes a lifecycle policy (admin key). NotFound when it does not exist, unless
        `allow_missing`; returns whether it deleted one."""
        req = database_pb2.DeleteLifecyclePolicyRequest(name=name, allow_missing=allow_missing)
        resp: database_pb2.DeleteLifecyclePolicyResponse = self._unary(
            self.databases.DeleteLifecyclePolicy, req
        )
        return resp.deleted

    # ---- SQL ----------------------------------------------------------------------------------

    def execute(self, database: str, sql: str, params: Sequence[Any] = ()) -> ExecResult:
        """Runs one statement and returns its whole result (at most the server's row limit,
        10 000 by default; use `query` for more)."""
        req = rq.execute(database, sql, params)
        return rq.exec_result(self._unary(self.queries.Execute, req))

    def query(
        self,
        database: str,
        sql: str,
        params: Sequence[Any] = (),
        *,
        max_rows: int = 0,
        max_bytes: int = 0,
        read_only: bool = False,
        resumable: bool = False,
    ) -> Rows:
        """Runs one statement and streams its rows (tuples; `.dicts()` for dicts). The columns
        are known when this returns. `max_rows` and `max_bytes` (of row data) stop early (0: the
        server's limits; `summary.truncation` says which cut it); `read_only` runs it on the
        read-only login whatever the key's role, so the engine refuses any write. With
        `resumable`, the server keeps the stream's cursor for a while (60 s by default) when the
        connection drops or a budget cuts it: `rows.resume_token` and `resume_query` continue it,
        the remaining rows exactly once and in order."""
        req = rq.query(database, sql, params, max_rows, max_bytes, read_only, resumable)
        return self._stream(self.queries.Query, req)

    def resume_query(
        self, token: str, *, max_rows: int = 0, max_bytes: int = 0
    ) -> Rows:
        """Continues a resumable stream at `token` (`rows.resume_token`, or a summary's after a
        budget cut), within new budgets. `NotFound` once it failed, expired or is another
        key's; `FailedPrecondition` when the token's rows are older than the server keeps
        for replay."""
        return self._stream(self.queries.Query, rq.resume(token, max_rows, max_bytes))

    def summarize(
        self,
        database: str,
        sql: str,
        params: Sequence[Any] = (),
        *,
        max_rows: int = 0,
        read_only: bool = False,
    ) -> Summarized:
        """Runs one statement and returns a summary of each result column instead of its rows:
        count, NULLs, distinct values, min, max and the most frequent values, computed by the
        gateway in one pass over the rows (at most `max_rows`; 0: the server's limit). With
        `read_only` it runs on the read-only login whatever the key's role, so the engine
        refuses any write."""
        req = summarize_request(database, sql, params, max_rows, read_only)
        return summarized(self._collect(self.queries.Query, req))

    def batch(
        self, database: str, statements: Iterable[StatementLike], *, transaction: bool = False
    ) -> List[ExecResult]:
        """Runs statements in order: `Statement`s, SQL strings or `(sql, params)` pairs. With
        `transaction`, all or nothing; without, the first failure stops the batch."""
        req = rq.batch(database, statements, transaction)
        return rq.batch_results(self._unary(self.queries.ExecuteBatch, req))

    def preview(
        self, database: str, statements: Iterable[StatementLike], *, sample_rows: int = 0
    ) -> List[StatementPreview]:
        """A dry run: runs the statements in one transaction that is always rolled back and
        returns what each would do (rows affected, samples of up to `sample_rows` rows before
        and after, default 5, at most 100; the plan; the engine's error). Nothing is committed.
        MySQL refuses DDL (it commits implicitly) and Redis refuses previews, both with
        `FailedPrecondition`, before anything runs.

        ```python
        [p] = client.preview("db", [("DELETE FROM users WHERE last_seen < ?", ["2020-01-01"])])
        print(p.rows_affected, p.before)
        ```
        """
        req = preview_request(database, statements, sample_rows)
        return previews(self._unary(self.queries.Preview, req))

    def transaction(self, database: str) -> Transaction:
        """Begins an interactive transaction; use it as a context manager, which commits when
        the block succeeds and rolls back when it raises.

        ```python
        with client.transaction("db") as tx:
            tx.execute("UPDATE accounts SET balance = balance - ? WHERE id = ?", [10, 1])
            tx.execute("UPDATE accounts SET balance = balance + ? WHERE id = ?", [10, 2])
        ```

        (`AsyncTransaction` opens its session when the block starts, or on its `begin()`.)
        """
        return Transaction(self, database)

    # ---- tables -------------------------------------------------------------------------------

    def create_table(
        self,
        database: str,
        table: str,
        columns: Sequence[ColumnDef],
        *,
        if_not_exists: bool = False,
    ) -> bool:
        """Creates a table; with `if_not_exists`, returns False when it was already there."""
        req = rq.create_table(database, table, columns, if_not_exists)
        resp = self._unary(self.tables.CreateTable, req)
        return bool(resp.created)

    def insert_rows(
        self, database: str, table: str, rows: Iterable[Mapping[str, Any]]
    ) -> int:
        """Inserts rows (column → value dicts) in one transaction; returns how many."""
        resp = self._unary(self.tables.InsertRows, rq.insert_rows(database, table, rows))
        return int(resp.rows_inserted)

    def select_rows(
        self,
        database: str,
        table: str,
        *,
        columns: Optional[Sequence[str]] = None,
        where: Where = None,
        order_by: rq.OrderBy = None,
        limit: int = 0,
        offset: int = 0,
    ) -> Rows:
        """Streams the rows matching `where`: a dict of column → value (`=`; None: IS NULL;
        a list: IN) or `Filter`s. `order_by` names columns, `-name` for descending."""
        req = rq.select_rows(database, table, columns, where, order_by, limit, offset)
        return self._stream(self.tables.SelectRows, req)

    def update_rows(
        self,
        database: str,
        table: str,
        set: Mapping[str, Any],
        *,
        where: Where = None,
        all: bool = False,
    ) -> int:
        """Sets columns on the rows matching `where` (required unless `all=True`); returns how
        many rows changed."""
        req = rq.update_rows(database, table, set, where, all)
        resp = self._unary(self.tables.UpdateRows, req)
        return int(resp.rows_affected)

    def delete_rows(
        self, database: str, table: str, *, where: Where = None, all: bool = False
    ) -> int:
        """Deletes the rows matching `where` (required unless `all=True`); returns how many."""
        resp = self._unary(self.tables.DeleteRows, rq.delete_rows(database, table, where, all))
        return int(resp.rows_affected)

    # ---- schema and plans ---------------------------------------------------------------------

    def get_schema(self, database: str, table: Optional[str] = None) -> Schema:
        """Describes the whole database, or one table or view: columns, keys, indexes,
        constraints, row estimates, and `text` (CREATE statements, compact, for a prompt). On
        Redis, `key_space` summarizes a sample of keys. NotFound for an unknown table."""
        resp: schema_pb2.GetSchemaResponse = self._unary(
            self.schema.GetSchema, get_schema_request(database, table)
        )
        return Schema.from_pb(resp)

    def explain(
        self, database: str, sql: str, params: Sequence[Any] = (), *, analyze: bool = False
    ) -> Plan:
        """The statement's query plan: `raw` as the backend writes it, `nodes` normalized, and
        `full_scans`, the tables it reads in full. With `analyze` (PostgreSQL, MariaDB) the
        statement runs inside a transaction that is rolled back; Unimplemented on SQLite."""
        resp: schema_pb2.ExplainResponse = self._unary(
            self.schema.Explain, explain_request(database, sql, params, analyze)
        )
        return Plan.from_pb(resp)

    def ask(
        self,
        database: str,
        question: str,
        *,
        run: bool = False,
        max_rows: int = 0,
        timeout: Optional[_dt.timedelta] = None,
    ) -> Asked:
        """Asks a question about the database's data in natural language. The gateway's model
        writes one SQL query grounded in the schema (join paths, comments, sample values), the
        engine's EXPLAIN checks it (up to two repair rounds), and with `run` it runs on the
        read-only login: `rows` (at most `max_rows`, 100 by default) within `timeout` (the
        server's statement timeout by default). `answer.status` is "GAVE_UP" with a `message`
        when no valid query came; `answer.cached` when the same question about the same schema
        was answered before. FailedPrecondition when the gateway has no model (`--llm-url`);
        Unimplemented on Redis."""
        resp = self._unary(
            self.semantic.Ask, ask_request(database, question, run, max_rows, timeout)
        )
        return Asked.from_pb(resp)

    def ask_stream(
        self,
        database: str,
        question: str,
        *,
        run: bool = False,
        max_rows: int = 0,
        timeout: Optional[_dt.timedelta] = None,
    ) -> Tuple[Answer, Optional[Rows]]:
        """Like `ask`, with the rows streamed as `query` streams them: the answer, and the rows
        (`AsyncRows`) when `run` was asked and the question was answered, else None. `max_rows`
        0 means the server's stream limit."""
        req = ask_stream_request(database, question, run, max_rows, timeout)
        return self._answer_stream(self.semantic.AskStream, req, run)

    def materialize_graph(
        self,
        source: str,
        graph_database: str,
        *,
        base_iri: Optional[str] = None,
        graph: Optional[str] = None,
        replace: bool = False,
    ) -> Materialized:
        """Maps the SQL database `source` into the graph database `graph_database` by the W3C
        Direct Mapping: each row a subject `<B table/key=value>` of class `<B table>`, each
        non-NULL column a typed literal on `<B table#column>`, each foreign key a link
        `<B table#ref-column>` to the referenced row, B being `base_iri`
        ("urn:dbforge:<source>/" by default). Into the named `graph` if given; `replace`
        clears that graph first. All or nothing, in one transaction. Needs read access to the
        source and write access to the graph database; Unimplemented when the source is not
        SQL, InvalidArgument when the target is not a graph database."""
        resp = self._unary(
            self.semantic.MaterializeGraph,
            materialize_request(source, graph_database, base_iri, graph, replace),
        )
        return Materialized.from_pb(resp)

    # ---- export and import --------------------------------------------------------------------

    def export_table(
        self,
        database: str,
        table: str,
        format: FormatLike = "csv",
        *,
        delimiter: Optional[str] = None,
        null_text: Optional[str] = None,
    ) -> Export:
        """Streams a table (or view) as a "csv", "json" or "ndjson" file: iterate the returned
        `Export` (`AsyncExport`) for bytes chunks, or use `export_table_to`. CSV has a header
        row; `delimiter` (default ",") and `null_text` (default empty) apply to CSV only."""
        req = export_table_request(database, table, format, delimiter, null_text)
        return self._export(self.transfer.ExportTable, req)

    def export_query(
        self,
        database: str,
        sql: str,
        params: Sequence[Any] = (),
        format: FormatLike = "csv",
        *,
        delimiter: Optional[str] = None,
        null_text: Optional[str] = None,
    ) -> Export:
        """Streams the rows of one read statement as a file; see `export_table`."""
        req = export_query_request(database, sql, params, format, delimiter, null_text)
        return self._export(self.transfer.ExportQuery, req)

    def dump_database(self, database: str, *, schema_only: bool = False) -> Export:
        """Streams a dump of the whole database: an SQL script in the backend's dialect (schema,
        then the data as INSERTs; `schema_only` leaves the data out) that `import_sql` replays
        into a fresh database of the same backend, or NDJSON key records on Redis
        (`import_ndjson`). `Export.rows` counts the rows or keys dumped."""
        req = transfer_pb2.DumpDatabaseRequest(database=database, schema_only=schema_only)
        return self._export(self.transfer.DumpDatabase, req)

    def dump_rdf(self, database: str, format: str = "nquads") -> Export:
        """Streams a graph database's quads as an RDF file: "nquads", "ntriples", "turtle" or
        "jsonld" (N-Triples and Turtle hold the default graph only)."""
        req = transfer_pb2.DumpDatabaseRequest(database=database, rdf_format=rdf_format(format))
        return self._export(self.transfer.DumpDatabase, req)

    def export_table_to(
        self,
        database: str,
        table: str,
        dest: Destination,
        format: FormatLike = "csv",
        *,
        delimiter: Optional[str] = None,
        null_text: Optional[str] = None,
    ) -> int:
        """`export_table` written to `dest`, a path or a binary file; returns the row count. A
        path that this call created is removed again when the export fails."""
        export = self.export_table(
            database, table, format, delimiter=delimiter, null_text=null_text
        )
        with export:
            return export.write_to(dest)

    def export_query_to(
        self,
        database: str,
        sql: str,
        dest: Destination,
        params: Sequence[Any] = (),
        format: FormatLike = "csv",
        *,
        delimiter: Optional[str] = None,
        null_text: Optional[str] = None,
    ) -> int:
        """`export_query` written to a path or binary file; returns the row count."""
        export = self.export_query(
            database, sql, params, format, delimiter=delimiter, null_text=null_text
        )
        with export:
            return export.write_to(dest)

    def dump_database_to(
        self, database: str, dest: Destination, *, schema_only: bool = False
    ) -> int:
        """`dump_database` written to a path or binary file; returns the rows (or keys) dumped."""
        export = self.dump_database(database, schema_only=schema_only)
        with export:
            return export.write_to(dest)

    def import_csv(
        self,
        database: str,
        table: str,
        source: Source,
        *,
        create: CreateLike = False,
        sample_rows: int = 0,
        skip_bad_rows: bool = False,
        delimiter: Optional[str] = None,
        null_text: Optional[str] = None,
        no_header: bool = False,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
    ) -> ImportCsvResult:
        """Imports a CSV file into `table`. `source` is bytes, a path (`str` or `os.PathLike`; CSV
        text goes in as bytes, `text.encode()`), a binary file object or an iterable of bytes; it
        is sent in `chunk_size` pieces as it is read.

        `create=True` creates the table from the header, inferring each column's type from the
        first `sample_rows` rows (100 when 0); a mapping of header name → `ColumnType` overrides
        the inferred types (AlreadyExists when the table exists). Otherwise the table must exist
        and header names must match its columns. By default all rows go in one transaction and a
        bad row fails the call (InvalidArgument naming its line, nothing inserted); with
        `skip_bad_rows` bad rows are reported in `rejected` as (line, reason) and the others are
        inserted. `null_text` is read as NULL (default: the empty field; `""` quoted is always
        the empty string); `no_header` takes columns in the table's order. `AsyncClient` also
        takes an async iterable of bytes, and reads files in a worker thread."""
        header = import_csv_header(
            database, table, create, sample_rows, skip_bad_rows, delimiter, null_text, no_header
        )
        resp: transfer_pb2.ImportCsvResponse = self._import(
            self.transfer.ImportCsv, RequestStream(header, csv_chunk), source, chunk_size, True
        )
        return ImportCsvResult.from_pb(resp)

    def import_sql(
        self,
        database: str,
        script: Source,
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
    ) -> ImportSqlResult:
        """Runs a multi-statement SQL script, such as a `dump_database` output. `script` is the
        SQL as a `str`, or bytes, an `os.PathLike` path (a `pathlib.Path`), a binary file object
        or an iterable of bytes. PostgreSQL and SQLite apply it entirely or not at all; MySQL
        keeps the DDL that ran before a failing statement. The error names the statement's
        number and line."""
        resp: transfer_pb2.ImportSqlResponse = self._import(
            self.transfer.ImportSql,
            RequestStream(import_sql_header(database), sql_chunk),
            script,
            chunk_size,
            False,
        )
        return ImportSqlResult.from_pb(resp)

    def import_ndjson(
        self, database: str, source: Source, *, chunk_size: int = DEFAULT_CHUNK_SIZE
    ) -> int:
        """Imports NDJSON key records (a Redis `dump_database` output) atomically, replacing
        keys of the same name; returns how many records. `source` as in `import_csv`."""
        resp: transfer_pb2.ImportNdjsonResponse = self._import(
            self.transfer.ImportNdjson,
            RequestStream(import_ndjson_header(database), ndjson_chunk),
            source,
            chunk_size,
            True,
        )
        return resp.records

    def import_rdf(
        self,
        database: str,
        source: Source,
        format: str,
        *,
        base_iri: str = "",
        graph: str = "",
        chunk_size: int = DEFAULT_CHUNK_SIZE,
    ) -> int:
        """Loads an RDF file ("nquads", "ntriples", "turtle" or "jsonld") into a graph
        database atomically; returns the quads read. `graph` (N-Triples and Turtle) names the
        graph the triples go into. `source` as in `import_csv`."""
        resp: transfer_pb2.ImportRdfResponse = self._import(
            self.transfer.ImportRdf,
            RequestStream(import_rdf_header(database, format, base_iri, graph), rdf_chunk),
            source,
            chunk_size,
            True,
        )
        return resp.quads

    # ---- access -------------------------------------------------------------------------------

    def create_api_key(
        self,
        name: str,
        *,
        admin: bool = False,
        can_create: bool = False,
        create_quota: int = 0,
        grants: Sequence[Grant] = (),
        expires_at: Optional[_dt.datetime] = None,
    ) -> Tuple[ApiKey, str]:
        """Creates an API key (admin keys only). Returns its description and its secret, which
        the server shows only this once."""
        req = rq.create_api_key(name, admin, can_create, create_quota, grants, expires_at)
        return rq.created_key(self._unary(self.access.CreateApiKey, req))

    def list_api_keys(self, *, include_inactive: bool = False) -> List[ApiKey]:
        """Lists API keys, never their secrets (admin keys only); with `include_inactive`, also
        the revoked and expired ones."""
        req = access_pb2.ListApiKeysRequest(include_inactive=include_inactive)
        resp: access_pb2.ListApiKeysResponse = self._unary(self.access.ListApiKeys, req)
        return [ApiKey.from_pb(k) for k in resp.api_keys]

    def revoke_api_key(self, key_id: str) -> bool:
        """Revokes a key at once (admin keys only); False when it already was."""
        resp = self._unary(self.access.RevokeApiKey, access_pb2.RevokeApiKeyRequest(id=key_id))
        return bool(resp.revoked)

    def who_am_i(self) -> ApiKey:
        """Describes the key this client uses."""
        return rq.who_am_i(self._unary(self.access.WhoAmI, access_pb2.WhoAmIRequest()))

    # ---- operations (admin keys) --------------------------------------------------------------

    def server_stats(self) -> ServerStats:
        """Operational figures: connections, streams, sessions, per-RPC calls and errors."""
        resp: operations_pb2.GetServerStatsResponse = self._unary(
            self.operations.GetServerStats, operations_pb2.GetServerStatsRequest()
        )
        return ServerStats.from_pb(resp)

    def list_audit_events(
        self,
        *,
        key_id: str = "",
        database: str = "",
        outcome: str = "",
        since: Optional[_dt.datetime] = None,
        until: Optional[_dt.datetime] = None,
        page_size: int = 0,
        page_token: str = "",
    ) -> Tuple[List[AuditEvent], Optional[str]]:
        """One page of audit records, oldest first, and the token of the next page (None on
        the last)."""
        req = rq.list_audit_events(key_id, database, outcome, since, until, page_size, page_token)
        return rq.audit_page(self._unary(self.operations.ListAuditEvents, req))

    def verify_audit_log(self) -> AuditVerdict:
        """Walks the audit log's hash chain and reports the first broken record."""
        resp: operations_pb2.VerifyAuditLogResponse = self._unary(
            self.operations.VerifyAuditLog, operations_pb2.VerifyAuditLogRequest()
        )
        return AuditVerdict.from_pb(resp)

    # ---- backups ------------------------------------------------------------------------------

    def create_backup(
        self, database: str, *, target: str = "", labels: Optional[Mapping[str, str]] = None
    ) -> Backup:
        """Backs `database` up now, to the server's `target` (empty: its default target), and
        returns when the backup is stored. PermissionDenied without the owner role; NotFound
        for an unknown database or target; Unavailable when the target or the database's
        server cannot be reached (the backup is then listed as FAILED); Aborted while another
        backup of the same database runs. The client's `timeout` applies, as to every call."""
        req = backup_pb2.CreateBackupRequest(database=database, target=target, labels=dict(labels or {}))
        return bk.backup(self._unary(self.backups.CreateBackup, req))

    def get_backup(self, backup_id: str) -> Backup:
        """Looks a backup up. NotFound when it does not exist or is of a database the key
        cannot see."""
        req = backup_pb2.GetBackupRequest(id=backup_id)
        return bk.backup(self._unary(self.backups.GetBackup, req))

    def list_backups(
        self,
        *,
        database: str = "",
        labels: Optional[Mapping[str, str]] = None,
        status: StatusLike = BackupStatus.UNSPECIFIED,
        page_size: int = 0,
    ) -> List[Backup]:
        """Every backup that matches, newest first, following pages for you: of one
        `database` (it may have been deleted since), carrying all `labels`, in one `status`
        (a `BackupStatus` or "running", "completed", "failed")."""
        return [
            b
            for b in self.iter_backups(
                database=database, labels=labels, status=status, page_size=page_size
            )
        ]

    def iter_backups(
        self,
        *,
        database: str = "",
        labels: Optional[Mapping[str, str]] = None,
        status: StatusLike = BackupStatus.UNSPECIFIED,
        page_size: int = 0,
    ) -> Iterator[Backup]:
        """Like `list_backups`, fetching each page when the previous one is used up."""
        token: Optional[str] = ""
        while token is not None:
            page, token = self.list_backups_page(
                database=database, labels=labels, status=status, page_size=page_size, page_token=token
            )
            for b in page:
                yield b

    def list_backups_page(
        self,
        *,
        database: str = "",
        labels: Optional[Mapping[str, str]] = None,
        status: StatusLike = BackupStatus.UNSPECIFIED,
        page_size: int = 0,
        page_token: str = "",
    ) -> Tuple[List[Backup], Optional[str]]:
        """One page of backups (`page_size` 0: the server's default of 100; at most 1000) and
        the token of the next page (None on the last page)."""
        req = bk.list_backups(database, labels, status, page_size, page_token)
        return bk.backup_page(self._unary(self.backups.ListBackups, req))

    def delete_backup(self, backup_id: str, *, allow_missing: bool = False) -> bool:
        """Deletes a backup: its stored object, its manifest and its record. NotFound when it
        does not exist, unless `allow_missing`; FailedPrecondition while it is running.
        Returns whether it deleted one."""
        req = backup_pb2.DeleteBackupRequest(id=backup_id, allow_missing=allow_missing)
        resp: backup_pb2.DeleteBackupResponse = self._unary(self.backups.DeleteBackup, req)
        return resp.deleted

    def restore_backup(
        self,
        backup_id: str,
        mode: RestoreModeLike,
        *,
        new_name: str = "",
        labels: Optional[Mapping[str, str]] = None,
    ) -> Restored:
        """Restores a completed backup. `RestoreMode.REPLACE` ("replace") rebuilds the database
        it came from, after a safety backup of it (`Restored.safety_backup`); calls on that
        database fail with Unavailable until the restored copy is swapped in.
        `RestoreMode.NEW` ("new") restores into a new database `new_name` with `labels`,
        leaving the original alone.

        DataLoss when the stored backup does not match its checksum or manifest (nothing
        changed); FailedPrecondition for a backup that is not COMPLETED or a restore onto
        another backend; AlreadyExists when `new_name` is taken; NotFound for an unknown
        backup; PermissionDenied."""
        req = bk.restore_backup(backup_id, mode, new_name, labels)
        resp: backup_pb2.RestoreBackupResponse = self._unary(self.backups.RestoreBackup, req)
        return Restored.from_pb(resp)

    def set_backup_policy(self, policy: BackupPolicy) -> Tuple[BackupPolicy, bool]:
        """Creates or replaces (by name) a backup policy; returns it as stored (with its next
        run) and whether it is new. ValueError unless exactly one selector and one schedule are
        set; InvalidArgument for a bad schedule, selector or retention."""
        req = backup_pb2.SetBackupPolicyRequest(policy=policy.to_pb())
        return bk.policy_set(self._unary(self.backups.SetBackupPolicy, req))

    def list_backup_policies(self) -> List[BackupPolicy]:
        """The backup policies the key can see, by name."""
        resp: backup_pb2.ListBackupPoliciesResponse = self._unary(
            self.backups.ListBackupPolicies, backup_pb2.ListBackupPoliciesRequest()
        )
        return [BackupPolicy.from_pb(p) for p in resp.policies]

    def delete_backup_policy(self, name: str, *, allow_missing: bool = False) -> bool:
        """Deletes a backup policy (its backups stay). NotFound when it does not exist, unless
        `allow_missing`; returns whether it deleted one."""
        req = backup_pb2.DeleteBackupPolicyRequest(name=name, allow_missing=allow_missing)
        resp: backup_pb2.DeleteBackupPolicyResponse = self._unary(
            self.backups.DeleteBackupPolicy, req
        )
        return resp.deleted
