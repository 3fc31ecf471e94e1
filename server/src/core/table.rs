//! TableService in domain terms: table specs, filters and the SQL built from them.
//!
//! Every identifier goes through the backend's [`SqlDialect::quote_ident`] and every value is a
//! bound parameter, so no name or value a client sends can change the statement's shape.

use super::{
    error::{Error, Result},
    names::Identifier,
    value::{Statement, Value},
};

/// Column types of CreateTable, mapped to type names by each dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// 64-bit integer.
    Integer,
    /// 64-bit float.
    Float,
    /// Text.
    Text,
    /// Bytes.
    Bytes,
    /// Boolean.
    Bool,
    /// Exact decimal.
    Decimal,
    /// JSON.
    Json,
    /// Instant.
    Timestamp,
    /// Date.
    Date,
}

/// How a backend spells SQL.
pub trait SqlDialect: Send + Sync + std::fmt::Debug {
    /// Quotes an identifier so that any text is taken as a name.
    fn quote_ident(&self, name: &str) -> String;
    /// The placeholder for the `index`-th parameter (1-based).
    fn placeholder(&self, index: usize) -> String;
    /// The type name of a column type.
    fn column_type(&self, ty: ColumnType) -> &'static str;
    /// The type name of a primary-key or unique column, for engines that cannot index their
    /// widest types (MySQL: no key on LONGTEXT).
    fn key_column_type(&self, ty: ColumnType) -> &'static str {
        self.column_type(ty)
    }
    /// What follows `INSERT INTO t` for a row of defaults only.
    fn default_row(&self) -> &'static str {
        " DEFAULT VALUES"
    }
    /// A statement returning a row when a table or view named `table` exists.
    fn table_exists(&self, table: &str) -> Statement;
    /// The LIMIT/OFFSET clause (with a leading space) and its parameters.
    fn limit_offset(&self, limit: Option<u64>, offset: Option<u64>) -> (String, Vec<Value>);
    /// A constant as an SQL literal, for DEFAULT clauses (DDL takes no parameters).
    fn literal(&self, value: &Value) -> Result<String>;
}

/// A column of CreateTable.
#[derive(Debug, Clone)]
pub struct ColumnSpec {
    /// Name.
    pub name: Identifier,
    /// Type.
    pub ty: ColumnType,
    /// Part of the primary key.
    pub primary_key: bool,
    /// NOT NULL.
    pub not_null: bool,
    /// UNIQUE.
    pub unique: bool,
    /// DEFAULT.
    pub default: Option<Value>,
}

/// A CreateTable request.
#[derive(Debug, Clone)]
pub struct TableSpec {
    /// Table name.
    pub table: Identifier,
    /// Columns in order.
    pub columns: Vec<ColumnSpec>,
    /// Succeed when it exists.
    pub if_not_exists: bool,
}

/// Filter operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterOp {
    /// `=`
    Eq,
    /// `<>`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `LIKE`
    Like,
}

/// One condition.
#[derive(Debug, Clone)]
pub enum Filter {
    /// `column <op> value`.
    Compare(Identifier, FilterOp, Value),
    /// `column IN (values)`.
    In(Identifier, Vec<Value>),
    /// `column IS NULL`.
    IsNull(Identifier),
    /// `column IS NOT NULL`.
    IsNotNull(Identifier),
}

/// A sort key.
#[derive(Debug, Clone)]
pub struct Order {
    /// Column.
    pub column: Identifier,
    /// Descending.
    pub descending: bool,
}

/// A SelectRows request.
#[derive(Debug, Clone)]
pub struct Select {
    /// Table.
    pub table: Identifier,
    /// Columns; empty means all.
    pub columns: Vec<Identifier>,
    /// Conditions (AND).
    pub filters: Vec<Filter>,
    /// Sort keys.
    pub order_by: Vec<Order>,
    /// Row limit.
    pub limit: Option<u64>,
    /// Rows to skip.
    pub offset: Option<u64>,
}

/// Which rows an UpdateRows or DeleteRows touches: filtered, or explicitly all.
#[derive(Debug, Clone)]
pub enum RowScope {
    /// Rows matching every filter (at least one).
    Matching(Vec<Filter>),
    /// Every row.
    All,
}

impl RowScope {
    /// Validates the filters/`all` pair of a request.
    pub fn new(filters: Vec<Filter>, all: bool) -> Result<Self> {
        match (filters.is_empty(), all) {
            (true, false) => Err(Error::invalid(
                "filters",
                "at least one filter is required; set `all` to touch every row",
            )),
            (false, true) => Err(Error::invalid(
                "all",
                "`all` cannot be combined with filters",
            )),
            (true, true) => Ok(Self::All),
            (false, false) => Ok(Self::Matching(filters)),
        }
    }
}

/// Builds statements for one dialect.
pub struct SqlBuilder<'d> {
    dialect: &'d dyn SqlDialect,
    sql: String,
    params: Vec<Value>,
}

