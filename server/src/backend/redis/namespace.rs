//! One spawned database's identity on the Redis server: an ACL user, its password and the key
//! prefix it is confined to, written into `Provisioned.locator` so that the catalog keeps them.

use std::{
    collections::hash_map::RandomState,
    fmt,
    hash::{BuildHasher, Hasher},
    io::Read,
    time::{SystemTime, UNIX_EPOCH},
};

use crate::core::{
    error::{Error, Result},
    names::DatabaseName,
    value::text::hex,
};

/// Every ACL user this backend creates starts with this. `remove_orphans` only ever touches
/// users of the exact shape `dbforge-db-<16 hex digits>` (or, for spawns before names were
/// opaque, `dbforge-db-<database name>-<16 hex digits>`), so an operator's own
/// users (even ones starting with `dbforge-`) are never mistaken for ours.
pub(super) const USER_PREFIX: &str = "dbforge-db-";

/// Whether `prefix` can start the ACL user names of a backend: lowercase letters, digits and
/// `-`, ending in `-`, so user names stay plain words and one prefix never extends another's
/// names into its own.
pub(super) fn valid_user_prefix(prefix: &str) -> bool {
    prefix.len() <= 32
        && prefix.ends_with('-')
        && prefix
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}
const NONCE_HEX: usize = 16;
const PASSWORD_HEX: usize = 64;

/// The ACL categories whose commands act only on the keys they name. The gateway's allowlist
/// (`command.rs`) and the ACL user's permissions are both derived from these lists, so Redis
/// refuses on its own whatever the gateway would.
pub(super) const DATA_CATEGORIES: &[&str] = &[
    "string",
    "list",
    "hash",
    "set",
    "sortedset",
    "bitmap",
    "hyperloglog",
    "geo",
    "stream",
    "keyspace",
];
/// Categories refused even when a command is also in a data category: they reach the whole
/// server (admin, dangerous), hold the shared connection (blocking), or name things the key
/// prefix cannot confine (pubsub channels, scripts, connection state, WATCH).
pub(super) const DENIED_CATEGORIES: &[&str] = &[
    "dangerous",
    "admin",
    "blocking",
    "pubsub",
    "scripting",
    "connection",
    "transaction",
];
/// Commands outside the data categories that the gateway still runs (with argument rules in
/// `command.rs`: SORT without BY/GET patterns, XREAD without BLOCK). KEYS is not here: the
/// gateway emulates it with SCAN, so the user never needs it.
pub(super) const EXTRA_ALLOWED: &[&str] = &[
    "ping",
    "echo",
    "time",
    "sort",
    "sort_ro",
    "xread",
    "xreadgroup",
];
/// Commands in a data category that still leave the namespace: MOVE writes into another
/// logical database, DBSIZE counts every namespace's keys, RANDOMKEY returns anyone's key name.
pub(super) const EXTRA_DENIED: &[&str] = &["dbsize", "move", "randomkey"];
/// The transaction commands the gateway itself sends for transactional batches.
const TRANSACTION_COMMANDS: &[&str] = &["multi", "exec", "discard"];
/// What a database's read-only user may run besides `@read` (less the denied categories):
/// the gateway's harmless extras, and XREAD, a read that is also in `@blocking` (the gateway
/// refuses its BLOCK option). SORT is not here (its STORE option writes): SORT_RO is.
const READER_EXTRA_ALLOWED: &[&str] = &["ping", "echo", "time", "sort_ro", "xread"];
/// Ends the name of a database's read-only user: `<user>-ro`. Never the shape of a database's
/// own user (which ends with 16 hex digits), so orphan sweeps never take it for one.
const READER_SUFFIX: &str = "-ro";

