//! Who is calling and what they may do: API keys, grants and the checks the Forge applies.
//!
//! Keys look like `dbf_<id>_<secret>`: the id (12 hex digits) finds the record, the secret
//! (256 random bits) proves possession. Only SHA-256 of the secret is stored (a fast hash is
//! right for a high-entropy secret; there is nothing to brute-force), and it is compared in
//! constant time. The keyring lives in memory, loaded from the catalog, so authenticating a
//! call costs a map lookup and one hash, and a revocation takes effect on the next call.

use std::{
    collections::{BTreeMap, HashMap},
    path::{Path, PathBuf},
    sync::{
        Arc, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{SystemTime, UNIX_EPOCH},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{
    catalog::Catalog,
    error::{Error, Result},
    names::DatabaseName,
};

/// A level of access to a database; each includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Read data and schema, enforced by the engine.
    Read,
    /// Read and write.
    Write,
    /// Write and delete.
    Owner,
}

impl Role {
    /// Catalog spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Write => "write",
            Role::Owner => "owner",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "read" => Some(Role::Read),
            "write" => Some(Role::Write),
            "owner" => Some(Role::Owner),
            _ => None,
        }
    }
}

/// Which databases a grant covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// One name.
    Database(DatabaseName),
    /// Names matching a `*` pattern.
    Pattern(String),
    /// Databases carrying all these labels.
    Labels(BTreeMap<String, String>),
}

/// A role on a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The databases.
    pub target: Target,
    /// The role.
    pub role: Role,
}

impl Grant {
    /// Whether the grant covers a database with this name and these labels.
    pub fn covers(&self, name: &str, labels: &BTreeMap<String, String>) -> bool {
        match &self.target {
            Target::Database(n) => n.as_str() == name,
            Target::Pattern(p) => glob_match(p, name),
            Target::Labels(sel) => sel.iter().all(|(k, v)| labels.get(k) == Some(v)),
        }
    }

    /// Whether the grant could cover some database with this name (labels unknown).
    fn covers_name(&self, name: &str) -> bool {
        match &self.target {
            Target::Database(n) => n.as_str() == name,
            Target::Pattern(p) => glob_match(p, name),
            Target::Labels(_) => false,
        }
    }
}

/// `*` matches any run of characters; everything else matches itself.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || name.len() < first.len() + last.len() || !name.ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    true
}

/// An API key's description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    /// Public id.
    pub id: String,
    /// Name for people.
    pub name: String,
    /// Everything allowed.
    pub admin: bool,
    /// May create databases.
    pub can_create: bool,
    /// Databases it may have created at once; 0 = unlimited.
    pub create_quota: u32,
    /// Roles on databases.
    pub grants: Vec<Grant>,
    /// Unix ms.
    pub created_ms: i64,
    /// Unix ms; None = never.
    pub expires_ms: Option<i64>,
    /// Unix ms; None = active.
    pub revoked_ms: Option<i64>,
}

impl KeyInfo {
    fn active_at(&self, now: i64) -> bool {
        self.revoked_ms.is_none() && self.expires_ms.is_none_or(|e| now < e)
    }
}

/// The caller of an RPC.
#[derive(Debug, Clone)]
pub enum Principal {
    /// Authentication is disabled (`--insecure-no-auth`): everything is allowed.
    Unrestricted,
    /// An authenticated key.
    Key(Arc<KeyInfo>),
}

impl Principal {
    /// The key id, for audit and logs.
    pub fn key_id(&self) -> &str {
        match self {
            Principal::Unrestricted => "-",
            Principal::Key(k) => &k.id,
        }
    }

    /// Whether this caller is an admin (or auth is off).
    pub fn is_admin(&self) -> bool {
        match self {
            Principal::Unrestricted => true,
            Principal::Key(k) => k.admin,
        }
    }

    /// The caller's role on a database it may own through having created it.
    pub fn role_on(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
        owner: Option<&str>,
    ) -> Option<Role> {
        match self {
            Principal::Unrestricted => Some(Role::Owner),
            Principal::Key(k) if k.admin => Some(Role::Owner),
            Principal::Key(k) if owner == Some(k.id.as_str()) => Some(Role::Owner),
            Principal::Key(k) => k
                .grants
                .iter()
                .filter(|g| g.covers(name, labels))
                .map(|g| g.role)
                .max(),
        }
    }

