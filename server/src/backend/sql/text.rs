//! Text the SQL server backends share: the transaction-control rule, exact decimals, and the
//! names and passwords of spawned databases.

use std::io::Read;

use dbforge_sqlscan::{Dialect, TokenKind, Tokens};

use crate::core::error::{Error, Result};

/// Whose lexical rules apply when a statement's words are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// PostgreSQL: nested block comments, `"identifiers"`, dollar quoting.
    Postgres,
    /// MySQL/MariaDB: `#` comments, executable `/*! … */` comments, backtick identifiers.
    Mysql,
}

/// Refuses a client statement that would open or end a transaction behind the gateway's back.
///
/// This is the one place where DB-Forge reads a statement's words rather than asking the engine,
/// and only for this narrow rule: PostgreSQL and MySQL both accept `BEGIN`, `COMMIT`,
/// `SAVEPOINT` … as ordinary prepared statements and neither says beforehand that a statement
/// controls transactions (sqlx keeps the transaction status of the wire protocol private, and
/// seeing it afterwards would be too late: a `COMMIT` inside a transactional batch has already
/// committed). Statements are always prepared one at a time, so the first word decides; comments
/// are skipped, and MySQL's executable comments (`/*! … */`) are read as the code they are.
///
/// Refused: `BEGIN`, `START`, `COMMIT`, `END`, `ROLLBACK`, `ABORT`, `SAVEPOINT`, `RELEASE`,
/// PostgreSQL's `PREPARE TRANSACTION`, and on MySQL also `XA`, `LOCK`/`UNLOCK` (they commit
/// implicitly and pin locks to a pooled connection) and `SET` of `autocommit` or
/// `completion_type`.
///
/// Also refused, because the gateway keeps track of it per pooled connection
/// ([`super::SqlConn::set_read_only`]): changing the session's default transaction access mode
/// (PostgreSQL `SET`/`RESET default_transaction_read_only`, `SET SESSION CHARACTERISTICS …
/// READ …`, `RESET ALL`, `DISCARD ALL`; MySQL `SET … TRANSACTION … READ …`, `tx_read_only`,
/// `transaction_read_only`). A function such as PostgreSQL's `set_config` can still change it;
/// the worst that does is let a statement that writes and returns more rows than a limit keep
/// its write while the call fails, in the database of the client that did it.
pub fn refuse_transaction_control(sql: &str, flavor: Flavor) -> Result<()> {
    let words = words(sql, flavor);
    let mut words = words.map(|w| w.to_ascii_uppercase());
    let Some(first) = words.next() else {
        return Ok(());
    };
    let pg = flavor == Flavor::Postgres;
    let (control, mode) = match first.as_str() {
        "BEGIN" | "START" | "COMMIT" | "END" | "ROLLBACK" | "ABORT" | "SAVEPOINT" | "RELEASE" => {
            (true, false)
        }
        "PREPARE" => (pg && words.next().as_deref() == Some("TRANSACTION"), false),
        "XA" | "LOCK" | "UNLOCK" => (!pg, false),
        "SET" => {
            let rest: Vec<String> = words.collect();
            let has = |w: &str| rest.iter().any(|r| r == w);
            // `READ ONLY` / `READ WRITE`, not `ISOLATION LEVEL READ COMMITTED`.
            let access = rest
                .windows(2)
                .any(|p| p[0] == "READ" && (p[1] == "ONLY" || p[1] == "WRITE"));
            if pg {
                let mode =
                    has("DEFAULT_TRANSACTION_READ_ONLY") || (has("CHARACTERISTICS") && access);
                (false, mode)
            } else {
                let control = has("AUTOCOMMIT") || has("COMPLETION_TYPE");
                let mode = has("TX_READ_ONLY")
                    || has("TRANSACTION_READ_ONLY")
                    || (has("TRANSACTION") && access);
                (control, mode)
            }
        }
        "RESET" | "DISCARD" if pg => {
            let second = words.next();
            let mode = matches!(
                second.as_deref(),
                Some("ALL" | "DEFAULT_TRANSACTION_READ_ONLY")
            );
            (false, mode)
        }
        _ => (false, false),
    };
    if control {
        return Err(Error::invalid(
            "sql",
            format!(
                "transaction control ({first} …) is not accepted here: use ExecuteBatch with \
                 `transaction` or a Session"
            ),
        ));
    }
    if mode {
        return Err(Error::invalid(
            "sql",
            format!(
                "{first} … would change the session's transaction access mode, which the \
                 gateway sets per call (read-only calls go through a read grant's key)"
            ),
        ));
    }
    Ok(())
}

/// The first word of a statement in upper case, comments skipped (MySQL's executable comments
/// are read as the code they are), or `None` when it has none.
pub fn first_word(sql: &str, flavor: Flavor) -> Option<String> {
    words(sql, flavor).next().map(|w| w.to_ascii_uppercase())
}

