//! The one writer every engine's dump streams through: text or bytes go in, [`DumpChunk`]s of
//! at most [`CHUNK_BYTES`] come out of a bounded channel whose `send` paces the dump at the
//! client's speed.
//!
//! # What a reader of the stream sees
//!
//! - The dump's bytes, cut at fixed offsets: every chunk holds exactly [`CHUNK_BYTES`] bytes
//!   except the last, which holds the rest. A chunk is sent as soon as it is full, so the
//!   writer buffers at most one chunk plus the text being written.
//! - A chunk's `rows` counts the rows (or keys) whose last byte it holds, so the sum over a
//!   stream is the dump's row count and a reader that stops after any chunk knows how many
//!   whole rows it has. Rows counted where no bytes were written since go with the next chunk
//!   (an empty one from [`flush`](DumpWriter::flush) if nothing follows).
//! - A failed send ends the dump. A closed receiver means the client went away: the send is
//!   [`Error::Unavailable`] and [`gone`](DumpWriter::gone) says so, so the producer stops
//!   without an error nobody would read. With a deadline ([`with_deadline`](DumpWriter::with_deadline)),
//!   a send still blocked on a full channel when it passes is [`Error::Timeout`]; the
//!   producer hands that to the client like any other error.
//!
//! Producers on the async runtime (PostgreSQL, MySQL, Redis) call [`write`](DumpWriter::write)
//! and [`flush`](DumpWriter::flush); SQLite's, which runs on a blocking thread, calls
//! [`write_blocking`](DumpWriter::write_blocking) and
//! [`flush_blocking`](DumpWriter::flush_blocking), which enter the runtime only when a chunk
//! is due.

use std::collections::VecDeque;

use tokio::{runtime::Handle, sync::mpsc, time::Instant};

use super::DumpChunk;
use crate::core::error::{Error, Result};

/// Largest chunk a dump sends, in bytes (the FileChunk contract says about 64 KiB): large
/// enough to amortize a message, small enough that a channel of `stream_buffer` chunks keeps at
/// most a few hundred KiB in flight.
pub const CHUNK_BYTES: usize = 64 << 10;

/// Where a dump goes; see the module docs.
#[derive(Debug)]
pub struct DumpWriter {
    tx: mpsc::Sender<Result<DumpChunk>>,
    deadline: Option<Instant>,
    chunk_bytes: usize,
    /// The bytes not sent yet: whole chunks waiting to go, then the start of the next one.
    buf: Vec<u8>,
    /// Rows ending in each chunk-sized piece of `buf`, the first piece first.
    rows: VecDeque<u64>,
    /// Rows per table so far, the table being written last.
    tables: Vec<(String, u64)>,
    gone: bool,
}

impl DumpWriter {
    /// A writer sending into `tx`, without a deadline of its own (the producer bounds the
    /// whole dump).
    pub fn new(tx: mpsc::Sender<Result<DumpChunk>>) -> Self {
        Self::with_chunk_bytes(tx, CHUNK_BYTES)
    }

    /// Fails a send still waiting at `at` with [`Error::Timeout`].
    pub fn with_deadline(mut self, at: Instant) -> Self {
        self.deadline = Some(at);
        self
    }

    /// A writer with smaller chunks, to reach the edge cases in tests.
    fn with_chunk_bytes(tx: mpsc::Sender<Result<DumpChunk>>, chunk_bytes: usize) -> Self {
        Self {
            tx,
            deadline: None,
            chunk_bytes,
            buf: Vec::with_capacity(chunk_bytes * 2),
            rows: VecDeque::new(),
            tables: Vec::new(),
            gone: false,
        }
    }

    /// Whether the client went away (a send found the stream dropped).
    pub fn gone(&self) -> bool {
        self.gone
    }

