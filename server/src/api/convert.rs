//! Conversions between wire messages and domain values. Requests are destructured field by
//! field, so a new proto field does not compile until someone decides what it means here.

pub mod backup;
pub mod lifecycle;
pub mod policy;
pub mod semantic;

use std::collections::BTreeMap;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use time::{Date, OffsetDateTime, Time};

use crate::{
    backend::{BackendKind, Capabilities},
    core::{
        error::{Error, Result},
        forge::{DatabaseInfo, DatabasePage, DatabaseSpec, DatabaseStatus, ListFilter},
        limits::Budget,
        names::{DatabaseName, Identifier, validate_labels},
        preview::StatementPreview,
        resume::PageEvent,
        schema::{
            ColumnSchema, ForeignKeySchema, GraphSummary, IndexSchema, KeyPattern, KeySpaceSummary,
            Plan, PlanNode, Schema, TableKind, TableSchema,
        },
        summary::ColumnSummary,
        table::{ColumnSpec, ColumnType, Filter, FilterOp, Order, RowScope, Select, TableSpec},
        transfer::{
            CreateFromCsv, CsvImport, CsvImportReport, CsvOptions, ExportFormat, RdfFormat,
            RdfImport,
        },
        value::{
            Column, Row, RowEvent, Statement, StatementResult, Summary, Truncation, Value,
            ValueKind,
        },
    },
    pb,
};

/// Largest page of ListDatabases.
const MAX_PAGE_SIZE: usize = 1000;
/// Page size when the request gives none.
const DEFAULT_PAGE_SIZE: usize = 100;

// ---- values -------------------------------------------------------------------------------

impl TryFrom<pb::Value> for Value {
    type Error = Error;

    fn try_from(v: pb::Value) -> Result<Self> {
        use pb::value::Kind;
        Ok(match v.kind {
            None | Some(Kind::NullValue(_)) => Value::Null,
            Some(Kind::IntValue(i)) => Value::Int(i),
            Some(Kind::FloatValue(f)) => Value::Float(f),
            Some(Kind::TextValue(s)) => Value::Text(s),
            Some(Kind::BytesValue(b)) => Value::Bytes(b),
            Some(Kind::BoolValue(b)) => Value::Bool(b),
            Some(Kind::DecimalValue(s)) => {
                if !crate::core::value::text::is_decimal(&s) {
                    return Err(Error::invalid(
                        "params",
                        format!("{s:?} is not a decimal number"),
                    ));
                }
                Value::Decimal(s)
            }
            Some(Kind::JsonValue(s)) => Value::Json(s),
            Some(Kind::TimestampValue(t)) => {
                let nanos = i128::from(t.seconds) * 1_000_000_000 + i128::from(t.nanos);
                let ts = OffsetDateTime::from_unix_timestamp_nanos(nanos)
                    .ok()
                    .filter(|_| (0..1_000_000_000).contains(&t.nanos))
                    .ok_or_else(|| Error::invalid("params", "timestamp out of range"))?;
                Value::Timestamp(ts)
            }
            Some(Kind::DateValue(pb::Date { year, month, day })) => {
                let date = u8::try_from(month)
                    .ok()
                    .and_then(|m| time::Month::try_from(m).ok())
                    .zip(u8::try_from(day).ok())
                    .and_then(|(m, d)| time::Date::from_calendar_date(year, m, d).ok())
                    .ok_or_else(|| {
                        Error::invalid("params", format!("{year}-{month}-{day} is not a date"))
                    })?;
                Value::Date(date)
            }
            Some(Kind::UuidValue(s)) => Value::Uuid(
                Value::parse_uuid(&s)
                    .ok_or_else(|| Error::invalid("params", format!("{s:?} is not a UUID")))?,
            ),
            Some(Kind::TimeValue(pb::TimeOfDay {
                hours,
                minutes,
                seconds,
                nanos,
            })) => {
                let part = |v: i32| u8::try_from(v).ok();
                let t = part(hours)
                    .zip(part(minutes))
                    .zip(part(seconds))
                    .zip(u32::try_from(nanos).ok())
                    .and_then(|(((h, m), s), n)| time::Time::from_hms_nano(h, m, s, n).ok())
                    .ok_or_else(|| Error::invalid("params", "time of day out of range"))?;
                Value::Time(t)
            }
            Some(Kind::ArrayValue(pb::ValueList { values })) => Value::Array(
                values
                    .into_iter()
                    .map(Value::try_from)
                    .collect::<Result<_>>()?,
            ),
        })
    }
}

