//! Lifecycle policies: rules an admin key sets for every database a selector matches (those
//! that exist and those created later): prune after an idle time, prune at an age, and a most
//! databases per key. A database's own TTLs and the policies combine so that the stricter wins.
//!
//! ```no_run
//! use std::time::Duration;
//! use dbforge::{Client, LifecyclePolicy};
//!
//! # async fn demo(admin: Client) -> Result<(), dbforge::Error> {
//! // CI databases: gone after a day, or after an idle hour; at most 5 per key.
//! let ci = LifecyclePolicy::pattern("ci", "ci-*")
//!     .max_age(Duration::from_secs(86_400))
//!     .idle_ttl(Duration::from_secs(3_600))
//!     .max_databases_per_key(5);
//! let (stored, created) = admin.set_lifecycle_policy(ci).await?;
//! println!("{} created={created} by {}", stored.name, stored.updated_by);
//! for p in admin.list_lifecycle_policies().await? {
//!     println!("{} {:?}", p.name, p.max_age);
//! }
//! admin.delete_lifecycle_policy("ci").await?;
//! # Ok(())
//! # }
//! ```

use std::{
    collections::BTreeMap,
    time::{Duration, SystemTime},
};

use crate::{Client, Result, admin::time, pb};

/// A lifecycle policy: what [`Client::set_lifecycle_policy`] takes and the policy calls
/// answer. `updated_at` and `updated_by` are set by the server and ignored when sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LifecyclePolicy {
    /// Its name: 1 to 63 characters `a-z 0-9 _ -`, starting with a letter.
    pub name: String,
    /// A database name pattern where `*` matches any characters; empty: any name.
    pub name_pattern: String,
    /// Labels a selected database carries (all of them). With `name_pattern`, both must hold;
    /// at least one of the two must be set.
    pub labels: BTreeMap<String, String>,
    /// Prune a selected database after this long without a data-plane call.
    pub idle_ttl: Option<Duration>,
    /// Prune a selected database this long after its creation.
    pub max_age: Option<Duration>,
    /// The most selected databases one (non-admin) key may own; 0: no limit. Over it,
    /// CreateDatabase and ForkDatabase fail with `RESOURCE_EXHAUSTED`.
    pub max_databases_per_key: u32,
    /// A size quota in bytes for every selected database; `None`: none. The smaller of a
    /// database's own quota and its policies' applies.
    pub max_bytes: Option<u64>,
    /// When it was last set (set by the server).
    pub updated_at: Option<SystemTime>,
    /// The key that last set it (set by the server).
    pub updated_by: String,
}

impl LifecyclePolicy {
    /// A policy selecting database names matching `pattern` (`*` for every database), without
    /// rules yet: add at least one.
    pub fn pattern(name: impl Into<String>, pattern: impl Into<String>) -> Self {
        LifecyclePolicy {
            name: name.into(),
            name_pattern: pattern.into(),
            ..Default::default()
        }
    }

    /// A policy selecting databases carrying all of `labels`, without rules yet.
    pub fn labels<K: Into<String>, V: Into<String>>(
        name: impl Into<String>,
        labels: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        LifecyclePolicy {
            name: name.into(),
            labels: labels
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            ..Default::default()
        }
    }

    /// Adds a label the selected databases must carry.
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// Prunes selected databases idle this long.
    pub fn idle_ttl(mut self, d: Duration) -> Self {
        self.idle_ttl = Some(d);
        self
    }

    /// Prunes selected databases this old.
    pub fn max_age(mut self, d: Duration) -> Self {
        self.max_age = Some(d);
        self
    }

    /// Holds every selected database to at most `bytes`.
    pub fn max_bytes(mut self, bytes: u64) -> Self {
        self.max_bytes = Some(bytes);
        self
    }

    /// Lets one key own at most `n` selected databases.
    pub fn max_databases_per_key(mut self, n: u32) -> Self {
        self.max_databases_per_key = n;
        self
    }
}

