//! RDF terms as the gateway's typed values, both ways.
//!
//! Results (`value_of`):
//!
//! | RDF term | value |
//! |---|---|
//! | `xsd:integer` and the types derived from it (`xsd:int`, `xsd:long`, `xsd:nonNegativeInteger`, …) | int; past 64 bits, decimal text |
//! | `xsd:decimal` | decimal (its exact text) |
//! | `xsd:double`, `xsd:float` | float |
//! | `xsd:boolean` | bool |
//! | `xsd:dateTime`, `xsd:dateTimeStamp` | timestamp (without an offset read as UTC, as the other engines' timestamps are) |
//! | `xsd:date` | date |
//! | `xsd:time` | time |
//! | plain, `xsd:string` and language-tagged strings | text (the language tag is not kept) |
//! | any other literal (and one whose lexical form does not parse as its type) | text: the lexical form |
//! | IRI | text: the bare IRI, without angle brackets |
//! | blank node | text: `_:` and its id |
//! | unbound variable | null |
//!
//! Parameters (`term_of`) bind to the variables `?1`, `?2`, … as literals of the matching XSD
//! type: int as `xsd:integer`, float as `xsd:double`, text as `xsd:string` (use `IRI(?1)` in
//! the query to make an IRI of it), bool, decimal, timestamp, date and time as their types,
//! bytes as `xsd:base64Binary`; a null parameter leaves its variable unbound.

use base64::Engine as _;
use oxigraph::model::{Literal, NamedNodeRef, Term, vocab::xsd};

use crate::core::{
    error::{Error, Result},
    value::{
        Value, ValueKind,
        text::{self, parse_date, parse_time, parse_timestamp},
    },
};

/// The XSD types whose values are integers (`xsd:integer` and every type derived from it).
const INTEGER_TYPES: [NamedNodeRef<'static>; 13] = [
    xsd::INTEGER,
    xsd::INT,
    xsd::LONG,
    xsd::SHORT,
    xsd::BYTE,
    xsd::NON_NEGATIVE_INTEGER,
    xsd::POSITIVE_INTEGER,
    xsd::NON_POSITIVE_INTEGER,
    xsd::NEGATIVE_INTEGER,
    xsd::UNSIGNED_LONG,
    xsd::UNSIGNED_INT,
    xsd::UNSIGNED_SHORT,
    xsd::UNSIGNED_BYTE,
];

/// The value a result cell holds for `term` (`None`: unbound).
pub fn value_of(term: Option<&Term>) -> Value {
    match term {
        None => Value::Null,
        Some(Term::NamedNode(n)) => Value::Text(n.as_str().to_owned()),
        Some(Term::BlankNode(b)) => Value::Text(format!("_:{}", b.as_str())),
        Some(Term::Literal(l)) => literal_value(l),
        #[allow(unreachable_patterns)] // RDF 1.2 triple terms, with oxigraph's `rdf-12` feature
        Some(other) => Value::Text(other.to_string()),
    }
}

fn literal_value(l: &Literal) -> Value {
    let lexical = l.value();
    let datatype = l.datatype();
    let text = || Value::Text(lexical.to_owned());
    if INTEGER_TYPES.contains(&datatype) {
        let trimmed = lexical.trim();
        return match trimmed.strip_prefix('+').unwrap_or(trimmed).parse::<i64>() {
            Ok(n) => Value::Int(n),
            Err(_) if text::is_decimal(trimmed) => Value::Decimal(trimmed.to_owned()),
            Err(_) => text(),
        };
    }
    if datatype == xsd::DECIMAL {
        let trimmed = lexical.trim();
        return if text::is_decimal(trimmed) {
            Value::Decimal(trimmed.to_owned())
        } else {
            text()
        };
    }
    if datatype == xsd::DOUBLE || datatype == xsd::FLOAT {
        // XSD writes infinities as INF and -INF, which Rust does not read.
        let parsed = match lexical.trim() {
            "INF" | "+INF" => Ok(f64::INFINITY),
            "-INF" => Ok(f64::NEG_INFINITY),
            other => other.parse::<f64>(),
        };
        return parsed.map(Value::Float).unwrap_or_else(|_| text());
    }
    if datatype == xsd::BOOLEAN {
        return match lexical.trim() {
            "true" | "1" => Value::Bool(true),
            "false" | "0" => Value::Bool(false),
            _ => text(),
        };
    }
    if datatype == xsd::DATE_TIME || datatype == xsd::DATE_TIME_STAMP {
        return parse_timestamp(lexical.trim()).map_or_else(text, Value::Timestamp);
    }
    if datatype == xsd::DATE {
        return parse_date(lexical.trim()).map_or_else(text, Value::Date);
    }
    if datatype == xsd::TIME {
        return parse_time(lexical.trim()).map_or_else(text, Value::Time);
    }
    text()
}

