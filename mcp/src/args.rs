//! A tool call's arguments, checked against the types its schema promises ([`super::tools`]).
//! Errors name the argument, and each server answers them as its INVALID_ARGUMENT.

use std::fmt;

use rmcp::model::JsonObject;
use serde_json::Value as Json;

use crate::tools::{DEFAULT_MAX_BYTES, DEFAULT_MAX_ROWS};

/// An argument of the wrong type, or a required one missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgError {
    /// The argument.
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

impl fmt::Display for ArgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

impl std::error::Error for ArgError {}

fn bad(field: &'static str, reason: impl Into<String>) -> ArgError {
    ArgError {
        field,
        reason: reason.into(),
    }
}

/// A statement parameter as JSON gives it.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    /// null.
    Null,
    /// true or false.
    Bool(bool),
    /// An integer that fits in 64 bits.
    Int(i64),
    /// Any other number.
    Float(f64),
    /// A string.
    Text(String),
}

/// The arguments of one call.
#[derive(Debug, Clone, Default)]
pub struct Args(pub JsonObject);

impl Args {
    /// A string argument, if given.
    pub fn text(&self, name: &'static str) -> Result<Option<&str>, ArgError> {
        match self.0.get(name) {
            None | Some(Json::Null) => Ok(None),
            Some(Json::String(s)) => Ok(Some(s)),
            Some(_) => Err(bad(name, "must be a string")),
        }
    }

    /// A string argument that must be given.
    pub fn required(&self, name: &'static str) -> Result<&str, ArgError> {
        self.text(name)?.ok_or_else(|| bad(name, "is required"))
    }

    /// A non-negative integer argument, if given.
    pub fn count(&self, name: &'static str) -> Result<Option<u64>, ArgError> {
        match self.0.get(name) {
            None | Some(Json::Null) => Ok(None),
            Some(v) => v
                .as_u64()
                .map(Some)
                .ok_or_else(|| bad(name, "must be a non-negative integer")),
        }
    }

    /// A boolean argument; false when not given.
    pub fn flag(&self, name: &'static str) -> Result<bool, ArgError> {
        match self.0.get(name) {
            None | Some(Json::Null) => Ok(false),
            Some(Json::Bool(b)) => Ok(*b),
            Some(_) => Err(bad(name, "must be true or false")),
        }
    }

    /// `max_rows` and `max_bytes`, with their defaults.
    pub fn budgets(&self) -> Result<(u64, u64), ArgError> {
        Ok((
            self.count("max_rows")?.unwrap_or(DEFAULT_MAX_ROWS),
            self.count("max_bytes")?.unwrap_or(DEFAULT_MAX_BYTES),
        ))
    }

    /// `sql` with its `params`.
    pub fn statement(&self) -> Result<(String, Vec<Param>), ArgError> {
        let sql = self.required("sql")?.to_owned();
        let params = match self.0.get("params") {
            None | Some(Json::Null) => Vec::new(),
            Some(Json::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Json::Null => Ok(Param::Null),
                    Json::Bool(b) => Ok(Param::Bool(*b)),
                    Json::Number(n) => n
                        .as_i64()
                        .map(Param::Int)
                        .or_else(|| n.as_f64().map(Param::Float))
                        .ok_or_else(|| bad("params", format!("{n} is out of range"))),
                    Json::String(s) => Ok(Param::Text(s.clone())),
                    _ => Err(bad(
                        "params",
                        "each parameter must be null, a boolean, a number or a string",
                    )),
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(bad("params", "must be an array")),
        };
        Ok((sql, params))
    }

    /// The database a call names (`database`, or `name` for the control tools), for audit
    /// records and logs.
    pub fn target(&self) -> Option<&str> {
        self.0
            .get("database")
            .or_else(|| self.0.get("name"))
            .and_then(Json::as_str)
    }

    /// The statement a call carries, if any.
    pub fn sql(&self) -> Option<&str> {
        self.0.get("sql").and_then(Json::as_str)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn args(v: Json) -> Args {
        Args(v.as_object().cloned().unwrap())
    }

    #[test]
    fn parameters_take_their_json_types() {
        let a = args(serde_json::json!({"sql": "s", "params": [null, true, 3, 1.5, "x"]}));
        let (_, params) = a.statement().unwrap();
        assert_eq!(
            params,
            [
                Param::Null,
                Param::Bool(true),
                Param::Int(3),
                Param::Float(1.5),
                Param::Text("x".into())
            ]
        );
    }

    #[test]
    fn a_wrong_type_names_its_argument() {
        let a = args(serde_json::json!({"sql": 1, "max_rows": -1}));
        assert_eq!(a.statement().unwrap_err().field, "sql");
        assert_eq!(a.budgets().unwrap_err().field, "max_rows");
        assert_eq!(args(serde_json::json!({})).budgets().unwrap(), (100, 32768));
    }
}
