//! Conversions of the lifecycle policy calls of DatabaseService (SetLifecyclePolicy,
//! ListLifecyclePolicies, DeleteLifecyclePolicy).

use std::time::Duration;

use crate::{
    core::{
        error::{Error, Result},
        policy::{LifecyclePolicy, PolicySpec},
    },
    pb,
};

/// A wire duration that must be positive when set.
fn positive(field: &'static str, d: Option<prost_types::Duration>) -> Result<Option<Duration>> {
    d.map(|d| match Duration::try_from(d) {
        Ok(d) if !d.is_zero() => Ok(d),
        _ => Err(Error::invalid(field, "must be positive")),
    })
    .transpose()
}

impl TryFrom<pb::SetLifecyclePolicyRequest> for PolicySpec {
    type Error = Error;
    fn try_from(r: pb::SetLifecyclePolicyRequest) -> Result<Self> {
        let pb::SetLifecyclePolicyRequest { policy } = r;
        let pb::LifecyclePolicy {
            name,
            name_pattern,
            labels,
            idle_ttl,
            max_age,
            max_databases_per_key,
            max_bytes,
            // Set by the gateway; what a caller sends is ignored.
            updated_at: _,
            updated_by: _,
        } = policy.ok_or_else(|| Error::invalid("policy", "required"))?;
        let spec = PolicySpec {
            name,
            name_pattern: (!name_pattern.is_empty()).then_some(name_pattern),
            labels: labels.into_iter().collect(),
            idle_ttl: positive("policy.idle_ttl", idle_ttl)?,
            max_age: positive("policy.max_age", max_age)?,
            max_databases_per_key,
            max_bytes: (max_bytes > 0).then_some(max_bytes),
        };
        spec.validate()?;
        Ok(spec)
    }
}

impl From<LifecyclePolicy> for pb::LifecyclePolicy {
    fn from(p: LifecyclePolicy) -> Self {
        let LifecyclePolicy {
            spec,
            updated_ms,
            updated_by,
        } = p;
        let PolicySpec {
            name,
            name_pattern,
            labels,
            idle_ttl,
            max_age,
            max_databases_per_key,
            max_bytes,
        } = spec;
        let wire = |d: Duration| prost_types::Duration::try_from(d).unwrap_or_default();
        pb::LifecyclePolicy {
            name,
            name_pattern: name_pattern.unwrap_or_default(),
            labels: labels.into_iter().collect(),
            idle_ttl: idle_ttl.map(wire),
            max_age: max_age.map(wire),
            max_databases_per_key,
            max_bytes: max_bytes.unwrap_or(0),
            updated_at: Some(super::timestamp(updated_ms)),
            updated_by,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_round_trips_and_a_zero_duration_is_refused() {
        let req = pb::SetLifecyclePolicyRequest {
            policy: Some(pb::LifecyclePolicy {
                name: "ci".into(),
                name_pattern: "ci-*".into(),
                idle_ttl: Some(prost_types::Duration {
                    seconds: 60,
                    nanos: 0,
                }),
                ..Default::default()
            }),
        };
        let spec = PolicySpec::try_from(req.clone()).expect("valid");
        assert_eq!(spec.idle_ttl, Some(Duration::from_secs(60)));
        let back = pb::LifecyclePolicy::from(LifecyclePolicy {
            spec,
            updated_ms: 1_000,
            updated_by: "k".into(),
        });
        assert_eq!(back.name_pattern, "ci-*");
        assert_eq!(back.idle_ttl, req.policy.as_ref().and_then(|p| p.idle_ttl));
        let mut zero = req;
        if let Some(p) = zero.policy.as_mut() {
            p.max_age = Some(prost_types::Duration::default());
        }
        assert!(matches!(
            PolicySpec::try_from(zero),
            Err(Error::InvalidArgument {
                field: "policy.max_age",
                ..
            })
        ));
        assert!(matches!(
            PolicySpec::try_from(pb::SetLifecyclePolicyRequest { policy: None }),
            Err(Error::InvalidArgument {
                field: "policy",
                ..
            })
        ));
    }
}
