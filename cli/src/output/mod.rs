//! Output: formats, colours, and the sinks that results stream into.
//!
//! A command turns its result into calls on a [`Sink`] (columns once, then rows as they arrive,
//! then the end), and the sink writes one of the formats of `--output`. Results that are a
//! single fact ("created database x") go through [`record`], which prints a sentence for people
//! and an object (or a CSV row) for programs.

mod machine;
pub mod render;
mod table;

use std::{io, time::Duration};

use anstyle::{AnsiColor, Style};
use dbforge::{Column, Truncation, Value};

pub use crate::cli::Format;

/// Colours, or none. Every styled piece of output goes through one of these methods, so
/// `--color never` and NO_COLOR cannot be bypassed.
#[derive(Debug, Clone, Copy)]
pub struct Paint {
    on: bool,
}

impl Paint {
    /// Colours on or off.
    pub const fn new(on: bool) -> Self {
        Paint { on }
    }

    /// `text` in `style`, or plain.
    pub fn paint(self, style: Style, text: &str) -> String {
        if self.on {
            format!("{style}{text}{style:#}")
        } else {
            text.to_owned()
        }
    }

    /// Column headers.
    pub fn header(self, t: &str) -> String {
        self.paint(Style::new().bold(), t)
    }
    /// NULL cells.
    pub fn null(self, t: &str) -> String {
        self.paint(Style::new().dimmed().italic(), t)
    }
    /// Numbers.
    pub fn number(self, t: &str) -> String {
        self.paint(AnsiColor::Cyan.on_default(), t)
    }
    /// Booleans.
    pub fn boolean(self, t: &str) -> String {
        self.paint(AnsiColor::Yellow.on_default(), t)
    }
    /// Bytes.
    pub fn bytes(self, t: &str) -> String {
        self.paint(AnsiColor::Magenta.on_default(), t)
    }
    /// Status words of success ("created", "deleted").
    pub fn ok(self, t: &str) -> String {
        self.paint(AnsiColor::Green.on_default().bold(), t)
    }
    /// Warnings.
    pub fn warn(self, t: &str) -> String {
        self.paint(AnsiColor::Yellow.on_default().bold(), t)
    }
    /// The word "error".
    pub fn error(self, t: &str) -> String {
        self.paint(AnsiColor::Red.on_default().bold(), t)
    }
    /// Secondary text: footers, hints, prompts' decorations.
    pub fn dim(self, t: &str) -> String {
        self.paint(Style::new().dimmed(), t)
    }
    /// Names the user gave (databases, tables).
    pub fn name(self, t: &str) -> String {
        self.paint(Style::new().bold(), t)
    }

    /// A cell's text in the colour of its class.
    pub fn cell(self, class: render::Class, t: &str) -> String {
        match class {
            render::Class::Null => self.null(t),
            render::Class::Number => self.number(t),
            render::Class::Bool => self.boolean(t),
            render::Class::Bytes => self.bytes(t),
            render::Class::Text => t.to_owned(),
        }
    }
}

/// How results are written.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The format.
    pub format: Format,
    /// Table and chart width; `None`: unlimited (tables) or 80 (charts).
    pub width: Option<usize>,
    /// Wrap wide cells instead of cutting them.
    pub wrap: bool,
    /// NULL's text in tables.
    pub null: String,
    /// Colours of stdout.
    pub paint: Paint,
    /// Show the elapsed time in table footers.
    pub timer: bool,
}

/// How a result ended.
#[derive(Debug, Clone, PartialEq)]
pub struct End {
    /// Rows received.
    pub rows: u64,
    /// Rows changed by a writing statement.
    pub affected: u64,
    /// Wall-clock time from sending the statement to the last row.
    pub elapsed: Duration,
    /// Whether a limit cut the result.
    pub truncation: Truncation,
}

/// Where a result streams to. Calls come in order: `header` once, `row` any number of times
/// (`idle` in between when nothing arrived for a while), then `end`.
pub trait Sink {
    /// The result's columns (empty for statements that return no rows).
    fn header(&mut self, columns: &[Column]) -> io::Result<()>;
    /// One row.
    fn row(&mut self, values: &[Value]) -> io::Result<()>;
    /// Nothing arrived for a moment: show what is buffered, so slow results still stream.
    fn idle(&mut self) -> io::Result<()>;
    /// The result is complete.
    fn end(&mut self, end: &End) -> io::Result<()>;
}

/// A sink writing `settings.format` to `out`.
pub fn sink<'a>(settings: &'a Settings, out: &'a mut dyn io::Write) -> Box<dyn Sink + 'a> {
    match settings.format {
        Format::Table => Box::new(table::TableSink::new(settings, out)),
        Format::Json => Box::new(machine::JsonSink::new(out, false)),
        Format::Ndjson => Box::new(machine::JsonSink::new(out, true)),
        Format::Csv => Box::new(machine::CsvSink::new(out)),
    }
}

