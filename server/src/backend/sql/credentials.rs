//! Keeping the gateway's logins the gateway's. PostgreSQL and MySQL let every login change its
//! own password (`ALTER ROLE CURRENT_USER PASSWORD …`, `SET PASSWORD = …`), and PostgreSQL its
//! own stored settings (`ALTER ROLE CURRENT_USER SET …`), whatever else it is denied: no
//! privilege takes that away. A tenant with a write key could so learn a password for its
//! database that works outside the gateway, or break the gateway's login.
//!
//! So the backend watches: every few seconds ([`SWEEP_EVERY`]) one administrative query reads
//! what the server stores as the credential of each of this backend's logins, and another (on
//! PostgreSQL) which of them have stored settings they were not given. A login whose stored
//! credential is no longer the catalog's password, or whose settings drifted, is reset
//! ([`Provisioner::reset_login`]) and the event is logged at warn. A stored credential that
//! was checked once is remembered, so a sweep costs the queries and string comparisons; the
//! hashing (PBKDF2 for SCRAM) runs only for a credential not seen before, on a blocking thread.
//! A refused login is also reset at once when the gateway next connects ([`super::Relogin`]).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, Weak},
    time::Duration,
};

use tracing::{debug, warn};

use super::provision::{Provisioner, Shared};
use crate::backend::reader::reader_ident;

/// How often the stored credentials are compared with the catalog's.
pub const SWEEP_EVERY: Duration = Duration::from_secs(3);

/// Stored credentials hashed per sweep, at most. A SCRAM check costs a PBKDF2 of 4,096 rounds
/// (milliseconds), and after a start every login of the catalog is unverified: the cap spreads
/// that first pass over several sweeps instead of one long burst. A credential that changed
/// since it was verified (a tenant's doing, or the gateway's own reset) goes first.
const MAX_CHECKS_PER_SWEEP: usize = 32;

/// A login the backend watches.
#[derive(Debug, Clone)]
struct Watched {
    password: String,
    reader: bool,
    /// The stored credential last found to be `password`'s.
    verified: Option<String>,
}

/// The logins of the databases this gateway has spawned or opened, with their passwords.
#[derive(Debug, Default)]
pub struct Watchlist {
    logins: Mutex<HashMap<String, Watched>>,
}

impl Watchlist {
    /// Watches the database `ident`'s own and read-only logins, which share `password`.
    pub fn watch(&self, ident: &str, password: &str) {
        let mut logins = self.lock();
        for (login, reader) in [(ident.to_owned(), false), (reader_ident(ident), true)] {
            logins.entry(login).or_insert_with(|| Watched {
                password: password.to_owned(),
                reader,
                verified: None,
            });
        }
    }

    /// Stops watching the database `ident` (it was dropped).
    pub fn forget(&self, ident: &str) {
        let mut logins = self.lock();
        logins.remove(ident);
        logins.remove(&reader_ident(ident));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Watched>> {
        self.logins
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Runs [`sweep`] every [`SWEEP_EVERY`] until the backend is dropped.
pub async fn watch<P: Provisioner>(shared: Weak<Shared<P>>) {
    loop {
        tokio::time::sleep(SWEEP_EVERY).await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        if shared.watchlist.lock().is_empty() || !shared.server.is_up() {
            continue;
        }
        if let Err(e) = sweep(&shared).await {
            debug!(error = %e, "credential sweep failed; the next one tries again");
        }
    }
}

/// Compares every watched login's stored credential and settings with what the gateway gave
/// it, and resets those that differ; returns the logins it reset.
pub async fn sweep<P: Provisioner>(
    shared: &Arc<Shared<P>>,
) -> crate::core::error::Result<Vec<String>> {
    let like = super::text::like_prefix(&shared.prefix);
    let (stored, unsettled) = shared
        .admin_timeout(async {
            let mut admin = shared.admin().await?;
            let stored = admin.strings(P::CREDENTIALS, &like).await?;
            let unsettled = match P::DRIFTED_SETTINGS {
                Some(query) => admin.strings(query, &like).await?,
                None => Vec::new(),
            };
            Ok((stored, unsettled))
        })
        .await?;
    // What needs hashing, taken out of the lock: changed credentials first, then the never
    // verified, at most MAX_CHECKS_PER_SWEEP.
    let to_check: Vec<(String, String, String)> = {
        let logins = shared.watchlist.lock();
        let mut pending: Vec<(bool, String, String, String)> = stored
            .iter()
            .filter_map(|row| row.split_once(' '))
            .filter_map(|(login, credential)| {
                let w = logins.get(login)?;
                (w.verified.as_deref() != Some(credential)).then(|| {
                    let changed = w.verified.is_some();
                    (
                        changed,
                        login.to_owned(),
                        credential.to_owned(),
                        w.password.clone(),
                    )
                })
            })
            .collect();
        pending.sort_by_key(|(changed, ..)| !changed);
        pending
            .into_iter()
            .take(MAX_CHECKS_PER_SWEEP)
            .map(|(_, login, credential, password)| (login, credential, password))
            .collect()
    };
    let checked = tokio::task::spawn_blocking(move || {
        to_check
            .into_iter()
            .map(|(login, credential, password)| {
                let ok = P::credential_is(&login, &credential, &password);
                (login, credential, ok)
            })
            .collect::<Vec<_>>()
    })
    .await
    .map_err(crate::core::error::Error::internal)?;
    let mut drifted: Vec<(String, Watched)> = Vec::new();
    {
        let mut logins = shared.watchlist.lock();
        for (login, credential, ok) in checked {
            let Some(w) = logins.get_mut(&login) else {
                continue;
            };
            if ok {
                w.verified = Some(credential);
            } else {
                w.verified = None;
                drifted.push((login, w.clone()));
            }
        }
        for login in unsettled {
            if let Some(w) = logins.get(&login)
                && !drifted.iter().any(|(l, _)| *l == login)
            {
                drifted.push((login, w.clone()));
            }
        }
    }
    let mut reset = Vec::with_capacity(drifted.len());
    for (login, w) in drifted {
        warn!(
            login = %login,
            backend = %<P::Engine as super::Engine>::KIND,
            "a login's password or stored settings were changed from inside its database; \
             resetting them to the gateway's"
        );
        shared
            .admin_timeout(async {
                let mut admin = shared.admin().await?;
                shared
                    .engine
                    .reset_login(&mut admin, &login, &w.password, w.reader)
                    .await
            })
            .await?;
        reset.push(login);
    }
    Ok(reset)
}
