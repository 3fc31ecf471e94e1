//! Restore fences across gateways sharing a catalog: while one gateway replaces a server
//! database's storage from a backup, every other gateway refuses calls on it. The restoring
//! gateway writes a fence row (renewed like a lease, so a crashed restorer's fence lapses),
//! each other gateway acknowledges it once its calls on that database have ended, and the
//! restorer goes on only when every live gateway has. See [`crate::core::fence`].

use rusqlite::params;

use super::{Catalog, databases_changed};
use crate::core::{error::Result, names::DatabaseName};

/// One fence as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FenceRow {
    /// The fenced database.
    pub db: String,
    /// The gateway restoring it.
    pub holder: String,
    /// This fence among the database's fences (acknowledgements name it).
    pub token: String,
    /// When it lapses unless renewed, Unix ms.
    pub until_ms: i64,
}

impl Catalog {
    /// Fences `db` for this gateway as fence `token` until `until_ms`, replacing a lapsed
    /// fence, and notifies the other gateways. False when another fence on `db` holds.
    pub fn put_fence(
        &self,
        db: &DatabaseName,
        token: &str,
        until_ms: i64,
        now_ms: i64,
    ) -> Result<bool> {
        let node = self.node().to_owned();
        self.with(|c| {
            let put = c.execute(
                "INSERT INTO fences (db, holder, token, until_ms) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (db) DO UPDATE SET holder = ?2, token = ?3, until_ms = ?4
                 WHERE fences.until_ms < ?5",
                params![db.as_str(), node, token, until_ms, now_ms],
            )? == 1;
            if put {
                c.execute(
                    "DELETE FROM fence_acks WHERE db = ?1 AND token <> ?2",
                    params![db.as_str(), token],
                )?;
                databases_changed(c)?;
            }
            Ok(put)
        })
    }

    /// Extends fence `token` on `db` to `until_ms` and notifies the other gateways (they
    /// learn the new end with their next reload); false when the fence is gone.
    pub fn renew_fence(&self, db: &DatabaseName, token: &str, until_ms: i64) -> Result<bool> {
        self.with(|c| {
            let renewed = c.execute(
                "UPDATE fences SET until_ms = ?3 WHERE db = ?1 AND token = ?2",
                params![db.as_str(), token, until_ms],
            )? == 1;
            if renewed {
                databases_changed(c)?;
            }
            Ok(renewed)
        })
    }

    /// Lifts fence `token` on `db` and notifies the other gateways.
    pub fn lift_fence(&self, db: &DatabaseName, token: &str) -> Result<()> {
        self.with(|c| {
            c.execute(
                "DELETE FROM fences WHERE db = ?1 AND token = ?2",
                params![db.as_str(), token],
            )?;
            c.execute(
                "DELETE FROM fence_acks WHERE db = ?1 AND token = ?2",
                params![db.as_str(), token],
            )?;
            databases_changed(c)
        })
    }

    /// Every stored fence, lapsed ones included (the reader compares `until_ms`).
    pub fn fences(&self) -> Result<Vec<FenceRow>> {
        self.with(|c| {
            c.query_map(
                "SELECT db, holder, token, until_ms FROM fences ORDER BY db",
                &[],
                |r| {
                    Ok(FenceRow {
                        db: r.get(0)?,
                        holder: r.get(1)?,
                        token: r.get(2)?,
                        until_ms: r.get(3)?,
                    })
                },
            )
        })
    }

    /// Records that this gateway keeps fence `token` on `db`: its calls on it have ended and
    /// it takes no new ones.
    pub fn ack_fence(&self, db: &str, token: &str) -> Result<()> {
        let node = self.node().to_owned();
        self.with(|c| {
            c.execute(
                "INSERT INTO fence_acks (db, token, node) VALUES (?1, ?2, ?3)
                 ON CONFLICT (db, token, node) DO NOTHING",
                params![db, token, node],
            )
            .map(drop)
        })
    }

    /// The gateways that acknowledged fence `token` on `db`.
    pub fn fence_acks(&self, db: &DatabaseName, token: &str) -> Result<Vec<String>> {
        self.with(|c| {
            c.query_map(
                "SELECT node FROM fence_acks WHERE db = ?1 AND token = ?2 ORDER BY node",
                params![db.as_str(), token],
                |r| r.get(0),
            )
        })
    }
}