    /// The unsent bytes, for producers that encode straight into the buffer (Redis' JSON).
    /// Append only: what is already there is the dump's text.
    pub fn buf_mut(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// Appends text without sending; [`send_full`](Self::send_full) or a later write sends it.
    pub fn push(&mut self, text: &str) {
        self.buf.extend_from_slice(text.as_bytes());
    }

    /// Starts counting the rows of `table`: rows written from here on are its rows, until the
    /// next call. The counts go out with the last chunk ([`DumpChunk::tables`]).
    pub fn begin_table(&mut self, table: &str) {
        self.tables.push((table.to_owned(), 0));
    }

    /// Counts `n` rows (or keys) as ending at the last byte written so far.
    pub fn end_rows(&mut self, n: u64) {
        if n == 0 {
            return;
        }
        if let Some((_, rows)) = self.tables.last_mut() {
            *rows += n;
        }
        let piece = self.buf.len().saturating_sub(1) / self.chunk_bytes;
        if self.rows.len() <= piece {
            self.rows.resize(piece + 1, 0);
        }
        self.rows[piece] += n;
    }

    /// Whether a whole chunk is waiting to be sent.
    pub fn full(&self) -> bool {
        self.buf.len() >= self.chunk_bytes
    }

    /// Appends text and sends every chunk it filled.
    pub async fn write(&mut self, text: &str) -> Result<()> {
        self.push(text);
        self.send_full().await
    }

    /// Appends the text of `n` rows, which end with it, and sends every chunk it filled.
    pub async fn write_rows(&mut self, text: &str, n: u64) -> Result<()> {
        self.push(text);
        self.end_rows(n);
        self.send_full().await
    }

    /// Appends one SQL statement, without a trailing `;` of its own, followed by `;` and a
    /// newline.
    pub async fn statement(&mut self, sql: &str) -> Result<()> {
        let sql = sql.trim_end();
        let sql = sql.strip_suffix(';').unwrap_or(sql).trim_end();
        self.push(sql);
        self.write(";\n").await
    }

    /// Sends every whole chunk buffered; the rest waits for more text or [`flush`](Self::flush).
    pub async fn send_full(&mut self) -> Result<()> {
        let mut start = 0;
        while self.buf.len() - start >= self.chunk_bytes {
            let end = start + self.chunk_bytes;
            let data = self.buf[start..end].to_vec();
            start = end;
            let rows = self.rows.pop_front().unwrap_or(0);
            self.send(DumpChunk {
                data,
                rows,
                tables: Vec::new(),
            })
            .await?;
        }
        self.buf.drain(..start);
        Ok(())
    }

    /// Sends everything buffered, the last chunk short: the end of the dump.
    pub async fn flush(&mut self) -> Result<()> {
        self.send_full().await?;
        let rows: u64 = self.rows.drain(..).sum();
        let tables = std::mem::take(&mut self.tables);
        if self.buf.is_empty() && rows == 0 && tables.is_empty() {
            return Ok(());
        }
        let data = std::mem::take(&mut self.buf);
        self.send(DumpChunk { data, rows, tables }).await
    }

    /// [`write`](Self::write) from a blocking thread of the runtime `rt`.
    pub fn write_blocking(&mut self, rt: &Handle, text: &str) -> Result<()> {
        self.push(text);
        if self.full() {
            rt.block_on(self.send_full())?;
        }
        Ok(())
    }

    /// [`write_rows`](Self::write_rows) from a blocking thread of the runtime `rt`.
    pub fn write_rows_blocking(&mut self, rt: &Handle, text: &str, n: u64) -> Result<()> {
        self.push(text);
        self.end_rows(n);
        if self.full() {
            rt.block_on(self.send_full())?;
        }
        Ok(())
    }

    /// [`flush`](Self::flush) from a blocking thread of the runtime `rt`.
    pub fn flush_blocking(&mut self, rt: &Handle) -> Result<()> {
        rt.block_on(self.flush())
    }

    async fn send(&mut self, chunk: DumpChunk) -> Result<()> {
        let sent = match self.deadline {
            Some(at) => tokio::time::timeout_at(at, self.tx.send(Ok(chunk))).await,
            None => Ok(self.tx.send(Ok(chunk)).await),
        };
        match sent {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => {
                self.gone = true;
                tracing::debug!("client went away; stopping the dump");
                Err(Error::Unavailable(
                    "the client stopped reading the dump".into(),
                ))
            }
            Err(_) => Err(Error::Timeout(
                "the dump ran past its deadline while the client was not reading".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A writer with `chunk` byte chunks into a channel of `capacity`.
    fn writer(chunk: usize, capacity: usize) -> (DumpWriter, mpsc::Receiver<Result<DumpChunk>>) {
        let (tx, rx) = mpsc::channel(capacity);
        (DumpWriter::with_chunk_bytes(tx, chunk), rx)
    }

    fn drain(rx: &mut mpsc::Receiver<Result<DumpChunk>>) -> Vec<DumpChunk> {
        let mut chunks = Vec::new();
        while let Ok(c) = rx.try_recv() {
            chunks.push(c.expect("no error"));
        }
        chunks
    }

    fn texts(chunks: &[DumpChunk]) -> Vec<(&str, u64)> {
        chunks
            .iter()
            .map(|c| (std::str::from_utf8(&c.data).expect("utf-8"), c.rows))
            .collect()
    }

    #[tokio::test]
    async fn chunks_are_cut_at_fixed_offsets_and_sent_when_full() {
        let (mut w, mut rx) = writer(4, 16);
        w.write("ab").await.expect("sent");
        assert!(drain(&mut rx).is_empty(), "half a chunk waits");
        w.write("cdefghij").await.expect("sent");
        assert_eq!(texts(&drain(&mut rx)), [("abcd", 0), ("efgh", 0)]);
        w.write("k").await.expect("sent");
        w.flush().await.expect("sent");
        assert_eq!(
            texts(&drain(&mut rx)),
            [("ijk", 0)],
            "the last chunk is short"
        );
        w.flush().await.expect("nothing left");
        assert!(drain(&mut rx).is_empty(), "an empty flush sends nothing");
    }

    #[tokio::test]
    async fn rows_count_in_the_chunk_holding_their_last_byte() {
        let (mut w, mut rx) = writer(4, 16);
        // "r1;" ends in the first chunk, "row2;" in the second, "r3;" in the third.
        w.write_rows("r1;", 1).await.expect("sent");
        w.write_rows("row2;", 1).await.expect("sent");
        w.write("x").await.expect("sent");
        w.write_rows("r3;", 1).await.expect("sent");
        w.flush().await.expect("sent");
        assert_eq!(
            texts(&drain(&mut rx)),
            [("r1;r", 1), ("ow2;", 1), ("xr3;", 1)]
        );
    }

    #[tokio::test]
    async fn a_row_longer_than_a_chunk_counts_in_its_last_piece() {
        let (mut w, mut rx) = writer(4, 16);
        w.write_rows("0123456789", 2).await.expect("sent");
        w.flush().await.expect("sent");
        assert_eq!(
            texts(&drain(&mut rx)),
            [("0123", 0), ("4567", 0), ("89", 2)]
        );
    }

    #[tokio::test]
    async fn rows_of_text_pushed_in_place_are_counted() {
        let (mut w, mut rx) = writer(4, 16);
        for key in ["a", "bb", "ccc"] {
            w.buf_mut().extend_from_slice(key.as_bytes());
            w.buf_mut().push(b'\n');
            w.end_rows(1);
        }
        w.send_full().await.expect("sent");
        w.flush().await.expect("sent");
        let chunks = drain(&mut rx);
        assert_eq!(texts(&chunks), [("a\nbb", 1), ("\nccc", 1), ("\n", 1)]);
        // As many rows as newlines: every chunk counts the newlines it holds.
        for c in &chunks {
            assert_eq!(
                c.rows as usize,
                c.data.iter().filter(|b| **b == b'\n').count()
            );
        }
    }

    #[tokio::test]
    async fn rows_without_bytes_go_out_in_an_empty_last_chunk() {
        let (mut w, mut rx) = writer(4, 16);
        w.write_rows("abcd", 1).await.expect("sent");
        assert_eq!(
            texts(&drain(&mut rx)),
            [("abcd", 1)],
            "counted before it left"
        );
        w.end_rows(2);
        w.flush().await.expect("sent");
        assert_eq!(texts(&drain(&mut rx)), [("", 2)]);
    }

    #[tokio::test]
    async fn statements_end_with_one_semicolon() {
        let (mut w, mut rx) = writer(CHUNK_BYTES, 4);
        w.statement("CREATE TABLE t (a int);  \n")
            .await
            .expect("sent");
        w.statement("SELECT 1").await.expect("sent");
        w.flush().await.expect("sent");
        assert_eq!(
            texts(&drain(&mut rx)),
            [("CREATE TABLE t (a int);\nSELECT 1;\n", 0)]
        );
    }

    #[tokio::test]
    async fn real_chunks_are_at_most_chunk_bytes() {
        let row = "x".repeat(1000) + "\n";
        let (tx, mut rx) = mpsc::channel(64);
        let mut w = DumpWriter::new(tx);
        for _ in 0..200 {
            w.write_rows(&row, 1).await.expect("sent");
        }
        w.flush().await.expect("sent");
        let chunks = drain(&mut rx);
        assert!(chunks.iter().all(|c| c.data.len() <= CHUNK_BYTES));
        assert!(
            chunks[..chunks.len() - 1]
                .iter()
                .all(|c| c.data.len() == CHUNK_BYTES)
        );
        assert_eq!(chunks.iter().map(|c| c.rows).sum::<u64>(), 200);
        assert_eq!(
            chunks.iter().map(|c| c.data.len()).sum::<usize>(),
            200 * 1001
        );
    }

    #[tokio::test]
    async fn a_closed_receiver_means_the_client_is_gone() {
        let (mut w, rx) = writer(4, 1);
        drop(rx);
        w.write("ab").await.expect("nothing is sent yet");
        assert!(!w.gone());
        let err = w.write("cdef").await.expect_err("the stream is closed");
        assert!(matches!(err, Error::Unavailable(_)), "{err:?}");
        assert!(w.gone());
    }

    #[tokio::test]
    async fn a_send_blocked_past_the_deadline_times_out() {
        let (tx, _rx) = mpsc::channel(1);
        let mut w = DumpWriter::with_chunk_bytes(tx, 4)
            .with_deadline(Instant::now() + Duration::from_millis(50));
        w.write("abcd").await.expect("the channel has room for one");
        let err = w.write("efgh").await.expect_err("nobody reads");
        assert!(matches!(err, Error::Timeout(_)), "{err:?}");
        assert!(!w.gone(), "the client is still there to be told");
    }

    #[test]
    fn a_blocking_thread_writes_through_the_runtime() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let (mut w, mut rx) = writer(4, 16);
        let handle = rt.handle().clone();
        w.write_blocking(&handle, "ab").expect("sent");
        w.write_rows_blocking(&handle, "cdef;", 1).expect("sent");
        w.flush_blocking(&handle).expect("sent");
        assert_eq!(texts(&drain(&mut rx)), [("abcd", 0), ("ef;", 1)]);
        drop(rx);
        w.write_rows_blocking(&handle, "ghijkl", 1)
            .expect_err("the client is gone");
        assert!(w.gone());
    }
}
