//! What a new API key may do: its [`Grant`]s and [`ApiKeySpec`]. The keys the server describes
//! back are [`ApiKey`](crate::ApiKey)s, in `admin.rs`.

use crate::pb;

pub use pb::Role;

/// A role on some databases, given to an API key.
///
/// ```
/// use dbforge::{Grant, Role};
/// let grants = [
///     Grant::database("reports", Role::Read),
///     Grant::pattern("agent-42-*", Role::Owner),
///     Grant::labels([("team", "search")], Role::Write),
/// ];
/// # let _ = grants;
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Grant(pub(crate) pb::Grant);

impl Grant {
    /// `role` on the database named `name`.
    pub fn database(name: impl Into<String>, role: Role) -> Self {
        Self::with(pb::grant::Target::Database(name.into()), role)
    }

    /// `role` on databases whose name matches `pattern` (`*` = any characters).
    pub fn pattern(pattern: impl Into<String>, role: Role) -> Self {
        Self::with(pb::grant::Target::Pattern(pattern.into()), role)
    }

    /// `role` on databases carrying all these labels.
    pub fn labels<K: Into<String>, V: Into<String>>(
        labels: impl IntoIterator<Item = (K, V)>,
        role: Role,
    ) -> Self {
        let labels = labels
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        Self::with(
            pb::grant::Target::Labels(pb::LabelSelector { labels }),
            role,
        )
    }

    fn with(target: pb::grant::Target, role: Role) -> Self {
        Grant(pb::Grant {
            target: Some(target),
            role: role as i32,
        })
    }
}

/// What a new API key may do.
///
/// ```
/// use dbforge::{ApiKeySpec, Grant, Role};
/// let agent = ApiKeySpec::new("agent 42").can_create(10).grant(Grant::pattern("agent-42-*", Role::Owner));
/// let admin = ApiKeySpec::new("ops").admin();
/// # let _ = (agent, admin);
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ApiKeySpec {
    pub(crate) req: pb::CreateApiKeyRequest,
}

impl ApiKeySpec {
    /// A key named `name` (for people) with no rights yet.
    pub fn new(name: impl Into<String>) -> Self {
        ApiKeySpec {
            req: pb::CreateApiKeyRequest {
                name: name.into(),
                ..Default::default()
            },
        }
    }

    /// Makes it an admin key: everything is allowed, including managing keys.
    pub fn admin(mut self) -> Self {
        self.req.admin = true;
        self
    }

    /// Lets it create databases (it then owns them), at most `quota` at a time (0: no limit).
    pub fn can_create(mut self, quota: u32) -> Self {
        self.req.can_create = true;
        self.req.create_quota = i32::try_from(quota).unwrap_or(i32::MAX);
        self
    }

    /// Adds a grant.
    pub fn grant(mut self, grant: Grant) -> Self {
        self.req.grants.push(grant.0);
        self
    }

    /// Makes it stop working at `at`.
    pub fn expires_at(mut self, at: std::time::SystemTime) -> Self {
        self.req.expires_at = Some(prost_types::Timestamp::from(at));
        self
    }
}