fn wire(d: Duration) -> prost_types::Duration {
    prost_types::Duration::try_from(d).unwrap_or(prost_types::Duration {
        seconds: i64::MAX,
        nanos: 999_999_999,
    })
}

impl From<LifecyclePolicy> for pb::LifecyclePolicy {
    fn from(p: LifecyclePolicy) -> Self {
        pb::LifecyclePolicy {
            name: p.name,
            name_pattern: p.name_pattern,
            labels: p.labels.into_iter().collect(),
            idle_ttl: p.idle_ttl.map(wire),
            max_age: p.max_age.map(wire),
            max_databases_per_key: p.max_databases_per_key,
            max_bytes: p.max_bytes.unwrap_or(0),
            updated_at: None,
            updated_by: String::new(),
        }
    }
}

impl From<pb::LifecyclePolicy> for LifecyclePolicy {
    fn from(p: pb::LifecyclePolicy) -> Self {
        let dur = |d: Option<prost_types::Duration>| d.map(|d| crate::admin::duration(Some(d)));
        LifecyclePolicy {
            name: p.name,
            name_pattern: p.name_pattern,
            labels: p.labels.into_iter().collect(),
            idle_ttl: dur(p.idle_ttl),
            max_age: dur(p.max_age),
            max_databases_per_key: p.max_databases_per_key,
            max_bytes: (p.max_bytes > 0).then_some(p.max_bytes),
            updated_at: time(p.updated_at),
            updated_by: p.updated_by,
        }
    }
}

impl Client {
    /// Creates or replaces (by name) a lifecycle policy; returns it as stored and whether it
    /// is new. Needs an admin key.
    pub async fn set_lifecycle_policy(
        &self,
        policy: LifecyclePolicy,
    ) -> Result<(LifecyclePolicy, bool)> {
        let resp = self
            .databases
            .clone()
            .set_lifecycle_policy(self.settings.request(pb::SetLifecyclePolicyRequest {
                policy: Some(policy.into()),
            }))
            .await?
            .into_inner();
        let policy = resp
            .policy
            .ok_or_else(|| crate::Error::Protocol("the response carries no policy".into()))?;
        Ok((policy.into(), resp.created))
    }

    /// The lifecycle policies, by name: all for an admin key, for others those selecting a
    /// database the key can see.
    pub async fn list_lifecycle_policies(&self) -> Result<Vec<LifecyclePolicy>> {
        Ok(self
            .databases
            .clone()
            .list_lifecycle_policies(self.settings.request(pb::ListLifecyclePoliciesRequest {}))
            .await?
            .into_inner()
            .policies
            .into_iter()
            .map(Into::into)
            .collect())
    }

    /// Deletes a lifecycle policy (admin key). `NOT_FOUND` when it does not exist.
    pub async fn delete_lifecycle_policy(&self, name: &str) -> Result<()> {
        self.delete_lifecycle(name, false).await.map(drop)
    }

    /// Deletes a lifecycle policy if it exists; returns whether it did.
    pub async fn delete_lifecycle_policy_if_exists(&self, name: &str) -> Result<bool> {
        self.delete_lifecycle(name, true).await
    }

    async fn delete_lifecycle(&self, name: &str, allow_missing: bool) -> Result<bool> {
        Ok(self
            .databases
            .clone()
            .delete_lifecycle_policy(self.settings.request(pb::DeleteLifecyclePolicyRequest {
                name: name.to_owned(),
                allow_missing,
            }))
            .await?
            .into_inner()
            .deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_round_trips_through_the_wire_without_its_output_fields() {
        let p = LifecyclePolicy::pattern("ci", "ci-*")
            .label("team", "a")
            .idle_ttl(Duration::from_secs(60))
            .max_databases_per_key(3);
        let wire = pb::LifecyclePolicy::from(p.clone());
        assert_eq!(wire.updated_at, None);
        assert_eq!(LifecyclePolicy::from(wire), p);
    }
}