impl From<Value> for pb::Value {
    fn from(v: Value) -> Self {
        use pb::value::Kind;
        let kind = match v {
            Value::Null => Kind::NullValue(0),
            Value::Int(i) => Kind::IntValue(i),
            Value::Float(f) => Kind::FloatValue(f),
            Value::Text(s) => Kind::TextValue(s),
            Value::Bytes(b) => Kind::BytesValue(b),
            Value::Bool(b) => Kind::BoolValue(b),
            Value::Decimal(s) => Kind::DecimalValue(s),
            Value::Json(s) => Kind::JsonValue(s),
            Value::Timestamp(t) => Kind::TimestampValue(instant(&t)),
            Value::Date(d) => Kind::DateValue(date(&d)),
            Value::Uuid(u) => Kind::UuidValue(u),
            Value::Time(t) => Kind::TimeValue(time_of_day(&t)),
            Value::Array(items) => Kind::ArrayValue(pb::ValueList {
                values: items.into_iter().map(pb::Value::from).collect(),
            }),
        };
        pb::Value { kind: Some(kind) }
    }
}

/// An instant on the wire.
pub fn instant(t: &OffsetDateTime) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.unix_timestamp(),
        nanos: i32::try_from(t.nanosecond()).unwrap_or_default(),
    }
}

/// A calendar date on the wire.
pub fn date(d: &Date) -> pb::Date {
    pb::Date {
        year: d.year(),
        month: i32::from(u8::from(d.month())),
        day: i32::from(d.day()),
    }
}

/// A time of day on the wire.
pub fn time_of_day(t: &Time) -> pb::TimeOfDay {
    pb::TimeOfDay {
        hours: i32::from(t.hour()),
        minutes: i32::from(t.minute()),
        seconds: i32::from(t.second()),
        nanos: i32::try_from(t.nanosecond()).unwrap_or_default(),
    }
}

/// Converts request parameters.
pub fn params(values: Vec<pb::Value>) -> Result<Vec<Value>> {
    values.into_iter().map(Value::try_from).collect()
}

fn value_kind(k: ValueKind) -> pb::ValueKind {
    match k {
        ValueKind::Unspecified => pb::ValueKind::Unspecified,
        ValueKind::Int => pb::ValueKind::Int,
        ValueKind::Float => pb::ValueKind::Float,
        ValueKind::Text => pb::ValueKind::Text,
        ValueKind::Bytes => pb::ValueKind::Bytes,
        ValueKind::Bool => pb::ValueKind::Bool,
        ValueKind::Decimal => pb::ValueKind::Decimal,
        ValueKind::Json => pb::ValueKind::Json,
        ValueKind::Timestamp => pb::ValueKind::Timestamp,
        ValueKind::Date => pb::ValueKind::Date,
        ValueKind::Uuid => pb::ValueKind::Uuid,
        ValueKind::Time => pb::ValueKind::Time,
        ValueKind::Array => pb::ValueKind::Array,
    }
}

impl From<Column> for pb::Column {
    fn from(c: Column) -> Self {
        let Column {
            name,
            declared_type,
            kind,
        } = c;
        pb::Column {
            name,
            declared_type,
            kind: value_kind(kind) as i32,
        }
    }
}

fn row(r: Row) -> pb::Row {
    pb::Row {
        values: r.into_iter().map(pb::Value::from).collect(),
    }
}

impl From<StatementResult> for pb::StatementResult {
    fn from(r: StatementResult) -> Self {
        let StatementResult {
            rows_affected,
            last_insert_id,
            columns,
            rows,
        } = r;
        pb::StatementResult {
            rows_affected: i64::try_from(rows_affected).unwrap_or(i64::MAX),
            last_insert_id,
            columns: columns.into_iter().map(Into::into).collect(),
            rows: rows.into_iter().map(row).collect(),
        }
    }
}

/// A failure reported in a message rather than as the call's status (a session's statement, a
/// previewed statement): the status it would have had, with its ErrorInfo reason and metadata.
pub fn session_error(err: Error, transaction_active: bool) -> pb::SessionError {
    status_error(&tonic::Status::from(err), transaction_active)
}

/// [`session_error`] of a status already made (a session's step, after its audit record).
pub fn status_error(status: &tonic::Status, transaction_active: bool) -> pb::SessionError {
    use tonic_types::StatusExt;
    let info = status.get_details_error_info();
    pb::SessionError {
        code: status.code() as i32,
        message: status.message().to_owned(),
        transaction_active,
        reason: info.as_ref().map(|i| i.reason.clone()).unwrap_or_default(),
        metadata: info.map(|i| i.metadata).unwrap_or_default(),
    }
}

impl From<StatementPreview> for pb::StatementPreview {
    fn from(p: StatementPreview) -> Self {
        let StatementPreview {
            kind,
            rows_affected,
            columns,
            before,
            after,
            sample_note,
            plan,
            error,
            skipped,
        } = p;
        pb::StatementPreview {
            kind: kind.as_str().to_owned(),
            rows_affected: i64::try_from(rows_affected).unwrap_or(i64::MAX),
            columns: columns.into_iter().map(Into::into).collect(),
            before: before.into_iter().map(row).collect(),
            after: after.into_iter().map(row).collect(),
            sample_note,
            plan: plan.map(Into::into),
            error: error.map(|e| session_error(e.error, e.transaction_active)),
            skipped,
        }
    }
}

