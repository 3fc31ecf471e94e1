//! The W3C Direct Mapping of a relational database to RDF (<https://www.w3.org/TR/rdb-direct-mapping/>),
//! as N-Triples: what `SemanticService.MaterializeGraph` loads into a graph database so that an
//! agent traverses joins as graph paths.
//!
//! For a table `T` with primary key `(k1, k2)`, under a base IRI `B`:
//!
//! | relational | RDF |
//! |---|---|
//! | a row | subject `<B T/k1=v1;k2=v2>` (a blank node when `T` has no primary key), `rdf:type <B T>` |
//! | a non-NULL column `c` | `<B T#c>` with a typed literal (`xsd:integer`, `xsd:double`, `xsd:decimal`, `xsd:boolean`, `xsd:date`, `xsd:dateTime`, `xsd:time`, `xsd:hexBinary`, else a string) |
//! | a foreign key `(c1, c2)` → `U(d1, d2)` with no NULL | `<B T#ref-c1;c2>` → `<B U/d1=v1;d2=v2>` |
//!
//! Names and key values are percent-encoded (every byte outside RFC 3986's unreserved set), so
//! any table, column or value gives a valid IRI. A foreign key's object is the referenced row's
//! IRI built from the referencing values, which is the referenced row's own subject when the key
//! references that table's primary key (as foreign keys almost always do); one that references
//! another unique key still links, to an IRI of the values it names.

use std::fmt::Write as _;

use super::{
    error::{Error, Result},
    schema::TableSchema,
    value::{Value, text},
};

const XSD: &str = "http://www.w3.org/2001/XMLSchema#";
const RDF_TYPE: &str = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type";

/// A base IRI for the mapping: absolute (a scheme, then `:`), with nothing N-Triples forbids in
/// an IRI. Names are appended to it as they are, so it usually ends with `/` or `#`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseIri(String);

impl BaseIri {
    /// Checks `iri`; the `field` names it in the error.
    pub fn parse(field: &'static str, iri: &str) -> Result<Self> {
        let scheme_ok = iri.split_once(':').is_some_and(|(scheme, _)| {
            scheme
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic())
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        });
        if !scheme_ok {
            return Err(Error::invalid(
                field,
                format!("{iri:?} is not an absolute IRI (a scheme, then ':')"),
            ));
        }
        if let Some(c) = iri
            .chars()
            .find(|c| c.is_control() || c.is_whitespace() || "<>\"{}|^`\\".contains(*c))
        {
            return Err(Error::invalid(
                field,
                format!("{iri:?} holds {c:?}, which an IRI may not"),
            ));
        }
        Ok(Self(iri.to_owned()))
    }

    /// The default base of a database's mapping: `urn:dbforge:<name>/`.
    pub fn for_database(name: &str) -> Self {
        Self(format!("urn:dbforge:{}/", encode(name)))
    }

    /// The IRI as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Percent-encodes every byte outside RFC 3986's unreserved set.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The mapping of one table's rows, read as `SELECT` of [`TableMapping::columns`] in that order.
#[derive(Debug)]
pub struct TableMapping {
    /// `<B T>`, the class of the rows.
    class: String,
    /// `B T/`, the start of a row's IRI.
    row_prefix: String,
    /// `<B T#c>` per column.
    predicates: Vec<String>,
    /// Positions and encoded names of the primary-key columns.
    key: Vec<(usize, String)>,
    refs: Vec<Reference>,
    columns: Vec<String>,
}

#[derive(Debug)]
struct Reference {
    /// `<B T#ref-c1;c2>`.
    predicate: String,
    /// `B U/`.
    target_prefix: String,
    /// Positions of the referencing columns and the encoded names of the referenced ones.
    pairs: Vec<(usize, String)>,
}

