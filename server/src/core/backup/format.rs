//! The stored form of a backup: one zstd frame (with zstd's own content checksum) over the
//! engine's bytes, and the SHA-256 of what is stored, computed while it is written and checked
//! while it is read back.
//!
//! Both directions work a piece at a time, so memory stays bounded whatever the database's size:
//! [`Packer`] turns raw pieces into stored pieces, [`Unpacker`] turns stored pieces back into raw
//! pieces of at most [`RAW_PIECE`] bytes, however well they compressed.

use sha2::{Digest, Sha256};
use zstd::stream::raw::{Decoder, Encoder, InBuffer, Operation, OutBuffer};

use crate::core::error::{Error, Result};

// The default level (`--backup-compression-level`) is 1: on a 50 MB SQLite image it took
// 0.37 CPU-s against level 3's 0.66 for a result 2 % larger (21.5 against 21.1 MB), and
// compression was most of a backup's CPU. Negative ("fast") levels trade size for speed: on a
// 38 MB image, -1 took 0.09 CPU-s against level 1's 0.14 for 22.4 against 17.6 MB.

/// Largest raw piece an [`Unpacker`] hands out.
pub const RAW_PIECE: usize = 256 << 10;

/// Lowercase hex of a digest.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Lowercase hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

/// Compresses raw pieces and hashes what comes out.
pub struct Packer {
    enc: Encoder<'static>,
    hash: Sha256,
    raw: u64,
    stored: u64,
    out: Vec<u8>,
}

impl std::fmt::Debug for Packer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Packer")
            .field("raw", &self.raw)
            .field("stored", &self.stored)
            .finish()
    }
}

fn zstd_err(e: std::io::Error) -> Error {
    Error::internal(format!("zstd: {e}"))
}

impl Packer {
    /// A packer for one backup, compressing at zstd level `level`.
    pub fn new(level: i32) -> Result<Self> {
        let mut enc = Encoder::new(level).map_err(zstd_err)?;
        enc.set_parameter(zstd::zstd_safe::CParameter::ChecksumFlag(true))
            .map_err(zstd_err)?;
        // One zstd worker per core: compressing was most of a SQLite backup's time, one core
        // could not keep up with the engine's page copy. The frame stays one standard zstd
        // frame (and identical for any worker count ≥ 1); the workers are started by the
        // thread that packs, so they share its lower priority (see `pack_on_thread`).
        enc.set_parameter(zstd::zstd_safe::CParameter::NbWorkers(workers()))
            .map_err(zstd_err)?;
        Ok(Self {
            enc,
            hash: Sha256::new(),
            raw: 0,
            stored: 0,
            out: vec![0; zstd::zstd_safe::CCtx::out_size()],
        })
    }

    /// Compresses `data`; returns the stored bytes it produced (often none: zstd buffers).
    pub fn push(&mut self, data: &[u8]) -> Result<Vec<u8>> {
        self.raw += data.len() as u64;
        let mut produced = Vec::new();
        let mut input = InBuffer::around(data);
        while input.pos() < data.len() {
            let mut output = OutBuffer::around(&mut self.out[..]);
            self.enc.run(&mut input, &mut output).map_err(zstd_err)?;
            produced.extend_from_slice(output.as_slice());
        }
        self.account(&produced);
        Ok(produced)
    }

    /// Ends the frame; returns its last stored bytes.
    pub fn finish(&mut self) -> Result<Vec<u8>> {
        let mut produced = Vec::new();
        loop {
            let mut output = OutBuffer::around(&mut self.out[..]);
            let left = self.enc.finish(&mut output, true).map_err(zstd_err)?;
            produced.extend_from_slice(output.as_slice());
            if left == 0 {
                break;
            }
        }
        self.account(&produced);
        Ok(produced)
    }

    fn account(&mut self, stored: &[u8]) {
        self.hash.update(stored);
        self.stored += stored.len() as u64;
    }

    /// Raw bytes taken so far.
    pub fn raw_bytes(&self) -> u64 {
        self.raw
    }

    /// Stored bytes produced so far.
    pub fn stored_bytes(&self) -> u64 {
        self.stored
    }

    /// The SHA-256 of everything produced; call after [`finish`](Self::finish).
    pub fn sha256(&self) -> String {
        hex(&self.hash.clone().finalize())
    }
}

/// zstd workers for one backup: the machine's cores, at most 4 (beyond that a backup's
/// engine side is the limit, and each worker holds a few MiB of job buffers).
fn workers() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(4) as u32)
}

