//! Terminal charts of (label, value) data: horizontal and vertical bars in eighth blocks, a
//! line in braille dots, and a "pie" that is a labelled breakdown with shares.
//!
//! A real pie cannot be drawn honestly in a terminal (cells are not square and angles cannot be
//! compared by eye), so `--pie` lists every slice with its value and share of the total, and
//! draws one bar split in proportion, each slice in its own pattern (and colour, when on).
//! Bars start at zero so their lengths compare; the line chart states its axis range.

use std::fmt::Write as _;

use crate::output::{Paint, render};
use anstyle::AnsiColor;
use unicode_width::UnicodeWidthStr;

/// One bar, point or slice.
#[derive(Debug, Clone, PartialEq)]
pub struct Datum {
    /// The label, as shown.
    pub label: String,
    /// The value.
    pub value: f64,
    /// The value as the result showed it (so 0.10 stays 0.10).
    pub text: String,
}

/// Builds the data from a two-column result: (label, value).
pub fn data(rows: &[Vec<dbforge::Value>]) -> Result<Vec<Datum>, String> {
    use dbforge::Value;
    rows.iter()
        .enumerate()
        .map(|(i, row)| {
            let (Some(label), Some(value)) = (row.first(), row.get(1)) else {
                return Err("the query must return two columns: a label and a value".into());
            };
            let label = render::escape_controls(&render::text(label, "NULL").0).into_owned();
            let n = match value {
                Value::Int(i) => *i as f64,
                Value::Float(f) => *f,
                Value::Decimal(s) | Value::Text(s) => s.trim().parse::<f64>().map_err(|_| {
                    format!(
                        "row {}: the value {s:?} of {label:?} is not a number",
                        i + 1
                    )
                })?,
                Value::Bool(b) => f64::from(u8::from(*b)),
                Value::Null => {
                    return Err(format!("row {}: the value of {label:?} is NULL", i + 1));
                }
                other => {
                    return Err(format!(
                        "row {}: the value of {label:?} is a {}, not a number",
                        i + 1,
                        other.kind_name()
                    ));
                }
            };
            if !n.is_finite() {
                return Err(format!(
                    "row {}: the value of {label:?} is not finite",
                    i + 1
                ));
            }
            let text = match value {
                Value::Text(s) => s.trim().to_owned(),
                v => render::text(v, "").0,
            };
            Ok(Datum {
                label,
                value: n,
                text,
            })
        })
        .collect()
}

fn no_negatives(data: &[Datum], what: &str) -> Result<(), String> {
    match data.iter().find(|d| d.value < 0.0) {
        Some(d) => Err(format!(
            "{what} need values of at least 0, but {:?} is {}; use --line for signed values",
            d.label, d.text
        )),
        None => Ok(()),
    }
}

/// `s` cut to `w` columns with '…', then padded to `w`.
fn fit(s: &str, w: usize) -> String {
    let mut out = String::new();
    let mut used = 0;
    if s.width() <= w {
        out.push_str(s);
        used = s.width();
    } else {
        for c in s.chars() {
            let cw = unicode_width::UnicodeWidthChar::width(c).unwrap_or(0);
            if used + cw + 1 > w {
                break;
            }
            out.push(c);
            used += cw;
        }
        out.push('…');
        used += 1;
    }
    out.push_str(&" ".repeat(w.saturating_sub(used)));
    out
}

fn right(s: &str, w: usize) -> String {
    format!("{}{s}", " ".repeat(w.saturating_sub(s.width())))
}

/// A number for an axis: integers plainly, others with two decimals at most.
fn axis(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.2}");
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

const HORIZONTAL_EIGHTHS: [char; 8] = [' ', '▏', '▎', '▍', '▌', '▋', '▊', '▉'];
const VERTICAL_EIGHTHS: [char; 8] = [' ', '▁', '▂', '▃', '▄', '▅', '▆', '▇'];