impl TableMapping {
    /// The mapping of `table` under `base`. A foreign key naming a column the table lacks is an
    /// internal error (the engine's catalog said otherwise).
    pub fn new(base: &BaseIri, table: &TableSchema) -> Result<Self> {
        let t = format!("{}{}", base.as_str(), encode(&table.name));
        let columns: Vec<String> = table.columns.iter().map(|c| c.name.clone()).collect();
        let position = |name: &str| {
            columns.iter().position(|c| c == name).ok_or_else(|| {
                Error::internal(format!(
                    "table {:?} has no column {name:?} named by its keys",
                    table.name
                ))
            })
        };
        let key = table
            .primary_key
            .iter()
            .map(|k| Ok((position(k)?, encode(k))))
            .collect::<Result<Vec<_>>>()?;
        let refs = table
            .foreign_keys
            .iter()
            .filter(|fk| fk.columns.len() == fk.referenced_columns.len() && !fk.columns.is_empty())
            .map(|fk| {
                let names: Vec<String> = fk.columns.iter().map(|c| encode(c)).collect();
                Ok(Reference {
                    predicate: format!("<{t}#ref-{}>", names.join(";")),
                    target_prefix: format!("{}{}/", base.as_str(), encode(&fk.referenced_table)),
                    pairs: fk
                        .columns
                        .iter()
                        .zip(&fk.referenced_columns)
                        .map(|(c, r)| Ok((position(c)?, encode(r))))
                        .collect::<Result<Vec<_>>>()?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            class: format!("<{t}>"),
            row_prefix: format!("{t}/"),
            predicates: columns
                .iter()
                .map(|c| format!("<{t}#{}>", encode(c)))
                .collect(),
            key,
            refs,
            columns,
        })
    }

    /// The columns a row must hold, in order.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// Appends the triples of one row to `out` as N-Triples; `row_number` names the blank node
    /// of a row without a primary key, so it must be unique within the whole N-Triples document
    /// (every table's rows included). Returns the number of triples written.
    pub fn write_row(&self, row: &[Value], row_number: u64, out: &mut String) -> Result<u64> {
        if row.len() != self.columns.len() {
            return Err(Error::internal(format!(
                "a row of {} values for {} columns",
                row.len(),
                self.columns.len()
            )));
        }
        let subject = if self.key.is_empty() || self.key.iter().any(|(i, _)| row[*i] == Value::Null)
        {
            format!("_:r{row_number}")
        } else {
            iri_of(
                &self.row_prefix,
                self.key.iter().map(|(i, n)| (n.as_str(), &row[*i])),
            )?
        };
        let mut triples = 1;
        let _ = writeln!(out, "{subject} <{RDF_TYPE}> {} .", self.class);
        for (value, predicate) in row.iter().zip(&self.predicates) {
            if *value == Value::Null {
                continue;
            }
            let _ = write!(out, "{subject} {predicate} ");
            literal(value, out)?;
            out.push_str(" .\n");
            triples += 1;
        }
        for r in &self.refs {
            if r.pairs.iter().any(|(i, _)| row[*i] == Value::Null) {
                continue;
            }
            let object = iri_of(
                &r.target_prefix,
                r.pairs.iter().map(|(i, n)| (n.as_str(), &row[*i])),
            )?;
            let _ = writeln!(out, "{subject} {} {object} .", r.predicate);
            triples += 1;
        }
        Ok(triples)
    }
}

/// `<prefix k1=v1;k2=v2>`, values in their lexical form, encoded.
fn iri_of<'a>(prefix: &str, parts: impl Iterator<Item = (&'a str, &'a Value)>) -> Result<String> {
    let mut out = format!("<{prefix}");
    for (n, (name, value)) in parts.enumerate() {
        if n > 0 {
            out.push(';');
        }
        let _ = write!(out, "{name}={}", encode(&lexical(value)?.0));
    }
    out.push('>');
    Ok(out)
}

/// A value's lexical form and its XSD datatype (`None`: a plain string).
fn lexical(v: &Value) -> Result<(String, Option<&'static str>)> {
    Ok(match v {
        Value::Null => (String::new(), None),
        Value::Int(i) => (i.to_string(), Some("integer")),
        Value::Float(f) if f.is_nan() => ("NaN".into(), Some("double")),
        Value::Float(f) if f.is_infinite() => (
            (if *f > 0.0 { "INF" } else { "-INF" }).into(),
            Some("double"),
        ),
        Value::Float(f) => (format!("{f:?}"), Some("double")),
        Value::Decimal(d) => (d.clone(), Some("decimal")),
        Value::Bool(b) => (b.to_string(), Some("boolean")),
        Value::Text(s) | Value::Json(s) | Value::Uuid(s) => (s.clone(), None),
        Value::Bytes(b) => (text::hex(b).to_ascii_uppercase(), Some("hexBinary")),
        Value::Date(d) => (text::date(d), Some("date")),
        Value::Time(t) => (text::time(t), Some("time")),
        Value::Timestamp(t) => (
            text::timestamp(t).map_err(Error::internal)?,
            Some("dateTime"),
        ),
        Value::Array(_) => {
            let mut buf = Vec::new();
            super::transfer::json_value(&mut buf, v)?;
            (String::from_utf8_lossy(&buf).into_owned(), None)
        }
    })
}

/// Appends `v` as an N-Triples literal.
fn literal(v: &Value, out: &mut String) -> Result<()> {
    let (lexical, datatype) = lexical(v)?;
    out.push('"');
    for c in lexical.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out.push('"');
    if let Some(t) = datatype {
        let _ = write!(out, "^^<{XSD}{t}>");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::schema::{ColumnSchema, ForeignKeySchema, TableKind};
    use crate::core::value::ValueKind;

    fn column(name: &str) -> ColumnSchema {
        ColumnSchema {
            name: name.into(),
            declared_type: String::new(),
            kind: ValueKind::Unspecified,
            nullable: true,
            default: None,
            primary_key: false,
            auto_increment: false,
            comment: None,
        }
    }

    fn table(
        name: &str,
        columns: &[&str],
        key: &[&str],
        fks: Vec<ForeignKeySchema>,
    ) -> TableSchema {
        TableSchema {
            name: name.into(),
            kind: TableKind::Table,
            columns: columns.iter().map(|c| column(c)).collect(),
            primary_key: key.iter().map(|k| (*k).to_owned()).collect(),
            indexes: Vec::new(),
            foreign_keys: fks,
            uniques: Vec::new(),
            checks: Vec::new(),
            row_estimate: None,
            definition: String::new(),
        }
    }

    fn fk(columns: &[&str], table: &str, referenced: &[&str]) -> ForeignKeySchema {
        ForeignKeySchema {
            name: String::new(),
            columns: columns.iter().map(|c| (*c).to_owned()).collect(),
            referenced_table: table.into(),
            referenced_columns: referenced.iter().map(|c| (*c).to_owned()).collect(),
            on_update: "NO ACTION".into(),
            on_delete: "NO ACTION".into(),
        }
    }

    #[test]
    fn the_specifications_people_and_addresses_example_maps_as_it_says() {
        // The Direct Mapping's first example (section 2): People(ID, fname, addr → Addresses).
        let base = BaseIri::parse("base", "http://foo.example/DB/").expect("base");
        let people = table(
            "People",
            &["ID", "fname", "addr"],
            &["ID"],
            vec![fk(&["addr"], "Addresses", &["ID"])],
        );
        let addresses = table("Addresses", &["ID", "city", "state"], &["ID"], Vec::new());
        let (p, a) = (
            TableMapping::new(&base, &people).expect("people"),
            TableMapping::new(&base, &addresses).expect("addresses"),
        );
        let mut out = String::new();
        let rows = [
            p.write_row(
                &[Value::Int(7), Value::Text("Bob".into()), Value::Int(18)],
                0,
                &mut out,
            ),
            p.write_row(
                &[Value::Int(8), Value::Text("Sue".into()), Value::Null],
                1,
                &mut out,
            ),
            a.write_row(
                &[
                    Value::Int(18),
                    Value::Text("Cambridge".into()),
                    Value::Text("MA".into()),
                ],
                0,
                &mut out,
            ),
        ];
        assert_eq!(rows.map(|r| r.expect("row")), [5, 3, 4]);
        let int = "^^<http://www.w3.org/2001/XMLSchema#integer>";
        let ty = "<http://www.w3.org/1999/02/22-rdf-syntax-ns#type>";
        let want = format!(
            "<http://foo.example/DB/People/ID=7> {ty} <http://foo.example/DB/People> .\n\
             <http://foo.example/DB/People/ID=7> <http://foo.example/DB/People#ID> \"7\"{int} .\n\
             <http://foo.example/DB/People/ID=7> <http://foo.example/DB/People#fname> \"Bob\" .\n\
             <http://foo.example/DB/People/ID=7> <http://foo.example/DB/People#addr> \"18\"{int} .\n\
             <http://foo.example/DB/People/ID=7> <http://foo.example/DB/People#ref-addr> <http://foo.example/DB/Addresses/ID=18> .\n\
             <http://foo.example/DB/People/ID=8> {ty} <http://foo.example/DB/People> .\n\
             <http://foo.example/DB/People/ID=8> <http://foo.example/DB/People#ID> \"8\"{int} .\n\
             <http://foo.example/DB/People/ID=8> <http://foo.example/DB/People#fname> \"Sue\" .\n\
             <http://foo.example/DB/Addresses/ID=18> {ty} <http://foo.example/DB/Addresses> .\n\
             <http://foo.example/DB/Addresses/ID=18> <http://foo.example/DB/Addresses#ID> \"18\"{int} .\n\
             <http://foo.example/DB/Addresses/ID=18> <http://foo.example/DB/Addresses#city> \"Cambridge\" .\n\
             <http://foo.example/DB/Addresses/ID=18> <http://foo.example/DB/Addresses#state> \"MA\" .\n"
        );
        assert_eq!(out, want);
    }

    #[test]
    fn rows_without_a_key_are_blank_nodes_and_composite_keys_join_with_semicolons() {
        let base = BaseIri::for_database("shop");
        let lines = table(
            "order lines",
            &["order", "line", "note"],
            &["order", "line"],
            vec![fk(&["order"], "orders", &["id"])],
        );
        let log = table("log", &["msg"], &[], Vec::new());
        let mut out = String::new();
        TableMapping::new(&base, &lines)
            .expect("lines")
            .write_row(
                &[
                    Value::Int(1),
                    Value::Int(2),
                    Value::Text("a \"b\"\nc é/".into()),
                ],
                0,
                &mut out,
            )
            .expect("row");
        TableMapping::new(&base, &log)
            .expect("log")
            .write_row(&[Value::Text("x".into())], 41, &mut out)
            .expect("row");
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[0].starts_with("<urn:dbforge:shop/order%20lines/order=1;line=2> "));
        assert!(lines.contains(
            &"<urn:dbforge:shop/order%20lines/order=1;line=2> <urn:dbforge:shop/order%20lines#note> \"a \\\"b\\\"\\nc é/\" ."
        ));
        assert!(lines.contains(
            &"<urn:dbforge:shop/order%20lines/order=1;line=2> <urn:dbforge:shop/order%20lines#ref-order> <urn:dbforge:shop/orders/id=1> ."
        ));
        assert!(lines.contains(&"_:r41 <urn:dbforge:shop/log#msg> \"x\" ."));
    }

    #[test]
    fn typed_values_carry_their_xsd_datatypes() {
        let mut out = String::new();
        for v in [
            Value::Float(1.5),
            Value::Bool(true),
            Value::Decimal("12.50".into()),
            Value::Bytes(vec![0xde, 0xad]),
            Value::Float(f64::INFINITY),
        ] {
            literal(&v, &mut out).expect("literal");
            out.push('\n');
        }
        assert_eq!(
            out,
            "\"1.5\"^^<http://www.w3.org/2001/XMLSchema#double>\n\
             \"true\"^^<http://www.w3.org/2001/XMLSchema#boolean>\n\
             \"12.50\"^^<http://www.w3.org/2001/XMLSchema#decimal>\n\
             \"DEAD\"^^<http://www.w3.org/2001/XMLSchema#hexBinary>\n\
             \"INF\"^^<http://www.w3.org/2001/XMLSchema#double>\n"
        );
    }

    #[test]
    fn a_base_must_be_an_absolute_iri_without_forbidden_characters() {
        assert!(BaseIri::parse("base", "http://x.example/db/").is_ok());
        assert!(BaseIri::parse("base", "urn:x:").is_ok());
        for bad in [
            "relative/path",
            "http://x/a b",
            "http://x/<y>",
            ":nothing",
            "",
        ] {
            assert!(
                matches!(
                    BaseIri::parse("base", bad),
                    Err(Error::InvalidArgument { .. })
                ),
                "{bad:?}"
            );
        }
    }
}
