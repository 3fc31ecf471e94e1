//! DumpDatabase, ImportNdjson and GetSchema for Redis: a namespace's keys as NDJSON records,
//! written back atomically, and a key-space summary from a bounded sample.
//!
//! # The record format (DumpDatabase output, ImportNdjson input)
//!
//! One JSON object per line (`\n`-terminated), one line per key:
//!
//! ```text
//! {"key":"user:1","type":"hash","ttl_ms":null,"value":{"name":"Ada","visits":"3"}}
//! {"key":{"base64":"/wBr"},"type":"string","ttl_ms":59000,"value":{"base64":"AAE="}}
//! ```
//!
//! - `key`: the key as the database's clients name it (no internal prefix).
//! - `type`: `string`, `list`, `set`, `zset`, `hash` or `stream`.
//! - `ttl_ms`: the time to live left when the key was dumped, in milliseconds, or `null` for a
//!   key that does not expire. The import sets it again from the moment of the import
//!   (`PEXPIRE`); a record with `ttl_ms <= 0` had already expired: its key is deleted and not
//!   re-created.
//! - Every byte string (key, element, member, field, value, stream field) is a JSON string when
//!   it is valid UTF-8, and `{"base64":"…"}` (standard alphabet, padded) otherwise.
//! - `value` by type:
//!   - `string`: the byte string.
//!   - `list`: an array of byte strings, head first.
//!   - `set`: an array of byte strings, sorted by their bytes for a stable output (sets of more
//!     than 10 000 members are read in SSCAN pages and written in SSCAN order).
//!   - `zset`: an array of `[member, score]` pairs in rank order. A score is a JSON number in the
//!     shortest form that reads back to the same double (so scores are exact), and `"inf"` /
//!     `"-inf"` for the infinities.
//!   - `hash`: an object `{field: value}` when every field is UTF-8 and the hash has at most
//!     1 000 fields; otherwise an array of `[field, value]` pairs. The import accepts both forms
//!     for any hash.
//!   - `stream`: an array of entries `{"id":"<ms>-<seq>","fields":[[field, value], …]}` in id
//!     order. Consumer groups are not dumped, and an imported stream's last generated id is its
//!     last entry's (`0-1` for an empty stream).
//!
//! The import also accepts blank lines, `\r\n` line ends, a missing `ttl_ms` (no TTL), numeric
//! strings as scores, and any record order; a key named twice ends as its last record says.
//!
//! # Dump
//!
//! The producer runs as a task of its own: SCAN (`MATCH <prefix>*`, pages of 1 000) over the
//! namespace as the database's ACL user, then per page one pipeline of `TYPE` + `PTTL`, one of
//! the sizes (`STRLEN`, `LLEN`, …), and whole reads (`GET`, `LRANGE 0 -1`, `SMEMBERS`, `ZRANGE
//! … WITHSCORES`, `HGETALL`, `XRANGE`) pipelined in groups of at most 10 000 elements and
//! 4 MiB of strings. A bigger key is read alone in pages of 1 000 (`LRANGE`, `SSCAN`, `ZRANGE`,
//! `HSCAN`, `XRANGE`) and written as it is read, so memory stays bounded (strings are read
//! whole: Redis caps them at 512 MiB). Output goes out in chunks of at most 64 KiB through a
//! bounded channel; dropping the stream stops the dump at once. `max_rows` and `max_bytes` are
//! not applied: a dump is never truncated; the statement timeout covers the whole dump.
//!
//! Redis has no snapshot a client can read from: each key is read as it is at that moment, a
//! key paged in several reads may mix states if it is written meanwhile, and, as with any SCAN,
//! a key may appear twice if the key space is resized during the dump (the import then writes
//! it twice, the later record winning). A key deleted meanwhile is left out. Keys of module
//! types fail the dump with Unsupported. `schema_only` is InvalidArgument: Redis has no schema,
//! so such a dump would be an empty file.
//!
//! # Import
//!
//! Every line is parsed and checked first (shape, base64, scores, stream ids strictly
//! increasing and above `0-0`, no empty collections, which Redis cannot hold); a bad one fails
//! with InvalidArgument naming its 1-based line, and nothing is sent. Then one `MULTI`, per
//! record `DEL` and the commands that re-create the key (`SET`, `RPUSH`/`SADD`/`ZADD`/`HSET` in
//! commands of at most 1 000 elements, `XADD` with explicit ids), `PEXPIRE`, and `EXEC`, in one
//! pipeline on the database's own connection: other clients see all records or none. The
//! count returned is the number of records, expired ones included.
//!
//! # Schema
//!
//! `schema(None)` counts the namespace's keys with SCAN, stopping after 100 000 (then
//! `total_keys` is a lower bound, at most one page above the cap), and samples the first 1 000
//! keys SCAN returns (an unordered, roughly random sample). Each sampled key becomes a pattern:
//! split on `: / | # . , ; =`, a segment with a digit, a hex id of 8 or more characters, or bytes
//! that are not UTF-8 becomes `*` (`user:1`, `user:2` → `user:*`). Patterns are grouped with the
//! key's type, with a count, an example (lossy UTF-8) and how many have a TTL, most common
//! first. `schema(Some(table))` is InvalidArgument: Redis has no tables.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use base64::{Engine as _, engine::general_purpose::STANDARD};
use redis::Value as Resp;
use serde_json::{Value as Json, value::RawValue};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tracing::debug;

use super::{command::SCAN_COUNT, database::Inner, pool::Deadline, reply};
use crate::{
    backend::{DumpStream, StatementLimits, dump::DumpWriter},
    core::{
        error::{Error, Result},
        schema::{KeyPattern, KeySpaceSummary, Schema},
    },
};

/// Elements per paged read of a big key, and per write command of an import.
const PAGE: usize = 1000;
/// Sets up to this many members are read whole (one SMEMBERS) and sorted.
const SET_SORT_MAX: i64 = 10_000;
/// What one pipeline of whole reads may fetch: elements, and bytes of strings.
const GROUP_ELEMENTS: i64 = 10_000;
const GROUP_BYTES: i64 = 4 << 20;
/// Keys counted by `schema` before it stops counting.
const COUNT_MAX: i64 = 100_000;
/// Keys sampled by `schema`.
const SAMPLE_MAX: usize = 1000;
/// How long a failing producer waits to hand its error to a slow client.
const ERROR_SEND_TIMEOUT: Duration = Duration::from_secs(1);
/// Where a key name splits into segments for its pattern.
const SEPARATORS: &[u8] = b":/|#.,;=";