fn summary(s: Summary) -> pb::ResultSummary {
    let Summary {
        row_count,
        rows_affected,
        elapsed,
        truncation,
    } = s;
    pb::ResultSummary {
        row_count: i64::try_from(row_count).unwrap_or(i64::MAX),
        rows_affected: i64::try_from(rows_affected).unwrap_or(i64::MAX),
        elapsed: prost_types::Duration::try_from(elapsed).ok(),
        truncation: match truncation {
            Truncation::None => pb::Truncation::Unspecified,
            Truncation::RowLimit => pb::Truncation::RowLimit,
            Truncation::ByteLimit => pb::Truncation::ByteLimit,
        } as i32,
        resume_token: String::new(),
    }
}

impl From<ColumnSummary> for pb::ColumnSummary {
    fn from(c: ColumnSummary) -> Self {
        let ColumnSummary {
            name,
            count,
            nulls,
            distinct,
            distinct_exact,
            min,
            max,
            top_values,
            top_values_exact,
        } = c;
        let count64 = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        pb::ColumnSummary {
            name,
            count: count64(count),
            nulls: count64(nulls),
            distinct: count64(distinct),
            distinct_exact,
            min: min.map(Into::into),
            max: max.map(Into::into),
            top_values: top_values
                .into_iter()
                .map(|(v, n)| pb::ValueCount {
                    value: Some(v.into()),
                    count: count64(n),
                })
                .collect(),
            top_values_exact,
        }
    }
}

/// A Query's `max_rows` and `max_bytes` (0: the server's limits).
pub fn budget(max_rows: i64, max_bytes: i64) -> Result<Budget> {
    Ok(Budget {
        rows: u64::try_from(max_rows)
            .map_err(|_| Error::invalid("max_rows", "must not be negative"))?,
        bytes: u64::try_from(max_bytes)
            .map_err(|_| Error::invalid("max_bytes", "must not be negative"))?,
    })
}

/// The messages of a summarized Query: the header, the column summaries, the summary.
pub fn summarized(
    columns: Vec<Column>,
    summaries: Vec<ColumnSummary>,
    done: Summary,
) -> [pb::QueryResponse; 3] {
    use pb::query_response::Kind;
    [
        Kind::Header(pb::ResultHeader {
            columns: columns.into_iter().map(Into::into).collect(),
        }),
        Kind::ColumnSummaries(pb::ColumnSummaries {
            columns: summaries.into_iter().map(Into::into).collect(),
        }),
        Kind::Summary(summary(done)),
    ]
    .map(|kind| pb::QueryResponse { kind: Some(kind) })
}

/// The two streamed responses (Query and SelectRows) share one shape.
macro_rules! row_event_into {
    ($msg:ty, $kind:path) => {
        impl From<RowEvent> for $msg {
            fn from(ev: RowEvent) -> Self {
                use $kind as Kind;
                let kind = match ev {
                    RowEvent::Columns(cols) => Kind::Header(pb::ResultHeader {
                        columns: cols.into_iter().map(Into::into).collect(),
                    }),
                    RowEvent::Rows(rows) => Kind::Batch(super::wire::RowBatch::from_rows(rows)),
                    RowEvent::Encoded(rows) => {
                        Kind::Batch(super::wire::RowBatch::from_encoded(rows.bytes))
                    }
                    RowEvent::Done(s) => Kind::Summary(summary(s)),
                };
                Self { kind: Some(kind) }
            }
        }
    };
}
row_event_into!(pb::QueryResponse, pb::query_response::Kind);

impl From<PageEvent> for pb::QueryResponse {
    fn from(ev: PageEvent) -> Self {
        use pb::query_response::Kind;
        let kind = match ev {
            PageEvent::Columns(cols) => Kind::Header(pb::ResultHeader {
                columns: cols.into_iter().map(Into::into).collect(),
            }),
            PageEvent::Rows { rows, token } => {
                Kind::Batch(super::wire::RowBatch::from_rows(rows).with_resume_token(&token))
            }
            PageEvent::Done { summary: s, token } => Kind::Summary(pb::ResultSummary {
                resume_token: token.unwrap_or_default(),
                ..summary(s)
            }),
        };
        Self { kind: Some(kind) }
    }
}
row_event_into!(pb::SelectRowsResponse, pb::select_rows_response::Kind);
row_event_into!(pb::AskStreamResponse, pb::ask_stream_response::Kind);

