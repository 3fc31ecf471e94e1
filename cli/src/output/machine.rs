//! The formats for programs: JSON (one array), NDJSON (one object per line) and CSV. Rows are
//! written as they arrive; nothing is buffered beyond the writer's buffer.

use std::io::{self, Write};

use dbforge::{Column, Value};

use super::{End, Sink, render};

/// Object keys for the columns: the column names, with `_2`, `_3`… added to repeats so that
/// `SELECT a, a` keeps both values.
fn keys(columns: &[Column]) -> Vec<String> {
    let mut keys: Vec<String> = Vec::with_capacity(columns.len());
    for c in columns {
        let mut key = c.name.clone();
        let mut n = 1;
        while keys.contains(&key) {
            n += 1;
            key = format!("{}_{n}", c.name);
        }
        keys.push(key);
    }
    keys
}

/// JSON and NDJSON.
pub struct JsonSink<'a> {
    out: &'a mut dyn Write,
    lines: bool,
    /// An entry of an enclosing array ([`super::Results`]): the enclosing array writes the
    /// separators and line ends, so the result ends without one.
    nested: bool,
    keys: Vec<String>,
    rows: u64,
}

impl<'a> JsonSink<'a> {
    pub fn new(out: &'a mut dyn Write, lines: bool) -> Self {
        JsonSink {
            out,
            lines,
            nested: false,
            keys: Vec::new(),
            rows: 0,
        }
    }

    /// A JSON result written as one entry of an enclosing array.
    pub fn nested(out: &'a mut dyn Write) -> Self {
        JsonSink {
            nested: true,
            ..JsonSink::new(out, false)
        }
    }
}

impl Sink for JsonSink<'_> {
    fn header(&mut self, columns: &[Column]) -> io::Result<()> {
        self.keys = keys(columns);
        Ok(())
    }

    fn row(&mut self, values: &[Value]) -> io::Result<()> {
        let obj: serde_json::Map<String, serde_json::Value> = self
            .keys
            .iter()
            .cloned()
            .zip(values.iter().map(render::json))
            .collect();
        let text = serde_json::Value::Object(obj).to_string();
        if self.lines {
            writeln!(self.out, "{text}")?;
        } else if self.rows == 0 {
            write!(self.out, "[\n{text}")?;
        } else {
            write!(self.out, ",\n{text}")?;
        }
        self.rows += 1;
        Ok(())
    }

    fn idle(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    fn end(&mut self, end: &End) -> io::Result<()> {
        if self.keys.is_empty() {
            // A statement without a result set: say what it changed.
            write!(self.out, "{{\"rows_affected\":{}}}", end.affected)?;
        } else if !self.lines {
            if self.rows == 0 {
                write!(self.out, "[]")?;
            } else {
                write!(self.out, "\n]")?;
            }
        }
        // NDJSON rows end their own lines; a nested entry's line end is the enclosing array's.
        let rows_ended_the_line = self.lines && !self.keys.is_empty();
        if !self.nested && !rows_ended_the_line {
            writeln!(self.out)?;
        }
        self.out.flush()
    }
}

/// CSV (RFC 4180, CRLF line ends) with a header line.
pub struct CsvSink<'a> {
    out: &'a mut dyn Write,
    columns: usize,
}

impl<'a> CsvSink<'a> {
    pub fn new(out: &'a mut dyn Write) -> Self {
        CsvSink { out, columns: 0 }
    }
}

impl Sink for CsvSink<'_> {
    fn header(&mut self, columns: &[Column]) -> io::Result<()> {
        self.columns = columns.len();
        if columns.is_empty() {
            return Ok(());
        }
        let mut line = String::new();
        for (i, c) in columns.iter().enumerate() {
            if i > 0 {
                line.push(',');
            }
            render::csv_name(&c.name, &mut line);
        }
        line.push_str("\r\n");
        self.out.write_all(line.as_bytes())
    }

    fn row(&mut self, values: &[Value]) -> io::Result<()> {
        let mut line = String::new();
        for (i, v) in values.iter().enumerate() {
            if i > 0 {
                line.push(',');
            }
            render::csv_field(v, &mut line);
        }
        line.push_str("\r\n");
        self.out.write_all(line.as_bytes())
    }

    fn idle(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    fn end(&mut self, end: &End) -> io::Result<()> {
        if self.columns == 0 {
            write!(self.out, "rows_affected\r\n{}\r\n", end.affected)?;
        }
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dbforge::pb::ValueKind;

    fn col(name: &str) -> Column {
        Column {
            name: name.into(),
            declared_type: String::new(),
            kind: ValueKind::Unspecified,
        }
    }

    #[test]
    fn repeated_names_get_suffixes() {
        assert_eq!(
            keys(&[col("a"), col("a"), col("b"), col("a")]),
            ["a", "a_2", "b", "a_3"]
        );
    }
}
