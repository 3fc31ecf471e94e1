//! Results sized for a model's context: rows as compact JSON, cut at a row count or a byte
//! budget, and a cut result says so (`truncated`, `truncated_by`, `row_count` = rows sent), never
//! silently. Cells are written by the one JSON encoder exports use
//! ([`json_value`](crate::core::transfer::json_value)).

use std::fmt::Write as _;

use serde_json::Value as Json;

use crate::core::{
    error::Result,
    transfer::json_value,
    value::{Column, Value},
};

/// Why a result was cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// The call's `max_rows`.
    MaxRows,
    /// The call's `max_bytes`.
    MaxBytes,
    /// The server's own row or byte limit (`--max-stream-rows`, `--max-stream-bytes`).
    ServerLimit,
}

impl Cut {
    fn as_str(self) -> &'static str {
        match self {
            Cut::MaxRows => "max_rows",
            Cut::MaxBytes => "max_bytes",
            Cut::ServerLimit => "server_limit",
        }
    }
}

/// A result being rendered.
#[derive(Debug)]
pub struct Rows {
    max_rows: u64,
    max_bytes: usize,
    columns: Vec<String>,
    rows: Vec<u8>,
    sent: u64,
    cut: Option<Cut>,
}

impl Rows {
    /// At most `max_rows` rows and `max_bytes` bytes of rows.
    pub fn new(max_rows: u64, max_bytes: u64) -> Self {
        Self {
            max_rows,
            max_bytes: usize::try_from(max_bytes).unwrap_or(usize::MAX),
            columns: Vec::new(),
            rows: Vec::new(),
            sent: 0,
            cut: None,
        }
    }

    /// The result's columns.
    pub fn columns(&mut self, columns: &[Column]) {
        self.columns = columns.iter().map(|c| c.name.clone()).collect();
    }

    /// Adds a row. False when it is past a budget: the result is then cut, and the caller
    /// stops reading (which cancels the statement).
    pub fn push(&mut self, row: &[Value]) -> Result<bool> {
        if self.cut.is_some() {
            return Ok(false);
        }
        if self.sent >= self.max_rows {
            self.cut = Some(Cut::MaxRows);
            return Ok(false);
        }
        let mut cell = Vec::new();
        cell.push(b'[');
        for (i, v) in row.iter().enumerate() {
            if i > 0 {
                cell.push(b',');
            }
            json_value(&mut cell, v)?;
        }
        cell.push(b']');
        if self.rows.len() + cell.len() + 1 > self.max_bytes {
            self.cut = Some(Cut::MaxBytes);
            return Ok(false);
        }
        if !self.rows.is_empty() {
            self.rows.push(b',');
        }
        self.rows.extend_from_slice(&cell);
        self.sent += 1;
        Ok(true)
    }

    /// Marks the result as cut by something else than this renderer's budgets.
    pub fn cut_by(&mut self, cut: Cut) {
        self.cut.get_or_insert(cut);
    }

    /// Whether the result was cut.
    pub fn truncated(&self) -> bool {
        self.cut.is_some()
    }

    /// Rows kept.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// The JSON object: `columns`, `rows` (arrays in column order), `row_count`, `truncated`,
    /// then `extra` fields; when cut, `truncated_by` and a note on how to see more.
    pub fn finish(self, extra: &[(&str, Json)]) -> String {
        let mut out = String::from("{\"columns\":");
        out.push_str(&Json::from(self.columns).to_string());
        out.push_str(",\"rows\":[");
        out.push_str(&String::from_utf8_lossy(&self.rows));
        let _ = write!(
            out,
            "],\"row_count\":{},\"truncated\":{}",
            self.sent,
            self.cut.is_some()
        );
        for (name, value) in extra {
            let _ = write!(out, ",{}:{value}", Json::from(*name));
        }
        if let Some(cut) = self.cut {
            let note = match cut {
                Cut::MaxRows | Cut::MaxBytes => format!(
                    "only the first {} rows are shown: the result has more than {} allows; \
                     narrow the query (WHERE, LIMIT/OFFSET, fewer columns) or raise it",
                    self.sent,
                    cut.as_str()
                ),
                Cut::ServerLimit => format!(
                    "only the first {} rows are shown: the server's row or byte limit cut the \
                     result; narrow the query",
                    self.sent
                ),
            };
            let _ = write!(
                out,
                ",\"truncated_by\":\"{}\",\"note\":{}",
                cut.as_str(),
                Json::from(note)
            );
        }
        out.push('}');
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn rendered(rows: &mut Rows, n: i64) -> Json {
        rows.columns(&[Column {
            name: "n".into(),
            declared_type: String::new(),
            kind: crate::core::value::ValueKind::Int,
        }]);
        for i in 0..n {
            if !rows.push(&[Value::Int(i)]).unwrap() {
                break;
            }
        }
        let rows = std::mem::replace(rows, Rows::new(0, 0));
        serde_json::from_str(&rows.finish(&[])).unwrap()
    }

    #[test]
    fn a_result_within_its_budgets_is_whole_and_says_so() {
        let v = rendered(&mut Rows::new(10, 1000), 3);
        assert_eq!(v["rows"], serde_json::json!([[0], [1], [2]]));
        assert_eq!(v["row_count"], 3);
        assert_eq!(v["truncated"], false);
        assert!(v.get("truncated_by").is_none());
    }

    #[test]
    fn a_result_past_max_rows_is_cut_and_says_so() {
        let v = rendered(&mut Rows::new(2, 1000), 5);
        assert_eq!(v["rows"], serde_json::json!([[0], [1]]));
        assert_eq!(v["row_count"], 2);
        assert_eq!(v["truncated"], true);
        assert_eq!(v["truncated_by"], "max_rows");
    }

    #[test]
    fn a_result_past_max_bytes_is_cut_and_says_so() {
        // "[0]" is 3 bytes, each further row 4 with its comma.
        let v = rendered(&mut Rows::new(100, 10), 5);
        assert_eq!(v["row_count"], 2);
        assert_eq!(v["truncated"], true);
        assert_eq!(v["truncated_by"], "max_bytes");
    }

    #[test]
    fn exactly_max_rows_rows_is_not_a_cut() {
        let v = rendered(&mut Rows::new(3, 1000), 3);
        assert_eq!(v["truncated"], false);
    }
}