    /// Whether the caller may write to some database: an admin, a key that may create (it owns
    /// what it creates) or one with a write or owner grant. Decides which MCP tools it is offered;
    /// each call is still checked on its database.
    pub fn may_write_somewhere(&self) -> bool {
        match self {
            Principal::Unrestricted => true,
            Principal::Key(k) => {
                k.admin || k.can_create || k.grants.iter().any(|g| g.role >= Role::Write)
            }
        }
    }

    /// Whether some database of this name could be visible to the caller; decides between
    /// NOT_FOUND and PERMISSION_DENIED for a missing database without revealing others' names.
    /// `can_create` does not widen it: a key creates only names its grants cover (see
    /// [`Self::require_create`]), so the databases it owns are among them.
    pub fn may_know(&self, name: &str) -> bool {
        match self {
            Principal::Unrestricted => true,
            Principal::Key(k) => k.admin || k.grants.iter().any(|g| g.covers_name(name)),
        }
    }

    /// Requires that a key with a create quota has spawned fewer databases than it allows;
    /// `owned` counts the databases a key id owns, and is asked only when a quota applies.
    pub fn require_create_quota(&self, owned: impl FnOnce(&str) -> Result<usize>) -> Result<()> {
        let Principal::Key(k) = self else {
            return Ok(());
        };
        let quota = k.create_quota as usize;
        if k.admin || quota == 0 {
            return Ok(());
        }
        let owned = owned(&k.id)?;
        if owned >= quota {
            return Err(Error::LimitExceeded(format!(
                "key {} has created {owned} databases, its quota",
                k.id
            )));
        }
        Ok(())
    }

    /// The key id that owns what this caller spawns (none without auth).
    pub fn owner_id(&self) -> Option<String> {
        match self {
            Principal::Unrestricted => None,
            Principal::Key(k) => Some(k.id.clone()),
        }
    }

    /// Requires that the caller may create a database named `name`: an admin, or a key with
    /// `can_create` and a grant naming it or a pattern matching it (label grants cover no
    /// name). Checked before anything about the name is looked up, so a name outside the
    /// key's grants is PERMISSION_DENIED whether it is taken or not.
    pub fn require_create(&self, name: &str) -> Result<()> {
        let Principal::Key(k) = self else {
            return Ok(());
        };
        if k.admin {
            return Ok(());
        }
        if !k.can_create {
            return Err(Error::PermissionDenied(format!(
                "key {} may not create databases",
                k.id
            )));
        }
        if k.grants.iter().any(|g| g.covers_name(name)) {
            return Ok(());
        }
        let names: Vec<String> = k
            .grants
            .iter()
            .filter_map(|g| match &g.target {
                Target::Database(n) => Some(n.as_str().to_owned()),
                Target::Pattern(p) => Some(p.clone()),
                Target::Labels(_) => None,
            })
            .collect();
        let allowed = if names.is_empty() {
            "none: it has no name or pattern grant".to_owned()
        } else {
            names.join(", ")
        };
        Err(Error::PermissionDenied(format!(
            "key {} may create only databases its grants name; {name:?} is not one of them \
             (its names and patterns: {allowed})",
            k.id
        )))
    }

    /// Requires at least `needed` on a database.
    pub fn require(
        &self,
        needed: Role,
        name: &str,
        labels: &BTreeMap<String, String>,
        owner: Option<&str>,
    ) -> Result<Role> {
        match self.role_on(name, labels, owner) {
            Some(role) if role >= needed => Ok(role),
            Some(role) => Err(Error::PermissionDenied(format!(
                "key {} has {} access to database {name:?}; this needs {}",
                self.key_id(),
                role.as_str(),
                needed.as_str()
            ))),
            None => Err(Error::PermissionDenied(format!(
                "key {} has no access to database {name:?}",
                self.key_id()
            ))),
        }
    }

    /// Requires admin.
    pub fn require_admin(&self) -> Result<()> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(Error::PermissionDenied(format!(
                "key {} is not an admin key",
                self.key_id()
            )))
        }
    }
}

/// A key as stored: its description and the hash of its secret.
#[derive(Debug)]
struct Stored {
    info: Arc<KeyInfo>,
    hash: [u8; 32],
}

