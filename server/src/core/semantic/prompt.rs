//! What the model is told and how its answer is read: the grounding (schema, join paths, column
//! comments, sample values), the repair message, and a tolerant reader of the JSON answer.

use std::fmt::Write as _;

use crate::core::{
    engine::BackendKind,
    schema::Schema,
    summary::ColumnSummary,
    value::{Value, ValueKind},
};

/// A column with this many distinct values or fewer, in the sampled rows, is "low-cardinality":
/// its values go into the prompt (a model that sees `'shipped'` does not guess `'SHIPPED'`).
pub const LOW_CARDINALITY: u64 = 5;

/// Characters of one sample value shown, at most.
const SAMPLE_VALUE_CHARS: usize = 40;

/// A column's sample values, as the prompt lists them.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnSamples {
    /// `table.column`.
    pub column: String,
    /// The values as SQL literals, most frequent first.
    pub values: Vec<String>,
}

/// The sample values of a table's low-cardinality text columns, from the column summaries of a
/// bounded read of the table (`core/summary.rs`).
pub fn samples_of(
    table: &str,
    kinds: &[(String, ValueKind)],
    summaries: &[ColumnSummary],
) -> Vec<ColumnSamples> {
    summaries
        .iter()
        .filter(|s| s.distinct_exact && s.distinct > 0 && s.distinct <= LOW_CARDINALITY)
        .filter(|s| {
            // Categories are text; numbers and dates are better described by their type.
            kinds
                .iter()
                .any(|(n, k)| n == &s.name && matches!(k, ValueKind::Text | ValueKind::Unspecified))
        })
        .filter_map(|s| {
            let values: Vec<String> = s
                .top_values
                .iter()
                .filter_map(|(v, _)| match v {
                    // Written for the model to read, not run: plain quotes in every dialect
                    // (MySQL's own literals are hex for safety, which a model cannot read).
                    Value::Text(t) => Some(format!(
                        "'{}'",
                        super::model::shorten(t, SAMPLE_VALUE_CHARS).replace('\'', "''")
                    )),
                    _ => None,
                })
                .collect();
            (!values.is_empty()).then(|| ColumnSamples {
                column: format!("{table}.{}", s.name),
                values,
            })
        })
        .collect()
}

/// Every foreign key as a join condition, `orders.customer_id = customers.id`, so the model
/// joins on declared keys rather than on names that look alike.
pub fn join_paths(schema: &Schema) -> Vec<String> {
    let mut out = Vec::new();
    for t in &schema.tables {
        for fk in &t.foreign_keys {
            let cond = fk
                .columns
                .iter()
                .zip(&fk.referenced_columns)
                .map(|(c, r)| format!("{}.{c} = {}.{r}", t.name, fk.referenced_table))
                .collect::<Vec<_>>()
                .join(" AND ");
            out.push(cond);
        }
    }
    out
}

/// The instructions and the grounding, as the system message.
pub fn system_prompt(kind: BackendKind, schema: &Schema, samples: &[ColumnSamples]) -> String {
    let engine = match kind {
        BackendKind::Sqlite => "SQLite",
        BackendKind::Postgres => "PostgreSQL",
        BackendKind::Mysql => "MySQL/MariaDB",
        BackendKind::Redis => "Redis",
        BackendKind::Graph => "Oxigraph (SPARQL)",
    };
    let mut p = format!(
        "You translate questions about a {engine} database into one SQL query.\n\
         Answer with only a JSON object: {{\"sql\": \"...\", \"rationale\": \"...\"}}\n\
         - sql: exactly one read-only query (SELECT, or WITH ... SELECT) in {engine}'s dialect, \
         using only the tables and columns below, joining on the join paths given; no comments, \
         no trailing semicolon, no parameters.\n\
         - rationale: one short paragraph saying how the query answers the question.\n\
         - If the question cannot be answered from this database, set sql to \"\" and say why in \
         rationale.\n\n\
         Schema:\n{}",
        schema.render_text()
    );
    let joins = join_paths(schema);
    if !joins.is_empty() {
        p.push_str("\nJoin paths (foreign keys):\n");
        for j in joins {
            let _ = writeln!(p, "- {j}");
        }
    }
    let comments: Vec<String> = schema
        .tables
        .iter()
        .flat_map(|t| {
            t.columns.iter().filter_map(move |c| {
                c.comment
                    .as_deref()
                    .filter(|s| !s.is_empty())
                    .map(|s| format!("- {}.{}: {s}", t.name, c.name))
            })
        })
        .collect();
    if !comments.is_empty() {
        p.push_str("\nColumn comments:\n");
        for c in comments {
            let _ = writeln!(p, "{c}");
        }
    }
    if !samples.is_empty() {
        p.push_str("\nValues of low-cardinality columns (all of them, from a sample of rows):\n");
        for s in samples {
            let _ = writeln!(p, "- {}: {}", s.column, s.values.join(", "));
        }
    }
    p
}

