//! Column summaries of a query's result (`Query` with `summarize`): per column the count, the
//! NULLs, the distinct values, the minimum and maximum and the most frequent values, computed
//! by the gateway in one pass over the rows as the engine streams them, in bounded memory.
//!
//! Distinct values and their counts are exact up to a bound per column ([`exact_bound`]); past
//! it the distinct count is a HyperLogLog++ estimate ([`cardinality_estimator`], fed from the
//! first row on) and the top values are the most frequent of the values seen before the bound
//! was reached, flagged as such. Engines do not agree on one ordering across types (SQLite
//! keeps several in one column), so minimum and maximum follow SQLite's: numbers < text <
//! bytes, and within each the natural order (text by bytes, not by the column's collation).

use std::{
    cmp::Ordering,
    collections::HashMap,
    hash::{DefaultHasher, Hash, Hasher},
};

use cardinality_estimator::CardinalityEstimator;

use super::value::{Column, Row, Value};

/// Distinct values counted exactly, over all columns of a result.
const EXACT_TOTAL: usize = 200_000;
/// Distinct values counted exactly in one column, at most.
const EXACT_PER_COLUMN: usize = 10_000;
/// Most frequent values reported per column.
pub const TOP_VALUES: usize = 5;
/// Text and bytes of a reported value are cut to this many bytes (whole characters), so that
/// the exact counting stays within its memory bound.
pub const MAX_VALUE_BYTES: usize = 256;

/// The exact-counting bound per column of a result with `columns` columns: 10,000, less when
/// many columns share the 200,000 entries, never under 100.
pub fn exact_bound(columns: usize) -> usize {
    (EXACT_TOTAL / columns.max(1)).clamp(100, EXACT_PER_COLUMN)
}

/// One column's summary.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnSummary {
    /// The column's name.
    pub name: String,
    /// Values that are not NULL.
    pub count: u64,
    /// NULLs.
    pub nulls: u64,
    /// Distinct non-NULL values.
    pub distinct: u64,
    /// Whether `distinct` is exact (false: an estimate, past the exact bound).
    pub distinct_exact: bool,
    /// The smallest non-NULL value (none for JSON and arrays, which have no order).
    pub min: Option<Value>,
    /// The largest.
    pub max: Option<Value>,
    /// The most frequent values with their counts, most frequent first.
    pub top_values: Vec<(Value, u64)>,
    /// Whether `top_values` are exact (false: counted among the values seen before the
    /// exact bound was reached).
    pub top_values_exact: bool,
}

/// Summaries under way, one row at a time.
pub struct Summarizer {
    columns: Vec<ColumnState>,
}

struct ColumnState {
    name: String,
    count: u64,
    nulls: u64,
    min: Option<Value>,
    max: Option<Value>,
    counts: HashMap<u64, (u64, Value)>,
    bound: usize,
    overflowed: bool,
    estimator: CardinalityEstimator<u64>,
}

impl Summarizer {
    /// Summaries of a result with `columns`.
    pub fn new(columns: &[Column]) -> Self {
        let bound = exact_bound(columns.len());
        Self {
            columns: columns
                .iter()
                .map(|c| ColumnState {
                    name: c.name.clone(),
                    count: 0,
                    nulls: 0,
                    min: None,
                    max: None,
                    counts: HashMap::new(),
                    bound,
                    overflowed: false,
                    estimator: CardinalityEstimator::new(),
                })
                .collect(),
        }
    }

    /// Takes one row in.
    pub fn add(&mut self, row: &Row) {
        for (state, value) in self.columns.iter_mut().zip(row) {
            state.add(value);
        }
    }

    /// The summaries, in column order.
    pub fn finish(self) -> Vec<ColumnSummary> {
        self.columns.into_iter().map(ColumnState::finish).collect()
    }
}

impl ColumnState {
    fn add(&mut self, v: &Value) {
        if matches!(v, Value::Null) {
            self.nulls += 1;
            return;
        }
        self.count += 1;
        if orderable(v) {
            if self
                .min
                .as_ref()
                .is_none_or(|m| order(v, m) == Ordering::Less)
            {
                self.min = Some(v.clone());
            }
            if self
                .max
                .as_ref()
                .is_none_or(|m| order(v, m) == Ordering::Greater)
            {
                self.max = Some(v.clone());
            }
        }
        let h = fingerprint(v);
        self.estimator.insert_hash(h);
        if let Some((n, _)) = self.counts.get_mut(&h) {
            *n += 1;
        } else if self.counts.len() < self.bound {
            self.counts.insert(h, (1, shortened(v)));
        } else {
            self.overflowed = true;
        }
    }

    fn finish(self) -> ColumnSummary {
        let distinct = if self.overflowed {
            (self.estimator.estimate() as u64).max(self.counts.len() as u64 + 1)
        } else {
            self.counts.len() as u64
        };
        let mut top: Vec<(Value, u64)> = self.counts.into_values().map(|(n, v)| (v, n)).collect();
        top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| order(&a.0, &b.0)));
        top.truncate(TOP_VALUES);
        ColumnSummary {
            name: self.name,
            count: self.count,
            nulls: self.nulls,
            distinct,
            distinct_exact: !self.overflowed,
            min: self.min.map(|v| shortened(&v)),
            max: self.max.map(|v| shortened(&v)),
            top_values: top,
            top_values_exact: !self.overflowed,
        }
    }
}