/// The Redis types a record can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    String,
    List,
    Set,
    Zset,
    Hash,
    Stream,
}

impl Kind {
    const ALL: [Kind; 6] = [
        Self::String,
        Self::List,
        Self::Set,
        Self::Zset,
        Self::Hash,
        Self::Stream,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::String => "string",
            Self::List => "list",
            Self::Set => "set",
            Self::Zset => "zset",
            Self::Hash => "hash",
            Self::Stream => "stream",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == s)
    }

    /// The command that sizes a key: bytes for strings, elements for the rest.
    fn size_command(self) -> &'static str {
        match self {
            Self::String => "STRLEN",
            Self::List => "LLEN",
            Self::Set => "SCARD",
            Self::Zset => "ZCARD",
            Self::Hash => "HLEN",
            Self::Stream => "XLEN",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Replies

fn unexpected(what: &str) -> Error {
    Error::internal(format!("unexpected Redis reply to {what}"))
}

fn bulk(v: Resp) -> Result<Vec<u8>> {
    match v {
        Resp::BulkString(b) => Ok(b),
        Resp::SimpleString(s) | Resp::VerbatimString { text: s, .. } => Ok(s.into_bytes()),
        Resp::Okay => Ok(b"OK".to_vec()),
        Resp::Int(i) => Ok(i.to_string().into_bytes()),
        other => reply::check(other).and_then(|_| Err(unexpected("a read"))),
    }
}

fn int(v: Resp) -> Result<i64> {
    match reply::check(v)? {
        Resp::Int(i) => Ok(i),
        _ => Err(unexpected("a count")),
    }
}

fn items(v: Resp) -> Result<Vec<Resp>> {
    match reply::check(v)? {
        Resp::Array(items) | Resp::Set(items) => Ok(items),
        Resp::Nil => Ok(Vec::new()),
        _ => Err(unexpected("a read")),
    }
}

/// Field-value replies: a RESP3 map, an array of pairs, or a flat array (RESP2).
fn pairs(v: Resp) -> Result<Vec<(Resp, Resp)>> {
    if let Resp::Map(entries) = v {
        return Ok(entries);
    }
    let items = items(v)?;
    if items
        .iter()
        .all(|i| matches!(i, Resp::Array(a) if a.len() == 2))
    {
        return Ok(items
            .into_iter()
            .filter_map(|i| match i {
                Resp::Array(mut a) => {
                    let second = a.pop()?;
                    Some((a.pop()?, second))
                }
                _ => None,
            })
            .collect());
    }
    if items.len() % 2 != 0 {
        return Err(unexpected("a field-value read"));
    }
    let mut out = Vec::with_capacity(items.len() / 2);
    let mut it = items.into_iter();
    while let (Some(a), Some(b)) = (it.next(), it.next()) {
        out.push((a, b));
    }
    Ok(out)
}

fn score(v: Resp) -> Result<f64> {
    match v {
        Resp::Double(f) => Ok(f),
        other => {
            let b = bulk(other)?;
            std::str::from_utf8(&b)
                .ok()
                .and_then(|s| s.parse::<f64>().ok())
                .ok_or_else(|| unexpected("a score"))
        }
    }
}

/// One cursor page: the next cursor and the items.
fn page(v: Resp) -> Result<(Vec<u8>, Vec<Resp>)> {
    let mut parts = items(v)?;
    if parts.len() != 2 {
        return Err(unexpected("a SCAN-family command"));
    }
    let list = parts.pop().map(items).transpose()?.unwrap_or_default();
    let next = parts.pop().map(bulk).transpose()?.unwrap_or_default();
    Ok((next, list))
}

// ---------------------------------------------------------------------------------------------
// JSON output

/// A JSON string, escaped byte by byte: every byte of a multi-byte UTF-8 sequence is >= 0x80,
/// so only ASCII needs escaping.
fn put_str(buf: &mut Vec<u8>, s: &str) {
    buf.push(b'"');
    for &b in s.as_bytes() {
        match b {
            b'"' => buf.extend_from_slice(b"\\\""),
            b'\\' => buf.extend_from_slice(b"\\\\"),
            b'\n' => buf.extend_from_slice(b"\\n"),
            b'\r' => buf.extend_from_slice(b"\\r"),
            b'\t' => buf.extend_from_slice(b"\\t"),
            0..=0x1f => buf.extend_from_slice(format!("\\u{b:04x}").as_bytes()),
            _ => buf.push(b),
        }
    }
    buf.push(b'"');
}

/// A byte string: a JSON string when it is UTF-8, `{"base64":"…"}` otherwise.
fn put_bytes(buf: &mut Vec<u8>, b: &[u8]) {
    match std::str::from_utf8(b) {
        Ok(s) => put_str(buf, s),
        Err(_) => {
            buf.extend_from_slice(b"{\"base64\":\"");
            buf.extend_from_slice(STANDARD.encode(b).as_bytes());
            buf.extend_from_slice(b"\"}");
        }
    }
}

/// A score: the shortest decimal that reads back to the same double (Rust's `Debug` form, which
/// is valid JSON for every finite value), the infinities as strings.
fn put_score(buf: &mut Vec<u8>, f: f64) {
    if f == f64::INFINITY {
        buf.extend_from_slice(b"\"inf\"");
    } else if f == f64::NEG_INFINITY {
        buf.extend_from_slice(b"\"-inf\"");
    } else {
        buf.extend_from_slice(format!("{f:?}").as_bytes());
    }
}

fn put_pair(buf: &mut Vec<u8>, a: &[u8], b: &[u8]) {
    buf.push(b'[');
    put_bytes(buf, a);
    buf.push(b',');
    put_bytes(buf, b);
    buf.push(b']');
}

/// One stream entry reply (`[id, [field, value, …]]`) as its record form.
fn put_entry(buf: &mut Vec<u8>, entry: Resp) -> Result<Vec<u8>> {
    let mut parts = items(entry)?;
    if parts.len() != 2 {
        return Err(unexpected("XRANGE"));
    }
    let fields = parts.pop().map(pairs).transpose()?.unwrap_or_default();
    let id = parts.pop().map(bulk).transpose()?.unwrap_or_default();
    buf.extend_from_slice(b"{\"id\":");
    put_bytes(buf, &id);
    buf.extend_from_slice(b",\"fields\":[");
    for (i, (f, v)) in fields.into_iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        put_pair(buf, &bulk(f)?, &bulk(v)?);
    }
    buf.extend_from_slice(b"]}");
    Ok(id)
}