impl<'d> SqlBuilder<'d> {
    fn new(dialect: &'d dyn SqlDialect) -> Self {
        Self {
            dialect,
            sql: String::with_capacity(128),
            params: Vec::new(),
        }
    }

    fn ident(&mut self, id: &Identifier) {
        self.sql.push_str(&self.dialect.quote_ident(id.as_str()));
    }

    fn bind(&mut self, value: Value) {
        self.params.push(value);
        let p = self.dialect.placeholder(self.params.len());
        self.sql.push_str(&p);
    }

    fn finish(self) -> Statement {
        Statement {
            sql: self.sql,
            params: self.params,
        }
    }

    fn where_clause(&mut self, filters: &[Filter]) {
        for (i, f) in filters.iter().enumerate() {
            self.sql.push_str(if i == 0 { " WHERE " } else { " AND " });
            match f {
                Filter::Compare(col, op, v) => {
                    self.ident(col);
                    self.sql.push_str(match op {
                        FilterOp::Eq => " = ",
                        FilterOp::Ne => " <> ",
                        FilterOp::Lt => " < ",
                        FilterOp::Le => " <= ",
                        FilterOp::Gt => " > ",
                        FilterOp::Ge => " >= ",
                        FilterOp::Like => " LIKE ",
                    });
                    self.bind(v.clone());
                }
                Filter::In(_, values) if values.is_empty() => self.sql.push_str("1 = 0"),
                Filter::In(col, values) => {
                    self.ident(col);
                    self.sql.push_str(" IN (");
                    for (j, v) in values.iter().enumerate() {
                        if j > 0 {
                            self.sql.push_str(", ");
                        }
                        self.bind(v.clone());
                    }
                    self.sql.push(')');
                }
                Filter::IsNull(col) => {
                    self.ident(col);
                    self.sql.push_str(" IS NULL");
                }
                Filter::IsNotNull(col) => {
                    self.ident(col);
                    self.sql.push_str(" IS NOT NULL");
                }
            }
        }
    }
}