/// A bar of `eighths`/8 cells.
fn hbar_cells(eighths: usize) -> String {
    let mut s = "█".repeat(eighths / 8);
    if !eighths.is_multiple_of(8) {
        s.push(HORIZONTAL_EIGHTHS[eighths % 8]);
    }
    s
}

fn eighths(value: f64, max: f64, cells: usize) -> usize {
    if max <= 0.0 {
        return 0;
    }
    // Rounding to the nearest eighth of a cell: the drawn length is within 1/16 cell of exact.
    (value / max * (cells * 8) as f64).round() as usize
}

/// Horizontal bars: `label │████▌   value`, one line per row, all starting at zero.
pub fn hbar(data: &[Datum], width: usize, paint: Paint) -> Result<String, String> {
    no_negatives(data, "bar charts")?;
    let label_w = data
        .iter()
        .map(|d| d.label.width())
        .max()
        .unwrap_or(0)
        .clamp(1, (width / 3).max(4));
    let value_w = data.iter().map(|d| d.text.width()).max().unwrap_or(1);
    let bar_w = width.saturating_sub(label_w + value_w + 3).max(4);
    let max = data.iter().map(|d| d.value).fold(0.0, f64::max);
    let mut out = String::new();
    for d in data {
        let bar = hbar_cells(eighths(d.value, max, bar_w));
        let pad = bar_w.saturating_sub(bar.chars().count());
        let _ = writeln!(
            out,
            "{} │{}{} {}",
            fit(&d.label, label_w),
            paint.paint(AnsiColor::Cyan.on_default(), &bar),
            " ".repeat(pad),
            paint.number(&right(&d.text, value_w)),
        );
    }
    Ok(out)
}