/// Dump output: records are encoded straight into the shared [`DumpWriter`]'s buffer, and each
/// counts as one row of the chunk holding its closing newline.
struct Out {
    w: DumpWriter,
    deadline: Deadline,
}

impl Out {
    /// The text being written, to encode into.
    fn buf(&mut self) -> &mut Vec<u8> {
        self.w.buf_mut()
    }

    fn head(&mut self, key: &[u8], kind: Kind, ttl: Option<i64>) {
        let buf = self.buf();
        buf.extend_from_slice(b"{\"key\":");
        put_bytes(buf, key);
        buf.extend_from_slice(b",\"type\":\"");
        buf.extend_from_slice(kind.name().as_bytes());
        buf.extend_from_slice(b"\",\"ttl_ms\":");
        match ttl {
            Some(ms) => buf.extend_from_slice(ms.to_string().as_bytes()),
            None => buf.extend_from_slice(b"null"),
        }
        buf.extend_from_slice(b",\"value\":");
    }

    async fn end_record(&mut self) -> Result<()> {
        self.w.write_rows("}\n", 1).await
    }
}

// ---------------------------------------------------------------------------------------------
// Dump

/// A key found by SCAN, with what the first pipelines learned about it.
struct Meta {
    /// The full key (with the prefix).
    key: Vec<u8>,
    kind: Kind,
    ttl: Option<i64>,
    size: i64,
}

impl Meta {
    /// Whether one command reads it whole (else it is paged).
    fn whole(&self) -> bool {
        match self.kind {
            Kind::String => true,
            Kind::Set => self.size <= SET_SORT_MAX,
            _ => self.size <= PAGE as i64,
        }
    }

    fn whole_read(&self) -> redis::Cmd {
        let k = self.key.as_slice();
        match self.kind {
            Kind::String => redis::cmd("GET").arg(k).clone(),
            Kind::List => redis::cmd("LRANGE").arg(k).arg(0).arg(-1).clone(),
            Kind::Set => redis::cmd("SMEMBERS").arg(k).clone(),
            Kind::Zset => redis::cmd("ZRANGE")
                .arg(k)
                .arg(0)
                .arg(-1)
                .arg("WITHSCORES")
                .clone(),
            Kind::Hash => redis::cmd("HGETALL").arg(k).clone(),
            Kind::Stream => redis::cmd("XRANGE").arg(k).arg("-").arg("+").clone(),
        }
    }
}

/// Starts the dump of a namespace; see the module docs.
pub(super) fn dump(
    inner: Arc<Inner>,
    schema_only: bool,
    limits: StatementLimits,
) -> Result<DumpStream> {
    if schema_only {
        return Err(Error::invalid(
            "schema_only",
            "Redis has no schema: a schema-only dump would be empty; dump without schema_only",
        ));
    }
    inner.shared.pool.ensure_available()?;
    // Its pipelines on the handle's shared connection made a point query wait behind them
    // (p99 4× during a backup).
    let inner = inner.with_own_connection();
    let deadline = Deadline::after(limits.timeout);
    let (tx, rx) = mpsc::channel(limits.stream_buffer.max(1));
    tokio::spawn(async move {
        let err_tx = tx.clone();
        let mut out = Out {
            w: DumpWriter::new(tx).with_deadline(deadline.at),
            deadline,
        };
        let produced = tokio::select! {
            r = dump_into(&inner, &mut out) => r,
            () = err_tx.closed() => {
                debug!("client went away; stopping the dump");
                return;
            }
        };
        if let Err(e) = produced
            && !err_tx.is_closed()
        {
            let e = reply::strip_message(e, &inner.ns.prefix);
            let _ = tokio::time::timeout(ERROR_SEND_TIMEOUT, err_tx.send(Err(e))).await;
        }
    });
    Ok(Box::pin(ReceiverStream::new(rx)))
}

/// One SCAN page of the namespace: the next cursor and the full keys.
async fn scan(inner: &Inner, cursor: &[u8], deadline: Deadline) -> Result<(Vec<u8>, Vec<Vec<u8>>)> {
    let mut pattern = inner.ns.prefix.as_bytes().to_vec();
    pattern.push(b'*');
    let args = vec![
        b"SCAN".to_vec(),
        cursor.to_vec(),
        b"MATCH".to_vec(),
        pattern,
        b"COUNT".to_vec(),
        SCAN_COUNT.to_vec(),
    ];
    let (next, keys) = page(inner.call(&args, deadline).await?)?;
    let prefix = inner.ns.prefix.as_bytes();
    let keys = keys
        .into_iter()
        .map(bulk)
        .filter(|k| k.as_ref().map_or(true, |k| k.starts_with(prefix)))
        .collect::<Result<_>>()?;
    Ok((next, keys))
}

async fn dump_into(inner: &Inner, out: &mut Out) -> Result<()> {
    let mut cursor = b"0".to_vec();
    loop {
        let (next, keys) = scan(inner, &cursor, out.deadline).await?;
        dump_keys(inner, keys, out).await?;
        if next == b"0" {
            break;
        }
        cursor = next;
    }
    out.w.flush().await
}

/// TYPE and PTTL of every key, in one pipeline; keys gone meanwhile are left out.
async fn types_and_ttls(
    inner: &Inner,
    keys: Vec<Vec<u8>>,
    deadline: Deadline,
) -> Result<Vec<(Vec<u8>, String, Option<i64>)>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = redis::pipe();
    for k in &keys {
        pipe.cmd("TYPE").arg(k.as_slice());
        pipe.cmd("PTTL").arg(k.as_slice());
    }
    let replies = inner.pipeline(pipe, deadline).await?;
    let mut replies = replies.into_iter();
    let mut found = Vec::with_capacity(keys.len());
    for key in keys {
        let (Some(t), Some(ttl)) = (replies.next(), replies.next()) else {
            return Err(unexpected("TYPE"));
        };
        let t = String::from_utf8_lossy(&bulk(t)?).into_owned();
        let ttl = match int(ttl)? {
            -2 => continue,
            -1 => None,
            ms => Some(ms),
        };
        if t != "none" {
            found.push((key, t, ttl));
        }
    }
    Ok(found)
}

