//! Lifecycle policies (SetLifecyclePolicy): rules an admin sets once for every database a
//! selector matches, those that exist and those created later: prune after an idle time,
//! prune at an age, and a most databases per key.
//!
//! Rules this module keeps, and why:
//!
//! - **Stored, not cached.** Policies live in the catalog table `lifecycle_policies` and are
//!   read afresh by every pruner pass and every create; there are few of them ([`MAX_POLICIES`])
//!   and the read is one small query, so a restart or a change takes effect with no cache to
//!   invalidate.
//! - **The stricter wins.** A database's own TTL and idle TTL and every matching policy's
//!   `max_age` and `idle_ttl` are separate deadlines; the first one reached prunes it. Policies
//!   are an operator's guardrail (cost, hygiene) over tenants' databases, so an owner may
//!   shorten a database's life with its own settings but never lengthen it past a policy; and
//!   a policy never lengthens what an owner asked for. When several are due at once the
//!   database's own setting is named (it is what its owner chose), then policies by name.
//! - **Admin only.** A policy can select databases of every tenant and prune them, so setting
//!   and deleting one needs an admin key. Listing shows a non-admin key only the policies that
//!   select a database it can see: a policy's pattern may name other tenants.
//! - **Per key counts at create time.** `max_databases_per_key` is checked when a key spawns a
//!   database the policy selects (CreateDatabase, ForkDatabase), under the spawn lock, so two
//!   concurrent creates cannot both slip under the limit. Admin keys are exempt, as from their
//!   create quota; databases already over the limit are kept (a limit is not a prune rule).

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use rusqlite::params;
use serde::{Deserialize, Serialize};
use tracing::info;

use super::{
    access::{Principal, glob_match},
    catalog::Catalog,
    error::{Error, Result},
    forge::Forge,
    lifecycle::PruneCause,
    names::{DatabaseName, validate_labels},
    registry::{Entry, blocking},
};
use crate::metrics as names;

/// The most policies a gateway keeps: each pass checks every database against every policy.
pub const MAX_POLICIES: usize = 100;

/// What an admin sets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicySpec {
    /// Its name (the rules of database names).
    pub name: String,
    /// A `*` pattern the database name must match; `None`: any name.
    pub name_pattern: Option<String>,
    /// Labels the database must carry.
    pub labels: BTreeMap<String, String>,
    /// Prune after this long without a data-plane call.
    pub idle_ttl: Option<Duration>,
    /// Prune this long after creation.
    pub max_age: Option<Duration>,
    /// Most selected databases one key may own; 0: no limit.
    pub max_databases_per_key: u32,
    /// A size quota for every selected database (see [`quota`](super::quota)).
    #[serde(default)]
    pub max_bytes: Option<u64>,
}

impl PolicySpec {
    /// Checks the name, selector and rules.
    pub fn validate(&self) -> Result<()> {
        DatabaseName::parse(&self.name).map_err(|_| {
            Error::invalid(
                "policy.name",
                format!(
                    "{:?}: 1 to 63 characters a-z 0-9 _ -, starting with a letter",
                    self.name
                ),
            )
        })?;
        match &self.name_pattern {
            Some(p) if p.is_empty() || p.len() > 128 => {
                return Err(Error::invalid(
                    "policy.name_pattern",
                    "must be 1 to 128 characters when set",
                ));
            }
            None if self.labels.is_empty() => {
                return Err(Error::invalid(
                    "policy",
                    "set name_pattern, labels or both: use name_pattern \"*\" to select every \
                     database",
                ));
            }
            _ => {}
        }
        validate_labels(&self.labels)?;
        for (field, d) in [
            ("policy.idle_ttl", self.idle_ttl),
            ("policy.max_age", self.max_age),
        ] {
            if d.is_some_and(|d| d.is_zero()) {
                return Err(Error::invalid(field, "must be positive"));
            }
        }
        if self.max_bytes == Some(0) {
            return Err(Error::invalid("policy.max_bytes", "must be positive"));
        }
        if self.idle_ttl.is_none()
            && self.max_age.is_none()
            && self.max_databases_per_key == 0
            && self.max_bytes.is_none()
        {
            return Err(Error::invalid(
                "policy",
                "set at least one rule: idle_ttl, max_age, max_databases_per_key or max_bytes",
            ));
        }
        Ok(())
    }