/// A 64-bit fingerprint of a value: its kind and its contents (floats by their bits, -0 as 0).
fn fingerprint(v: &Value) -> u64 {
    let mut h = DefaultHasher::new();
    std::mem::discriminant(v).hash(&mut h);
    match v {
        Value::Null => {}
        Value::Int(i) => i.hash(&mut h),
        Value::Float(f) => (f + 0.0).to_bits().hash(&mut h),
        Value::Text(s) | Value::Decimal(s) | Value::Json(s) | Value::Uuid(s) => s.hash(&mut h),
        Value::Bytes(b) => b.hash(&mut h),
        Value::Bool(b) => b.hash(&mut h),
        Value::Timestamp(t) => t.unix_timestamp_nanos().hash(&mut h),
        Value::Date(d) => d.to_julian_day().hash(&mut h),
        Value::Time(t) => t.as_hms_nano().hash(&mut h),
        Value::Array(items) => {
            for item in items {
                fingerprint(item).hash(&mut h);
            }
        }
    }
    h.finish()
}

/// The value as reported: text and bytes cut to [`MAX_VALUE_BYTES`].
fn shortened(v: &Value) -> Value {
    match v {
        Value::Text(s) if s.len() > MAX_VALUE_BYTES => {
            let mut end = MAX_VALUE_BYTES;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            Value::Text(s[..end].to_owned())
        }
        Value::Bytes(b) if b.len() > MAX_VALUE_BYTES => Value::Bytes(b[..MAX_VALUE_BYTES].to_vec()),
        other => other.clone(),
    }
}

fn orderable(v: &Value) -> bool {
    !matches!(v, Value::Null | Value::Json(_) | Value::Array(_))
}

/// SQLite's order across kinds: numbers, then text-like values, then bytes; the others by kind.
fn rank(v: &Value) -> u8 {
    match v {
        Value::Null => 0,
        Value::Bool(_) | Value::Int(_) | Value::Float(_) | Value::Decimal(_) => 1,
        Value::Text(_) | Value::Uuid(_) => 2,
        Value::Bytes(_) => 3,
        Value::Date(_) => 4,
        Value::Timestamp(_) => 5,
        Value::Time(_) => 6,
        Value::Json(_) | Value::Array(_) => 7,
    }
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        Value::Int(i) => Some(*i as f64),
        Value::Float(f) => Some(*f),
        Value::Decimal(d) => d.parse().ok(),
        _ => None,
    }
}

/// The order min and max follow.
fn order(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => x.cmp(y),
        (Value::Text(x), Value::Text(y)) | (Value::Uuid(x), Value::Uuid(y)) => x.cmp(y),
        (Value::Bytes(x), Value::Bytes(y)) => x.cmp(y),
        (Value::Timestamp(x), Value::Timestamp(y)) => x.cmp(y),
        (Value::Date(x), Value::Date(y)) => x.cmp(y),
        (Value::Time(x), Value::Time(y)) => x.cmp(y),
        _ => match (number(a), number(b)) {
            (Some(x), Some(y)) => x.total_cmp(&y),
            _ => rank(a).cmp(&rank(b)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::value::ValueKind;

    fn col(name: &str) -> Column {
        Column {
            name: name.into(),
            declared_type: String::new(),
            kind: ValueKind::Text,
        }
    }

    #[test]
    fn counts_nulls_distinct_min_max_and_top_values() {
        let mut s = Summarizer::new(&[col("n"), col("t")]);
        for (n, t) in [(3, "b"), (1, "a"), (3, "b"), (2, "c")] {
            s.add(&vec![Value::Int(n), Value::Text(t.into())]);
        }
        s.add(&vec![Value::Null, Value::Text("b".into())]);
        let [n, t] = <[ColumnSummary; 2]>::try_from(s.finish()).expect("two columns");
        assert_eq!(
            (n.count, n.nulls, n.distinct, n.distinct_exact),
            (4, 1, 3, true)
        );
        assert_eq!((n.min, n.max), (Some(Value::Int(1)), Some(Value::Int(3))));
        assert_eq!(n.top_values[0], (Value::Int(3), 2));
        assert_eq!(t.top_values[0], (Value::Text("b".into()), 3));
        assert_eq!(t.max, Some(Value::Text("c".into())));
    }

    #[test]
    fn past_the_bound_distinct_is_estimated_and_memory_stays_bounded() {
        let mut s = Summarizer::new(&[col("n")]);
        for i in 0..50_000 {
            s.add(&vec![Value::Int(i % 40_000)]);
        }
        let [n] = <[ColumnSummary; 1]>::try_from(s.finish()).expect("one column");
        assert!(!n.distinct_exact && !n.top_values_exact);
        let error = (n.distinct as f64 - 40_000.0).abs() / 40_000.0;
        assert!(error < 0.05, "estimate {} for 40000", n.distinct);
        assert_eq!(
            (n.min, n.max),
            (Some(Value::Int(0)), Some(Value::Int(39_999)))
        );
        assert_eq!(exact_bound(1), 10_000);
        assert_eq!(exact_bound(100), 2_000);
        assert_eq!(exact_bound(10_000), 100);
    }

    #[test]
    fn mixed_kinds_order_as_sqlite_does() {
        let mut s = Summarizer::new(&[col("x")]);
        for v in [
            Value::Text("z".into()),
            Value::Float(2.5),
            Value::Bytes(vec![0]),
            Value::Int(3),
        ] {
            s.add(&vec![v]);
        }
        let [x] = <[ColumnSummary; 1]>::try_from(s.finish()).expect("one column");
        assert_eq!(
            (x.min, x.max),
            (Some(Value::Float(2.5)), Some(Value::Bytes(vec![0])))
        );
    }
}