async fn dump_keys(inner: &Inner, keys: Vec<Vec<u8>>, out: &mut Out) -> Result<()> {
    let deadline = out.deadline;
    let mut metas = Vec::with_capacity(keys.len());
    for (key, t, ttl) in types_and_ttls(inner, keys, deadline).await? {
        let kind = Kind::parse(&t).ok_or(Error::Unsupported {
            operation: "DumpDatabase of keys of module types",
            backend: "redis",
        })?;
        metas.push(Meta {
            key,
            kind,
            ttl,
            size: 0,
        });
    }
    if metas.is_empty() {
        return Ok(());
    }
    let mut pipe = redis::pipe();
    for m in &metas {
        pipe.cmd(m.kind.size_command()).arg(m.key.as_slice());
    }
    for (m, size) in metas.iter_mut().zip(inner.pipeline(pipe, deadline).await?) {
        m.size = int(size).map_err(|e| changed(e, &m.key, inner))?;
    }
    let mut group = Vec::new();
    let (mut elements, mut bytes) = (0i64, 0i64);
    for m in metas {
        if !m.whole() {
            read_whole(inner, std::mem::take(&mut group), out).await?;
            (elements, bytes) = (0, 0);
            read_paged(inner, &m, out).await?;
            continue;
        }
        let (e, b) = match m.kind {
            Kind::String => (1, m.size),
            _ => (m.size.max(1), 0),
        };
        if !group.is_empty() && (elements + e > GROUP_ELEMENTS || bytes + b > GROUP_BYTES) {
            read_whole(inner, std::mem::take(&mut group), out).await?;
            (elements, bytes) = (0, 0);
        }
        group.push(m);
        elements += e;
        bytes += b;
    }
    read_whole(inner, group, out).await
}

/// A WRONGTYPE (or similar) on a key that TYPE just named: it was replaced meanwhile.
fn changed(e: Error, key: &[u8], inner: &Inner) -> Error {
    let key = String::from_utf8_lossy(user_key(key, inner));
    e.map_query_message(|m| {
        format!("{m} (key {key:?} changed type while it was being dumped; dump again)")
    })
}

fn user_key<'a>(key: &'a [u8], inner: &Inner) -> &'a [u8] {
    key.strip_prefix(inner.ns.prefix.as_bytes()).unwrap_or(key)
}

/// Reads a group of small keys in one pipeline and writes their records.
async fn read_whole(inner: &Inner, group: Vec<Meta>, out: &mut Out) -> Result<()> {
    if group.is_empty() {
        return Ok(());
    }
    let mut pipe = redis::pipe();
    for m in &group {
        pipe.add_command(m.whole_read());
    }
    let replies = inner.pipeline(pipe, out.deadline).await?;
    for (m, r) in group.iter().zip(replies) {
        let r = reply::check(r).map_err(|e| changed(e, &m.key, inner))?;
        if write_whole(inner, m, r, out)? {
            out.end_record().await?;
        }
    }
    Ok(())
}

/// Writes one whole key's record; false (nothing written) when the key was gone.
fn write_whole(inner: &Inner, m: &Meta, r: Resp, out: &mut Out) -> Result<bool> {
    let key = user_key(&m.key, inner);
    match m.kind {
        Kind::String => {
            if r == Resp::Nil {
                return Ok(false);
            }
            let v = bulk(r)?;
            out.head(key, m.kind, m.ttl);
            put_bytes(out.buf(), &v);
        }
        Kind::List | Kind::Set => {
            let mut elems = items(r)?
                .into_iter()
                .map(bulk)
                .collect::<Result<Vec<_>>>()?;
            if elems.is_empty() {
                return Ok(false);
            }
            if m.kind == Kind::Set {
                elems.sort_unstable();
            }
            out.head(key, m.kind, m.ttl);
            out.buf().push(b'[');
            for (i, e) in elems.iter().enumerate() {
                if i > 0 {
                    out.buf().push(b',');
                }
                put_bytes(out.buf(), e);
            }
            out.buf().push(b']');
        }
        Kind::Zset => {
            let ps = pairs(r)?;
            if ps.is_empty() {
                return Ok(false);
            }
            out.head(key, m.kind, m.ttl);
            out.buf().push(b'[');
            for (i, (member, s)) in ps.into_iter().enumerate() {
                if i > 0 {
                    out.buf().push(b',');
                }
                put_member(out.buf(), &bulk(member)?, score(s)?);
            }
            out.buf().push(b']');
        }
        Kind::Hash => {
            let ps = pairs(r)?
                .into_iter()
                .map(|(f, v)| Ok((bulk(f)?, bulk(v)?)))
                .collect::<Result<Vec<_>>>()?;
            if ps.is_empty() {
                return Ok(false);
            }
            out.head(key, m.kind, m.ttl);
            let object = ps.iter().all(|(f, _)| std::str::from_utf8(f).is_ok());
            out.buf().push(if object { b'{' } else { b'[' });
            for (i, (f, v)) in ps.iter().enumerate() {
                if i > 0 {
                    out.buf().push(b',');
                }
                if object {
                    put_bytes(out.buf(), f);
                    out.buf().push(b':');
                    put_bytes(out.buf(), v);
                } else {
                    put_pair(out.buf(), f, v);
                }
            }
            out.buf().push(if object { b'}' } else { b']' });
        }
        Kind::Stream => {
            out.head(key, m.kind, m.ttl);
            out.buf().push(b'[');
            for (i, e) in items(r)?.into_iter().enumerate() {
                if i > 0 {
                    out.buf().push(b',');
                }
                put_entry(out.buf(), e)?;
            }
            out.buf().push(b']');
        }
    }
    Ok(true)
}

fn put_member(buf: &mut Vec<u8>, member: &[u8], s: f64) {
    buf.push(b'[');
    put_bytes(buf, member);
    buf.push(b',');
    put_score(buf, s);
    buf.push(b']');
}