/// The user message of a repair round: what the engine said about the last query.
pub fn repair_prompt(error: &str) -> String {
    format!(
        "That query was rejected: {error}\n\
         Correct it and answer again with only the JSON object {{\"sql\": \"...\", \
         \"rationale\": \"...\"}}."
    )
}

/// The model's answer, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelAnswer {
    /// The query; empty when the model says the question cannot be answered.
    pub sql: String,
    /// Its explanation.
    pub rationale: String,
}

/// Reads a model's answer: the JSON object asked for, also inside a Markdown fence or with
/// prose around it; failing that, a fenced SQL block or bare SQL. Models that are told to
/// answer in JSON mostly do, but not always in exactly that form.
pub fn parse_answer(text: &str) -> Result<ModelAnswer, String> {
    let text = text.trim();
    if let Some(a) = json_answer(text) {
        return Ok(a);
    }
    if let Some(sql) = fenced(text, &["sql", ""]) {
        return Ok(ModelAnswer {
            sql: clean_sql(&sql),
            rationale: String::new(),
        });
    }
    let head = text
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_ascii_uppercase();
    if head == "SELECT" || head == "WITH" {
        return Ok(ModelAnswer {
            sql: clean_sql(text),
            rationale: String::new(),
        });
    }
    Err(format!(
        "the answer is not the JSON object asked for: {}",
        super::model::shorten(text, 200)
    ))
}

fn json_answer(text: &str) -> Option<ModelAnswer> {
    let candidates = [
        fenced(text, &["json", ""]),
        text.find('{')
            .zip(text.rfind('}'))
            .filter(|(a, b)| a < b)
            .map(|(a, b)| text[a..=b].to_owned()),
    ];
    candidates.into_iter().flatten().find_map(|c| {
        let v: serde_json::Value = serde_json::from_str(&c).ok()?;
        let sql = v.get("sql")?.as_str()?;
        let rationale = v
            .get("rationale")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("");
        Some(ModelAnswer {
            sql: clean_sql(sql),
            rationale: rationale.trim().to_owned(),
        })
    })
}

/// The body of the first Markdown fence whose info string is one of `langs` ("" = none).
fn fenced(text: &str, langs: &[&str]) -> Option<String> {
    let start = text.find("```")?;
    let rest = &text[start + 3..];
    let (info, body) = rest.split_once('\n')?;
    if !langs.contains(&info.trim().to_ascii_lowercase().as_str()) {
        return None;
    }
    let end = body.find("```")?;
    Some(body[..end].trim().to_owned())
}

/// Trims whitespace and trailing semicolons (the engines take one statement without one).
fn clean_sql(sql: &str) -> String {
    sql.trim().trim_end_matches(';').trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_in_every_form_models_give_them() {
        let want = ModelAnswer {
            sql: "SELECT 1".into(),
            rationale: "one".into(),
        };
        for text in [
            r#"{"sql": "SELECT 1;", "rationale": "one"}"#,
            "```json\n{\"sql\": \"SELECT 1\", \"rationale\": \"one\"}\n```",
            "Here you go:\n{\"sql\": \"SELECT 1\", \"rationale\": \"one\"}\nHope it helps.",
        ] {
            assert_eq!(parse_answer(text).expect(text), want, "{text}");
        }
        let bare = parse_answer("```sql\nSELECT 1;\n```").expect("fenced sql");
        assert_eq!(bare.sql, "SELECT 1");
        assert_eq!(parse_answer("select 2").expect("bare").sql, "select 2");
        let err = parse_answer("I cannot help with that").expect_err("prose");
        assert!(err.contains("not the JSON object"), "{err}");
    }
}