impl TryFrom<pb::Statement> for Statement {
    type Error = Error;
    fn try_from(s: pb::Statement) -> Result<Self> {
        let pb::Statement { sql, params: p } = s;
        Ok(Statement {
            sql,
            params: params(p)?,
        })
    }
}

// ---- control plane ------------------------------------------------------------------------

/// Parses a wire backend; unspecified means SQLite.
pub fn backend_kind(raw: i32) -> Result<BackendKind> {
    match pb::Backend::try_from(raw) {
        Ok(pb::Backend::Unspecified | pb::Backend::Sqlite) => Ok(BackendKind::Sqlite),
        Ok(pb::Backend::Postgres) => Ok(BackendKind::Postgres),
        Ok(pb::Backend::Mysql) => Ok(BackendKind::Mysql),
        Ok(pb::Backend::Redis) => Ok(BackendKind::Redis),
        Ok(pb::Backend::Graph) => Ok(BackendKind::Graph),
        Err(_) => Err(Error::invalid("backend", format!("unknown backend {raw}"))),
    }
}

pub(crate) fn backend_pb(k: BackendKind) -> pb::Backend {
    match k {
        BackendKind::Sqlite => pb::Backend::Sqlite,
        BackendKind::Postgres => pb::Backend::Postgres,
        BackendKind::Mysql => pb::Backend::Mysql,
        BackendKind::Redis => pb::Backend::Redis,
        BackendKind::Graph => pb::Backend::Graph,
    }
}

impl TryFrom<pb::CreateDatabaseRequest> for DatabaseSpec {
    type Error = Error;
    fn try_from(r: pb::CreateDatabaseRequest) -> Result<Self> {
        let pb::CreateDatabaseRequest {
            name,
            backend,
            if_not_exists,
            labels,
            ttl,
            idle_ttl,
            backup_before_prune,
            // Checked by the adapter: where it goes, not what it is.
            node: _,
        } = r;
        validate_labels(&labels)?;
        Ok(DatabaseSpec {
            name: DatabaseName::parse(&name)?,
            backend: backend_kind(backend)?,
            if_not_exists,
            labels: labels.into_iter().collect(),
            lifecycle: lifecycle::create_lifecycle(ttl, idle_ttl, backup_before_prune)?,
        })
    }
}

impl TryFrom<pb::ListDatabasesRequest> for ListFilter {
    type Error = Error;
    fn try_from(r: pb::ListDatabasesRequest) -> Result<Self> {
        let pb::ListDatabasesRequest {
            page_size,
            page_token,
            backend,
            labels,
        } = r;
        let page_size = match page_size {
            n if n < 0 => return Err(Error::invalid("page_size", "must not be negative")),
            0 => DEFAULT_PAGE_SIZE,
            n => usize::try_from(n)
                .unwrap_or(MAX_PAGE_SIZE)
                .min(MAX_PAGE_SIZE),
        };
        let after = if page_token.is_empty() {
            None
        } else {
            let bad = || Error::invalid("page_token", "not a token from ListDatabases");
            let raw = URL_SAFE_NO_PAD
                .decode(page_token.as_bytes())
                .map_err(|_| bad())?;
            let text = String::from_utf8(raw).map_err(|_| bad())?;
            Some(text.strip_prefix("after:").ok_or_else(bad)?.to_owned())
        };
        Ok(ListFilter {
            page_size,
            after,
            backend: match backend {
                0 => None,
                b => Some(backend_kind(b)?),
            },
            labels: labels.into_iter().collect::<BTreeMap<_, _>>(),
        })
    }
}

pub(crate) fn timestamp(ms: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: i32::try_from(ms.rem_euclid(1000) * 1_000_000).unwrap_or_default(),
    }
}

fn capabilities(c: Capabilities) -> pb::Capabilities {
    let Capabilities {
        sql,
        transactions,
        sessions,
        typed_params,
        table_service,
        key_value,
        last_insert_id,
        returning,
        placeholder,
        transactional_ddl,
        sparql,
    } = c;
    pb::Capabilities {
        sql,
        transactions,
        sessions,
        typed_params,
        table_service,
        key_value,
        last_insert_id,
        returning,
        placeholder: placeholder.to_owned(),
        read_only_grants: false,
        transactional_ddl,
        sparql,
    }
}