/// What a PostgreSQL syntax error most likely means when the statement has parameters and a `?`
/// outside quotes and comments: it was written for SQLite or MySQL (see [`placeholder_hint`]).
pub const PG_PLACEHOLDER_HINT: &str =
    "PostgreSQL takes $1, $2, … placeholders, not ?: write `WHERE a = $1 AND b = $2`";

/// A hint for a syntax error of a statement with `params` parameters, when its `?` marks look
/// like another engine's placeholders: PostgreSQL only (MySQL and SQLite take `?`).
pub fn placeholder_hint(sql: &str, params: usize, flavor: Flavor) -> Option<&'static str> {
    let marks = flavor == Flavor::Postgres && params > 0 && words(sql, flavor).any(|w| w == "?");
    marks.then_some(PG_PLACEHOLDER_HINT)
}

/// The highest `$n` placeholder of a PostgreSQL statement (0 when it has none). PostgreSQL
/// accepts parameters a statement never uses; this lets the gateway refuse them, as it does
/// on the other engines, instead of ignoring a client's mistake.
pub fn highest_placeholder(sql: &str) -> usize {
    words(sql, Flavor::Postgres)
        .filter_map(|w| w.strip_prefix('$')?.parse::<usize>().ok())
        .max()
        .unwrap_or(0)
}

/// The unquoted words of a statement, in order, skipping comments and literals (on MySQL,
/// backticked names count as words and executable comments are read as code; on PostgreSQL,
/// `$n` placeholders and `?` marks are words of their own). Built on the shared scanner's
/// tokens, so it reads quotes and comments exactly as ImportSql's splitter does.
fn words(sql: &str, flavor: Flavor) -> impl Iterator<Item = &str> {
    let dialect = match flavor {
        Flavor::Postgres => Dialect::Postgres,
        Flavor::Mysql => Dialect::Mysql,
    };
    Tokens::new(sql, dialect).filter_map(move |t| match t.kind {
        TokenKind::Word => Some(t.text),
        // A quoted identifier is still a name (`SET `autocommit` = 0`).
        TokenKind::QuotedIdentifier if flavor == Flavor::Mysql => Some(
            t.text
                .get(1..t.text.len().saturating_sub(1))
                .unwrap_or_default(),
        ),
        TokenKind::Placeholder if flavor == Flavor::Postgres => Some(t.text),
        _ => None,
    })
}

/// A decimal number read from text, as sign and digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecimalDigits {
    /// Below zero.
    pub negative: bool,
    /// Digits before the point, without leading zeros (empty for zero).
    pub int: String,
    /// Digits after the point, as written (trailing zeros kept: they carry the scale).
    pub frac: String,
}

/// The most digits a decimal may expand to; far above what any engine stores, low enough that an
/// exponent cannot make the gateway allocate gigabytes.
const MAX_DECIMAL_DIGITS: usize = 200_000;

impl DecimalDigits {
    /// Parses `[+-]digits[.digits][e[+-]digits]`. Returns `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        let (negative, body) = match s.as_bytes().first()? {
            b'-' => (true, &s[1..]),
            b'+' => (false, &s[1..]),
            _ => (false, s),
        };
        let (mantissa, exp) = match body.find(['e', 'E']) {
            Some(p) => (&body[..p], body[p + 1..].parse::<i64>().ok()?),
            None => (body, 0),
        };
        let (int, frac) = match mantissa.find('.') {
            Some(p) => (&mantissa[..p], &mantissa[p + 1..]),
            None => (mantissa, ""),
        };
        if (int.is_empty() && frac.is_empty())
            || !int.bytes().all(|b| b.is_ascii_digit())
            || !frac.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        if exp.unsigned_abs() as usize > MAX_DECIMAL_DIGITS
            || int.len() + frac.len() + exp.unsigned_abs() as usize > MAX_DECIMAL_DIGITS
        {
            return None;
        }
        // Shift the point by the exponent.
        let mut digits = format!("{int}{frac}");
        let mut point = int.len() as i64 + exp;
        if point < 0 {
            digits = format!("{}{digits}", "0".repeat(point.unsigned_abs() as usize));
            point = 0;
        }
        let point = point as usize;
        if point > digits.len() {
            digits.push_str(&"0".repeat(point - digits.len()));
        }
        let (int, frac) = digits.split_at(point);
        let int = int.trim_start_matches('0').to_owned();
        let frac = frac.to_owned();
        let zero = int.is_empty() && frac.bytes().all(|b| b == b'0');
        Some(Self {
            negative: negative && !zero,
            int,
            frac,
        })
    }

    /// Plain notation: `-12.3400`, `0.5`, `0`.
    pub fn to_plain(&self) -> String {
        let mut out = String::with_capacity(self.int.len() + self.frac.len() + 3);
        if self.negative {
            out.push('-');
        }
        out.push_str(if self.int.is_empty() { "0" } else { &self.int });
        if !self.frac.is_empty() {
            out.push('.');
            out.push_str(&self.frac);
        }
        out
    }
}

