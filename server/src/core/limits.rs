//! Limits every request is held to. Defaults are chosen for a shared gateway on a small machine.

use std::{sync::Arc, time::Duration};

use super::value::RowEncoder;

/// Limits applied to one statement or stream.
#[derive(Debug, Clone)]
pub struct StatementLimits {
    /// Most rows an `execute` may return, or a stream may send.
    pub max_rows: u64,
    /// Most approximate bytes a result may carry.
    pub max_bytes: u64,
    /// Wall-clock time the statement (or the whole stream) may take.
    pub timeout: Duration,
    /// Rows per streamed batch, at most.
    pub batch_rows: usize,
    /// Approximate bytes per streamed batch, at most.
    pub batch_bytes: usize,
    /// Batches buffered between the engine and the client; the backpressure window.
    pub stream_buffer: usize,
    /// Run with read-only access: the engine must refuse every write (see
    /// [`Backend::enforces_read_only`](crate::backend::Backend::enforces_read_only)).
    pub read_only: bool,
    /// Encodes a stream's rows as they are read ([`RowEvent::Encoded`](super::value::RowEvent::Encoded) batches); without one
    /// they come as [`RowEvent::Rows`](super::value::RowEvent::Rows). Only streams use it.
    pub encoder: Option<Arc<dyn RowEncoder>>,
}

/// Request and result limits.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Rows a streamed query may return before it is cut (summary says ROW_LIMIT).
    pub max_stream_rows: u64,
    /// Bytes a streamed query may return before it is cut (summary says BYTE_LIMIT).
    pub max_stream_bytes: u64,
    /// Rows an Execute (or a Session statement) may return inline; more is RESOURCE_EXHAUSTED.
    pub max_execute_rows: u64,
    /// Largest gRPC message in either direction, in bytes.
    pub max_message_bytes: usize,
    /// Wall-clock time a statement, or a whole stream, may take.
    pub statement_timeout: Duration,
    /// Rows per streamed batch, at most.
    pub batch_rows: usize,
    /// Approximate bytes per streamed batch, at most.
    pub batch_bytes: usize,
    /// Batches buffered per stream: the backpressure window (with `batch_bytes`, the memory a
    /// stream may hold).
    pub stream_buffer: usize,
    /// Statements in one ExecuteBatch, at most.
    pub max_batch_statements: usize,
    /// Rows in one InsertRows, at most.
    pub max_insert_rows: usize,
    /// Time a Session may wait for its next message before it is rolled back.
    pub session_idle_timeout: Duration,
    /// Bytes one import (CSV, SQL script, NDJSON) may send in total.
    pub max_import_bytes: u64,
    /// Bytes one line of an import (a CSV record, an NDJSON record, an SQL statement) may hold.
    pub max_import_line_bytes: usize,
    /// Wall-clock time an export, dump or import may take as a whole; each statement inside it
    /// still has `statement_timeout`.
    pub transfer_timeout: Duration,
    /// Bounds of resumable Query streams.
    pub resume: super::resume::ResumeLimits,
}

/// The defaults of [`Limits`], one constant each: `Limits::default()` and the server's flags
/// (`--max-rows`, …, whose `--help` shows them) both read these.
pub mod defaults {
    use std::time::Duration;

    /// [`Limits::max_stream_rows`](super::Limits::max_stream_rows).
    pub const MAX_STREAM_ROWS: u64 = 100_000_000;
    /// [`Limits::max_stream_bytes`](super::Limits::max_stream_bytes): 16 GiB.
    pub const MAX_STREAM_BYTES: u64 = 16 << 30;
    /// [`Limits::max_execute_rows`](super::Limits::max_execute_rows).
    pub const MAX_EXECUTE_ROWS: u64 = 10_000;
    /// [`Limits::max_message_bytes`](super::Limits::max_message_bytes): 4 MiB, gRPC's usual.
    pub const MAX_MESSAGE_BYTES: usize = 4 << 20;
    /// [`Limits::statement_timeout`](super::Limits::statement_timeout).
    pub const STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);
    /// [`Limits::batch_rows`](super::Limits::batch_rows).
    pub const BATCH_ROWS: usize = 4096;
    /// [`Limits::batch_bytes`](super::Limits::batch_bytes): 1 MiB.
    pub const BATCH_BYTES: usize = 1 << 20;
    /// [`Limits::stream_buffer`](super::Limits::stream_buffer): with 1 MiB batches, at most
    /// about 8 MiB in flight per stream.
    pub const STREAM_BUFFER: usize = 8;
    /// [`Limits::max_batch_statements`](super::Limits::max_batch_statements).
    pub const MAX_BATCH_STATEMENTS: usize = 10_000;
    /// [`Limits::max_insert_rows`](super::Limits::max_insert_rows).
    pub const MAX_INSERT_ROWS: usize = 10_000;
    /// [`Limits::session_idle_timeout`](super::Limits::session_idle_timeout).
    pub const SESSION_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
    /// [`Limits::max_import_bytes`](super::Limits::max_import_bytes): 256 MiB.
    pub const MAX_IMPORT_BYTES: u64 = 256 << 20;
    /// [`Limits::max_import_line_bytes`](super::Limits::max_import_line_bytes): 16 MiB.
    pub const MAX_IMPORT_LINE_BYTES: usize = 16 << 20;
    /// [`Limits::transfer_timeout`](super::Limits::transfer_timeout): one hour.
    pub const TRANSFER_TIMEOUT: Duration = Duration::from_secs(3600);
}

