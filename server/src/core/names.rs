//! Validated names: the only way a client string becomes a database name or an identifier.

use std::{fmt, ops::Deref};

use super::error::{Error, Result};

/// A database name: 1 to 63 characters of `a-z 0-9 _ -`, starting with a letter.
///
/// The alphabet is chosen so that a name is safe as a file name, a PostgreSQL or MySQL identifier
/// and a Redis key prefix without escaping, and so that no path can be formed from one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DatabaseName(String);

impl DatabaseName {
    /// Longest accepted name, as PostgreSQL truncates identifiers beyond 63 bytes.
    pub const MAX_LEN: usize = 63;

    /// Parses and validates a name.
    pub fn parse(name: &str) -> Result<Self> {
        let invalid = |reason: &str| Error::invalid("name", format!("{name:?}: {reason}"));
        if name.is_empty() {
            return Err(invalid("must not be empty"));
        }
        if name.len() > Self::MAX_LEN {
            return Err(invalid("must be at most 63 characters"));
        }
        if !name.as_bytes()[0].is_ascii_lowercase() {
            return Err(invalid("must start with a letter a-z"));
        }
        if let Some(c) = name
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_' || *c == '-'))
        {
            return Err(invalid(&format!(
                "character {c:?} is not allowed (use a-z, 0-9, _ and -)"
            )));
        }
        Ok(Self(name.to_owned()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DatabaseName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Deref for DatabaseName {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

/// A table or column name given to TableService. Any text is allowed except NUL; it is always
/// quoted by the backend's dialect before it reaches SQL.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Identifier(String);

impl Identifier {
    /// Longest accepted identifier.
    pub const MAX_LEN: usize = 128;

    /// Validates an identifier for `field`.
    pub fn parse(field: &'static str, name: &str) -> Result<Self> {
        if name.is_empty() {
            return Err(Error::invalid(field, "must not be empty"));
        }
        if name.chars().count() > Self::MAX_LEN {
            return Err(Error::invalid(field, "must be at most 128 characters"));
        }
        if name.contains('\0') {
            return Err(Error::invalid(field, "must not contain NUL"));
        }
        Ok(Self(name.to_owned()))
    }

    /// The raw, unquoted name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Labels attached to a database: at most 64, keys `a-z 0-9 _ - . /` (1–63), values ≤ 256 chars.
pub fn validate_labels<'a>(
    labels: impl IntoIterator<Item = (&'a String, &'a String)>,
) -> Result<()> {
    let mut count = 0;
    for (k, v) in labels {
        count += 1;
        let key_ok = !k.is_empty()
            && k.len() <= 63
            && k.bytes().all(|b| {
                b.is_ascii_lowercase()
                    || b.is_ascii_digit()
                    || matches!(b, b'_' | b'-' | b'.' | b'/')
            });
        if !key_ok {
            return Err(Error::invalid(
                "labels",
                format!("key {k:?} must be 1-63 characters of a-z, 0-9, _ - . /"),
            ));
        }
        if v.chars().count() > 256 {
            return Err(Error::invalid(
                "labels",
                format!("value of {k:?} exceeds 256 characters"),
            ));
        }
    }
    if count > 64 {
        return Err(Error::invalid("labels", "at most 64 labels"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_valid_names() {
        for name in ["a", "agent-42_scratch", &"a".repeat(63), "z9"] {
            assert_eq!(DatabaseName::parse(name).expect(name).as_str(), name);
        }
    }

    #[test]
    fn rejects_invalid_names() {
        let long = "a".repeat(64);
        for name in [
            "", "1abc", "-a", "_a", "Abc", "a b", "a/b", "../x", "a.b", "a;drop", "é", "a\0", &long,
        ] {
            let err = DatabaseName::parse(name).expect_err(name);
            assert!(
                matches!(err, Error::InvalidArgument { field: "name", .. }),
                "{name}: {err}"
            );
        }
    }

    #[test]
    fn identifiers_reject_only_empty_long_and_nul() {
        assert!(Identifier::parse("table", "x\"; DROP TABLE t; --").is_ok());
        assert!(Identifier::parse("table", "").is_err());
        assert!(Identifier::parse("table", "a\0b").is_err());
        assert!(Identifier::parse("table", &"x".repeat(129)).is_err());
    }

    #[test]
    fn labels_are_checked() {
        let ok = [("team".to_string(), "search".to_string())];
        assert!(validate_labels(ok.iter().map(|(k, v)| (k, v))).is_ok());
        let bad = [("Team".to_string(), String::new())];
        assert!(validate_labels(bad.iter().map(|(k, v)| (k, v))).is_err());
    }
}