/// The keys, in memory and in the catalog.
#[derive(Debug)]
pub struct Keyring {
    catalog: Catalog,
    keys: RwLock<HashMap<String, Stored>>,
    /// Bumped, under the write lock, by every change this gateway makes in memory after
    /// storing it: a reload that read the catalog before a change reads again.
    changes: AtomicU64,
}

/// The prefix of every key.
const PREFIX: &str = "dbf_";

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

fn hash(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

fn random(bytes: usize) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| Error::internal(format!("no randomness: {e}")))?;
    Ok(buf)
}

/// A new key for a new description: the full key text and the record.
fn mint(mut info: KeyInfo) -> Result<(String, KeyInfo, [u8; 32])> {
    let id = super::value::text::hex(&random(6)?);
    let secret = URL_SAFE_NO_PAD.encode(random(32)?);
    let key = format!("{PREFIX}{id}_{secret}");
    info.id = id;
    Ok((key.clone(), info, hash(&key)))
}

impl Keyring {
    /// Loads the keys from the catalog.
    pub fn load(catalog: Catalog) -> Result<Self> {
        let keys = Self::read_catalog(&catalog)?;
        Ok(Self {
            catalog,
            keys: RwLock::new(keys),
            changes: AtomicU64::new(0),
        })
    }

    /// Replaces the keys in memory with the catalog's: another gateway sharing a PostgreSQL
    /// catalog created, revoked or replaced one ([`Catalog::watch`]).
    pub fn reload(&self) -> Result<()> {
        // The catalog is read without the lock, which authentication waits for on the
        // runtime's workers. A change this gateway stored while we read (catalog first,
        // then memory) is either in what we read or bumps `changes` when it reaches memory:
        // then we read again rather than put back an older view.
        loop {
            let seen = self.changes.load(Ordering::Acquire);
            let keys = Self::read_catalog(&self.catalog)?;
            let mut held = self.write()?;
            if self.changes.load(Ordering::Acquire) == seen {
                *held = keys;
                return Ok(());
            }
        }
    }

    fn read_catalog(catalog: &Catalog) -> Result<HashMap<String, Stored>> {
        Ok(catalog
            .load_keys()?
            .into_iter()
            .map(|(info, hash)| {
                (
                    info.id.clone(),
                    Stored {
                        info: Arc::new(info),
                        hash,
                    },
                )
            })
            .collect())
    }