/// The nice value of the packing thread and its zstd workers: above the gateway's other
/// threads (nice 0), so a call that needs a core gets it first (CFS weights 110 against 1024),
/// while a backup still takes every idle cycle.
const PACKING_NICENESS: i32 = 10;

/// The calling thread's nice value, from `/proc/thread-self/stat` (field 19); `None` where
/// that file does not exist.
fn own_niceness() -> Option<i32> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    // The command name (field 2) may hold spaces and parentheses; the fields after its last
    // ')' are plain numbers.
    let after = stat.get(stat.rfind(')')? + 2..)?;
    after.split(' ').nth(16)?.parse().ok()
}

/// Lowers the calling thread's priority to [`PACKING_NICENESS`], unless it already runs at that
/// priority or lower (a gateway started with `nice -n 15` keeps its packing thread at 15, never
/// above its other threads). Best effort: a platform or a sandbox that refuses it leaves the
/// thread as it was, which only costs latency elsewhere.
fn lower_priority() {
    if own_niceness().is_none_or(|n| n >= PACKING_NICENESS) {
        return;
    }
    use thread_priority::{
        NormalThreadSchedulePolicy, ThreadPriority, ThreadPriorityValue, ThreadSchedulePolicy,
    };
    // The crate maps 0..=99 linearly onto nice 19..=-20 and offers no way to name a nice
    // value directly on Unix: 22 is nice 10 (a unit test reads it back from /proc).
    let set = ThreadPriorityValue::try_from(22u8)
        .map_err(|e| e.to_owned())
        .and_then(|p| {
            thread_priority::set_thread_priority_and_policy(
                thread_priority::thread_native_id(),
                ThreadPriority::Crossplatform(p),
                ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Other),
            )
            .map_err(|e| format!("{e:?}"))
        });
    if let Err(e) = set {
        tracing::debug!(
            error = ?e,
            nice = PACKING_NICENESS,
            "could not lower the backup packing thread's priority"
        );
    }
}

/// Raw pieces waiting for the packing thread, and stored pieces waiting for the target: with
/// pieces of at most 256 KiB, each side holds about 1 MiB at most.
const PIPE_DEPTH: usize = 4;

/// The two ends of a [`Packer`] running on a thread of its own, and its handle.
pub type PackPipe = (
    tokio::sync::mpsc::Sender<Vec<u8>>,
    tokio::sync::mpsc::Receiver<Vec<u8>>,
    tokio::sync::oneshot::Receiver<Result<Packer>>,
);

/// Starts a [`Packer`] on a thread of its own, between the engine and the target.
///
/// Compression is most of a backup's CPU. On tokio's worker threads it delayed every other
/// call of the gateway (a point query's p99 grew 4–8× during a backup on 2 vCPUs), and it ran
/// one after the other with reading and uploading; here the three overlap. The thread is not
/// one of tokio's blocking pool, because it lowers its own priority (nice 10) and
/// a pooled thread would keep that for whatever runs on it next. Send raw pieces in order to
/// the first end and drop it at the end; the second end then yields the stored pieces, the
/// frame's end last, and the third hands the packer back for its sizes and hash. When one side
/// stops early, the others find their channel closed and stop too.
pub fn pack_on_thread(level: i32) -> Result<PackPipe> {
    let (raw, mut raw_rx) = tokio::sync::mpsc::channel::<Vec<u8>>(PIPE_DEPTH);
    let (stored_tx, stored) = tokio::sync::mpsc::channel(PIPE_DEPTH);
    let (done_tx, done) = tokio::sync::oneshot::channel();
    let gone = || Error::Unavailable("the backup's upload stopped taking data".into());
    let mut pack = move || -> Result<Packer> {
        lower_priority();
        // Created here, after the priority is lowered: zstd starts its workers from the
        // thread that compresses, and Linux threads inherit their creator's nice value.
        let mut packer = Packer::new(level)?;
        while let Some(piece) = raw_rx.blocking_recv() {
            let out = packer.push(&piece)?;
            if !out.is_empty() {
                stored_tx.blocking_send(out).map_err(|_| gone())?;
            }
        }
        let tail = packer.finish()?;
        stored_tx.blocking_send(tail).map_err(|_| gone())?;
        Ok(packer)
    };
    std::thread::Builder::new()
        .name("dbforge-backup-pack".into())
        .spawn(move || {
            // The receiver is gone only when the backup was abandoned; nothing to report to.
            let _ = done_tx.send(pack());
        })
        .map_err(Error::internal)?;
    Ok((raw, stored, done))
}