/// Reads a big key page by page, writing each page as it arrives. The record's head is written
/// with the first element, so a key gone before its first page leaves nothing behind.
async fn read_paged(inner: &Inner, m: &Meta, out: &mut Out) -> Result<()> {
    let key = m.key.as_slice();
    let deadline = out.deadline;
    let mut written = 0usize;
    let mut index = 0i64;
    let mut cursor = b"0".to_vec();
    let mut from = b"-".to_vec();
    loop {
        let mut args: Vec<Vec<u8>> = Vec::with_capacity(7);
        let mut push = |a: &[u8]| args.push(a.to_vec());
        let last = (index + PAGE as i64 - 1).to_string();
        let count = PAGE.to_string();
        match m.kind {
            Kind::List => {
                for a in [
                    b"LRANGE".as_slice(),
                    key,
                    index.to_string().as_bytes(),
                    last.as_bytes(),
                ] {
                    push(a);
                }
            }
            Kind::Zset => {
                for a in [
                    b"ZRANGE".as_slice(),
                    key,
                    index.to_string().as_bytes(),
                    last.as_bytes(),
                    b"WITHSCORES",
                ] {
                    push(a);
                }
            }
            Kind::Set | Kind::Hash => {
                let name: &[u8] = if m.kind == Kind::Set {
                    b"SSCAN"
                } else {
                    b"HSCAN"
                };
                for a in [name, key, &cursor, b"COUNT", count.as_bytes()] {
                    push(a);
                }
            }
            Kind::Stream => {
                for a in [
                    b"XRANGE".as_slice(),
                    key,
                    &from,
                    b"+",
                    b"COUNT",
                    count.as_bytes(),
                ] {
                    push(a);
                }
            }
            Kind::String => return Err(Error::internal("strings are never paged")),
        }
        let r = inner
            .call(&args, deadline)
            .await
            .map_err(|e| changed(e, key, inner))?;
        // The elements of this page, and whether more may follow.
        let (elems, more) = match m.kind {
            Kind::Set | Kind::Hash => {
                let (next, list) = page(r)?;
                let more = next != b"0";
                cursor = next;
                (list, more)
            }
            _ => {
                let list = items(r)?;
                let n = if m.kind == Kind::Zset && list.iter().all(|i| !matches!(i, Resp::Array(_)))
                {
                    list.len() / 2
                } else {
                    list.len()
                };
                index += n as i64;
                (list, n >= PAGE)
            }
        };
        let mut put = |out: &mut Out| {
            if written == 0 {
                out.head(user_key(key, inner), m.kind, m.ttl);
                out.buf().push(b'[');
            } else {
                out.buf().push(b',');
            }
            written += 1;
        };
        match m.kind {
            Kind::List | Kind::Set => {
                for e in elems {
                    let e = bulk(e)?;
                    put(out);
                    put_bytes(out.buf(), &e);
                }
            }
            Kind::Zset => {
                for (member, s) in pairs(Resp::Array(elems))? {
                    let (member, s) = (bulk(member)?, score(s)?);
                    put(out);
                    put_member(out.buf(), &member, s);
                }
            }
            Kind::Hash => {
                for (f, v) in pairs(Resp::Array(elems))? {
                    let (f, v) = (bulk(f)?, bulk(v)?);
                    put(out);
                    put_pair(out.buf(), &f, &v);
                }
            }
            Kind::Stream => {
                for e in elems {
                    put(out);
                    let id = put_entry(out.buf(), e)?;
                    from = [b"(".as_slice(), &id].concat();
                }
            }
            Kind::String => {}
        }
        out.w.send_full().await?;
        if !more {
            break;
        }
    }
    if written > 0 {
        out.buf().push(b']');
        out.end_record().await?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Import

/// The value of one record, checked and decoded.
#[derive(Debug, PartialEq)]
enum Data {
    String(Vec<u8>),
    List(Vec<Vec<u8>>),
    Set(Vec<Vec<u8>>),
    Zset(Vec<(Vec<u8>, f64)>),
    Hash(Vec<(Vec<u8>, Vec<u8>)>),
    Stream(Vec<Entry>),
}

/// A stream entry: its id and its fields.
#[derive(Debug, PartialEq)]
struct Entry {
    id: (u64, u64),
    fields: Vec<(Vec<u8>, Vec<u8>)>,
}

/// One parsed line.
#[derive(Debug, PartialEq)]
struct Record {
    line: usize,
    key: Vec<u8>,
    ttl_ms: Option<i64>,
    data: Data,
}

type Parsed<T> = std::result::Result<T, String>;

/// A byte string: a JSON string, or `{"base64": "…"}`.
fn decode_bytes(v: &Json, what: &str) -> Parsed<Vec<u8>> {
    match v {
        Json::String(s) => Ok(s.clone().into_bytes()),
        Json::Object(o) if o.len() == 1 => match o.get("base64") {
            Some(Json::String(b)) => STANDARD
                .decode(b)
                .map_err(|e| format!("{what}: invalid base64: {e}")),
            _ => Err(format!(
                "{what}: expected a string or {{\"base64\": \"…\"}}"
            )),
        },
        _ => Err(format!(
            "{what}: expected a string or {{\"base64\": \"…\"}}"
        )),
    }
}

fn array<'a>(v: &'a Json, what: &str) -> Parsed<&'a Vec<Json>> {
    match v {
        Json::Array(a) => Ok(a),
        _ => Err(format!("{what} must be an array")),
    }
}

fn pair<'a>(v: &'a Json, what: &str) -> Parsed<(&'a Json, &'a Json)> {
    match v {
        Json::Array(a) if a.len() == 2 => Ok((&a[0], &a[1])),
        _ => Err(format!("{what} must be a [field, value] pair")),
    }
}

fn non_empty<T>(v: Vec<T>, kind: &str) -> Parsed<Vec<T>> {
    if v.is_empty() {
        return Err(format!(
            "a {kind} value must not be empty (Redis deletes empty {kind}s)"
        ));
    }
    Ok(v)
}

/// A score: a JSON number (parsed from its text, so it is exact) or a string such as `"inf"`.
fn decode_score(raw: &RawValue, what: &str) -> Parsed<f64> {
    let text = raw.get().trim();
    let parsed = if text.starts_with('"') {
        serde_json::from_str::<String>(text)
            .ok()
            .and_then(|s| s.trim().parse::<f64>().ok())
    } else if text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
        text.parse::<f64>().ok()
    } else {
        None
    };
    match parsed {
        Some(f) if !f.is_nan() => Ok(f),
        _ => Err(format!(
            "{what}: the score must be a number or \"inf\"/\"-inf\", not {text}"
        )),
    }
}

