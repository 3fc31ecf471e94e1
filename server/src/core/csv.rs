//! RFC 4180 CSV: a push parser fed in chunks, and field encoding for exports.
//!
//! The parser is written here rather than taken from the `csv` crate because imports need two
//! things that crate does not expose: whether a field was quoted (so that `""` is the empty
//! string while an unquoted empty field can mean NULL, as in PostgreSQL's `COPY … CSV`), and
//! whether the input ended inside a quoted field (an unterminated quote, which the crate
//! silently accepts as a field running to the end of the file).

use crate::core::error::{Error, Result};

/// One field of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// Its bytes, quotes removed and doubled quotes undone.
    pub bytes: Vec<u8>,
    /// It was written between quotes.
    pub quoted: bool,
}

/// A record, or why it could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The 1-based line the record starts on.
    pub line: u64,
    /// Its fields.
    pub fields: Vec<Field>,
    /// Set when the record is malformed; the fields are then best effort.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a field.
    Start,
    Unquoted,
    Quoted,
    /// A quote inside a quoted field: either the first of a doubled quote, or the closing one.
    QuoteInQuoted,
    /// After a lone CR ended a record: a following LF belongs to it.
    AfterCr,
}

/// Splits CSV bytes into records as they arrive.
#[derive(Debug)]
pub struct CsvParser {
    delimiter: u8,
    max_record_bytes: usize,
    state: State,
    line: u64,
    record_line: u64,
    record_bytes: usize,
    field: Vec<u8>,
    quoted: bool,
    fields: Vec<Field>,
    error: Option<String>,
    /// The current record has at least one byte (blank lines are skipped).
    started: bool,
}

impl CsvParser {
    /// A parser splitting fields on `delimiter`; a record longer than `max_record_bytes` is
    /// [`Error::LimitExceeded`].
    pub fn new(delimiter: u8, max_record_bytes: usize) -> Self {
        Self {
            delimiter,
            max_record_bytes,
            state: State::Start,
            line: 1,
            record_line: 1,
            record_bytes: 0,
            field: Vec::new(),
            quoted: false,
            fields: Vec::new(),
            error: None,
            started: false,
        }
    }

    /// Feeds bytes; complete records are appended to `out`.
    pub fn push(&mut self, input: &[u8], out: &mut Vec<Record>) -> Result<()> {
        for &b in input {
            if !self.started {
                if self.state == State::AfterCr && b == b'\n' {
                    self.state = State::Start;
                    continue;
                }
                self.state = State::Start;
                self.record_line = self.line;
                self.started = true;
            }
            self.record_bytes += 1;
            if self.record_bytes > self.max_record_bytes {
                return Err(Error::LimitExceeded(format!(
                    "the CSV record starting at line {} is longer than the import line limit of \
                     {} bytes",
                    self.record_line, self.max_record_bytes
                )));
            }
            if b == b'\n' {
                self.line += 1;
            }
            match self.state {
                State::Start | State::Unquoted => {
                    if b == self.delimiter {
                        self.end_field();
                    } else if b == b'\n' || b == b'\r' {
                        self.end_record(out, b == b'\r');
                    } else if b == b'"' && self.state == State::Start {
                        self.quoted = true;
                        self.state = State::Quoted;
                    } else {
                        self.field.push(b);
                        self.state = State::Unquoted;
                    }
                }
                State::Quoted => {
                    if b == b'"' {
                        self.state = State::QuoteInQuoted;
                    } else {
                        self.field.push(b);
                    }
                }
                State::QuoteInQuoted => {
                    if b == b'"' {
                        self.field.push(b'"');
                        self.state = State::Quoted;
                    } else if b == self.delimiter {
                        self.end_field();
                    } else if b == b'\n' || b == b'\r' {
                        self.end_record(out, b == b'\r');
                    } else {
                        self.error
                            .get_or_insert_with(|| "text after a closing quote".into());
                        self.field.push(b);
                        self.state = State::Unquoted;
                    }
                }
                State::AfterCr => unreachable!("AfterCr ends a record"),
            }
        }
        Ok(())
    }

    /// Ends the input; the last record, if the file does not end with a line break, is
    /// appended to `out`. A quoted field left open makes that record malformed.
    pub fn finish(&mut self, out: &mut Vec<Record>) {
        if !self.started {
            return;
        }
        if self.state == State::Quoted {
            self.error = Some(format!(
                "unterminated quoted field (the quote opened on line {} is never closed)",
                self.record_line
            ));
        }
        self.end_record(out, false);
    }

    fn end_field(&mut self) {
        self.fields.push(Field {
            bytes: std::mem::take(&mut self.field),
            quoted: std::mem::take(&mut self.quoted),
        });
        self.state = State::Start;
    }

