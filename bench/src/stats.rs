//! Latency summaries from plain sorted samples.
//!
//! Every latency phase keeps all its samples (at most a few hundred thousand `Duration`s, a few
//! MiB), so exact nearest-rank percentiles cost one sort and need no histogram crate.

use std::time::{Duration, Instant};

/// Percentiles of one latency phase.
#[derive(Debug, Clone, Copy)]
pub struct Latency {
    /// Median.
    pub p50: Duration,
    /// 95th percentile.
    pub p95: Duration,
    /// 99th percentile.
    pub p99: Duration,
}

impl Latency {
    /// Summarises `samples` (any order). `None` when there are none.
    pub fn from_samples(mut samples: Vec<Duration>) -> Option<Self> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_unstable();
        Some(Self {
            p50: percentile(&samples, 50.0),
            p95: percentile(&samples, 95.0),
            p99: percentile(&samples, 99.0),
        })
    }
}

/// Nearest-rank percentile of sorted, non-empty `samples`.
fn percentile(samples: &[Duration], p: f64) -> Duration {
    // Rank in 1..=n; the float round trip is exact for any sample count used here.
    let rank = ((p / 100.0) * samples.len() as f64).ceil() as usize;
    samples[rank.clamp(1, samples.len()) - 1]
}

/// Times `op` once per iteration after `warmup` untimed iterations, so connection setup, statement
/// caches and allocator growth are out of the measured samples.
pub async fn sample<F, Fut, E>(warmup: usize, iterations: usize, mut op: F) -> Result<Latency, E>
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = Result<(), E>>,
{
    for i in 0..warmup {
        op(i).await?;
    }
    let mut samples = Vec::with_capacity(iterations);
    for i in 0..iterations {
        let start = Instant::now();
        op(warmup + i).await?;
        samples.push(start.elapsed());
    }
    Ok(Latency::from_samples(samples).expect("at least one timed iteration"))
}

/// Blocking twin of [`sample`], for the in-process SQLite baselines.
pub fn sample_blocking<E>(
    warmup: usize,
    iterations: usize,
    mut op: impl FnMut(usize) -> Result<(), E>,
) -> Result<Latency, E> {
    for i in 0..warmup {
        op(i)?;
    }
    let mut samples = Vec::with_capacity(iterations);
    for i in 0..iterations {
        let start = Instant::now();
        op(warmup + i)?;
        samples.push(start.elapsed());
    }
    Ok(Latency::from_samples(samples).expect("at least one timed iteration"))
}

/// A small deterministic PRNG (xorshift64*), so runs read the same ids without a `rand` crate.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator with a fixed non-zero seed.
    pub fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    /// A key in `1..=n`.
    pub fn key(&mut self, n: u64) -> i64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d);
        i64::try_from(x % n + 1).expect("keys are far below i64::MAX")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_micros).collect();
        let l = Latency::from_samples(samples).expect("non-empty");
        assert_eq!(l.p50, Duration::from_micros(50));
        assert_eq!(l.p99, Duration::from_micros(99));
        let one = Latency::from_samples(vec![Duration::from_micros(7)]).expect("non-empty");
        assert_eq!(
            (one.p50, one.p99),
            (Duration::from_micros(7), Duration::from_micros(7))
        );
        assert!(Latency::from_samples(Vec::new()).is_none());
    }

    #[test]
    fn keys_stay_in_range() {
        let mut rng = Rng::new(42);
        assert!(
            (0..10_000)
                .map(|_| rng.key(10))
                .all(|k| (1..=10).contains(&k))
        );
    }
}
