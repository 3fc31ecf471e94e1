//! Watching a database server that may be down, for the shared pool of every server engine
//! ([`crate::backend::pool`], whose task probes): where it is (for messages, without the
//! password), whether it answered, why not, and how long to wait before asking again.
//!
//! While a server is down the probe retries with bounded exponential backoff (250 ms doubling
//! up to [`MAX_DOWN_INTERVAL`]). A call that sees a broken connection wakes the probe early only
//! while the server is believed up: while it is down, that news is old, and waking on it made
//! a refused connect wake the probe that made it, a busy loop of refused connects.
//!
//! Logging: one WARN the first time the server is found unreachable (at start or later), with
//! its URL and the cause, and one INFO when it answers again; nothing per retry.

use std::{
    sync::{
        Mutex,
        atomic::{AtomicU8, Ordering},
    },
    time::Duration,
};

use tracing::{info, warn};

/// The first wait after a failed probe.
pub const FIRST_DOWN_INTERVAL: Duration = Duration::from_millis(250);
/// The longest wait between probes of a server that is down: a recovery is noticed within
/// this, and an absent server costs a connect attempt this often.
pub const MAX_DOWN_INTERVAL: Duration = Duration::from_secs(2);

/// Waits between probes of a server that is down: doubling from [`FIRST_DOWN_INTERVAL`] up to
/// [`MAX_DOWN_INTERVAL`], back to the start once it answers.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            next: FIRST_DOWN_INTERVAL,
        }
    }
}

impl Backoff {
    /// The wait before the next probe of a server that just failed one.
    pub fn failed(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(MAX_DOWN_INTERVAL);
        wait
    }

    /// The server answered: the next failure starts from the shortest wait again.
    pub fn reset(&mut self) {
        self.next = FIRST_DOWN_INTERVAL;
    }
}

/// Where a server is, for messages and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The URL without its password (nor any `password=` parameter).
    pub url: String,
    /// `host:port`, or the URL's host part as given.
    pub addr: String,
}

impl Location {
    /// From an admin URL such as `postgres://user:secret@host:5432/db?sslmode=disable`.
    pub fn from_url(url: &str) -> Self {
        let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
        let (authority, tail) = match rest.find(['/', '?']) {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        let (userinfo, host) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let user = userinfo.map(|u| u.split_once(':').map_or(u, |(name, _)| name));
        let (path, query) = tail.split_once('?').unwrap_or((tail, ""));
        let query: Vec<&str> = query
            .split('&')
            .filter(|p| !p.is_empty() && !p.to_ascii_lowercase().starts_with("password="))
            .collect();
        let mut shown = String::new();
        if !scheme.is_empty() {
            shown.push_str(scheme);
            shown.push_str("://");
        }
        if let Some(user) = user.filter(|u| !u.is_empty()) {
            shown.push_str(user);
            shown.push('@');
        }
        shown.push_str(host);
        shown.push_str(path);
        if !query.is_empty() {
            shown.push('?');
            shown.push_str(&query.join("&"));
        }
        Self {
            url: shown,
            addr: host.to_owned(),
        }
    }
}

const UNKNOWN: u8 = 0;
const UP: u8 = 1;
const DOWN: u8 = 2;

/// Whether a server answered its last probe, and why not.
#[derive(Debug)]
pub struct Availability {
    backend: &'static str,
    location: Location,
    state: AtomicU8,
    cause: Mutex<String>,
}

impl Availability {
    /// Not probed yet: counts as down until the first probe answers.
    pub fn new(backend: &'static str, location: Location) -> Self {
        Self {
            backend,
            location,
            state: AtomicU8::new(UNKNOWN),
            cause: Mutex::new("it has not been probed yet".into()),
        }
    }

    /// Where the server is.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// Whether the last probe reached the server.
    pub fn is_up(&self) -> bool {
        self.state.load(Ordering::Relaxed) == UP
    }

    /// Records a probe's outcome, logging a change (and the first answer); returns whether the
    /// server is up.
    pub fn record(&self, outcome: Result<(), String>) -> bool {
        let up = outcome.is_ok();
        let was = self
            .state
            .swap(if up { UP } else { DOWN }, Ordering::Relaxed);
        let (backend, url) = (self.backend, self.location.url.as_str());
        match outcome {
            Ok(()) if was == DOWN => info!(backend, url, "database server is reachable again"),
            Ok(()) if was == UNKNOWN => info!(backend, url, "database server is reachable"),
            Ok(()) => {}
            Err(cause) => {
                if was != DOWN {
                    warn!(
                        backend,
                        url,
                        error = %cause,
                        "database server is unreachable; calls to its databases fail with \
                         UNAVAILABLE and it is probed again with backoff (up to every {}s)",
                        MAX_DOWN_INTERVAL.as_secs()
                    );
                }
                if let Ok(mut c) = self.cause.lock() {
                    *c = cause;
                }
            }
        }
        up
    }

    /// The error for a call made while the server is down: where it is and why it is not
    /// reachable.
    pub fn unavailable(&self) -> crate::core::error::Error {
        let cause = self.cause.lock().map(|c| c.clone()).unwrap_or_default();
        crate::core::error::Error::Unavailable(format!(
            "the {} server at {} cannot be reached right now ({cause}); calls succeed again \
             once it answers",
            self.backend, self.location.addr
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_and_resets() {
        let mut b = Backoff::default();
        let waits: Vec<_> = (0..7).map(|_| b.failed().as_millis()).collect();
        assert_eq!(waits, [250, 500, 1000, 2000, 2000, 2000, 2000]);
        b.reset();
        assert_eq!(b.failed(), FIRST_DOWN_INTERVAL);
    }

    #[test]
    fn locations_never_show_the_password() {
        let l =
            Location::from_url("postgres://admin:s3cret@db.local:5432/postgres?sslmode=disable");
        assert_eq!(
            l.url,
            "postgres://admin@db.local:5432/postgres?sslmode=disable"
        );
        assert_eq!(l.addr, "db.local:5432");
        let l = Location::from_url("mysql://root:p%40ss@127.0.0.1:3306?password=x&ssl-mode=off");
        assert_eq!(l.url, "mysql://root@127.0.0.1:3306?ssl-mode=off");
        let l = Location::from_url("redis://:pw@127.0.0.1:6379");
        assert_eq!(l.url, "redis://127.0.0.1:6379");
        assert_eq!(l.addr, "127.0.0.1:6379");
        let l = Location::from_url("postgres://postgres@127.0.0.1:5999/postgres");
        assert_eq!(l.url, "postgres://postgres@127.0.0.1:5999/postgres");
    }
}
