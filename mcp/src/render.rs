//! Results sized for a model's context: rows as compact JSON, cut at a row count or a byte
//! budget, and a cut result says so (`truncated`, `truncated_by`, `row_count` = rows sent), never
//! silently. Each server encodes a row's cells as a JSON array in its own way (the gateway with
//! the encoder its exports use); the shape around them is written here once.

use std::fmt::Write as _;

use serde_json::Value as Json;

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

    /// The result's column names.
    pub fn columns(&mut self, names: Vec<String>) {
        self.columns = names;
    }

    /// Whether one more row may be added (false once cut, or at `max_rows`, which cuts it):
    /// asked before encoding a row, so that a cut result costs no encoding.
    pub fn wants_more(&mut self) -> bool {
        if self.cut.is_none() && self.sent >= self.max_rows {
            self.cut = Some(Cut::MaxRows);
        }
        self.cut.is_none()
    }

    /// Adds a row, its cells encoded as one JSON array. False when it is past a budget: the
    /// result is then cut, and the caller stops reading (which cancels the statement).
    pub fn push(&mut self, row_json: &[u8]) -> bool {
        if !self.wants_more() {
            return false;
        }
        if self.rows.len() + row_json.len() + 1 > self.max_bytes {
            self.cut = Some(Cut::MaxBytes);
            return false;
        }
        if !self.rows.is_empty() {
            self.rows.push(b',');
        }
        self.rows.extend_from_slice(row_json);
        self.sent += 1;
        true
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

    fn rendered(mut rows: Rows, n: i64) -> Json {
        rows.columns(vec!["n".into()]);
        for i in 0..n {
            if !rows.push(format!("[{i}]").as_bytes()) {
                break;
            }
        }
        serde_json::from_str(&rows.finish(&[])).unwrap()
    }

    #[test]
    fn a_result_within_its_budgets_is_whole_and_says_so() {
        let v = rendered(Rows::new(10, 1000), 3);
        assert_eq!(v["rows"], serde_json::json!([[0], [1], [2]]));
        assert_eq!(v["row_count"], 3);
        assert_eq!(v["truncated"], false);
        assert!(v.get("truncated_by").is_none());
    }

    #[test]
    fn a_result_past_max_rows_is_cut_and_says_so() {
        let v = rendered(Rows::new(2, 1000), 5);
        assert_eq!(v["rows"], serde_json::json!([[0], [1]]));
        assert_eq!(v["row_count"], 2);
        assert_eq!(v["truncated"], true);
        assert_eq!(v["truncated_by"], "max_rows");
    }

    #[test]
    fn a_result_past_max_bytes_is_cut_and_says_so() {
        // "[0]" is 3 bytes, each further row 4 with its comma.
        let v = rendered(Rows::new(100, 10), 5);
        assert_eq!(v["row_count"], 2);
        assert_eq!(v["truncated"], true);
        assert_eq!(v["truncated_by"], "max_bytes");
    }

    #[test]
    fn exactly_max_rows_rows_is_not_a_cut() {
        let v = rendered(Rows::new(3, 1000), 3);
        assert_eq!(v["truncated"], false);
    }
}

/// A CSV export cut at a byte budget on a line boundary (a cut row would read as a short one),
/// and a summary that says whether it was cut.
#[derive(Debug)]
pub struct Csv {
    max_bytes: usize,
    text: Vec<u8>,
    rows: u64,
    truncated: bool,
}

impl Csv {
    /// At most `max_bytes` bytes.
    pub fn new(max_bytes: u64) -> Self {
        Self {
            max_bytes: usize::try_from(max_bytes).unwrap_or(usize::MAX),
            text: Vec::new(),
            rows: 0,
            truncated: false,
        }
    }

    /// Adds the next chunk of the file holding `rows` rows. False when it did not fit: the
    /// export is then cut after its last whole line, and the caller stops reading.
    pub fn push(&mut self, chunk: &[u8], rows: u64) -> bool {
        if self.truncated {
            return false;
        }
        if self.text.len() + chunk.len() > self.max_bytes {
            let room = self.max_bytes - self.text.len();
            let keep = chunk[..room]
                .iter()
                .rposition(|b| *b == b'\n')
                .map_or(0, |i| i + 1);
            self.text.extend_from_slice(&chunk[..keep]);
            self.truncated = true;
            return false;
        }
        self.text.extend_from_slice(chunk);
        self.rows += rows;
        true
    }

    /// Rows in a whole export; unknown (None) once cut.
    pub fn rows(&self) -> Option<u64> {
        (!self.truncated).then_some(self.rows)
    }

    /// The CSV text and the summary (JSON): `truncated`, and `rows` or `truncated_by` with a note.
    pub fn finish(self) -> (String, String) {
        let summary = if self.truncated {
            serde_json::json!({"truncated": true, "truncated_by": "max_bytes", "bytes": self.text.len(),
                "note": "only the first lines of the CSV are shown; narrow the query or raise max_bytes"})
        } else {
            serde_json::json!({"truncated": false, "rows": self.rows, "bytes": self.text.len()})
        };
        (
            String::from_utf8_lossy(&self.text).into_owned(),
            summary.to_string(),
        )
    }
}