    fn write(&self) -> Result<std::sync::RwLockWriteGuard<'_, HashMap<String, Stored>>> {
        self.keys
            .write()
            .map_err(|_| Error::internal("keyring lock poisoned"))
    }

    /// Puts a stored key's new state in memory.
    fn remember(&self, info: Arc<KeyInfo>, hash: [u8; 32]) -> Result<()> {
        let mut keys = self.write()?;
        keys.insert(info.id.clone(), Stored { info, hash });
        self.changes.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    fn read(&self) -> Result<std::sync::RwLockReadGuard<'_, HashMap<String, Stored>>> {
        self.keys
            .read()
            .map_err(|_| Error::internal("keyring lock poisoned"))
    }

    /// Checks a presented key. Every failure says only "invalid key", so a caller learns
    /// nothing about which ids exist.
    pub fn authenticate(&self, presented: &str) -> Result<Arc<KeyInfo>> {
        let invalid = || Error::Unauthenticated("invalid, expired or revoked API key".into());
        let id = presented
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split_once('_'))
            .map(|(id, _)| id)
            .unwrap_or("env-admin");
        let keys = self.read()?;
        let stored = keys.get(id).ok_or_else(invalid)?;
        if !bool::from(stored.hash.ct_eq(&hash(presented))) || !stored.info.active_at(now_ms()) {
            return Err(invalid());
        }
        Ok(Arc::clone(&stored.info))
    }

    /// Whether any active key exists.
    pub fn is_empty(&self) -> Result<bool> {
        let now = now_ms();
        Ok(!self.read()?.values().any(|s| s.info.active_at(now)))
    }

    /// Creates a key; returns the secret (shown once) and its description.
    pub fn create(&self, info: KeyInfo) -> Result<(String, Arc<KeyInfo>)> {
        let (key, info, digest) = mint(KeyInfo {
            created_ms: now_ms(),
            ..info
        })?;
        self.store(info, digest, false).map(|info| (key, info))
    }

    /// Stores a key in the catalog, then in memory; `replace`: the one with the same id.
    fn store(&self, info: KeyInfo, digest: [u8; 32], replace: bool) -> Result<Arc<KeyInfo>> {
        if replace {
            self.catalog.replace_key(&info, &digest)?;
        } else {
            self.catalog.insert_key(&info, &digest)?;
        }
        let info = Arc::new(info);
        self.remember(Arc::clone(&info), digest)?;
        Ok(info)
    }

    /// Every key, oldest first.
    pub fn list(&self, include_inactive: bool) -> Result<Vec<Arc<KeyInfo>>> {
        let now = now_ms();
        let mut keys: Vec<_> = self
            .read()?
            .values()
            .filter(|s| include_inactive || s.info.active_at(now))
            .map(|s| Arc::clone(&s.info))
            .collect();
        keys.sort_by(|a, b| (a.created_ms, &a.id).cmp(&(b.created_ms, &b.id)));
        Ok(keys)
    }

    /// Revokes a key; false when it was revoked already.
    pub fn revoke(&self, id: &str) -> Result<bool> {
        let (info, hash) = {
            let keys = self.read()?;
            let stored = keys.get(id).ok_or_else(|| Error::NotFound {
                what: "API key",
                name: id.to_owned(),
            })?;
            (Arc::clone(&stored.info), stored.hash)
        };
        if info.revoked_ms.is_some() {
            return Ok(false);
        }
        // Outside the lock, as every catalog call here; of two revocations at once, the
        // catalog's `revoked_ms IS NULL` picks the one that counts.
        let now = now_ms();
        if !self.catalog.revoke_key(id, now)? {
            return Ok(false);
        }
        self.remember(
            Arc::new(KeyInfo {
                revoked_ms: Some(now),
                ..(*info).clone()
            }),
            hash,
        )?;
        Ok(true)
    }

    /// At first start, makes sure an admin key exists: the one in `DBFORGE_ADMIN_KEY` (passed
    /// in as `env_key`), or a new one written to `<data_dir>/admin.key` readable by the owner
    /// only. Returns the file's path when it wrote one.
    pub fn bootstrap(&self, data_dir: &Path, env_key: Option<&str>) -> Result<Option<PathBuf>> {
        let admin = KeyInfo {
            id: String::new(),
            name: "bootstrap admin".into(),
            admin: true,
            can_create: true,
            create_quota: 0,
            grants: Vec::new(),
            created_ms: now_ms(),
            expires_ms: None,
            revoked_ms: None,
        };
        if let Some(key) = env_key {
            if key.len() < 24 {
                return Err(Error::invalid(
                    "DBFORGE_ADMIN_KEY",
                    "must be at least 24 characters",
                ));
            }
            // A key from the environment is re-registered at every start, replacing the
            // previous one, so rotating it is a restart with a new value.
            let id = key
                .strip_prefix(PREFIX)
                .and_then(|rest| rest.split_once('_'))
                .map_or("env-admin", |(id, _)| id)
                .to_owned();
            let known = self
                .read()?
                .get(&id)
                .is_some_and(|s| bool::from(s.hash.ct_eq(&hash(key))));
            if !known {
                self.store(KeyInfo { id, ..admin }, hash(key), true)?;
            }
            return Ok(None);
        }
        if !self.is_empty()? {
            return Ok(None);
        }
        let (key, info, digest) = mint(admin)?;
        let path = data_dir.join("admin.key");
        write_owner_only(&path, &format!("{key}\n"))?;
        self.store(info, digest, false)?;
        Ok(Some(path))
    }
}

fn write_owner_only(path: &Path, text: &str) -> Result<()> {
    use std::{io::Write, os::unix::fs::OpenOptionsExt};
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(Error::internal)?;
    file.write_all(text.as_bytes()).map_err(Error::internal)?;
    file.sync_all().map_err(Error::internal)
}

/// Serializes grants for the catalog: one `kind\trole\ttarget` line each.
pub fn encode_grant(g: &Grant) -> (String, String, String) {
    let (kind, target) = match &g.target {
        Target::Database(n) => ("database", n.to_string()),
        Target::Pattern(p) => ("pattern", p.clone()),
        Target::Labels(l) => (
            "labels",
            l.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("\n"),
        ),
    };
    (kind.to_owned(), g.role.as_str().to_owned(), target)
}