/// A spawned database's server-side name (database, schema, role and user share it) and the
/// password of its own login, as stored in the catalog's locator: `<name>:<password>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Locator {
    /// Identifier of the database and of its login; `[a-z0-9_]`, starting with a letter.
    pub ident: String,
    /// Password of the login; lowercase hex.
    pub password: String,
}

/// Random bytes in a generated name: the name is nothing but these, so enough that two never
/// meet.
const NAME_NONCE_BYTES: usize = 10;
/// Random bits in a password.
const PASSWORD_BYTES: usize = 24;

impl Locator {
    /// A fresh locator: `prefix`, then random hex up to `max_len` (63 bytes on PostgreSQL, 32
    /// characters for MySQL user names). The database's own name is not in it: engine catalogs
    /// (`pg_database`, `pg_roles`, `information_schema`) are visible to every login of the
    /// server, and names that tenants chose must not show there. The catalog maps names to
    /// locators.
    pub fn generate(prefix: &str, max_len: usize) -> Self {
        let room = max_len
            .saturating_sub(prefix.len())
            .min(2 * NAME_NONCE_BYTES);
        let mut nonce = random_hex(NAME_NONCE_BYTES);
        nonce.truncate(room);
        Self {
            ident: format!("{prefix}{nonce}"),
            password: random_hex(PASSWORD_BYTES),
        }
    }

    /// Parses and checks a locator from the catalog, which is a file on disk: anything that could
    /// break out of a quoted identifier or literal is refused.
    pub fn parse(locator: &str, prefix: &str, max_len: usize) -> Result<Self> {
        let bad = || Error::internal(format!("malformed locator {locator:?}"));
        let (ident, password) = locator.split_once(':').ok_or_else(bad)?;
        let ident_ok = ident.starts_with(prefix)
            && ident.len() <= max_len
            && ident
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        let password_ok = password.len() >= 16
            && password
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !ident_ok || !password_ok {
            return Err(bad());
        }
        Ok(Self {
            ident: ident.to_owned(),
            password: password.to_owned(),
        })
    }

    /// Whether `ident` is a valid name carrying `prefix` (for orphan sweeps).
    pub fn is_ident(ident: &str, prefix: &str, max_len: usize) -> bool {
        Self::parse(&format!("{ident}:{}", "0".repeat(16)), prefix, max_len).is_ok()
    }
}

impl std::fmt::Display for Locator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.ident, self.password)
    }
}