/// The results of several statements written one after the other as one output: in JSON one
/// array with an entry per statement (its array of rows, or its `{"rows_affected":N}`), so the
/// whole output parses as one document; tables separated by a blank line; NDJSON and CSV as
/// they come. A single result is written as it is alone.
pub struct Results<'a> {
    settings: &'a Settings,
    out: &'a mut dyn io::Write,
    /// Whether there are several results (known up front: a JSON array opens before the first).
    many: bool,
    written: usize,
}

impl<'a> Results<'a> {
    /// Results to `out`; `many` when more than one will follow.
    pub fn new(settings: &'a Settings, out: &'a mut dyn io::Write, many: bool) -> Self {
        Results {
            settings,
            out,
            many,
            written: 0,
        }
    }

    /// The sink of the next result.
    pub fn next(&mut self) -> io::Result<Box<dyn Sink + '_>> {
        let first = self.written == 0;
        self.written += 1;
        match self.settings.format {
            Format::Json if self.many => {
                self.out.write_all(if first { b"[\n" } else { b",\n" })?;
                Ok(Box::new(machine::JsonSink::nested(self.out)))
            }
            Format::Table if !first => {
                writeln!(self.out)?;
                Ok(sink(self.settings, self.out))
            }
            _ => Ok(sink(self.settings, self.out)),
        }
    }

    /// Closes the document after the last result.
    pub fn finish(self) -> io::Result<()> {
        if self.settings.format == Format::Json && self.many {
            let close: &[u8] = if self.written == 0 { b"[]\n" } else { b"\n]\n" };
            self.out.write_all(close)?;
        }
        self.out.flush()
    }
}

/// Writes a one-record result: `human` (already painted) in table format, otherwise the fields
/// as a JSON object, an NDJSON line, or a CSV header and row.
pub fn record(
    settings: &Settings,
    out: &mut dyn io::Write,
    human: &str,
    fields: &[(&str, Value)],
) -> io::Result<()> {
    match settings.format {
        Format::Table => writeln!(out, "{human}")?,
        Format::Json | Format::Ndjson => {
            let obj: serde_json::Map<String, serde_json::Value> = fields
                .iter()
                .map(|(k, v)| ((*k).to_owned(), render::json(v)))
                .collect();
            writeln!(out, "{}", serde_json::Value::Object(obj))?;
        }
        Format::Csv => {
            let mut line = String::new();
            for (i, (k, _)) in fields.iter().enumerate() {
                if i > 0 {
                    line.push(',');
                }
                render::csv_name(k, &mut line);
            }
            line.push_str("\r\n");
            for (i, (_, v)) in fields.iter().enumerate() {
                if i > 0 {
                    line.push(',');
                }
                render::csv_field(v, &mut line);
            }
            line.push_str("\r\n");
            out.write_all(line.as_bytes())?;
        }
    }
    out.flush()
}

/// Fields as aligned `name  value` lines: how a one-record answer with many fields (`db show`,
/// `whoami`) reads in table format.
pub fn key_values(settings: &Settings, fields: &[(&str, Value)]) -> String {
    let p = settings.paint;
    let key_w = fields.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    fields
        .iter()
        .map(|(k, v)| {
            let (text, class) = render::text(v, &settings.null);
            let pad = " ".repeat(key_w - k.len());
            format!("{}{pad}  {}", p.dim(k), p.cell(class, &text))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// "1 row", "2 rows".
pub fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// A duration for people: 0.4 ms, 12.3 ms, 1.52 s, 2m 3s.
pub fn elapsed(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 1000.0 {
        format!("{ms:.1} ms")
    } else if d.as_secs() < 60 {
        format!("{:.2} s", d.as_secs_f64())
    } else {
        format!("{}m {}s", d.as_secs() / 60, d.as_secs() % 60)
    }
}

/// The table footer: row count, elapsed time (with the timer on), and whether a limit cut it.
pub fn footer(settings: &Settings, end: &End, has_columns: bool) -> String {
    let mut s = if has_columns {
        plural(end.rows, "row", "rows")
    } else {
        format!("{} affected", plural(end.affected, "row", "rows"))
    };
    if settings.timer {
        s.push_str(&format!(" ({})", elapsed(end.elapsed)));
    }
    match end.truncation {
        Truncation::RowLimit => s.push_str(", cut at the row limit"),
        Truncation::ByteLimit => s.push_str(", cut at the gateway's byte limit"),
        Truncation::Unspecified => {}
    }
    settings.paint.dim(&s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_well() {
        assert_eq!(elapsed(Duration::from_micros(420)), "0.4 ms");
        assert_eq!(elapsed(Duration::from_millis(1520)), "1.52 s");
        assert_eq!(elapsed(Duration::from_secs(123)), "2m 3s");
    }

    #[test]
    fn paint_off_is_plain() {
        assert_eq!(Paint::new(false).error("error"), "error");
        assert_eq!(Paint::new(true).ok("ok"), "\u{1b}[1m\u{1b}[32mok\u{1b}[0m");
    }
}