impl From<DatabaseInfo> for pb::Database {
    fn from(d: DatabaseInfo) -> Self {
        let DatabaseInfo {
            name,
            backend,
            status,
            created_ms,
            last_accessed_ms,
            size_bytes,
            labels,
            capabilities: caps,
            read_only_grants,
            lifecycle: life,
            quota,
            node,
        } = d;
        let (expire_at, idle_ttl) = lifecycle::lifecycle_pb(life);
        pb::Database {
            name: name.to_string(),
            backend: backend_pb(backend) as i32,
            status: match status {
                DatabaseStatus::Ready => pb::DatabaseStatus::Ready,
                DatabaseStatus::Unavailable => pb::DatabaseStatus::Unavailable,
                DatabaseStatus::Damaged => pb::DatabaseStatus::Damaged,
            } as i32,
            created_at: Some(timestamp(created_ms)),
            last_accessed_at: Some(timestamp(last_accessed_ms)),
            size_bytes: size_bytes.map_or(0, |s| i64::try_from(s).unwrap_or(i64::MAX)),
            labels: labels.into_iter().collect(),
            capabilities: caps.map(|c| pb::Capabilities {
                read_only_grants,
                ..capabilities(c)
            }),
            expire_at,
            idle_ttl,
            backup_before_prune: life.backup_before_prune,
            max_bytes: quota.max_bytes.unwrap_or(0),
            quota_source: quota.source,
            over_quota: quota.over,
            own_max_bytes: quota.own_max_bytes.unwrap_or(0),
            node: node.unwrap_or_default(),
        }
    }
}

impl From<DatabasePage> for pb::ListDatabasesResponse {
    fn from(p: DatabasePage) -> Self {
        let DatabasePage {
            databases,
            next_after,
        } = p;
        pb::ListDatabasesResponse {
            databases: databases.into_iter().map(Into::into).collect(),
            next_page_token: next_after
                .map(|n| URL_SAFE_NO_PAD.encode(format!("after:{n}")))
                .unwrap_or_default(),
        }
    }
}

// ---- tables -------------------------------------------------------------------------------

/// Parses a table name.
pub fn table_name(raw: &str) -> Result<Identifier> {
    Identifier::parse("table", raw)
}

fn column_type(raw: i32) -> Result<ColumnType> {
    Ok(match pb::ColumnType::try_from(raw) {
        Ok(pb::ColumnType::Integer) => ColumnType::Integer,
        Ok(pb::ColumnType::Float) => ColumnType::Float,
        Ok(pb::ColumnType::Text) => ColumnType::Text,
        Ok(pb::ColumnType::Bytes) => ColumnType::Bytes,
        Ok(pb::ColumnType::Bool) => ColumnType::Bool,
        Ok(pb::ColumnType::Decimal) => ColumnType::Decimal,
        Ok(pb::ColumnType::Json) => ColumnType::Json,
        Ok(pb::ColumnType::Timestamp) => ColumnType::Timestamp,
        Ok(pb::ColumnType::Date) => ColumnType::Date,
        Ok(pb::ColumnType::Unspecified) | Err(_) => {
            return Err(Error::invalid("columns", "every column needs a type"));
        }
    })
}

