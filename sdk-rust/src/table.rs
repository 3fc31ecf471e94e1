//! Structured-table helpers: column definitions, records, filters and selects.

use std::collections::BTreeMap;

use crate::{Value, pb};

pub use pb::ColumnType;

/// A column of [`Client::create_table`](crate::Client::create_table).
///
/// ```
/// use dbforge::{ColumnDef, ColumnType};
/// let id = ColumnDef::new("id", ColumnType::Integer).primary_key();
/// let name = ColumnDef::new("name", ColumnType::Text).not_null().unique();
/// let score = ColumnDef::new("score", ColumnType::Float).default_value(0.0);
/// # let _ = (id, name, score);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnDef {
    name: String,
    ty: ColumnType,
    primary_key: bool,
    not_null: bool,
    unique: bool,
    default: Option<Value>,
}

impl ColumnDef {
    /// A nullable column without constraints.
    pub fn new(name: impl Into<String>, ty: ColumnType) -> Self {
        ColumnDef {
            name: name.into(),
            ty,
            primary_key: false,
            not_null: false,
            unique: false,
            default: None,
        }
    }

    /// Makes it (part of) the primary key.
    pub fn primary_key(mut self) -> Self {
        self.primary_key = true;
        self
    }

    /// Adds NOT NULL.
    pub fn not_null(mut self) -> Self {
        self.not_null = true;
        self
    }

    /// Adds UNIQUE.
    pub fn unique(mut self) -> Self {
        self.unique = true;
        self
    }

    /// Sets the DEFAULT.
    pub fn default_value(mut self, v: impl Into<Value>) -> Self {
        self.default = Some(v.into());
        self
    }
}

impl From<ColumnDef> for pb::ColumnDefinition {
    fn from(c: ColumnDef) -> Self {
        pb::ColumnDefinition {
            name: c.name,
            r#type: c.ty as i32,
            primary_key: c.primary_key,
            not_null: c.not_null,
            unique: c.unique,
            default_value: c.default.map(Into::into),
        }
    }
}

/// One row to insert: column name to value.
pub type Record = BTreeMap<String, Value>;

/// Builds a [`Record`] from pairs.
///
/// ```
/// use dbforge::{Value, record};
/// let r = record([("id", Value::from(1)), ("name", Value::from("Ada"))]);
/// assert_eq!(r["name"], Value::Text("Ada".into()));
/// ```
pub fn record<K: Into<String>>(pairs: impl IntoIterator<Item = (K, Value)>) -> Record {
    pairs.into_iter().map(|(k, v)| (k.into(), v)).collect()
}

pub(crate) fn record_pb(r: Record) -> std::collections::HashMap<String, pb::Value> {
    r.into_iter().map(|(k, v)| (k, v.into())).collect()
}

/// A condition on a column; the filters of a call are combined with AND.
///
/// ```
/// use dbforge::Filter;
/// let adults = Filter::ge("age", 18);
/// let named = Filter::like("name", "A%");
/// let either = Filter::is_in("team", ["red", "blue"]);
/// # let _ = (adults, named, either);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Filter(pb::Filter);

impl Filter {
    fn cmp(column: impl Into<String>, op: pb::FilterOperator, v: impl Into<Value>) -> Self {
        Filter(pb::Filter {
            column: column.into(),
            op: op as i32,
            value: Some(v.into().into()),
            values: Vec::new(),
        })
    }

    /// `column = value`
    pub fn eq(column: impl Into<String>, v: impl Into<Value>) -> Self {
        Self::cmp(column, pb::FilterOperator::Eq, v)
    }
    /// `column <> value`
    pub fn ne(column: impl Into<String>, v: impl Into<Value>) -> Self {
        Self::cmp(column, pb::FilterOperator::Ne, v)
    }
    /// `column < value`
    pub fn lt(column: impl Into<String>, v: impl Into<Value>) -> Self {
        Self::cmp(column, pb::FilterOperator::Lt, v)
    }
    /// `column <= value`
    pub fn le(column: impl Into<String>, v: impl Into<Value>) -> Self {
        Self::cmp(column, pb::FilterOperator::Le, v)
    }
    /// `column > value`
    pub fn gt(column: impl Into<String>, v: impl Into<Value>) -> Self {
        Self::cmp(column, pb::FilterOperator::Gt, v)
    }
    /// `column >= value`
    pub fn ge(column: impl Into<String>, v: impl Into<Value>) -> Self {
        Self::cmp(column, pb::FilterOperator::Ge, v)
    }
    /// `column LIKE pattern`
    pub fn like(column: impl Into<String>, pattern: impl Into<String>) -> Self {
        Self::cmp(
            column,
            pb::FilterOperator::Like,
            Value::Text(pattern.into()),
        )
    }
    /// `column IN (values)`
    pub fn is_in<V: Into<Value>>(
        column: impl Into<String>,
        values: impl IntoIterator<Item = V>,
    ) -> Self {
        Filter(pb::Filter {
            column: column.into(),
            op: pb::FilterOperator::In as i32,
            value: None,
            values: values.into_iter().map(|v| v.into().into()).collect(),
        })
    }
    /// `column IS NULL`
    pub fn is_null(column: impl Into<String>) -> Self {
        Filter(pb::Filter {
            column: column.into(),
            op: pb::FilterOperator::IsNull as i32,
            value: None,
            values: Vec::new(),
        })
    }
    /// `column IS NOT NULL`
    pub fn is_not_null(column: impl Into<String>) -> Self {
        Filter(pb::Filter {
            column: column.into(),
            op: pb::FilterOperator::IsNotNull as i32,
            value: None,
            values: Vec::new(),
        })
    }

    pub(crate) fn into_pb(self) -> pb::Filter {
        self.0
    }
}

/// A SelectRows request.
///
/// ```
/// use dbforge::{Filter, Select};
/// let s = Select::from("people")
///     .columns(["name", "age"])
///     .filter(Filter::ge("age", 18))
///     .order_by("age")
///     .limit(10);
/// # let _ = s;
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Select {
    pub(crate) req: pb::SelectRowsRequest,
}

impl Select {
    /// Every row and column of `table`.
    pub fn from(table: impl Into<String>) -> Self {
        Select {
            req: pb::SelectRowsRequest {
                table: table.into(),
                ..Default::default()
            },
        }
    }

    /// Only these columns, in this order.
    pub fn columns<S: Into<String>>(mut self, cols: impl IntoIterator<Item = S>) -> Self {
        self.req.columns = cols.into_iter().map(Into::into).collect();
        self
    }

    /// Adds a condition (AND).
    pub fn filter(mut self, f: Filter) -> Self {
        self.req.filters.push(f.into_pb());
        self
    }

    /// Sorts ascending by `column` (after earlier keys).
    pub fn order_by(mut self, column: impl Into<String>) -> Self {
        self.req.order_by.push(pb::OrderBy {
            column: column.into(),
            descending: false,
        });
        self
    }

    /// Sorts descending by `column` (after earlier keys).
    pub fn order_by_desc(mut self, column: impl Into<String>) -> Self {
        self.req.order_by.push(pb::OrderBy {
            column: column.into(),
            descending: true,
        });
        self
    }

    /// At most `n` rows.
    pub fn limit(mut self, n: u64) -> Self {
        self.req.limit = i64::try_from(n).unwrap_or(i64::MAX);
        self
    }

    /// Skips `n` rows.
    pub fn offset(mut self, n: u64) -> Self {
        self.req.offset = i64::try_from(n).unwrap_or(i64::MAX);
        self
    }
}