/// A database's ACL user, password and key prefix.
#[derive(Clone, PartialEq, Eq)]
pub(super) struct Namespace {
    /// The ACL user (`dbforge-db-<nonce>`: the database's name stays out of `ACL LIST`).
    pub user: String,
    /// The user's password: 256 random bits as hex.
    pub password: String,
    /// Every key of the database starts with this: `{<user>}:`, a Redis Cluster hash tag, so
    /// all of them share one slot; `<user>:` for databases spawned before cluster support.
    pub prefix: String,
    /// Whether this is the database's read-only user (see [`Namespace::reader`]).
    pub read_only: bool,
}

impl fmt::Debug for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Namespace")
            .field("user", &self.user)
            .field("prefix", &self.prefix)
            .field("read_only", &self.read_only)
            .finish_non_exhaustive()
    }
}

impl Namespace {
    /// A fresh namespace for `name`. The nonce keeps a re-spawned name apart from leftovers of
    /// an earlier database of the same name.
    pub fn generate(user_prefix: &str) -> Self {
        let user = format!("{user_prefix}{}", hex(&random_bytes::<8>()));
        Self {
            prefix: prefix_of(&user),
            password: hex(&random_bytes::<32>()),
            user,
            read_only: false,
        }
    }

    /// The database's read-only user, which read grants run as: the same key prefix and
    /// password, and only read commands (see [`Self::acl_setuser`]), so Redis itself refuses
    /// every write.
    pub fn reader(&self) -> Self {
        Self {
            user: reader_of(&self.user),
            password: self.password.clone(),
            prefix: self.prefix.clone(),
            read_only: true,
        }
    }

    /// The catalog form: `user=<user> prefix=<prefix> password=<hex>`.
    pub fn locator(&self) -> String {
        format!(
            "user={} prefix={} password={}",
            self.user, self.prefix, self.password
        )
    }

    /// Parses a locator, refusing anything `generate` would not have made: the catalog is a file
    /// on disk, and a tampered prefix would widen what the ACL user may touch.
    pub fn parse(user_prefix: &str, locator: &str) -> Result<Self> {
        let bad = || Error::internal("malformed redis locator in the catalog");
        let mut user = None;
        let mut prefix = None;
        let mut password = None;
        for field in locator.split(' ') {
            let (key, value) = field.split_once('=').ok_or_else(bad)?;
            let slot = match key {
                "user" => &mut user,
                "prefix" => &mut prefix,
                "password" => &mut password,
                _ => return Err(bad()),
            };
            if slot.replace(value.to_owned()).is_some() {
                return Err(bad());
            }
        }
        let (Some(user), Some(prefix), Some(password)) = (user, prefix, password) else {
            return Err(bad());
        };
        let password_ok = password.len() == PASSWORD_HEX && is_lower_hex(&password);
        let prefix_ok = prefix == prefix_of(&user) || prefix == legacy_prefix_of(&user);
        if !is_ours(user_prefix, &user) || !prefix_ok || !password_ok {
            return Err(bad());
        }
        Ok(Self {
            user,
            password,
            prefix,
            read_only: false,
        })
    }

    /// The arguments of `ACL SETUSER` that (re)create the user from scratch: on, this password,
    /// keys under the prefix only, no pub/sub channels, and exactly the commands the gateway
    /// allows plus MULTI/EXEC/DISCARD for its own transactions. `reset` first makes it
    /// idempotent and removes anything an earlier call or an operator added.
    pub fn acl_setuser(&self) -> Vec<String> {
        let mut args: Vec<String> = vec![
            "ACL".into(),
            "SETUSER".into(),
            self.user.clone(),
            "reset".into(),
            "on".into(),
            format!(">{}", self.password),
            format!("~{}*", self.prefix),
            "resetchannels".into(),
            "-@all".into(),
        ];
        if self.read_only {
            // `@read` holds every command that only reads keys; whatever in it reaches beyond
            // the keys (KEYS, DBSIZE, RANDOMKEY, …) is denied after, as for the owner.
            args.push("+@read".into());
            args.extend(DENIED_CATEGORIES.iter().map(|c| format!("-@{c}")));
            args.push("-@write".into());
            args.extend(
                READER_EXTRA_ALLOWED
                    .iter()
                    .chain(TRANSACTION_COMMANDS)
                    .map(|c| format!("+{c}")),
            );
            args.extend(EXTRA_DENIED.iter().map(|c| format!("-{c}")));
            return args;
        }
        args.extend(DATA_CATEGORIES.iter().map(|c| format!("+@{c}")));
        args.extend(DENIED_CATEGORIES.iter().map(|c| format!("-@{c}")));
        args.extend(
            EXTRA_ALLOWED
                .iter()
                .chain(TRANSACTION_COMMANDS)
                .map(|c| format!("+{c}")),
        );
        args.extend(EXTRA_DENIED.iter().map(|c| format!("-{c}")));
        args
    }
}