impl Default for Limits {
    fn default() -> Self {
        use defaults::*;
        Self {
            max_stream_rows: MAX_STREAM_ROWS,
            max_stream_bytes: MAX_STREAM_BYTES,
            max_execute_rows: MAX_EXECUTE_ROWS,
            max_message_bytes: MAX_MESSAGE_BYTES,
            statement_timeout: STATEMENT_TIMEOUT,
            batch_rows: BATCH_ROWS,
            batch_bytes: BATCH_BYTES,
            stream_buffer: STREAM_BUFFER,
            max_batch_statements: MAX_BATCH_STATEMENTS,
            max_insert_rows: MAX_INSERT_ROWS,
            session_idle_timeout: SESSION_IDLE_TIMEOUT,
            max_import_bytes: MAX_IMPORT_BYTES,
            max_import_line_bytes: MAX_IMPORT_LINE_BYTES,
            transfer_timeout: TRANSFER_TIMEOUT,
            resume: super::resume::ResumeLimits::default(),
        }
    }
}

impl Limits {
    /// Limits for a statement whose result travels in one message.
    pub fn whole_result(&self) -> StatementLimits {
        StatementLimits {
            max_rows: self.max_execute_rows,
            // Leave room for the envelope so the response still fits in one message.
            max_bytes: (self.max_message_bytes - self.max_message_bytes / 16) as u64,
            timeout: self.statement_timeout,
            batch_rows: self.batch_rows,
            batch_bytes: self.batch_bytes,
            stream_buffer: self.stream_buffer,
            read_only: false,
            encoder: None,
        }
    }

    /// Limits for a whole result within a request's `budget` (0 = no cap of its own): the
    /// smaller of each, so a result past the budget fails as it would past the server's cap.
    pub fn whole_result_within(&self, budget: Budget) -> StatementLimits {
        let mut limits = self.whole_result();
        if budget.rows > 0 {
            limits.max_rows = budget.rows.min(limits.max_rows);
        }
        if budget.bytes > 0 {
            limits.max_bytes = budget.bytes.min(limits.max_bytes);
        }
        limits
    }

    /// Limits for an export or dump: it streams with backpressure, so it has no row or byte cap
    /// (a cut would silently lose data), only the transfer timeout.
    pub fn transfer(&self) -> StatementLimits {
        StatementLimits {
            max_rows: u64::MAX,
            max_bytes: u64::MAX,
            timeout: self.transfer_timeout,
            ..self.stream(0)
        }
    }

    /// Limits for a streamed result within a request's [`Budget`], capped by ours.
    pub fn stream_within(&self, budget: Budget) -> StatementLimits {
        let mut limits = self.stream(budget.rows);
        if budget.bytes > 0 {
            limits.max_bytes = budget.bytes.min(limits.max_bytes);
        }
        limits
    }

    /// Limits for a streamed result; `max_rows` of the request (0 = none) is capped by ours.
    pub fn stream(&self, requested_rows: u64) -> StatementLimits {
        let max_rows = match requested_rows {
            0 => self.max_stream_rows,
            n => n.min(self.max_stream_rows),
        };
        StatementLimits {
            max_rows,
            max_bytes: self.max_stream_bytes,
            timeout: self.statement_timeout,
            // A batch must fit in a message with room to spare.
            batch_rows: self.batch_rows,
            batch_bytes: self.batch_bytes.min(self.max_message_bytes / 2),
            stream_buffer: self.stream_buffer,
            read_only: false,
            encoder: None,
        }
    }
}

/// What a request may read of a streamed result: rows, and bytes of row data (the values'
/// approximate encoded size); 0 means the server's limit, and larger values are capped by it.
/// A stream cut by either ends early with a summary that says which.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Budget {
    /// Rows at most.
    pub rows: u64,
    /// Bytes at most.
    pub bytes: u64,
}