impl TryFrom<pb::CreateTableRequest> for TableSpec {
    type Error = Error;
    fn try_from(r: pb::CreateTableRequest) -> Result<Self> {
        let pb::CreateTableRequest {
            database: _,
            table,
            columns,
            if_not_exists,
        } = r;
        let columns = columns
            .into_iter()
            .map(|c| {
                let pb::ColumnDefinition {
                    name,
                    r#type,
                    primary_key,
                    not_null,
                    unique,
                    default_value,
                } = c;
                Ok(ColumnSpec {
                    name: Identifier::parse("columns", &name)?,
                    ty: column_type(r#type)?,
                    primary_key,
                    not_null,
                    unique,
                    default: default_value.map(Value::try_from).transpose()?,
                })
            })
            .collect::<Result<_>>()?;
        Ok(TableSpec {
            table: table_name(&table)?,
            columns,
            if_not_exists,
        })
    }
}

/// Converts a record's map into ordered (column, value) pairs. Sorting by name makes rows with
/// the same columns produce the same statement text, so the prepared statement is reused.
pub fn record(
    values: std::collections::HashMap<String, pb::Value>,
) -> Result<Vec<(Identifier, Value)>> {
    let mut pairs = values
        .into_iter()
        .map(|(k, v)| Ok((Identifier::parse("rows", &k)?, Value::try_from(v)?)))
        .collect::<Result<Vec<_>>>()?;
    pairs.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
    Ok(pairs)
}

/// Converts filters.
pub fn filters(fs: Vec<pb::Filter>) -> Result<Vec<Filter>> {
    fs.into_iter()
        .map(|f| {
            let pb::Filter {
                column,
                op,
                value,
                values,
            } = f;
            let col = Identifier::parse("filters", &column)?;
            let operand = || -> Result<Value> {
                match value.clone().map(Value::try_from).transpose()? {
                    None | Some(Value::Null) => Err(Error::invalid(
                        "filters",
                        format!(
                            "the filter on {column:?} needs a non-null value; use IS_NULL to match NULL"
                        ),
                    )),
                    Some(v) => Ok(v),
                }
            };
            let cmp = |o| Ok(Filter::Compare(col.clone(), o, operand()?));
            match pb::FilterOperator::try_from(op) {
                Ok(pb::FilterOperator::Eq) => cmp(FilterOp::Eq),
                Ok(pb::FilterOperator::Ne) => cmp(FilterOp::Ne),
                Ok(pb::FilterOperator::Lt) => cmp(FilterOp::Lt),
                Ok(pb::FilterOperator::Le) => cmp(FilterOp::Le),
                Ok(pb::FilterOperator::Gt) => cmp(FilterOp::Gt),
                Ok(pb::FilterOperator::Ge) => cmp(FilterOp::Ge),
                Ok(pb::FilterOperator::Like) => cmp(FilterOp::Like),
                Ok(pb::FilterOperator::In) => Ok(Filter::In(col.clone(), params(values)?)),
                Ok(pb::FilterOperator::IsNull) => Ok(Filter::IsNull(col.clone())),
                Ok(pb::FilterOperator::IsNotNull) => Ok(Filter::IsNotNull(col.clone())),
                Ok(pb::FilterOperator::Unspecified) | Err(_) => Err(Error::invalid(
                    "filters",
                    format!("the filter on {column:?} needs an operator"),
                )),
            }
        })
        .collect()
}

fn non_negative(field: &'static str, n: i64) -> Result<Option<u64>> {
    match n {
        0 => Ok(None),
        n if n < 0 => Err(Error::invalid(field, "must not be negative")),
        n => Ok(Some(n.unsigned_abs())),
    }
}

impl TryFrom<pb::SelectRowsRequest> for Select {
    type Error = Error;
    fn try_from(r: pb::SelectRowsRequest) -> Result<Self> {
        let pb::SelectRowsRequest {
            database: _,
            table,
            columns,
            filters: fs,
            order_by,
            limit,
            offset,
        } = r;
        Ok(Select {
            table: table_name(&table)?,
            columns: columns
                .iter()
                .map(|c| Identifier::parse("columns", c))
                .collect::<Result<_>>()?,
            filters: filters(fs)?,
            order_by: order_by
                .into_iter()
                .map(|o| {
                    let pb::OrderBy { column, descending } = o;
                    Ok(Order {
                        column: Identifier::parse("order_by", &column)?,
                        descending,
                    })
                })
                .collect::<Result<_>>()?,
            limit: non_negative("limit", limit)?,
            offset: non_negative("offset", offset)?,
        })
    }
}

/// The scope of an update or delete.
pub fn scope(fs: Vec<pb::Filter>, all: bool) -> Result<RowScope> {
    RowScope::new(filters(fs)?, all)
}

/// The export format of a request.
pub fn export_format(raw: i32) -> Result<ExportFormat> {
    match pb::ExportFormat::try_from(raw) {
        Ok(pb::ExportFormat::Csv) => Ok(ExportFormat::Csv),
        Ok(pb::ExportFormat::Json) => Ok(ExportFormat::Json),
        Ok(pb::ExportFormat::Ndjson) => Ok(ExportFormat::Ndjson),
        Ok(pb::ExportFormat::Unspecified) | Err(_) => Err(Error::invalid(
            "format",
            "choose EXPORT_FORMAT_CSV, EXPORT_FORMAT_JSON or EXPORT_FORMAT_NDJSON",
        )),
    }
}

/// A dump's RDF format: `None` when unset (each engine's own dump format).
pub fn rdf_format(raw: i32) -> Result<Option<RdfFormat>> {
    match pb::RdfFormat::try_from(raw) {
        Ok(pb::RdfFormat::Unspecified) => Ok(None),
        Ok(pb::RdfFormat::NQuads) => Ok(Some(RdfFormat::NQuads)),
        Ok(pb::RdfFormat::NTriples) => Ok(Some(RdfFormat::NTriples)),
        Ok(pb::RdfFormat::Turtle) => Ok(Some(RdfFormat::Turtle)),
        Ok(pb::RdfFormat::JsonLd) => Ok(Some(RdfFormat::JsonLd)),
        Err(_) => Err(Error::invalid("rdf_format", "not a known RdfFormat value")),
    }
}

impl TryFrom<pb::ImportRdfHeader> for (String, RdfImport) {
    type Error = Error;

    fn try_from(h: pb::ImportRdfHeader) -> Result<Self> {
        let pb::ImportRdfHeader {
            database,
            format,
            base_iri,
            graph,
        } = h;
        let format = rdf_format(format)?.ok_or_else(|| {
            Error::invalid(
                "format",
                "choose RDF_FORMAT_N_QUADS, RDF_FORMAT_N_TRIPLES, RDF_FORMAT_TURTLE or RDF_FORMAT_JSON_LD",
            )
        })?;
        let some = |s: String| (!s.is_empty()).then_some(s);
        Ok((
            database,
            RdfImport {
                format,
                base_iri: some(base_iri),
                graph: some(graph),
                replace: false,
            },
        ))
    }
}

impl TryFrom<Option<pb::CsvOptions>> for CsvOptions {
    type Error = Error;

