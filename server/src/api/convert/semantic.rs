//! SemanticService messages ↔ the domain values of `core::semantic`.

use super::{row, summary};
use crate::{
    core::semantic::{Answer, AskStatus, Ran, Validation},
    pb,
};

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