/// The inverse of [`encode_grant`].
pub fn decode_grant(kind: &str, role: &str, target: &str) -> Option<Grant> {
    let role = Role::parse(role)?;
    let target = match kind {
        "database" => Target::Database(DatabaseName::parse(target).ok()?),
        "pattern" => Target::Pattern(target.to_owned()),
        "labels" => Target::Labels(
            target
                .lines()
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        ),
        _ => return None,
    };
    Some(Grant { target, role })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("agent-42-*", "agent-42-scratch"));
        assert!(glob_match("agent-42-*", "agent-42-"));
        assert!(!glob_match("agent-42-*", "agent-43-x"));
        assert!(glob_match("*-tmp", "a-tmp"));
        assert!(glob_match("a*b*c", "axxbyyc"));
        assert!(!glob_match("a*b*c", "axxcyyb"));
        assert!(glob_match("exact", "exact"));
        assert!(!glob_match("exact", "exactly"));
        assert!(glob_match("*", "anything"));
    }

    fn key(grants: Vec<Grant>) -> Principal {
        Principal::Key(Arc::new(KeyInfo {
            id: "k".into(),
            name: "k".into(),
            admin: false,
            can_create: false,
            create_quota: 0,
            grants,
            created_ms: 0,
            expires_ms: None,
            revoked_ms: None,
        }))
    }

    #[test]
    fn roles_come_from_the_strongest_covering_grant() {
        let p = key(vec![
            Grant {
                target: Target::Pattern("team-*".into()),
                role: Role::Read,
            },
            Grant {
                target: Target::Labels([("env".to_string(), "dev".to_string())].into()),
                role: Role::Write,
            },
        ]);
        let dev: BTreeMap<_, _> = [("env".to_string(), "dev".to_string())].into();
        assert_eq!(
            p.role_on("team-a", &BTreeMap::new(), None),
            Some(Role::Read)
        );
        assert_eq!(p.role_on("team-a", &dev, None), Some(Role::Write));
        assert_eq!(p.role_on("other", &BTreeMap::new(), None), None);
        assert_eq!(
            p.role_on("other", &BTreeMap::new(), Some("k")),
            Some(Role::Owner)
        );
        assert!(
            p.require(Role::Write, "team-a", &BTreeMap::new(), None)
                .is_err()
        );
        assert!(p.may_know("team-x"));
        assert!(!p.may_know("other"));
    }

    #[test]
    fn a_creating_key_creates_and_knows_only_names_its_grants_cover() {
        let info = KeyInfo {
            id: "k".into(),
            name: "k".into(),
            admin: false,
            can_create: true,
            create_quota: 0,
            grants: vec![
                Grant {
                    target: Target::Pattern("agent-42-*".into()),
                    role: Role::Read,
                },
                Grant {
                    target: Target::Labels([("env".to_string(), "dev".to_string())].into()),
                    role: Role::Write,
                },
            ],
            created_ms: 0,
            expires_ms: None,
            revoked_ms: None,
        };
        let creator = Principal::Key(Arc::new(info.clone()));
        assert!(creator.require_create("agent-42-a").is_ok());
        for name in ["other", "agent-43-a"] {
            let err = creator
                .require_create(name)
                .expect_err("outside the grants");
            assert!(matches!(err, Error::PermissionDenied(_)), "{err:?}");
            assert!(err.to_string().contains("agent-42-*"), "{err}");
            assert!(!creator.may_know(name));
        }
        assert!(creator.may_know("agent-42-b"));
        // Without can_create, not even a covered name.
        let plain = Principal::Key(Arc::new(KeyInfo {
            can_create: false,
            ..info
        }));
        assert!(plain.require_create("agent-42-a").is_err());
        assert!(Principal::Unrestricted.require_create("any").is_ok());
    }

    #[test]
    fn grants_round_trip_through_the_catalog_encoding() {
        for g in [
            Grant {
                target: Target::Database(DatabaseName::parse("db").expect("name")),
                role: Role::Owner,
            },
            Grant {
                target: Target::Pattern("a-*".into()),
                role: Role::Read,
            },
            Grant {
                target: Target::Labels(
                    [
                        ("a".to_string(), "1".to_string()),
                        ("b".to_string(), "x".to_string()),
                    ]
                    .into(),
                ),
                role: Role::Write,
            },
        ] {
            let (k, r, t) = encode_grant(&g);
            assert_eq!(decode_grant(&k, &r, &t), Some(g));
        }
    }
}