    fn try_from(o: Option<pb::CsvOptions>) -> Result<Self> {
        let pb::CsvOptions {
            delimiter,
            null_text,
            no_header,
        } = o.unwrap_or_default();
        let delimiter = match delimiter.as_bytes() {
            [] => b',',
            [d] if !matches!(d, b'"' | b'\r' | b'\n') && d.is_ascii() => *d,
            _ => {
                return Err(Error::invalid(
                    "csv.delimiter",
                    "must be one ASCII character other than a quote or a line break",
                ));
            }
        };
        if null_text.contains(['"', '\r', '\n']) || null_text.contains(delimiter as char) {
            return Err(Error::invalid(
                "csv.null_text",
                "must not contain a quote, a line break or the delimiter",
            ));
        }
        Ok(CsvOptions {
            delimiter,
            null_text,
            no_header,
        })
    }
}

impl TryFrom<pb::ImportCsvHeader> for (String, CsvImport) {
    type Error = Error;

    fn try_from(h: pb::ImportCsvHeader) -> Result<Self> {
        let pb::ImportCsvHeader {
            database,
            table,
            csv,
            create,
            skip_bad_rows,
        } = h;
        let create = create
            .map(|c| {
                let pb::CsvCreateTable {
                    column_types,
                    sample_rows,
                } = c;
                Ok::<_, Error>(CreateFromCsv {
                    column_types: column_types
                        .into_iter()
                        .map(|(name, ty)| Ok((name, column_type(ty)?)))
                        .collect::<Result<_>>()?,
                    sample_rows: match sample_rows {
                        0 => 100,
                        n => n.min(100_000) as usize,
                    },
                })
            })
            .transpose()?;
        Ok((
            database,
            CsvImport {
                table: Identifier::parse("table", &table)?,
                csv: CsvOptions::try_from(csv)?,
                create,
                skip_bad_rows,
            },
        ))
    }
}

impl From<CsvImportReport> for pb::ImportCsvResponse {
    fn from(r: CsvImportReport) -> Self {
        let CsvImportReport {
            rows_read,
            rows_inserted,
            rows_rejected,
            rejected,
            table_created,
        } = r;
        pb::ImportCsvResponse {
            rows_read: rows_read as i64,
            rows_inserted: rows_inserted as i64,
            rows_rejected: rows_rejected as i64,
            rejected: rejected
                .into_iter()
                .map(|(line, reason)| pb::RejectedRow {
                    line: line as i64,
                    reason,
                })
                .collect(),
            table_created,
        }
    }
}

impl From<Schema> for pb::GetSchemaResponse {
    fn from(s: Schema) -> Self {
        let text = s.render_text();
        let Schema {
            tables,
            key_space,
            graph,
        } = s;
        pb::GetSchemaResponse {
            tables: tables.into_iter().map(Into::into).collect(),
            key_space: key_space.map(Into::into),
            text,
            graph: graph.map(Into::into),
        }
    }
}

impl From<TableSchema> for pb::TableSchema {
    fn from(t: TableSchema) -> Self {
        let TableSchema {
            name,
            kind,
            columns,
            primary_key,
            indexes,
            foreign_keys,
            uniques,
            checks,
            row_estimate,
            definition,
        } = t;
        pb::TableSchema {
            name,
            kind: match kind {
                TableKind::Table => pb::TableKind::Table,
                TableKind::View => pb::TableKind::View,
            } as i32,
            columns: columns
                .into_iter()
                .map(|c| {
                    let ColumnSchema {
                        name,
                        declared_type,
                        kind,
                        nullable,
                        default,
                        primary_key,
                        auto_increment,
                        comment,
                    } = c;
                    pb::ColumnSchema {
                        name,
                        declared_type,
                        kind: value_kind(kind) as i32,
                        nullable,
                        default_expression: default,
                        primary_key,
                        auto_increment,
                        comment,
                    }
                })
                .collect(),
            primary_key,
            indexes: indexes
                .into_iter()
                .map(|i| {
                    let IndexSchema {
                        name,
                        columns,
                        unique,
                        primary,
                    } = i;
                    pb::IndexSchema {
                        name,
                        columns,
                        unique,
                        primary,
                    }
                })
                .collect(),
            foreign_keys: foreign_keys
                .into_iter()
                .map(|f| {
                    let ForeignKeySchema {
                        name,
                        columns,
                        referenced_table,
                        referenced_columns,
                        on_update,
                        on_delete,
                    } = f;
                    pb::ForeignKeySchema {
                        name,
                        columns,
                        referenced_table,
                        referenced_columns,
                        on_update,
                        on_delete,
                    }
                })
                .collect(),
            uniques: uniques
                .into_iter()
                .map(|u| pb::UniqueSchema {
                    name: u.name,
                    columns: u.columns,
                })
                .collect(),
            checks: checks
                .into_iter()
                .map(|c| pb::CheckSchema {
                    name: c.name,
                    expression: c.expression,
                })
                .collect(),
            row_estimate,
            definition,
        }
    }
}

impl From<GraphSummary> for pb::GraphSummary {
    fn from(g: GraphSummary) -> Self {
        let GraphSummary {
            total_quads,
            classes,
            predicates,
            named_graphs,
        } = g;
        let counts = |list: Vec<(String, i64)>| {
            list.into_iter()
                .map(|(iri, count)| pb::GraphTermCount { iri, count })
                .collect()
        };
        pb::GraphSummary {
            total_quads,
            classes: counts(classes),
            predicates: counts(predicates),
            named_graphs: counts(named_graphs),
        }
    }
}

impl From<KeySpaceSummary> for pb::KeySpaceSummary {
    fn from(k: KeySpaceSummary) -> Self {
        let KeySpaceSummary {
            total_keys,
            sampled_keys,
            patterns,
        } = k;
        pb::KeySpaceSummary {
            total_keys,
            sampled_keys,
            patterns: patterns
                .into_iter()
                .map(|p| {
                    let KeyPattern {
                        pattern,
                        value_type,
                        count,
                        example,
                        with_ttl,
                    } = p;
                    pb::KeyPattern {
                        pattern,
                        r#type: value_type,
                        count,
                        example,
                        with_ttl,
                    }
                })
                .collect(),
        }
    }
}

impl From<Plan> for pb::ExplainResponse {
    fn from(p: Plan) -> Self {
        let full_scans = p.full_scans();
        let Plan { raw, nodes } = p;
        pb::ExplainResponse {
            raw,
            nodes: nodes.into_iter().map(Into::into).collect(),
            full_scans,
        }
    }
}

impl From<PlanNode> for pb::PlanNode {
    fn from(n: PlanNode) -> Self {
        let PlanNode {
            operation,
            relation,
            detail,
            estimated_rows,
            estimated_cost,
            actual_rows,
            full_scan,
            children,
        } = n;
        pb::PlanNode {
            operation,
            relation,
            detail,
            estimated_rows,
            estimated_cost,
            actual_rows,
            full_scan,
            children: children.into_iter().map(Into::into).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip() {
        let values = vec![
            Value::Null,
            Value::Int(i64::MIN),
            Value::Float(1.5),
            Value::Text("héllo".into()),
            Value::Bytes(vec![0, 255]),
            Value::Bool(true),
            Value::Decimal("-12.3400".into()),
            Value::Json("{\"a\":1}".into()),
            Value::Timestamp(
                OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_123_456_789)
                    .expect("valid timestamp"),
            ),
            Value::Date(
                time::Date::from_calendar_date(2024, time::Month::February, 29)
                    .expect("valid date"),
            ),
            Value::Uuid("7d444840-9dc0-11d1-b245-5ffdce74fad2".into()),
            Value::Time(time::Time::from_hms_nano(23, 59, 1, 5).expect("valid time")),
            Value::Array(vec![Value::Int(1), Value::Null, Value::Text("x".into())]),
        ];
        for v in values {
            let back = Value::try_from(pb::Value::from(v.clone())).expect("converts back");
            assert_eq!(back, v);
        }
        assert_eq!(
            Value::try_from(pb::Value { kind: None }).expect("null"),
            Value::Null
        );
    }

    #[test]
    fn bad_values_are_rejected() {
        use pb::value::Kind;
        for kind in [
            Kind::DecimalValue("12a".into()),
            Kind::DecimalValue(".".into()),
            Kind::DateValue(pb::Date {
                year: 2023,
                month: 2,
                day: 29,
            }),
            Kind::TimestampValue(prost_types::Timestamp {
                seconds: 0,
                nanos: -1,
            }),
        ] {
            let err = Value::try_from(pb::Value { kind: Some(kind) }).expect_err("rejected");
            assert!(matches!(err, Error::InvalidArgument { .. }));
        }
    }

    #[test]
    fn page_tokens_round_trip() {
        let page = DatabasePage {
            databases: vec![],
            next_after: Some("abc".into()),
        };
        let token = pb::ListDatabasesResponse::from(page).next_page_token;
        let filter = ListFilter::try_from(pb::ListDatabasesRequest {
            page_token: token,
            ..Default::default()
        })
        .expect("token parses");
        assert_eq!(filter.after.as_deref(), Some("abc"));
        let bad = ListFilter::try_from(pb::ListDatabasesRequest {
            page_token: "!!".into(),
            ..Default::default()
        });
        assert!(bad.is_err());
    }
}
