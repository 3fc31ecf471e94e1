//! The streaming table: aligned columns in a box, numbers right-aligned, NULL distinct, wide
//! cells cut with '…' (or wrapped with `--wrap`) to fit the width, then a footer with the row
//! count and time.
//!
//! A table needs its column widths before its first line, but results stream. So rows are
//! buffered until a page of them has arrived (or the stream pauses, or ends), the widths are
//! fitted to that page and the terminal, and every later row is printed at once with the same
//! widths, cut to fit.

use std::io::{self, Write};

use dbforge::{Column, Value};
use unicode_width::UnicodeWidthChar;

use super::{End, Settings, Sink, footer, render};

/// Rows buffered to decide the column widths.
const PAGE: usize = 500;
/// The narrowest a column is squeezed to when the width is short.
const MIN_WIDTH: usize = 3;
/// Cell text kept for display: past this a cell is cut before layout, so a 4 MiB value costs
/// nothing to lay out.
const MAX_CELL_CHARS: usize = 4096;

/// A cell ready to lay out.
struct Cell {
    lines: Vec<String>,
    class: render::Class,
}

pub struct TableSink<'a> {
    settings: &'a Settings,
    out: &'a mut dyn Write,
    headers: Vec<String>,
    right: Vec<bool>,
    numeric_kind: Vec<bool>,
    pending: Vec<Vec<Cell>>,
    widths: Option<Vec<usize>>,
}

impl<'a> TableSink<'a> {
    pub fn new(settings: &'a Settings, out: &'a mut dyn Write) -> Self {
        TableSink {
            settings,
            out,
            headers: Vec::new(),
            right: Vec::new(),
            numeric_kind: Vec::new(),
            pending: Vec::new(),
            widths: None,
        }
    }

    fn cell(&self, v: &Value) -> Cell {
        let (mut text, class) = render::text(v, &self.settings.null);
        if text.chars().count() > MAX_CELL_CHARS {
            text = text.chars().take(MAX_CELL_CHARS).collect();
            text.push('…');
        }
        let lines = if self.settings.wrap {
            text.split('\n')
                .map(|l| render::escape_controls(l).into_owned())
                .collect()
        } else {
            vec![render::escape_controls(&text).into_owned()]
        };
        Cell { lines, class }
    }

    /// Fixes the widths from the buffered page and prints the header and the page.
    fn lay_out(&mut self) -> io::Result<()> {
        if self.widths.is_some() || self.headers.is_empty() {
            return Ok(());
        }
        // A column whose kind is unknown (an expression) is right-aligned when every value of
        // the first page is a number.
        for (i, numeric) in self.numeric_kind.iter().enumerate() {
            let mut classes = self
                .pending
                .iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.class)
                .filter(|c| *c != render::Class::Null)
                .peekable();
            let all_numbers =
                classes.peek().is_some() && classes.all(|c| c == render::Class::Number);
            self.right[i] = *numeric || all_numbers;
        }
        let natural: Vec<usize> = (0..self.headers.len())
            .map(|i| {
                let cells = self
                    .pending
                    .iter()
                    .filter_map(|r| r.get(i))
                    .flat_map(|c| c.lines.iter())
                    .map(|l| width(l));
                cells
                    .chain([width(&self.headers[i])])
                    .max()
                    .unwrap_or(1)
                    .max(1)
            })
            .collect();
        let widths = fit(&natural, self.settings.width);
        let mut text = String::new();
        text.push_str(&border(&widths, '┌', '┬', '┐'));
        let header_cells: Vec<Vec<String>> = self.headers.iter().map(|h| vec![h.clone()]).collect();
        text.push_str(&self.line(&widths, &header_cells, None));
        text.push_str(&border(&widths, '├', '┼', '┤'));
        let pending = std::mem::take(&mut self.pending);
        for row in &pending {
            text.push_str(&self.row_text(&widths, row));
        }
        self.out.write_all(text.as_bytes())?;
        self.out.flush()?;
        self.widths = Some(widths);
        Ok(())
    }

    fn row_text(&self, widths: &[usize], row: &[Cell]) -> String {
        let lines: Vec<Vec<String>> = row.iter().map(|c| c.lines.clone()).collect();
        let classes: Vec<render::Class> = row.iter().map(|c| c.class).collect();
        self.line(widths, &lines, Some(&classes))
    }

    /// One table row (several screen lines when cells wrap). `classes` is `None` for the header.
    fn line(
        &self,
        widths: &[usize],
        cells: &[Vec<String>],
        classes: Option<&[render::Class]>,
    ) -> String {
        let paint = self.settings.paint;
        // Each cell as the screen lines it takes at its width.
        let pieces: Vec<Vec<String>> = cells
            .iter()
            .zip(widths)
            .map(|(lines, &w)| {
                if self.settings.wrap {
                    lines.iter().flat_map(|l| wrap(l, w)).collect()
                } else {
                    lines.iter().map(|l| cut(l, w)).collect()
                }
            })
            .collect();
        let height = pieces.iter().map(Vec::len).max().unwrap_or(1).max(1);
        let mut out = String::new();
        for k in 0..height {
            out.push('│');
            for (i, (piece, &w)) in pieces.iter().zip(widths).enumerate() {
                let text = piece.get(k).map(String::as_str).unwrap_or_default();
                let pad = w.saturating_sub(width(text));
                let styled = match classes {
                    None => paint.header(text),
                    Some(cs) => paint.cell(cs[i], text),
                };
                out.push(' ');
                if self.right[i] {
                    out.push_str(&" ".repeat(pad));
                    out.push_str(&styled);
                } else {
                    out.push_str(&styled);
                    out.push_str(&" ".repeat(pad));
                }
                out.push_str(" │");
            }
            out.push('\n');
        }
        out
    }
}