/// The key prefix of a user, `{<user>}:`: also how `remove_orphans` finds the keys of a user
/// it has only the name of. The braces make it a hash tag (see `cluster.rs`).
pub(super) fn prefix_of(user: &str) -> String {
    format!("{{{user}}}:")
}

/// The key prefix of databases spawned before cluster support: `<user>:`. Still served on a
/// standalone server; a cluster refuses them (their keys would spread over every slot).
pub(super) fn legacy_prefix_of(user: &str) -> String {
    format!("{user}:")
}

/// The ACL user whose namespace a key belongs to, from either prefix shape, if the key has one.
pub(super) fn user_of_key(key: &[u8]) -> Option<&str> {
    let key = std::str::from_utf8(key).ok()?;
    match key.strip_prefix('{') {
        Some(tagged) => tagged.split_once("}:").map(|(u, _)| u),
        None => key.split_once(':').map(|(u, _)| u),
    }
}

/// The read-only user that goes with the database user `user`.
pub(super) fn reader_of(user: &str) -> String {
    format!("{user}{READER_SUFFIX}")
}

/// Whether an ACL user name has exactly the shape `generate` makes with `user_prefix`.
pub(super) fn is_ours(user_prefix: &str, user: &str) -> bool {
    let Some(rest) = user.strip_prefix(user_prefix) else {
        return false;
    };
    let nonce_ok = |nonce: &str| nonce.len() == NONCE_HEX && is_lower_hex(nonce);
    // Spawns made before names were opaque: `<database name>-<nonce>`.
    match rest.rsplit_once('-') {
        None => nonce_ok(rest),
        Some((name, nonce)) => nonce_ok(nonce) && DatabaseName::parse(name).is_ok(),
    }
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Random bytes from the kernel's generator. If /dev/urandom cannot be read (no such device in
/// a stripped container), std's `RandomState`, whose keys also come from the OS generator,
/// stands in: 128 bits of OS entropy stretched through SipHash, still unguessable.
fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut buf));
    if read.is_ok() {
        return buf;
    }
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let state = RandomState::new();
    for (i, chunk) in buf.chunks_mut(8).enumerate() {
        let mut h = state.build_hasher();
        h.write_usize(i);
        h.write_u128(nanos);
        let word = h.finish().to_le_bytes();
        chunk.copy_from_slice(&word[..chunk.len()]);
    }
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locators_round_trip_and_tampering_is_refused() {
        let ns = Namespace::generate(USER_PREFIX);
        assert!(is_ours(USER_PREFIX, &ns.user), "{}", ns.user);
        assert_eq!(
            ns.user.len(),
            USER_PREFIX.len() + NONCE_HEX,
            "nothing but a nonce"
        );
        assert!(
            is_ours(USER_PREFIX, "dbforge-db-scratch-1-0123456789abcdef"),
            "users of spawns from before opaque names are still known"
        );
        assert_eq!(ns.prefix, format!("{{{}}}:", ns.user));
        assert_eq!(
            user_of_key(format!("{}k:x", ns.prefix).as_bytes()),
            Some(&*ns.user)
        );
        let legacy = ns
            .locator()
            .replace(&ns.prefix, &legacy_prefix_of(&ns.user));
        let old = Namespace::parse(USER_PREFIX, &legacy).expect("databases of before still open");
        assert_eq!(
            user_of_key(format!("{}k", old.prefix).as_bytes()),
            Some(&*ns.user)
        );
        assert_eq!(ns.password.len(), 64);
        assert_eq!(
            Namespace::parse(USER_PREFIX, &ns.locator()).expect("parse"),
            ns
        );
        assert_ne!(
            Namespace::generate(USER_PREFIX),
            ns,
            "nonce and password are fresh"
        );
        assert!(!format!("{ns:?}").contains(&ns.password), "Debug hides it");

        let widened = ns.locator().replace(&ns.prefix, "dbforge-db-");
        assert!(Namespace::parse(USER_PREFIX, &widened).is_err());
        let glob = ns
            .locator()
            .replace(&ns.user, "dbforge-db-x*-0123456789abcdef");
        assert!(Namespace::parse(USER_PREFIX, &glob).is_err());
        assert!(Namespace::parse(USER_PREFIX, "user=a prefix=a: password=00").is_err());
        assert!(Namespace::parse(USER_PREFIX, &format!("{} user=x", ns.locator())).is_err());
    }

    #[test]
    fn only_our_exact_shape_counts_as_ours() {
        assert!(is_ours(USER_PREFIX, "dbforge-db-a-0123456789abcdef"));
        assert!(is_ours(USER_PREFIX, "dbforge-db-a-b_c-0123456789abcdef"));
        assert!(!is_ours(USER_PREFIX, "dbforge-db-admin"));
        assert!(!is_ours(USER_PREFIX, "dbforge-admin-0123456789abcdef"));
        assert!(!is_ours(USER_PREFIX, "dbforge-db-A-0123456789abcdef"));
        assert!(!is_ours("other-", "dbforge-db-a-0123456789abcdef"));
        assert!(valid_user_prefix("dbft123-"));
        for bad in ["", "dbft", "Dbft-", "a b-", "a:-", "a*-"] {
            assert!(!valid_user_prefix(bad), "{bad:?}");
        }
        assert!(!is_ours(USER_PREFIX, "dbforge-db-a-0123456789ABCDEF"));
        assert!(!is_ours(USER_PREFIX, "default"));
    }

    #[test]
    fn acl_rules_deny_after_allowing() {
        let ns = Namespace::generate(USER_PREFIX);
        let args = ns.acl_setuser();
        let pos = |s: &str| args.iter().position(|a| a == s).expect(s);
        assert!(pos("reset") < pos("-@all"));
        assert!(pos("+@keyspace") < pos("-@dangerous"), "denials win");
        assert!(
            pos("-@dangerous") < pos("+sort"),
            "then the listed exceptions"
        );
        assert!(args.contains(&format!("~{}*", ns.prefix)));
        assert!(args.contains(&"-move".to_owned()));
    }

    #[test]
    fn the_reader_reads_the_same_keys_only() {
        let ns = Namespace::generate(USER_PREFIX);
        let r = ns.reader();
        assert_eq!(r.user, format!("{}-ro", ns.user));
        assert!(
            !is_ours(USER_PREFIX, &r.user),
            "never swept as a database of its own"
        );
        assert_eq!((&r.prefix, &r.password), (&ns.prefix, &ns.password));
        let args = r.acl_setuser();
        let pos = |s: &str| args.iter().position(|a| a == s).expect(s);
        assert!(pos("-@all") < pos("+@read"));
        assert!(pos("+@read") < pos("-@write") && pos("+@read") < pos("-@dangerous"));
        assert!(
            !args.iter().any(|a| a == "+@string" || a == "+sort"),
            "{args:?}"
        );
        assert!(args.contains(&format!("~{}*", ns.prefix)));
        assert!(
            pos("-@write") < pos("+multi"),
            "its batches may still be transactional"
        );
    }
}