fn decode_id(v: &Json, what: &str) -> Parsed<(u64, u64)> {
    let bad = || format!("{what}: the id must be a string \"<ms>-<seq>\"");
    let s = v.as_str().ok_or_else(bad)?;
    let (ms, seq) = s.split_once('-').ok_or_else(bad)?;
    Ok((
        ms.parse().map_err(|_| bad())?,
        seq.parse().map_err(|_| bad())?,
    ))
}

/// A zset value, read from the raw JSON so that each score's digits are parsed exactly.
fn decode_zset(raw: &RawValue) -> Parsed<Data> {
    let items: Vec<Box<RawValue>> = serde_json::from_str(raw.get())
        .map_err(|_| "a zset value must be an array of [member, score] pairs".to_owned())?;
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let what = format!("zset element {i}");
        let pair: Vec<Box<RawValue>> = serde_json::from_str(item.get())
            .ok()
            .filter(|p: &Vec<Box<RawValue>>| p.len() == 2)
            .ok_or_else(|| format!("{what} must be a [member, score] pair"))?;
        let member: Json = serde_json::from_str(pair[0].get()).map_err(|e| e.to_string())?;
        out.push((
            decode_bytes(&member, &what)?,
            decode_score(&pair[1], &what)?,
        ));
    }
    Ok(Data::Zset(non_empty(out, "zset")?))
}

fn decode_value(kind: Kind, raw: &RawValue) -> Parsed<Data> {
    if kind == Kind::Zset {
        return decode_zset(raw);
    }
    let v: Json = serde_json::from_str(raw.get()).map_err(|e| e.to_string())?;
    let list = |name: &str| -> Parsed<Vec<Vec<u8>>> {
        let a = array(&v, &format!("a {name} value"))?;
        let out = a
            .iter()
            .enumerate()
            .map(|(i, e)| decode_bytes(e, &format!("{name} element {i}")))
            .collect::<Parsed<Vec<_>>>()?;
        non_empty(out, name)
    };
    Ok(match kind {
        Kind::String => Data::String(decode_bytes(&v, "the string value")?),
        Kind::List => Data::List(list("list")?),
        Kind::Set => Data::Set(list("set")?),
        Kind::Hash => {
            let fields = match &v {
                Json::Object(o) => o
                    .iter()
                    .map(|(f, x)| {
                        Ok((
                            f.clone().into_bytes(),
                            decode_bytes(x, &format!("field {f:?}"))?,
                        ))
                    })
                    .collect::<Parsed<Vec<_>>>()?,
                Json::Array(a) => a
                    .iter()
                    .enumerate()
                    .map(|(i, p)| {
                        let what = format!("hash pair {i}");
                        let (f, x) = pair(p, &what)?;
                        Ok((decode_bytes(f, &what)?, decode_bytes(x, &what)?))
                    })
                    .collect::<Parsed<Vec<_>>>()?,
                _ => {
                    return Err(
                        "a hash value must be an object or an array of [field, value] pairs".into(),
                    );
                }
            };
            Data::Hash(non_empty(fields, "hash")?)
        }
        Kind::Stream => {
            let mut entries = Vec::new();
            let mut last = (0u64, 0u64);
            for (i, e) in array(&v, "a stream value")?.iter().enumerate() {
                let what = format!("stream entry {i}");
                let Json::Object(o) = e else {
                    return Err(format!("{what} must be an object {{\"id\", \"fields\"}}"));
                };
                if let Some(extra) = o.keys().find(|k| *k != "id" && *k != "fields") {
                    return Err(format!("{what}: unknown member {extra:?}"));
                }
                let id = decode_id(o.get("id").unwrap_or(&Json::Null), &what)?;
                if id <= last {
                    return Err(format!(
                        "{what}: ids must increase and be above 0-0 ({}-{} follows {}-{})",
                        id.0, id.1, last.0, last.1
                    ));
                }
                last = id;
                let fields = array(
                    o.get("fields").unwrap_or(&Json::Null),
                    &format!("{what}: fields"),
                )?
                .iter()
                .map(|p| {
                    let (f, x) = pair(p, &format!("{what}: a field"))?;
                    Ok((decode_bytes(f, &what)?, decode_bytes(x, &what)?))
                })
                .collect::<Parsed<Vec<_>>>()?;
                if fields.is_empty() {
                    return Err(format!("{what} must have at least one field"));
                }
                entries.push(Entry { id, fields });
            }
            Data::Stream(entries)
        }
        Kind::Zset => decode_zset(raw)?,
    })
}

/// Parses one non-blank line.
fn parse_record(line: usize, text: &[u8]) -> Parsed<Record> {
    let fields: BTreeMap<String, Box<RawValue>> =
        serde_json::from_slice(text).map_err(|e| format!("not a JSON object: {e}"))?;
    if let Some(extra) = fields
        .keys()
        .find(|k| !matches!(k.as_str(), "key" | "type" | "ttl_ms" | "value"))
    {
        return Err(format!(
            "unknown member {extra:?} (a record has key, type, ttl_ms and value)"
        ));
    }
    let get = |name: &str| {
        fields
            .get(name)
            .ok_or_else(|| format!("the record has no {name:?}"))
    };
    let key: Json = serde_json::from_str(get("key")?.get()).map_err(|e| e.to_string())?;
    let key = decode_bytes(&key, "key")?;
    let t: Json = serde_json::from_str(get("type")?.get()).map_err(|e| e.to_string())?;
    let kind = t.as_str().and_then(Kind::parse).ok_or_else(|| {
        format!("unknown type {t} (expected \"string\", \"list\", \"set\", \"zset\", \"hash\" or \"stream\")")
    })?;
    let ttl_ms = match fields.get("ttl_ms").map(|r| r.get().trim()) {
        None | Some("null") => None,
        Some(n) => Some(n.parse::<i64>().map_err(|_| {
            format!("ttl_ms must be an integer number of milliseconds or null, not {n}")
        })?),
    };
    let data = decode_value(kind, get("value")?)?;
    Ok(Record {
        line,
        key,
        ttl_ms,
        data,
    })
}

/// Parses every line; the first bad one fails the whole file.
fn parse_records(data: &[u8]) -> Result<Vec<Record>> {
    let mut records = Vec::new();
    for (i, line) in data.split(|b| *b == b'\n').enumerate() {
        let line_no = i + 1;
        let text = line.strip_suffix(b"\r").unwrap_or(line);
        if text.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let record = parse_record(line_no, text)
            .map_err(|reason| Error::invalid("chunk", format!("line {line_no}: {reason}")))?;
        records.push(record);
    }
    Ok(records)
}