impl Sink for TableSink<'_> {
    fn header(&mut self, columns: &[Column]) -> io::Result<()> {
        self.headers = columns
            .iter()
            .map(|c| render::escape_controls(&c.name).into_owned())
            .collect();
        self.numeric_kind = columns
            .iter()
            .map(|c| render::numeric_kind(c.kind))
            .collect();
        self.right = self.numeric_kind.clone();
        Ok(())
    }

    fn row(&mut self, values: &[Value]) -> io::Result<()> {
        let cells: Vec<Cell> = values.iter().map(|v| self.cell(v)).collect();
        match &self.widths {
            Some(widths) => {
                let text = self.row_text(widths, &cells);
                self.out.write_all(text.as_bytes())
            }
            None => {
                self.pending.push(cells);
                if self.pending.len() >= PAGE {
                    self.lay_out()?;
                }
                Ok(())
            }
        }
    }

    fn idle(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            self.out.flush()
        } else {
            self.lay_out()
        }
    }

    fn end(&mut self, end: &End) -> io::Result<()> {
        let has_columns = !self.headers.is_empty();
        if has_columns {
            self.lay_out()?;
            if let Some(widths) = &self.widths {
                let bottom = border(widths, '└', '┴', '┘');
                self.out.write_all(bottom.as_bytes())?;
            }
        }
        writeln!(self.out, "{}", footer(self.settings, end, has_columns))?;
        self.out.flush()
    }
}

/// Display width of text (East Asian wide characters count two).
pub fn width(s: &str) -> usize {
    s.chars().map(|c| c.width().unwrap_or(0)).sum()
}

/// Column widths that fit `total` (borders included): columns narrower than a fair share keep
/// their width, the wider ones share what is left. Below [`MIN_WIDTH`] per column the table
/// overflows rather than show nothing.
fn fit(natural: &[usize], total: Option<usize>) -> Vec<usize> {
    let Some(total) = total else {
        return natural.to_vec();
    };
    let n = natural.len();
    let available = total.saturating_sub(3 * n + 1);
    if natural.iter().sum::<usize>() <= available {
        return natural.to_vec();
    }
    // The largest cap c with sum(min(natural, c)) <= available.
    let max = natural.iter().copied().max().unwrap_or(1);
    let used = |c: usize| natural.iter().map(|&w| w.min(c)).sum::<usize>();
    let (mut lo, mut hi) = (0, max);
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        if used(mid) <= available {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    let cap = lo.max(MIN_WIDTH);
    let mut widths: Vec<usize> = natural.iter().map(|&w| w.min(cap)).collect();
    // Hand out what the cap left over, one column at a time, left to right.
    let mut left = available.saturating_sub(widths.iter().sum());
    for (w, &nat) in widths.iter_mut().zip(natural) {
        if left == 0 {
            break;
        }
        if *w < nat {
            *w += 1;
            left -= 1;
        }
    }
    widths
}

/// `s` cut to `w` columns, ending in '…' when something was cut.
fn cut(s: &str, w: usize) -> String {
    if width(s) <= w {
        return s.to_owned();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in s.chars() {
        let cw = c.width().unwrap_or(0);
        if used + cw + 1 > w {
            break;
        }
        out.push(c);
        used += cw;
    }
    out.push('…');
    out
}

/// `s` in pieces of at most `w` columns.
fn wrap(s: &str, w: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    let mut used = 0;
    for c in s.chars() {
        let cw = c.width().unwrap_or(0);
        if used + cw > w && !line.is_empty() {
            lines.push(std::mem::take(&mut line));
            used = 0;
        }
        line.push(c);
        used += cw;
    }
    lines.push(line);
    lines
}

fn border(widths: &[usize], left: char, mid: char, right: char) -> String {
    let mut s = String::new();
    s.push(left);
    for (i, w) in widths.iter().enumerate() {
        if i > 0 {
            s.push(mid);
        }
        s.push_str(&"─".repeat(w + 2));
    }
    s.push(right);
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_fit_the_terminal() {
        // Fits: unchanged.
        assert_eq!(fit(&[2, 5, 3], Some(80)), vec![2, 5, 3]);
        assert_eq!(fit(&[2, 50, 30], None), vec![2, 50, 30]);
        // 3 columns take 10 columns of borders; 30 left: narrow columns keep their width.
        assert_eq!(fit(&[2, 50, 30], Some(40)), vec![2, 14, 14]);
        // Too narrow for anything: every column gets the minimum.
        assert_eq!(fit(&[20, 20], Some(5)), vec![3, 3]);
    }

    #[test]
    fn cutting_and_wrapping() {
        assert_eq!(cut("hello", 5), "hello");
        assert_eq!(cut("hello world", 6), "hello…");
        assert_eq!(cut("日本語テキスト", 5), "日本…");
        assert_eq!(wrap("abcdefg", 3), vec!["abc", "def", "g"]);
        assert_eq!(wrap("", 3), vec![""]);
        assert_eq!(width("日本"), 4);
    }
}