/// Vertical bars on a zero-based axis, labels (and values, when they fit) underneath.
pub fn bar(data: &[Datum], width: usize, height: usize, paint: Paint) -> Result<String, String> {
    no_negatives(data, "bar charts")?;
    let max = data.iter().map(|d| d.value).fold(0.0, f64::max);
    let top = axis(max);
    let axis_w = top.width().max(1);
    let n = data.len().max(1);
    let available = width.saturating_sub(axis_w + 2);
    let wanted = data
        .iter()
        .map(|d| d.label.width().max(d.text.width()))
        .max()
        .unwrap_or(1)
        .clamp(1, 10);
    let bar_w = wanted.min((available / n).saturating_sub(1));
    if bar_w == 0 {
        return Err(format!(
            "{} bars do not fit in {width} columns; use --hbar, or fewer rows",
            data.len()
        ));
    }
    let mut out = String::new();
    for r in 0..height {
        let level = height - 1 - r;
        let label = match r {
            0 => right(&top, axis_w),
            _ if r == height - 1 => right("0", axis_w),
            _ => " ".repeat(axis_w),
        };
        let tick = if r == 0 || r == height - 1 {
            '┤'
        } else {
            '│'
        };
        let mut line = format!("{label} {tick}");
        for d in data {
            let e = eighths(d.value, max, height);
            let c = if e >= (level + 1) * 8 {
                '█'
            } else if e > level * 8 {
                VERTICAL_EIGHTHS[e - level * 8]
            } else {
                ' '
            };
            line.push(' ');
            let cells: String = std::iter::repeat_n(c, bar_w).collect();
            line.push_str(&paint.paint(AnsiColor::Cyan.on_default(), &cells));
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    let _ = writeln!(
        out,
        "{} └{}",
        " ".repeat(axis_w),
        "─".repeat(n * (bar_w + 1))
    );
    let row = |f: &dyn Fn(&Datum) -> String| {
        let mut line = " ".repeat(axis_w + 2);
        for d in data {
            line.push(' ');
            line.push_str(&fit(&f(d), bar_w));
        }
        line.trim_end().to_owned()
    };
    let _ = writeln!(out, "{}", row(&|d| d.label.clone()));
    if data.iter().all(|d| d.text.width() <= bar_w) {
        let _ = writeln!(out, "{}", paint.number(&row(&|d| d.text.clone())));
    }
    Ok(out)
}

/// A line through the values in row order, drawn with braille dots (2×4 per cell), with the
/// axis range written at the top and bottom and the first and last labels underneath.
pub fn line(data: &[Datum], width: usize, height: usize, paint: Paint) -> Result<String, String> {
    if data.is_empty() {
        return Ok(String::new());
    }
    let mut lo = data.iter().map(|d| d.value).fold(f64::INFINITY, f64::min);
    let mut hi = data
        .iter()
        .map(|d| d.value)
        .fold(f64::NEG_INFINITY, f64::max);
    if lo == hi {
        lo -= 1.0;
        hi += 1.0;
    }
    let (top, bottom) = (axis(hi), axis(lo));
    let axis_w = top.width().max(bottom.width());
    let cols = width.saturating_sub(axis_w + 2).max(2);
    let (px_w, px_h) = (cols * 2, height * 4);
    let mut dots = vec![vec![0u8; cols]; height];
    let point = |i: usize, v: f64| -> (i64, i64) {
        let x = if data.len() == 1 {
            px_w / 2
        } else {
            (i as f64 / (data.len() - 1) as f64 * (px_w - 1) as f64).round() as usize
        };
        let y = ((hi - v) / (hi - lo) * (px_h - 1) as f64).round() as usize;
        (x as i64, y as i64)
    };
    let mut set = |x: i64, y: i64| {
        let (Ok(x), Ok(y)) = (usize::try_from(x), usize::try_from(y)) else {
            return;
        };
        // Braille dot numbering: columns of 1-2-3-7 and 4-5-6-8.
        const BITS: [[u8; 4]; 2] = [[0x01, 0x02, 0x04, 0x40], [0x08, 0x10, 0x20, 0x80]];
        if let Some(cell) = dots.get_mut(y / 4).and_then(|r| r.get_mut(x / 2)) {
            *cell |= BITS[x % 2][y % 4];
        }
    };
    let points: Vec<(i64, i64)> = data
        .iter()
        .enumerate()
        .map(|(i, d)| point(i, d.value))
        .collect();
    if let [only] = points.as_slice() {
        set(only.0, only.1);
    }
    for pair in points.windows(2) {
        // Bresenham's line between consecutive points.
        let ((mut x0, mut y0), (x1, y1)) = (pair[0], pair[1]);
        let (dx, dy) = ((x1 - x0).abs(), -(y1 - y0).abs());
        let (sx, sy) = (if x0 < x1 { 1 } else { -1 }, if y0 < y1 { 1 } else { -1 });
        let mut err = dx + dy;
        loop {
            set(x0, y0);
            if x0 == x1 && y0 == y1 {
                break;
            }
            let e2 = 2 * err;
            if e2 >= dy {
                err += dy;
                x0 += sx;
            }
            if e2 <= dx {
                err += dx;
                y0 += sy;
            }
        }
    }
    let mut out = String::new();
    for (r, row) in dots.iter().enumerate() {
        let label = match r {
            0 => right(&top, axis_w),
            _ if r == height - 1 => right(&bottom, axis_w),
            _ => " ".repeat(axis_w),
        };
        let tick = if r == 0 || r == height - 1 {
            '┤'
        } else {
            '│'
        };
        // Empty cells are spaces rather than blank braille, so the text copies cleanly.
        let cells: String = row
            .iter()
            .map(|&b| match b {
                0 => ' ',
                b => char::from_u32(0x2800 + u32::from(b)).unwrap_or(' '),
            })
            .collect();
        let _ = writeln!(
            out,
            "{label} {tick}{}",
            paint.paint(AnsiColor::Cyan.on_default(), cells.trim_end())
        );
    }
    let _ = writeln!(out, "{} └{}", " ".repeat(axis_w), "─".repeat(cols));
    let first = &data[0].label;
    let mut labels = format!("{}  {first}", " ".repeat(axis_w));
    if let Some(last) = data.last().filter(|_| data.len() > 1) {
        let room = (axis_w + 2 + cols).saturating_sub(labels.width() + last.label.width());
        labels.push_str(&" ".repeat(room.max(1)));
        labels.push_str(&last.label);
    }
    let _ = writeln!(out, "{labels}");
    Ok(out)
}

/// Fill patterns of the slices, distinct without colour.
const PATTERNS: [char; 8] = ['█', '▓', '▒', '░', '▚', '▞', '▗', '▘'];
const COLORS: [AnsiColor; 8] = [
    AnsiColor::Cyan,
    AnsiColor::Magenta,
    AnsiColor::Yellow,
    AnsiColor::Green,
    AnsiColor::Blue,
    AnsiColor::Red,
    AnsiColor::BrightCyan,
    AnsiColor::BrightMagenta,
];

/// Shares of the total: one bar split in proportion, then every slice with its value and share.
/// More than eight slices: the seven largest stay, the rest become "other (N)".
pub fn pie(data: &[Datum], width: usize, paint: Paint) -> Result<String, String> {
    no_negatives(data, "pie charts")?;
    let total: f64 = data.iter().map(|d| d.value).sum();
    if total <= 0.0 {
        return Err("the values add up to 0: there are no shares to show".into());
    }
    let decimals = data
        .iter()
        .map(|d| d.text.split_once('.').map_or(0, |(_, f)| f.len()))
        .max()
        .unwrap_or(0)
        .min(6);
    let number = |v: f64| format!("{v:.decimals$}");
    let mut slices: Vec<Datum> = data.to_vec();
    if slices.len() > PATTERNS.len() {
        let mut order: Vec<usize> = (0..slices.len()).collect();
        order.sort_by(|&a, &b| slices[b].value.total_cmp(&slices[a].value));
        let keep: Vec<usize> = {
            let mut k = order[..PATTERNS.len() - 1].to_vec();
            k.sort_unstable();
            k
        };
        let rest: f64 = order[PATTERNS.len() - 1..]
            .iter()
            .map(|&i| slices[i].value)
            .sum();
        let others = slices.len() - keep.len();
        slices = keep.iter().map(|&i| slices[i].clone()).collect();
        slices.push(Datum {
            label: format!("other ({others})"),
            value: rest,
            text: number(rest),
        });
    }
    // Largest-remainder rounding, so the segments fill the bar exactly.
    let bar_w = width.max(10);
    let exact: Vec<f64> = slices
        .iter()
        .map(|s| s.value / total * bar_w as f64)
        .collect();
    let mut cells: Vec<usize> = exact.iter().map(|e| e.floor() as usize).collect();
    let mut order: Vec<usize> = (0..slices.len()).collect();
    order.sort_by(|&a, &b| (exact[b] - exact[b].floor()).total_cmp(&(exact[a] - exact[a].floor())));
    let mut left = bar_w.saturating_sub(cells.iter().sum());
    for i in order {
        if left == 0 {
            break;
        }
        cells[i] += 1;
        left -= 1;
    }
    let mut out = String::new();
    for (i, n) in cells.iter().enumerate() {
        let seg: String = std::iter::repeat_n(PATTERNS[i], *n).collect();
        out.push_str(&paint.paint(COLORS[i].on_default(), &seg));
    }
    out.push('\n');
    let label_w = slices
        .iter()
        .map(|s| s.label.width())
        .chain(["total".width()])
        .max()
        .unwrap_or(5)
        .min((width / 2).max(5));
    let total_text = number(total);
    let value_w = slices
        .iter()
        .map(|s| s.text.width())
        .chain([total_text.width()])
        .max()
        .unwrap_or(1);
    for (i, s) in slices.iter().enumerate() {
        let key: String = std::iter::repeat_n(PATTERNS[i], 2).collect();
        let _ = writeln!(
            out,
            "{} {}  {}  {}",
            paint.paint(COLORS[i].on_default(), &key),
            fit(&s.label, label_w),
            paint.number(&right(&s.text, value_w)),
            right(&format!("{:.1}%", s.value / total * 100.0), 6),
        );
    }
    let _ = writeln!(
        out,
        "   {}  {}  {}",
        fit("total", label_w),
        paint.number(&right(&total_text, value_w)),
        right("100.0%", 6)
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(label: &str, value: f64) -> Datum {
        Datum {
            label: label.into(),
            value,
            text: axis(value),
        }
    }

    const OFF: Paint = Paint::new(false);

    #[test]
    fn hbar_lengths_are_proportional() {
        let out = hbar(&[d("a", 4.0), d("bb", 2.0), d("c", 1.0)], 20, OFF).expect("chart");
        assert_eq!(
            out,
            "a  │██████████████ 4\n\
             bb │███████        2\n\
             c  │███▌           1\n"
        );
    }

    #[test]
    fn bars_refuse_negative_values() {
        let err = hbar(&[d("a", -1.0)], 40, OFF).expect_err("negative");
        assert!(err.contains("--line"), "{err}");
    }

    #[test]
    fn vertical_bars() {
        let out = bar(&[d("a", 4.0), d("b", 2.0)], 40, 4, OFF).expect("chart");
        assert_eq!(
            out,
            "4 ┤ █\n\
             \x20 │ █\n\
             \x20 │ █ █\n\
             0 ┤ █ █\n\
             \x20 └────\n\
             \x20   a b\n\
             \x20   4 2\n"
        );
    }

    #[test]
    fn pie_shares_add_up() {
        let out = pie(&[d("x", 3.0), d("y", 1.0)], 12, OFF).expect("chart");
        assert_eq!(
            out,
            "█████████▓▓▓\n\
             ██ x      3   75.0%\n\
             ▓▓ y      1   25.0%\n\
             \x20  total  4  100.0%\n"
        );
    }

    #[test]
    fn pie_groups_small_slices() {
        let data: Vec<Datum> = (1..=10)
            .map(|i| d(&format!("s{i}"), f64::from(i)))
            .collect();
        let out = pie(&data, 40, OFF).expect("chart");
        assert!(out.contains("other (3)"), "{out}");
        assert!(!out.contains("s1 "), "{out}");
        assert!(out.contains("100.0%"));
    }

    #[test]
    fn line_goes_from_corner_to_corner() {
        let out = line(&[d("start", 0.0), d("end", 1.0)], 8, 2, OFF).expect("chart");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 4, "{out}");
        assert!(lines[0].starts_with("1 ┤"), "{out}");
        assert!(lines[1].starts_with("0 ┤"), "{out}");
        // A rising line: its lowest dot at the bottom left, its highest at the top right.
        let dots = |c: Option<char>| c.map_or(0, |c| u32::from(c) - 0x2800);
        let row1: Vec<char> = lines[1].chars().skip(3).collect();
        let row0: Vec<char> = lines[0].chars().skip(3).collect();
        assert_ne!(
            dots(row1.first().copied()) & 0x40,
            0,
            "dot 7 (bottom left): {out}"
        );
        assert_ne!(
            dots(row0.last().copied()) & 0x08,
            0,
            "dot 4 (top right): {out}"
        );
        assert!(
            lines[3].contains("start") && lines[3].ends_with("end"),
            "{out}"
        );
    }

    #[test]
    fn values_must_be_numbers() {
        use dbforge::Value;
        let rows = vec![vec![Value::from("a"), Value::from("x")]];
        assert!(data(&rows).is_err_and(|e| e.contains("not a number")));
        let rows = vec![vec![Value::from("a"), Value::Null]];
        assert!(data(&rows).is_err_and(|e| e.contains("NULL")));
        let rows = vec![vec![Value::from("a")]];
        assert!(data(&rows).is_err_and(|e| e.contains("two columns")));
        let rows = vec![vec![Value::from("a"), Value::Decimal("0.10".into())]];
        assert_eq!(data(&rows).expect("decimal")[0].text, "0.10");
    }
}
