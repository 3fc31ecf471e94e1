//! SemanticService messages ↔ the domain values of `core::semantic`.

use super::{row, summary};
use crate::{
    core::{
        direct_mapping::BaseIri,
        error::Result,
        semantic::{
            Answer, AskStatus, Ran, Validation,
            materialize::{MaterializeSpec, Materialized, MaterializedTable},
        },
    },
    pb,
};

impl TryFrom<pb::MaterializeGraphRequest> for MaterializeSpec {
    type Error = crate::core::error::Error;

    fn try_from(r: pb::MaterializeGraphRequest) -> Result<Self> {
        let pb::MaterializeGraphRequest {
            source_database,
            graph_database,
            base_iri,
            graph,
            replace,
        } = r;
        Ok(Self {
            source: source_database,
            target: graph_database,
            base_iri: (!base_iri.is_empty())
                .then(|| BaseIri::parse("base_iri", &base_iri))
                .transpose()?,
            graph: (!graph.is_empty()).then_some(graph),
            replace,
        })
    }
}

impl From<Materialized> for pb::MaterializeGraphResponse {
    fn from(m: Materialized) -> Self {
        let Materialized {
            tables,
            triples,
            base_iri,
            elapsed,
        } = m;
        let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        Self {
            tables: tables
                .into_iter()
                .map(
                    |MaterializedTable {
                         table,
                         rows,
                         triples,
                     }| pb::MaterializedTable {
                        table,
                        rows: count(rows),
                        triples: count(triples),
                    },
                )
                .collect(),
            triples: count(triples),
            base_iri,
            elapsed_ms: i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX),
        }
    }
}

impl From<Answer> for pb::AskAnswer {
    fn from(a: Answer) -> Self {
        let Answer {
            status,
            sql,
            rationale,
            validation,
            message,
            rounds,
            cached,
            model,
        } = a;
        let Validation {
            valid,
            error,
            plan,
            full_scans,
        } = validation;
        pb::AskAnswer {
            status: match status {
                AskStatus::Answered => pb::AskStatus::Answered,
                AskStatus::GaveUp => pb::AskStatus::GaveUp,
            } as i32,
            sql,
            rationale,
            validation: Some(pb::AskValidation {
                valid,
                error,
                plan,
                full_scans,
            }),
            message,
            rounds: i32::try_from(rounds).unwrap_or(i32::MAX),
            cached,
            model,
        }
    }
}

/// The response of an Ask: the answer, and the rows when it ran.
pub fn ask_response(answer: Answer, ran: Option<Ran>) -> pb::AskResponse {
    let (columns, rows, done) = match ran {
        Some(Ran {
            columns,
            rows,
            summary: s,
        }) => (
            columns.into_iter().map(Into::into).collect(),
            rows.into_iter().map(row).collect(),
            Some(summary(s)),
        ),
        None => (Vec::new(), Vec::new(), None),
    };
    pb::AskResponse {
        answer: Some(answer.into()),
        columns,
        rows,
        summary: done,
    }
}