    fn end_record(&mut self, out: &mut Vec<Record>, cr: bool) {
        self.end_field();
        let blank =
            self.fields.len() == 1 && !self.fields[0].quoted && self.fields[0].bytes.is_empty();
        let fields = std::mem::take(&mut self.fields);
        let error = self.error.take();
        if !blank || error.is_some() {
            out.push(Record {
                line: self.record_line,
                fields,
                error,
            });
        }
        if cr {
            // A lone CR is a line break too; a CRLF's LF is skipped by AfterCr.
            self.line += 1;
        }
        self.state = if cr { State::AfterCr } else { State::Start };
        self.started = false;
        self.record_bytes = 0;
    }
}

/// Appends `field` to `out` as one CSV field, quoted when it holds the delimiter, a quote, a
/// line break or leading/trailing spaces, or when it is empty and must not read as NULL.
pub fn write_field(out: &mut Vec<u8>, field: &[u8], delimiter: u8, force_quotes: bool) {
    let needs = force_quotes
        || field
            .iter()
            .any(|&b| b == delimiter || b == b'"' || b == b'\n' || b == b'\r')
        || field.first().is_some_and(|b| *b == b' ')
        || field.last().is_some_and(|b| *b == b' ');
    if !needs {
        out.extend_from_slice(field);
        return;
    }
    out.push(b'"');
    for &b in field {
        if b == b'"' {
            out.push(b'"');
        }
        out.push(b);
    }
    out.push(b'"');
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parse(input: &[u8]) -> Vec<Record> {
        let mut p = CsvParser::new(b',', 1 << 20);
        let mut out = Vec::new();
        p.push(input, &mut out).unwrap();
        p.finish(&mut out);
        out
    }

    fn parse_bytewise(input: &[u8]) -> Vec<Record> {
        let mut p = CsvParser::new(b',', 1 << 20);
        let mut out = Vec::new();
        for b in input {
            p.push(std::slice::from_ref(b), &mut out).unwrap();
        }
        p.finish(&mut out);
        out
    }

    fn texts(r: &Record) -> Vec<(String, bool)> {
        r.fields
            .iter()
            .map(|f| (String::from_utf8_lossy(&f.bytes).into_owned(), f.quoted))
            .collect()
    }

    #[test]
    fn quoted_fields_escapes_and_line_breaks() {
        let input = b"a,b,c\r\n1,\"x,\"\"y\"\"\",\"two\nlines\"\r\n,\"\",z\n";
        let recs = parse(input);
        assert_eq!(recs, parse_bytewise(input));
        assert_eq!(recs.len(), 3);
        assert_eq!(
            texts(&recs[1]),
            vec![
                ("1".into(), false),
                ("x,\"y\"".into(), true),
                ("two\nlines".into(), true)
            ]
        );
        assert_eq!(recs[1].line, 2);
        assert_eq!(recs[2].line, 4);
        assert_eq!(
            texts(&recs[2]),
            vec![("".into(), false), ("".into(), true), ("z".into(), false)]
        );
    }

    #[test]
    fn blank_lines_are_skipped_and_lines_counted() {
        let recs = parse(b"a\n\n\nb\r\rc");
        assert_eq!(
            recs.iter().map(|r| r.line).collect::<Vec<_>>(),
            vec![1, 4, 6]
        );
    }

    #[test]
    fn unterminated_quote_is_a_malformed_last_record() {
        let recs = parse(b"a,b\n1,\"open\n2,3\n");
        assert_eq!(recs.len(), 2);
        let err = recs[1].error.as_deref().unwrap();
        assert!(err.contains("unterminated quoted field"), "{err}");
        assert_eq!(recs[1].line, 2);
    }

    #[test]
    fn text_after_closing_quote_is_malformed() {
        let recs = parse(b"\"ab\"c,d\n");
        assert_eq!(recs[0].error.as_deref(), Some("text after a closing quote"));
    }

    #[test]
    fn other_delimiters_and_record_limit() {
        let mut p = CsvParser::new(b';', 1 << 20);
        let mut out = Vec::new();
        p.push(b"a;\"b;c\"\n", &mut out).unwrap();
        assert_eq!(out[0].fields.len(), 2);
        let mut p = CsvParser::new(b',', 8);
        let err = p.push(b"123456789\n", &mut out).unwrap_err();
        assert!(matches!(err, Error::LimitExceeded(_)));
    }

    #[test]
    fn written_fields_parse_back() {
        let cases: [&[u8]; 6] = [
            b"plain",
            b"",
            b"a,b",
            b"q\"uote",
            b"line\r\nbreak",
            b" pad ",
        ];
        let mut line = Vec::new();
        for (i, c) in cases.iter().enumerate() {
            if i > 0 {
                line.push(b',');
            }
            write_field(&mut line, c, b',', c.is_empty());
        }
        line.extend_from_slice(b"\r\n");
        let recs = parse(&line);
        assert_eq!(recs.len(), 1);
        let got: Vec<&[u8]> = recs[0].fields.iter().map(|f| f.bytes.as_slice()).collect();
        assert_eq!(got, cases.to_vec());
        assert!(recs[0].fields[1].quoted, "the empty string is quoted");
    }
}