/// Hashes stored pieces and decompresses them, handing out raw pieces of bounded size.
pub struct Unpacker {
    dec: Decoder<'static>,
    hash: Sha256,
    stored: u64,
    /// Stored bytes taken but not yet decompressed, from `pos` on.
    pending: Vec<u8>,
    pos: usize,
    /// Whether the last call to the decoder ended a frame.
    frame_done: bool,
    /// A decompression error, kept: the caller still hashes the rest to tell damage apart.
    broken: Option<String>,
}

impl std::fmt::Debug for Unpacker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unpacker")
            .field("stored", &self.stored)
            .finish()
    }
}

impl Unpacker {
    /// An unpacker for one backup.
    pub fn new() -> Result<Self> {
        Ok(Self {
            dec: Decoder::new().map_err(zstd_err)?,
            hash: Sha256::new(),
            stored: 0,
            pending: Vec::new(),
            pos: 0,
            frame_done: false,
            broken: None,
        })
    }

    /// Takes the next stored piece; raw pieces come out of [`next_raw`](Self::next_raw).
    pub fn feed(&mut self, stored: &[u8]) {
        self.hash.update(stored);
        self.stored += stored.len() as u64;
        self.pending.drain(..self.pos);
        self.pos = 0;
        self.pending.extend_from_slice(stored);
    }

    /// Hashes a stored piece without decompressing it (after a failure, to classify it).
    pub fn hash_only(&mut self, stored: &[u8]) {
        self.hash.update(stored);
        self.stored += stored.len() as u64;
    }

    /// The next raw piece from what was fed, or `None` when it needs more input. A damaged
    /// stream is [`Error::DataLoss`].
    pub fn next_raw(&mut self) -> Result<Option<Vec<u8>>> {
        if let Some(e) = &self.broken {
            return Err(Error::DataLoss(e.clone()));
        }
        let mut out = vec![0u8; RAW_PIECE];
        let mut written = 0;
        while written < RAW_PIECE && self.pos < self.pending.len() {
            let mut input = InBuffer::around(&self.pending[self.pos..]);
            let mut output = OutBuffer::around(&mut out[written..]);
            let hint = match self.dec.run(&mut input, &mut output) {
                Ok(hint) => hint,
                Err(e) => {
                    let msg = format!("the backup does not decompress: {e}");
                    self.broken = Some(msg.clone());
                    return Err(Error::DataLoss(msg));
                }
            };
            self.pos += input.pos();
            written += output.pos();
            self.frame_done = hint == 0;
            if input.pos() == 0 && output.pos() == 0 {
                break;
            }
        }
        if written == 0 {
            return Ok(None);
        }
        out.truncate(written);
        Ok(Some(out))
    }