    /// Whether it selects the database `name` with `labels`.
    pub fn selects(&self, name: &str, labels: &BTreeMap<String, String>) -> bool {
        self.name_pattern
            .as_deref()
            .is_none_or(|p| glob_match(p, name))
            && self.labels.iter().all(|(k, v)| labels.get(k) == Some(v))
    }
}

/// A stored policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifecyclePolicy {
    /// What was set.
    pub spec: PolicySpec,
    /// When it was last set, Unix ms.
    pub updated_ms: i64,
    /// The key that last set it (`-` without authentication).
    pub updated_by: String,
}

/// Why a database is due for pruning: the cause, and the policy whose rule it is (`None`: the
/// database's own setting).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    /// Expired (TTL, max age) or idle.
    pub cause: PruneCause,
    /// The policy, when a policy's rule made it due.
    pub policy: Option<String>,
}

impl Due {
    /// The cause as events and audit records give it: `ttl`, `idle_ttl` or `policy=<name>`.
    pub fn event_cause(&self) -> String {
        match (&self.policy, self.cause) {
            (Some(p), _) => format!("policy={p}"),
            (None, PruneCause::Expired) => "ttl".to_owned(),
            (None, PruneCause::Idle) => "idle_ttl".to_owned(),
        }
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Why `entry` is due at `now_ms` under its own settings and `policies`, if it is (see the
/// module docs for the order).
pub fn due(entry: &Entry, now_ms: i64, policies: &[LifecyclePolicy]) -> Option<Due> {
    if let Some(cause) = entry.due(now_ms) {
        return Some(Due {
            cause,
            policy: None,
        });
    }
    let r = &entry.record;
    let idle_for = now_ms.saturating_sub(entry.last_accessed_ms());
    let age = now_ms.saturating_sub(r.created_ms);
    let selecting = policies
        .iter()
        .filter(|p| p.spec.selects(r.provisioned.name.as_str(), &r.labels));
    let mut idle = None;
    for p in selecting {
        if p.spec.max_age.is_some_and(|m| age >= millis(m)) {
            return Some(Due {
                cause: PruneCause::Expired,
                policy: Some(p.spec.name.clone()),
            });
        }
        if idle.is_none() && p.spec.idle_ttl.is_some_and(|d| idle_for >= millis(d)) {
            idle = Some(Due {
                cause: PruneCause::Idle,
                policy: Some(p.spec.name.clone()),
            });
        }
    }
    idle
}

impl Catalog {
    /// Every lifecycle policy, by name.
    pub fn lifecycle_policies(&self) -> Result<Vec<LifecyclePolicy>> {
        let rows = self.with(|c| {
            c.query_map(
                "SELECT name, spec, updated_ms, updated_by FROM lifecycle_policies ORDER BY name",
                &[],
                |r| {
                    Ok((
                        r.get::<String>(0)?,
                        r.get::<String>(1)?,
                        r.get::<i64>(2)?,
                        r.get::<String>(3)?,
                    ))
                },
            )
        })?;
        let mut out = Vec::with_capacity(rows.len());
        for (name, spec, updated_ms, updated_by) in rows {
            match serde_json::from_str::<PolicySpec>(&spec) {
                Ok(spec) => out.push(LifecyclePolicy {
                    spec,
                    updated_ms,
                    updated_by,
                }),
                Err(e) => {
                    tracing::warn!(policy = name, error = %e, "skipping a lifecycle policy that does not parse")
                }
            }
        }
        Ok(out)
    }

    /// Stores a policy, replacing one of the same name; whether it is new. Refuses a new one
    /// past [`MAX_POLICIES`].
    pub fn lifecycle_policy_upsert(&self, p: &LifecyclePolicy) -> Result<bool> {
        let spec = serde_json::to_string(&p.spec).map_err(Error::internal)?;
        let (created, count) = self.with(|c| {
            let exists: bool = c.query_one(
                "SELECT count(*) FROM lifecycle_policies WHERE name = ?1",
                params![p.spec.name],
                |r| r.get::<i64>(0),
            )? > 0;
            let count: i64 =
                c.query_one("SELECT count(*) FROM lifecycle_policies", &[], |r| r.get(0))?;
            if exists || (count as usize) < MAX_POLICIES {
                c.execute(
                    "INSERT INTO lifecycle_policies (name, spec, updated_ms, updated_by)
                     VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (name) DO UPDATE SET spec = ?2, updated_ms = ?3, updated_by = ?4",
                    params![p.spec.name, spec, p.updated_ms, p.updated_by],
                )?;
            }
            Ok((!exists, count as usize))
        })?;
        if created && count >= MAX_POLICIES {
            return Err(Error::LimitExceeded(format!(
                "the gateway keeps at most {MAX_POLICIES} lifecycle policies; delete one first"
            )));
        }
        Ok(created)
    }

    /// Deletes a policy; whether it existed.
    pub fn lifecycle_policy_remove(&self, name: &str) -> Result<bool> {
        self.with(|c| {
            c.execute(
                "DELETE FROM lifecycle_policies WHERE name = ?1",
                params![name],
            )
        })
        .map(|n| n > 0)
    }
}

impl Forge {
    /// SetLifecyclePolicy: creates or replaces a policy (admin only); whether it was created.
    pub async fn set_lifecycle_policy(
        &self,
        who: &Principal,
        spec: PolicySpec,
    ) -> Result<(LifecyclePolicy, bool)> {
        who.require_admin()?;
        spec.validate()?;
        let policy = LifecyclePolicy {
            spec,
            updated_ms: self.registry().now_ms(),
            updated_by: who.key_id().to_owned(),
        };
        let (cat, p) = (self.catalog(), policy.clone());
        let created = blocking(move || cat.lifecycle_policy_upsert(&p)).await?;
        info!(policy = %policy.spec.name, created, "lifecycle policy set");
        self.spawn_quota_pass();
        Ok((policy, created))
    }

    /// ListLifecyclePolicies: every policy for an admin key, for others those selecting a
    /// database they can see.
    pub async fn list_lifecycle_policies(&self, who: &Principal) -> Result<Vec<LifecyclePolicy>> {
        let all = self.lifecycle_policies().await?;
        if who.is_admin() {
            return Ok(all);
        }
        let visible: Vec<Arc<Entry>> = self
            .registry()
            .entries()
            .into_iter()
            .filter(|e| {
                let r = &e.record;
                who.role_on(r.provisioned.name.as_str(), &r.labels, r.owner.as_deref())
                    .is_some()
            })
            .collect();
        Ok(all
            .into_iter()
            .filter(|p| {
                visible.iter().any(|e| {
                    p.spec
                        .selects(e.record.provisioned.name.as_str(), &e.record.labels)
                })
            })
            .collect())
    }

    /// DeleteLifecyclePolicy (admin only); false when missing and `allow_missing`.
    pub async fn delete_lifecycle_policy(
        &self,
        who: &Principal,
        name: &str,
        allow_missing: bool,
    ) -> Result<bool> {
        who.require_admin()?;
        let (cat, n) = (self.catalog(), name.to_owned());
        let deleted = blocking(move || cat.lifecycle_policy_remove(&n)).await?;
        if !deleted && !allow_missing {
            return Err(Error::NotFound {
                what: "lifecycle policy",
                name: name.to_owned(),
            });
        }
        if deleted {
            info!(policy = name, "lifecycle policy deleted");
            self.spawn_quota_pass();
        }
        Ok(deleted)
    }

    /// A quota pass in the background, so that a policy's size quota holds at once and the
    /// call that set it does not wait for every database to be measured.
    fn spawn_quota_pass(&self) {
        let forge = self.clone();
        tokio::spawn(async move {
            forge.quota_pass().await;
        });
    }

    /// The stored policies.
    pub async fn lifecycle_policies(&self) -> Result<Vec<LifecyclePolicy>> {
        let cat = self.catalog();
        blocking(move || cat.lifecycle_policies()).await
    }

    /// RESOURCE_EXHAUSTED when `who` spawning `name` with `labels` would own more databases
    /// selected by a policy than its `max_databases_per_key`. Called under the spawn lock.
    pub(crate) async fn check_policy_limits(
        &self,
        who: &Principal,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<()> {
        if matches!(who, Principal::Key(k) if k.admin) {
            return Ok(());
        }
        let policies = self.lifecycle_policies().await?;
        let owner = who.owner_id();
        let entries = self.registry().entries();
        for p in policies
            .iter()
            .filter(|p| p.spec.max_databases_per_key > 0 && p.spec.selects(name, labels))
        {
            let limit = p.spec.max_databases_per_key;
            let owned = entries
                .iter()
                .filter(|e| {
                    let r = &e.record;
                    r.owner == owner && p.spec.selects(r.provisioned.name.as_str(), &r.labels)
                })
                .count();
            if owned >= limit as usize {
                metrics::counter!(names::POLICY_ACTIONS_TOTAL, "policy" => p.spec.name.clone(), "action" => "refused_create")
                    .increment(1);
                return Err(Error::LimitExceeded(format!(
                    "lifecycle policy {:?} allows at most {limit} databases per key among those it \
                     selects; key {} owns {owned} of them",
                    p.spec.name,
                    who.key_id()
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> PolicySpec {
        PolicySpec {
            name: "ci".into(),
            name_pattern: Some("ci-*".into()),
            labels: BTreeMap::from([("team".into(), "a".into())]),
            idle_ttl: Some(Duration::from_secs(60)),
            ..Default::default()
        }
    }

    #[test]
    fn a_selector_needs_both_the_pattern_and_every_label() {
        let s = spec();
        let team_a = BTreeMap::from([("team".to_owned(), "a".to_owned())]);
        assert!(s.selects("ci-1", &team_a));
        assert!(!s.selects("prod-1", &team_a));
        assert!(!s.selects("ci-1", &BTreeMap::new()));
        let any_name = PolicySpec {
            name_pattern: None,
            ..spec()
        };
        assert!(any_name.selects("prod-1", &team_a));
    }

    #[test]
    fn a_policy_without_selector_or_rules_is_refused() {
        assert!(spec().validate().is_ok());
        let no_selector = PolicySpec {
            name_pattern: None,
            labels: BTreeMap::new(),
            ..spec()
        };
        assert!(matches!(
            no_selector.validate(),
            Err(Error::InvalidArgument {
                field: "policy",
                ..
            })
        ));
        let no_rules = PolicySpec {
            idle_ttl: None,
            ..spec()
        };
        assert!(matches!(
            no_rules.validate(),
            Err(Error::InvalidArgument {
                field: "policy",
                ..
            })
        ));
        let zero = PolicySpec {
            max_age: Some(Duration::ZERO),
            ..spec()
        };
        assert!(matches!(
            zero.validate(),
            Err(Error::InvalidArgument {
                field: "policy.max_age",
                ..
            })
        ));
        let bad_name = PolicySpec {
            name: "Bad Name".into(),
            ..spec()
        };
        assert!(bad_name.validate().is_err());
    }

    #[test]
    fn event_causes_name_the_policy_or_the_own_setting() {
        let by_policy = Due {
            cause: PruneCause::Idle,
            policy: Some("ci".into()),
        };
        assert_eq!(by_policy.event_cause(), "policy=ci");
        let own = Due {
            cause: PruneCause::Expired,
            policy: None,
        };
        assert_eq!(own.event_cause(), "ttl");
    }
}
