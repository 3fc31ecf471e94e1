//! Per-key limits applied at the edge: a request rate (token bucket, via `governor`) and a cap
//! on concurrent streams and sessions. Both answer RESOURCE_EXHAUSTED; the rate limit also
//! says when to retry (google.rpc.RetryInfo).

use std::{
    collections::HashMap,
    num::NonZeroU32,
    sync::{Arc, Mutex},
};

use governor::{
    DefaultKeyedRateLimiter, Quota, RateLimiter,
    clock::{Clock, DefaultClock},
};

use super::telemetry::telemetry;
use crate::core::{access::Principal, error::Error};

/// The limits of every key.
#[derive(Debug)]
pub struct KeyLimits {
    rate: Option<DefaultKeyedRateLimiter<String>>,
    clock: DefaultClock,
    max_streams: usize,
    streams: Mutex<HashMap<String, usize>>,
}

impl KeyLimits {
    /// `per_second` requests per key (0: unlimited) with bursts of `burst`; at most
    /// `max_streams` streams and sessions open per key at once (0: unlimited).
    pub fn new(per_second: u32, burst: u32, max_streams: usize) -> Self {
        let rate = NonZeroU32::new(per_second).map(|rate| {
            let burst = NonZeroU32::new(burst).unwrap_or(rate);
            RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        });
        KeyLimits {
            rate,
            clock: DefaultClock::default(),
            max_streams,
            streams: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one request from the caller's bucket.
    pub fn check_rate(&self, who: &Principal) -> Result<(), Error> {
        let Some(rate) = &self.rate else {
            return Ok(());
        };
        let key = who.key_id().to_owned();
        rate.check_key(&key).map_err(|not_until| {
            telemetry().rejected("RATE_LIMITED");
            let retry_after = not_until.wait_time_from(self.clock.now());
            Error::RateLimited {
                message: format!(
                    "key {key} exceeded its request rate; retry in {} ms",
                    retry_after.as_millis().max(1)
                ),
                retry_after,
            }
        })
    }

    /// Opens a stream or session for the caller, if it has fewer than the maximum open.
    pub fn open_stream(self: &Arc<Self>, who: &Principal) -> Result<StreamPermit, Error> {
        let key = who.key_id().to_owned();
        if self.max_streams > 0 {
            let mut streams = self
                .streams
                .lock()
                .map_err(|_| Error::internal("stream counter poisoned"))?;
            let open = streams.entry(key.clone()).or_default();
            if *open >= self.max_streams {
                telemetry().rejected("TOO_MANY_STREAMS");
                return Err(Error::LimitExceeded(format!(
                    "key {key} already has {open} streams and sessions open, its maximum"
                )));
            }
            *open += 1;
        }
        Ok(StreamPermit {
            limits: Arc::clone(self),
            key,
        })
    }
}

/// One open stream or session; closing it (dropping the permit) frees the slot.
#[derive(Debug)]
pub struct StreamPermit {
    limits: Arc<KeyLimits>,
    key: String,
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        if self.limits.max_streams == 0 {
            return;
        }
        let Ok(mut streams) = self.limits.streams.lock() else {
            return;
        };
        if let Some(open) = streams.get_mut(&self.key) {
            *open = open.saturating_sub(1);
            if *open == 0 {
                streams.remove(&self.key);
            }
        }
    }
}