/// `CREATE TABLE` for a spec.
pub fn create_table(d: &dyn SqlDialect, spec: &TableSpec) -> Result<Statement> {
    if spec.columns.is_empty() {
        return Err(Error::invalid(
            "columns",
            "a table needs at least one column",
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for c in &spec.columns {
        if !seen.insert(c.name.as_str()) {
            return Err(Error::invalid(
                "columns",
                format!("column {:?} is defined twice", c.name.as_str()),
            ));
        }
    }
    let mut b = SqlBuilder::new(d);
    b.sql.push_str("CREATE TABLE ");
    b.ident(&spec.table);
    b.sql.push_str(" (");
    for (i, c) in spec.columns.iter().enumerate() {
        if i > 0 {
            b.sql.push_str(", ");
        }
        b.ident(&c.name);
        b.sql.push(' ');
        b.sql.push_str(if c.primary_key || c.unique {
            d.key_column_type(c.ty)
        } else {
            d.column_type(c.ty)
        });
        if c.not_null {
            b.sql.push_str(" NOT NULL");
        }
        if c.unique {
            b.sql.push_str(" UNIQUE");
        }
        if let Some(v) = &c.default {
            b.sql.push_str(" DEFAULT ");
            b.sql.push_str(&d.literal(v)?);
        }
    }
    let keys: Vec<&ColumnSpec> = spec.columns.iter().filter(|c| c.primary_key).collect();
    if !keys.is_empty() {
        b.sql.push_str(", PRIMARY KEY (");
        for (i, c) in keys.iter().enumerate() {
            if i > 0 {
                b.sql.push_str(", ");
            }
            b.ident(&c.name);
        }
        b.sql.push(')');
    }
    b.sql.push(')');
    Ok(b.finish())
}

/// `INSERT` of one record; columns in the record's order.
pub fn insert_row(
    d: &dyn SqlDialect,
    table: &Identifier,
    row: Vec<(Identifier, Value)>,
) -> Statement {
    let mut b = SqlBuilder::new(d);
    b.sql.push_str("INSERT INTO ");
    b.ident(table);
    if row.is_empty() {
        b.sql.push_str(d.default_row());
        return b.finish();
    }
    b.sql.push_str(" (");
    for (i, (col, _)) in row.iter().enumerate() {
        if i > 0 {
            b.sql.push_str(", ");
        }
        b.ident(col);
    }
    b.sql.push_str(") VALUES (");
    for (i, (_, v)) in row.into_iter().enumerate() {
        if i > 0 {
            b.sql.push_str(", ");
        }
        b.bind(v);
    }
    b.sql.push(')');
    b.finish()
}

/// `SELECT` for a request.
pub fn select(d: &dyn SqlDialect, s: &Select) -> Statement {
    let mut b = SqlBuilder::new(d);
    b.sql.push_str("SELECT ");
    if s.columns.is_empty() {
        b.sql.push('*');
    }
    for (i, c) in s.columns.iter().enumerate() {
        if i > 0 {
            b.sql.push_str(", ");
        }
        b.ident(c);
    }
    b.sql.push_str(" FROM ");
    b.ident(&s.table);
    b.where_clause(&s.filters);
    for (i, o) in s.order_by.iter().enumerate() {
        b.sql.push_str(if i == 0 { " ORDER BY " } else { ", " });
        b.ident(&o.column);
        b.sql.push_str(if o.descending { " DESC" } else { " ASC" });
    }
    let (clause, params) = d.limit_offset(s.limit, s.offset);
    if !clause.is_empty() {
        // The dialect numbers its own placeholders after ours.
        b.sql.push_str(&clause);
        b.params.extend(params);
    }
    b.finish()
}

/// `UPDATE` for a request.
pub fn update(
    d: &dyn SqlDialect,
    table: &Identifier,
    set: Vec<(Identifier, Value)>,
    scope: &RowScope,
) -> Result<Statement> {
    if set.is_empty() {
        return Err(Error::invalid(
            "set",
            "at least one column to set is required",
        ));
    }
    let mut b = SqlBuilder::new(d);
    b.sql.push_str("UPDATE ");
    b.ident(table);
    b.sql.push_str(" SET ");
    for (i, (col, v)) in set.into_iter().enumerate() {
        if i > 0 {
            b.sql.push_str(", ");
        }
        b.ident(&col);
        b.sql.push_str(" = ");
        b.bind(v);
    }
    if let RowScope::Matching(filters) = scope {
        b.where_clause(filters);
    }
    Ok(b.finish())
}

/// `DELETE` for a request.
pub fn delete(d: &dyn SqlDialect, table: &Identifier, scope: &RowScope) -> Statement {
    let mut b = SqlBuilder::new(d);
    b.sql.push_str("DELETE FROM ");
    b.ident(table);
    if let RowScope::Matching(filters) = scope {
        b.where_clause(filters);
    }
    b.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::sqlite::SqliteDialect;

    fn id(s: &str) -> Identifier {
        Identifier::parse("column", s).expect("valid identifier")
    }

    #[test]
    fn hostile_names_are_quoted_and_values_bound() {
        let s = Select {
            table: id("t\"; DROP TABLE x; --"),
            columns: vec![id("a\"b")],
            filters: vec![
                Filter::Compare(id("n"), FilterOp::Eq, Value::Text("'; DROP".into())),
                Filter::In(id("k"), vec![Value::Int(1), Value::Int(2)]),
                Filter::IsNull(id("z")),
            ],
            order_by: vec![Order {
                column: id("n"),
                descending: true,
            }],
            limit: Some(5),
            offset: None,
        };
        let stmt = select(&SqliteDialect, &s);
        assert_eq!(
            stmt.sql,
            "SELECT \"a\"\"b\" FROM \"t\"\"; DROP TABLE x; --\" WHERE \"n\" = ? AND \"k\" IN (?, ?) \
             AND \"z\" IS NULL ORDER BY \"n\" DESC LIMIT ? OFFSET ?"
        );
        assert_eq!(stmt.params.len(), 5);
    }

    #[test]
    fn empty_in_matches_nothing() {
        let stmt = delete(
            &SqliteDialect,
            &id("t"),
            &RowScope::Matching(vec![Filter::In(id("k"), vec![])]),
        );
        assert_eq!(stmt.sql, "DELETE FROM \"t\" WHERE 1 = 0");
    }

    #[test]
    fn scope_requires_filters_or_all() {
        assert!(RowScope::new(vec![], false).is_err());
        assert!(RowScope::new(vec![Filter::IsNull(id("a"))], true).is_err());
        assert!(matches!(RowScope::new(vec![], true), Ok(RowScope::All)));
    }

    #[test]
    fn create_table_renders_constraints_and_literal_defaults() {
        let spec = TableSpec {
            table: id("people"),
            columns: vec![
                ColumnSpec {
                    name: id("id"),
                    ty: ColumnType::Integer,
                    primary_key: true,
                    not_null: false,
                    unique: false,
                    default: None,
                },
                ColumnSpec {
                    name: id("name"),
                    ty: ColumnType::Text,
                    primary_key: false,
                    not_null: true,
                    unique: true,
                    default: Some(Value::Text("o'brien".into())),
                },
            ],
            if_not_exists: false,
        };
        let stmt = create_table(&SqliteDialect, &spec).expect("valid spec");
        assert_eq!(
            stmt.sql,
            "CREATE TABLE \"people\" (\"id\" INTEGER, \"name\" TEXT NOT NULL UNIQUE DEFAULT \
             'o''brien', PRIMARY KEY (\"id\"))"
        );
    }
}
