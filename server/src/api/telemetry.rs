//! Operational figures: Prometheus metrics (served at `/metrics`) and the in-process counters
//! behind `GetServerStats`.
//!
//! Metrics go through the `metrics` facade to one process-wide Prometheus recorder, so every
//! layer can record without holding a handle. Per-RPC counts and durations are recorded where
//! the audit record of a call is made ([`super::Call`]), once per call.

use crate::metrics as names;
use std::{
    collections::BTreeMap,
    pin::Pin,
    sync::{
        Mutex, OnceLock,
        atomic::{AtomicI64, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::transport::server::{Connected, TcpConnectInfo};

/// Counters of one RPC.
#[derive(Debug, Clone, Copy, Default)]
pub struct RpcCounters {
    /// Calls.
    pub calls: u64,
    /// Calls that failed.
    pub errors: u64,
    /// Sum of durations.
    pub total: Duration,
    /// Longest duration.
    pub max: Duration,
}

/// Process-wide telemetry.
#[derive(Debug)]
pub struct Telemetry {
    started: Instant,
    prometheus: PrometheusHandle,
    rpcs: Mutex<BTreeMap<&'static str, RpcCounters>>,
    /// Open client connections.
    pub connections: AtomicI64,
    /// Streams being sent.
    pub streams: AtomicI64,
    /// Open sessions.
    pub sessions: AtomicI64,
}

static TELEMETRY: OnceLock<Telemetry> = OnceLock::new();

/// Sets up telemetry; with `metrics` false no Prometheus recorder is installed, so metric
/// calls cost next to nothing. Only the first call in a process decides.
pub fn install(metrics: bool) -> &'static Telemetry {
    TELEMETRY.get_or_init(|| build(metrics))
}

/// The process's telemetry, installing the Prometheus recorder on first use.
pub fn telemetry() -> &'static Telemetry {
    TELEMETRY.get_or_init(|| build(true))
}

fn build(metrics: bool) -> Telemetry {
    {
        let recorder = PrometheusBuilder::new()
            .set_buckets(&[
                0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05,
                0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ])
            .map(PrometheusBuilder::build_recorder)
            .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
        let prometheus = recorder.handle();
        // Another recorder may already be installed (an embedding program's); then ours only
        // serves GetServerStats and an empty /metrics.
        if !metrics {
            tracing::warn!("metrics are disabled (--disable-metrics)");
        } else if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!(
                "a metrics recorder was already installed; /metrics shows only its own data"
            );
        }
        Telemetry {
            started: Instant::now(),
            prometheus,
            rpcs: Mutex::new(BTreeMap::new()),
            connections: AtomicI64::new(0),
            streams: AtomicI64::new(0),
            sessions: AtomicI64::new(0),
        }
    }
}

impl Telemetry {
    /// Records one finished call.
    pub fn rpc(&self, rpc: &'static str, code: &'static str, duration: Duration) {
        metrics::counter!(names::RPC_REQUESTS_TOTAL, "rpc" => rpc, "code" => code).increment(1);
        metrics::histogram!(names::RPC_DURATION_SECONDS, "rpc" => rpc)
            .record(duration.as_secs_f64());
        if matches!(
            code,
            "UNAUTHENTICATED" | "PERMISSION_DENIED" | "RESOURCE_EXHAUSTED"
        ) {
            self.rejected(code);
        }
        if let Ok(mut rpcs) = self.rpcs.lock() {
            let c = rpcs.entry(rpc).or_default();
            c.calls += 1;
            c.errors += u64::from(code != "OK");
            c.total += duration;
            c.max = c.max.max(duration);
        }
    }

    /// Counts a refused request.
    pub fn rejected(&self, reason: &'static str) {
        metrics::counter!(names::REJECTED_REQUESTS_TOTAL, "reason" => reason).increment(1);
    }

    /// Per-RPC counters so far.
    pub fn rpcs(&self) -> BTreeMap<&'static str, RpcCounters> {
        self.rpcs.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// Time since start.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        self.prometheus.render()
    }

    /// Moves a gauge kept both here and in Prometheus.
    pub fn adjust(&self, which: Gauge, by: i64) {
        let (cell, name) = match which {
            Gauge::Connections => (&self.connections, names::ACTIVE_CONNECTIONS),
            Gauge::Streams => (&self.streams, names::ACTIVE_STREAMS),
            Gauge::Sessions => (&self.sessions, names::ACTIVE_SESSIONS),
        };
        let now = cell.fetch_add(by, Ordering::Relaxed) + by;
        metrics::gauge!(name).set(now as f64);
    }
}

/// The gauges [`Telemetry::adjust`] moves.
#[derive(Debug, Clone, Copy)]
pub enum Gauge {
    /// Client connections.
    Connections,
    /// Streams being sent.
    Streams,
    /// Open sessions.
    Sessions,
}

/// Decrements a gauge when dropped.
#[derive(Debug)]
pub struct GaugeGuard(Gauge);

impl GaugeGuard {
    /// Increments `which` until the guard is dropped.
    pub fn new(which: Gauge) -> Self {
        telemetry().adjust(which, 1);
        GaugeGuard(which)
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        telemetry().adjust(self.0, -1);
    }
}

/// A client connection, counted while it is open.
#[derive(Debug)]
pub struct CountedIo<T> {
    inner: T,
    _open: GaugeGuard,
}

impl<T> CountedIo<T> {
    /// Counts `inner` as an open connection.
    pub fn new(inner: T) -> Self {
        CountedIo {
            inner,
            _open: GaugeGuard::new(Gauge::Connections),
        }
    }
}

impl Connected for CountedIo<tokio::net::TcpStream> {
    type ConnectInfo = TcpConnectInfo;
    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for CountedIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for CountedIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