/// What an import writes into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ImportInto {
    /// A database in use: each key is replaced (DEL first) and a batch applies in one MULTI.
    Live,
    /// An empty database nobody sees yet (a restore's staging): keys are only written.
    Empty,
}

/// Appends the commands that replace one record's key, remembering each command's line.
fn push_commands(
    r: &Record,
    prefix: &[u8],
    into: ImportInto,
    pipe: &mut redis::Pipeline,
    lines: &mut Vec<usize>,
) {
    let key = [prefix, &r.key].concat();
    let mut add = |cmd: redis::Cmd| {
        pipe.add_command(cmd);
        lines.push(r.line);
    };
    if into == ImportInto::Live {
        add(redis::cmd("DEL").arg(key.as_slice()).clone());
    }
    if r.ttl_ms.is_some_and(|t| t <= 0) {
        return;
    }
    let with_key = |name: &str| {
        let mut c = redis::cmd(name);
        c.arg(key.as_slice());
        c
    };
    match &r.data {
        Data::String(v) => {
            // One command where the TTL rides along.
            let mut c = with_key("SET");
            c.arg(v.as_slice());
            if let Some(ms) = r.ttl_ms {
                c.arg("PX").arg(ms);
            }
            add(c);
            return;
        }
        Data::List(items) | Data::Set(items) => {
            let name = if matches!(r.data, Data::List(_)) {
                "RPUSH"
            } else {
                "SADD"
            };
            for chunk in items.chunks(PAGE) {
                let mut c = with_key(name);
                for e in chunk {
                    c.arg(e.as_slice());
                }
                add(c);
            }
        }
        Data::Zset(members) => {
            for chunk in members.chunks(PAGE) {
                let mut c = with_key("ZADD");
                for (m, s) in chunk {
                    // Debug gives the shortest exact form (`0.1`, `1e300`) and `inf`/`-inf`, all
                    // of which Redis reads.
                    c.arg(format!("{s:?}")).arg(m.as_slice());
                }
                add(c);
            }
        }
        Data::Hash(fields) => {
            for chunk in fields.chunks(PAGE) {
                let mut c = with_key("HSET");
                for (f, v) in chunk {
                    c.arg(f.as_slice()).arg(v.as_slice());
                }
                add(c);
            }
        }
        Data::Stream(entries) if entries.is_empty() => {
            // Adding an entry and trimming to nothing leaves an empty stream.
            add(with_key("XADD")
                .arg("MAXLEN")
                .arg(0)
                .arg("0-1")
                .arg("f")
                .arg("")
                .clone());
        }
        Data::Stream(entries) => {
            for e in entries {
                let mut c = with_key("XADD");
                c.arg(format!("{}-{}", e.id.0, e.id.1));
                for (f, v) in &e.fields {
                    c.arg(f.as_slice()).arg(v.as_slice());
                }
                add(c);
            }
        }
    }
    if let Some(ms) = r.ttl_ms {
        add(with_key("PEXPIRE").arg(ms).clone());
    }
}

/// Names the record a failing command came from, and what became of the import.
fn at_line(err: Error, line: usize, what: &str) -> Error {
    err.map_query_message(|m| format!("line {line}: {m}; {what}"))
}

/// Imports NDJSON records; see the module docs.
pub(super) async fn import(
    inner: &Inner,
    data: &[u8],
    limits: &StatementLimits,
    into: ImportInto,
) -> Result<u64> {
    let records = parse_records(data)?;
    if records.is_empty() {
        return Ok(0);
    }
    inner.shared.pool.ensure_available()?;
    let deadline = Deadline::after(limits.timeout);
    let mut pipe = redis::pipe();
    let mut lines = Vec::new();
    if into == ImportInto::Empty {
        for r in &records {
            push_commands(r, inner.ns.prefix.as_bytes(), into, &mut pipe, &mut lines);
        }
        let replies = inner
            .pipeline(pipe, deadline)
            .await
            .map_err(|e| reply::strip_message(e, &inner.ns.prefix))?;
        for (reply, line) in replies.into_iter().zip(&lines) {
            reply::check(reply)
                .map_err(|e| at_line(e, *line, "the restore was abandoned"))
                .map_err(|e| reply::strip_message(e, &inner.ns.prefix))?;
        }
        return Ok(records.len() as u64);
    }
    pipe.cmd("MULTI");
    for r in &records {
        push_commands(r, inner.ns.prefix.as_bytes(), into, &mut pipe, &mut lines);
    }
    pipe.cmd("EXEC");
    let run = async {
        let mut replies = inner.pipeline(pipe, deadline).await?.into_iter();
        let exec = replies.next_back().unwrap_or(Resp::Nil);
        if let Some(multi) = replies.next() {
            reply::check(multi)?;
        }
        // An error while queueing makes Redis discard the whole transaction at EXEC.
        for (queued, line) in replies.zip(&lines) {
            reply::check(queued)
                .map_err(|e| at_line(e, *line, "the import was discarded: nothing was written"))?;
        }
        let Resp::Array(results) = exec else {
            return Err(match reply::check(exec) {
                Err(e) => at_line(e, 0, "the import was discarded: nothing was written"),
                Ok(other) => Error::internal(format!("unexpected EXEC reply {other:?}")),
            });
        };
        for (result, line) in results.into_iter().zip(&lines) {
            reply::check(result).map_err(|e| {
                at_line(
                    e,
                    *line,
                    "Redis applied the other commands of the import (MULTI/EXEC cannot roll back)",
                )
            })?;
        }
        Ok(records.len() as u64)
    };
    run.await
        .map_err(|e| reply::strip_message(e, &inner.ns.prefix))
}

// ---------------------------------------------------------------------------------------------
// Schema

/// A segment of a key name that varies from key to key: it holds a digit, is a hex id, or is
/// not text.
fn variable(segment: &[u8]) -> bool {
    std::str::from_utf8(segment).is_err()
        || segment.iter().any(u8::is_ascii_digit)
        || (segment.len() >= 8 && segment.iter().all(u8::is_ascii_hexdigit))
}