    /// Checks that the stream ended with a whole frame and that the stored bytes hash to
    /// `sha256` and number `size`: anything else is [`Error::DataLoss`].
    pub fn verify(&self, sha256: &str, size: u64) -> Result<()> {
        let got = hex(&self.hash.clone().finalize());
        if got != sha256 || self.stored != size {
            return Err(Error::DataLoss(format!(
                "the stored backup does not match its checksum: {} bytes with SHA-256 {got}, \
                 the catalog recorded {size} bytes with SHA-256 {sha256}; nothing was restored",
                self.stored
            )));
        }
        if let Some(e) = &self.broken {
            return Err(Error::DataLoss(e.clone()));
        }
        if !self.frame_done || self.pos < self.pending.len() {
            return Err(Error::DataLoss(
                "the stored backup ends in the middle of its data".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pack(data: &[u8], piece: usize) -> (Vec<u8>, String) {
        pack_at(1, data, piece)
    }

    fn pack_at(level: i32, data: &[u8], piece: usize) -> (Vec<u8>, String) {
        let mut p = Packer::new(level).expect("packer");
        let mut stored = Vec::new();
        for c in data.chunks(piece) {
            stored.extend(p.push(c).expect("push"));
        }
        stored.extend(p.finish().expect("finish"));
        assert_eq!(p.stored_bytes(), stored.len() as u64);
        assert_eq!(p.raw_bytes(), data.len() as u64);
        (stored, p.sha256())
    }

    fn unpack(stored: &[u8], piece: usize) -> (Vec<u8>, Unpacker) {
        let mut u = Unpacker::new().expect("unpacker");
        let mut raw = Vec::new();
        for c in stored.chunks(piece) {
            u.feed(c);
            while let Some(r) = u.next_raw().expect("decompresses") {
                assert!(r.len() <= RAW_PIECE);
                raw.extend(r);
            }
        }
        (raw, u)
    }

    fn sample() -> Vec<u8> {
        // Compressible but not trivially: a long run of zeros (ratio in the thousands) and text.
        let mut data = vec![0u8; 4 << 20];
        for i in 0..200_000u32 {
            data.extend_from_slice(format!("INSERT INTO t VALUES ({i}, 'row {i}');\n").as_bytes());
        }
        data
    }

    #[test]
    fn round_trip_in_bounded_pieces() {
        let data = sample();
        let (stored, sha) = pack(&data, 64 << 10);
        assert!(stored.len() < data.len() / 4, "compresses");
        assert_eq!(sha, sha256_hex(&stored));
        let (raw, u) = unpack(&stored, 7919);
        assert_eq!(raw, data);
        u.verify(&sha, stored.len() as u64).expect("verifies");
    }

    #[test]
    fn every_level_stores_a_frame_that_restores_read() {
        let data = sample();
        let sizes: Vec<usize> = [-7, -1, 1, 19]
            .into_iter()
            .map(|level| {
                let (stored, sha) = pack_at(level, &data, 64 << 10);
                let (raw, u) = unpack(&stored, 7919);
                assert_eq!(raw, data, "level {level}");
                u.verify(&sha, stored.len() as u64).expect("verifies");
                stored.len()
            })
            .collect();
        assert!(sizes[0] > sizes[2] && sizes[2] > sizes[3], "{sizes:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_packing_thread_stores_what_the_packer_stores() {
        let data = sample();
        let (expected, sha) = pack(&data, 64 << 10);
        let (raw, mut stored, done) = pack_on_thread(1).expect("starts");
        let feed = data.clone();
        let feeder = tokio::spawn(async move {
            for c in feed.chunks(64 << 10) {
                raw.send(c.to_vec()).await.expect("the thread takes pieces");
            }
        });
        let mut got = Vec::new();
        while let Some(piece) = stored.recv().await {
            got.extend(piece);
        }
        feeder.await.expect("feeder");
        let packer = done.await.expect("joins").expect("packs");
        assert_eq!(got, expected);
        assert_eq!(packer.sha256(), sha);
        assert_eq!(packer.raw_bytes(), data.len() as u64);
    }

    #[test]
    fn the_packing_thread_runs_at_the_packing_niceness_or_lower() {
        let before = own_niceness().expect("a Linux /proc");
        let nice = std::thread::spawn(|| {
            lower_priority();
            own_niceness().expect("a Linux /proc")
        })
        .join()
        .expect("joins");
        // A test run under `nice` starts above 0: the thread never gains priority.
        assert_eq!(nice, before.max(PACKING_NICENESS));
        assert_eq!(
            own_niceness(),
            Some(before),
            "the caller's own thread keeps its priority"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_upload_that_stops_stops_the_packing_thread() {
        let (raw, stored, done) = pack_on_thread(1).expect("starts");
        drop(stored);
        // Incompressible pieces, so the thread has output to hand over and finds nobody.
        let mut x = 0x2545_f491_4f6c_dd1d_u64;
        let mut refused = false;
        for _ in 0..64 {
            let piece: Vec<u8> = (0..(256 << 10))
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            if raw.send(piece).await.is_err() {
                refused = true;
                break;
            }
        }
        assert!(refused, "the producer is told to stop");
        let err = done.await.expect("joins").expect_err("the thread fails");
        assert!(matches!(err, Error::Unavailable(_)), "{err:?}");
    }

    #[test]
    fn a_flipped_byte_or_a_cut_is_data_loss() {
        let data = sample();
        let (stored, sha) = pack(&data, 64 << 10);

        let mut flipped = stored.clone();
        let at = flipped.len() / 2;
        flipped[at] ^= 0x40;
        let mut u = Unpacker::new().expect("unpacker");
        for c in flipped.chunks(65536) {
            u.feed(c);
            // Decompression may or may not notice; the checksum always does.
            while let Ok(Some(_)) = u.next_raw() {}
        }
        assert!(matches!(
            u.verify(&sha, stored.len() as u64),
            Err(Error::DataLoss(_))
        ));

        let cut = &stored[..stored.len() - 10];
        let (_, u) = unpack(cut, 65536);
        assert!(matches!(
            u.verify(&sha256_hex(cut), cut.len() as u64),
            Err(Error::DataLoss(m)) if m.contains("middle")
        ));
    }
}