/// `n` random bytes as hex, from the operating system's CSPRNG.
fn random_hex(n: usize) -> String {
    let mut buf = vec![0u8; n];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut buf));
    if let Err(e) = read {
        // Every supported platform has /dev/urandom; this fallback only keeps `locate`
        // infallible. std's RandomState keys come from the OS generator as well.
        tracing::warn!(error = %e, "cannot read /dev/urandom; using std's random keys");
        use std::hash::{BuildHasher, Hasher};
        for chunk in buf.chunks_mut(8) {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u128(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or_default(),
            );
            let bytes = h.finish().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
    crate::core::value::text::hex(&buf)
}

/// Escapes `_`, `%` and `\` for a LIKE pattern matching `prefix` followed by anything.
pub fn like_prefix(prefix: &str) -> String {
    let mut out = String::with_capacity(prefix.len() + 2);
    for c in prefix.chars() {
        if matches!(c, '_' | '%' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn question_marks_outside_quotes_suggest_dollar_placeholders_on_postgres() {
        let pg = Flavor::Postgres;
        let sql = "SELECT * FROM t WHERE a = ? AND b = ?";
        assert_eq!(placeholder_hint(sql, 2, pg), Some(PG_PLACEHOLDER_HINT));
        // No parameters, `?` only in literals, identifiers or comments, or MySQL: no hint.
        assert_eq!(placeholder_hint(sql, 0, pg), None);
        let quoted = "SELECT '?', \"a?\", $$?$$ FROM t -- ?\n WHERE a = $1 /* ? */";
        assert_eq!(placeholder_hint(quoted, 1, pg), None);
        assert_eq!(placeholder_hint(sql, 2, Flavor::Mysql), None);
    }

    fn refused(sql: &str, flavor: Flavor) -> bool {
        refuse_transaction_control(sql, flavor).is_err()
    }

    #[test]
    fn transaction_control_is_refused() {
        for sql in [
            "BEGIN",
            "  commit",
            "-- note\nROLLBACK TO SAVEPOINT a",
            "/* a /* nested */ b */ START TRANSACTION",
            "savepoint x",
            "RELEASE SAVEPOINT x",
            "END",
            "abort",
            "PREPARE TRANSACTION 'x'",
            "SET default_transaction_read_only = off",
            "set session DEFAULT_TRANSACTION_READ_ONLY to on",
            "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
            "RESET default_transaction_read_only",
            "RESET ALL",
            "DISCARD ALL",
        ] {
            assert!(refused(sql, Flavor::Postgres), "{sql}");
        }
        for sql in [
            "BEGIN",
            "# c\nCOMMIT",
            "/*!40101 COMMIT */",
            "/*M!100100 ROLLBACK */",
            "SET autocommit = 0",
            "set @@session.autocommit=0",
            "SET a = 1, `autocommit` = 0",
            "SET completion_type = 2",
            "XA START 'x'",
            "LOCK TABLES t WRITE",
            "UNLOCK TABLES",
            "SET SESSION TRANSACTION READ WRITE",
            "SET TRANSACTION READ ONLY",
            "SET @@tx_read_only = 0",
            "SET SESSION transaction_read_only = OFF",
        ] {
            assert!(refused(sql, Flavor::Mysql), "{sql}");
        }
    }

    #[test]
    fn ordinary_statements_pass() {
        for sql in [
            "SELECT 'BEGIN'",
            "/* COMMIT */ SELECT 1",
            "-- COMMIT\nSELECT 1",
            "\"begin\"",
            "UPDATE t SET note = 'commit'",
            "SELECT $$COMMIT$$",
            "PREPARE p AS SELECT 1",
            "LOCK TABLE t",
            "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE",
            "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ COMMITTED",
            "SET search_path = public",
            "RESET search_path",
            "DISCARD TEMP",
            "",
        ] {
            assert!(!refused(sql, Flavor::Postgres), "{sql}");
        }
        for sql in [
            "SELECT 'it''s' -- COMMIT",
            "SET @x = 'autocommit'",
            "SET time_zone = '+00:00'",
            "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
            "SELECT `commit` FROM t",
            "INSERT INTO t VALUES ('a\\'; COMMIT')",
        ] {
            assert!(!refused(sql, Flavor::Mysql), "{sql}");
        }
    }

    #[test]
    fn placeholders_are_counted_outside_literals() {
        assert_eq!(
            highest_placeholder("SELECT $1, $12 FROM t WHERE a = $3"),
            12
        );
        assert_eq!(
            highest_placeholder("SELECT '$5', $$ $7 $$, \"$9\" -- $8\n"),
            0
        );
        assert_eq!(highest_placeholder("SELECT $tag$ $4 $tag$, $2"), 2);
        assert_eq!(highest_placeholder("SELECT E'it\\'s $4', $1"), 1);
    }

    #[test]
    fn decimals_are_read_exactly() {
        let plain = |s: &str| DecimalDigits::parse(s).map(|d| d.to_plain());
        assert_eq!(
            plain("12345678901234567890.123456789").as_deref(),
            Some("12345678901234567890.123456789")
        );
        assert_eq!(plain("-0012.3400").as_deref(), Some("-12.3400"));
        assert_eq!(plain("1.5e3").as_deref(), Some("1500"));
        assert_eq!(plain("1.25E-3").as_deref(), Some("0.00125"));
        assert_eq!(plain(".5").as_deref(), Some("0.5"));
        assert_eq!(plain("-0.00").as_deref(), Some("0.00"));
        for bad in ["", "-", "1.2.3", "abc", "1e", "1e999999999", "NaN", "1 2"] {
            assert_eq!(plain(bad), None, "{bad}");
        }
    }

    #[test]
    fn locators_fit_and_round_trip() {
        for max in [32, 63] {
            let loc = Locator::generate("dbf_", max);
            assert!(loc.ident.len() <= max, "{}", loc.ident);
            assert!(loc.ident.len() >= "dbf_".len() + 16, "{}", loc.ident);
            let parsed = Locator::parse(&loc.to_string(), "dbf_", max).expect("parse");
            assert_eq!(parsed, loc);
        }
        let a = Locator::generate("dbf_", 63);
        let b = Locator::generate("dbf_", 63);
        assert_ne!(a.ident, b.ident, "every spawn gets a name of its own");
        assert_ne!(a.password, b.password);
        for bad in [
            "dbf_x",
            "dbf_x:short",
            "dbf_x\":0123456789abcdef",
            "other:0123456789abcdef",
        ] {
            assert!(Locator::parse(bad, "dbf_", 63).is_err(), "{bad}");
        }
    }

    #[test]
    fn like_prefix_escapes_wildcards() {
        assert_eq!(like_prefix("dbf_"), "dbf\\_%");
    }
}