/// The key with its variable segments replaced by `*` (`user:42:profile` → `user:*:profile`).
fn pattern_of(key: &[u8]) -> String {
    let mut out = String::new();
    let mut start = 0;
    for end in (0..key.len())
        .filter(|i| SEPARATORS.contains(&key[*i]))
        .chain([key.len()])
    {
        let segment = &key[start..end];
        if variable(segment) {
            out.push('*');
        } else {
            out.push_str(&String::from_utf8_lossy(segment));
        }
        if let Some(sep) = key.get(end) {
            out.push(char::from(*sep));
        }
        start = end + 1;
    }
    out
}

/// The key-space summary; see the module docs.
pub(super) async fn schema(
    inner: &Inner,
    table: Option<&str>,
    limits: &StatementLimits,
) -> Result<Schema> {
    if table.is_some() {
        return Err(Error::invalid(
            "table",
            "Redis has no tables: leave `table` empty for the key-space summary",
        ));
    }
    inner.shared.pool.ensure_available()?;
    let deadline = Deadline::after(limits.timeout);
    let run = async {
        let mut total = 0i64;
        let mut sample = Vec::new();
        let mut cursor = b"0".to_vec();
        loop {
            let (next, keys) = scan(inner, &cursor, deadline).await?;
            total += keys.len() as i64;
            let room = SAMPLE_MAX - sample.len();
            sample.extend(keys.into_iter().take(room));
            if next == b"0" || total >= COUNT_MAX {
                break;
            }
            cursor = next;
        }
        let mut groups: Vec<KeyPattern> = Vec::new();
        let mut sampled = 0i64;
        for (key, t, ttl) in types_and_ttls(inner, sample, deadline).await? {
            sampled += 1;
            let key = user_key(&key, inner);
            let pattern = pattern_of(key);
            let with_ttl = i64::from(ttl.is_some());
            match groups
                .iter_mut()
                .find(|g| g.pattern == pattern && g.value_type == t)
            {
                Some(g) => {
                    g.count += 1;
                    g.with_ttl += with_ttl;
                }
                None => groups.push(KeyPattern {
                    pattern,
                    value_type: t,
                    count: 1,
                    example: String::from_utf8_lossy(key).into_owned(),
                    with_ttl,
                }),
            }
        }
        groups.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then_with(|| a.pattern.cmp(&b.pattern))
                .then_with(|| a.value_type.cmp(&b.value_type))
        });
        Ok(Schema {
            tables: Vec::new(),
            key_space: Some(KeySpaceSummary {
                total_keys: total,
                sampled_keys: sampled,
                patterns: groups,
            }),
            graph: None,
        })
    };
    run.await
        .map_err(|e| reply::strip_message(e, &inner.ns.prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_replace_variable_segments() {
        assert_eq!(pattern_of(b"user:1"), "user:*");
        assert_eq!(pattern_of(b"user:3:profile"), "user:*:profile");
        assert_eq!(pattern_of(b"session/deadbeefcafe"), "session/*");
        assert_eq!(
            pattern_of(b"order#550e8400-e29b-41d4-a716-446655440000|items"),
            "order#*|items"
        );
        assert_eq!(pattern_of(b"config"), "config");
        assert_eq!(pattern_of(b"a::b"), "a::b");
        assert_eq!(pattern_of(b"bin:\xff\x00"), "bin:*");
        assert_eq!(pattern_of(b""), "");
    }

    #[test]
    fn json_strings_and_bytes_are_encoded() {
        let mut buf = Vec::new();
        put_bytes(&mut buf, "é\"\\\n\u{1}".as_bytes());
        buf.push(b' ');
        put_bytes(&mut buf, b"\xff\x00");
        buf.push(b' ');
        for f in [0.1, f64::NEG_INFINITY, f64::INFINITY, 1e300, -2.5e-8, 3.0] {
            put_score(&mut buf, f);
            buf.push(b' ');
        }
        assert_eq!(
            String::from_utf8(buf).expect("utf8"),
            r#""é\"\\\n\u0001" {"base64":"/wA="} 0.1 "-inf" "inf" 1e300 -2.5e-8 3.0 "#
        );
    }

    #[test]
    fn records_parse_and_bad_lines_are_named() {
        let data = concat!(
            "\n",
            r#"{"key":"z","type":"zset","ttl_ms":null,"value":[["a",0.1],["b","-inf"],["c",1e300]]}"#,
            "\r\n",
            r#"{"key":{"base64":"/wA="},"type":"hash","value":[[{"base64":"/w=="},"v"]]}"#,
        );
        let records = parse_records(data.as_bytes()).expect("parse");
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].line, 2);
        assert_eq!(
            records[0].data,
            Data::Zset(vec![
                (b"a".to_vec(), 0.1),
                (b"b".to_vec(), f64::NEG_INFINITY),
                (b"c".to_vec(), 1e300)
            ])
        );
        assert_eq!(records[1].key, b"\xff\x00".to_vec());
        assert_eq!(
            records[1].data,
            Data::Hash(vec![(b"\xff".to_vec(), b"v".to_vec())])
        );
        let reason = |data: &str| match parse_records(data.as_bytes()) {
            Err(Error::InvalidArgument { reason, .. }) => reason,
            other => panic!("{data}: {other:?}"),
        };
        let ok = r#"{"key":"a","type":"string","ttl_ms":null,"value":"x"}"#;
        assert!(reason(&format!("{ok}\n{{nope")).starts_with("line 2: not a JSON object"));
        assert!(
            reason(r#"{"key":"a","type":"bitmap","value":"x"}"#).contains("line 1: unknown type")
        );
        assert!(reason(r#"{"key":"a","type":"list","value":"x"}"#).contains("must be an array"));
        assert!(reason(r#"{"key":"a","type":"list","value":[]}"#).contains("must not be empty"));
        assert!(reason(r#"{"key":"a","type":"zset","value":[["m","nan"]]}"#).contains("score"));
        assert!(
            reason(r#"{"key":"a","type":"stream","value":[{"id":"2-0","fields":[["f","v"]]},{"id":"1-0","fields":[["f","v"]]}]}"#)
                .contains("ids must increase")
        );
        assert!(
            reason(r#"{"key":{"base64":"!!"},"type":"string","value":"x"}"#).contains("base64")
        );
        assert!(
            reason(r#"{"key":"a","type":"string","value":"x","ttl":1}"#).contains("unknown member")
        );
        assert!(
            reason(r#"{"key":"a","type":"string","ttl_ms":1.5,"value":"x"}"#).contains("ttl_ms")
        );
    }
}