/// The kind every value of a column has, when the query fixes it (ASK's bool); otherwise
/// unspecified, since one SPARQL variable may hold terms of any type.
pub fn column_kind(always_bool: bool) -> ValueKind {
    if always_bool {
        ValueKind::Bool
    } else {
        ValueKind::Unspecified
    }
}

/// The term a parameter binds (`None`: null, left unbound).
pub fn term_of(value: &Value) -> Result<Option<Term>> {
    let typed = |lexical: String, datatype: NamedNodeRef<'_>| {
        Some(Term::Literal(Literal::new_typed_literal(lexical, datatype)))
    };
    Ok(match value {
        Value::Null => None,
        Value::Int(n) => Some(Term::Literal(Literal::from(*n))),
        Value::Float(f) => Some(Term::Literal(Literal::from(*f))),
        Value::Text(s) | Value::Json(s) | Value::Uuid(s) => {
            Some(Term::Literal(Literal::new_simple_literal(s.clone())))
        }
        Value::Bool(b) => Some(Term::Literal(Literal::from(*b))),
        Value::Decimal(d) => typed(d.clone(), xsd::DECIMAL),
        Value::Bytes(b) => typed(
            base64::engine::general_purpose::STANDARD.encode(b),
            xsd::BASE_64_BINARY,
        ),
        Value::Timestamp(t) => typed(
            text::timestamp(t).map_err(|e| Error::invalid("params", e.to_string()))?,
            xsd::DATE_TIME,
        ),
        Value::Date(d) => typed(text::date(d), xsd::DATE),
        Value::Time(t) => typed(text::time(t), xsd::TIME),
        Value::Array(_) => {
            return Err(Error::invalid(
                "params",
                "a SPARQL parameter is one term; arrays have no RDF form",
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use oxigraph::model::{BlankNode, NamedNode};

    use super::*;

    fn lit(lexical: &str, datatype: NamedNodeRef<'_>) -> Term {
        Term::Literal(Literal::new_typed_literal(lexical, datatype))
    }

    #[test]
    fn literals_become_values_of_their_xsd_type() {
        assert_eq!(value_of(Some(&lit("42", xsd::INTEGER))), Value::Int(42));
        assert_eq!(value_of(Some(&lit("-7", xsd::SHORT))), Value::Int(-7));
        assert_eq!(
            value_of(Some(&lit("99999999999999999999", xsd::INTEGER))),
            Value::Decimal("99999999999999999999".into())
        );
        assert_eq!(
            value_of(Some(&lit("1.50", xsd::DECIMAL))),
            Value::Decimal("1.50".into())
        );
        assert_eq!(
            value_of(Some(&lit("0.25", xsd::DOUBLE))),
            Value::Float(0.25)
        );
        assert_eq!(
            value_of(Some(&lit("-INF", xsd::FLOAT))),
            Value::Float(f64::NEG_INFINITY)
        );
        assert_eq!(
            value_of(Some(&lit("true", xsd::BOOLEAN))),
            Value::Bool(true)
        );
        assert_eq!(value_of(Some(&lit("0", xsd::BOOLEAN))), Value::Bool(false));
        assert!(matches!(
            value_of(Some(&lit("2024-05-06T07:08:09Z", xsd::DATE_TIME))),
            Value::Timestamp(t) if t.unix_timestamp() == 1_714_979_289
        ));
        assert!(matches!(
            value_of(Some(&lit("2024-05-06", xsd::DATE))),
            Value::Date(_)
        ));
        assert_eq!(
            value_of(Some(&Term::Literal(
                Literal::new_language_tagged_literal("chat", "fr").expect("tag")
            ))),
            Value::Text("chat".into())
        );
        assert_eq!(
            value_of(Some(&lit("not a number", xsd::INTEGER))),
            Value::Text("not a number".into())
        );
    }

    #[test]
    fn iris_and_blank_nodes_become_text_and_unbound_null() {
        let iri = Term::NamedNode(NamedNode::new("http://example.com/a").expect("iri"));
        assert_eq!(
            value_of(Some(&iri)),
            Value::Text("http://example.com/a".into())
        );
        let b = Term::BlankNode(BlankNode::new("b0").expect("id"));
        assert_eq!(value_of(Some(&b)), Value::Text("_:b0".into()));
        assert_eq!(value_of(None), Value::Null);
    }

    #[test]
    fn parameters_round_trip_through_terms() {
        for v in [
            Value::Int(5),
            Value::Float(1.5),
            Value::Bool(true),
            Value::Decimal("3.14".into()),
            Value::Text("x".into()),
        ] {
            let term = term_of(&v).expect("term").expect("bound");
            assert_eq!(value_of(Some(&term)), v);
        }
        assert_eq!(term_of(&Value::Null).expect("null"), None);
        assert!(term_of(&Value::Array(vec![])).is_err());
    }
}
