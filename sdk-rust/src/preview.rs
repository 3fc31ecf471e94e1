//! Dry runs over `QueryService.Preview`: what statements would do, with nothing committed.

use std::sync::Arc;

use crate::{Client, Code, Column, Plan, Result, Row, Statement, client::values, pb};

/// What one statement would do, as [`Client::preview`] reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct StatementPreview {
    /// `SELECT`, `INSERT`, `UPDATE`, `DELETE` or `OTHER` (DDL and the rest: run, no sample).
    pub kind: String,
    /// Rows the statement changed.
    pub rows_affected: u64,
    /// Columns of `before` and `after`.
    pub columns: Vec<Column>,
    /// UPDATE and DELETE: sampled rows as they were before the statement.
    pub before: Vec<Row>,
    /// UPDATE: the same rows after it, in the same order; INSERT: new rows; SELECT: first rows.
    pub after: Vec<Row>,
    /// Why a sample is missing or partial; empty when complete.
    pub sample_note: String,
    /// The plan, taken inside the transaction before the statement ran.
    pub plan: Option<Plan>,
    /// The engine's error, when the statement failed.
    pub error: Option<PreviewError>,
    /// Not run: an earlier failure ended the transaction.
    pub skipped: bool,
}

/// A previewed statement's failure.
#[derive(Debug, Clone, PartialEq)]
pub struct PreviewError {
    /// The status code the same failure gets from Execute.
    pub code: Code,
    /// The engine's message.
    pub message: String,
    /// The machine-readable reason (`UNIQUE_VIOLATION`, `SQL_ERROR`, …).
    pub reason: String,
    /// Whether the preview's transaction went on after it.
    pub transaction_active: bool,
}

impl TryFrom<pb::StatementPreview> for StatementPreview {
    type Error = crate::Error;
    fn try_from(p: pb::StatementPreview) -> Result<Self> {
        let pb::StatementPreview {
            kind,
            rows_affected,
            columns,
            before,
            after,
            sample_note,
            plan,
            error,
            skipped,
        } = p;
        let columns: Arc<[Column]> = columns.into_iter().map(Column::from).collect();
        let rows = |rows: Vec<pb::Row>| -> Result<Vec<Row>> {
            rows.into_iter()
                .map(|r| Row::from_pb(&columns, r))
                .collect()
        };
        Ok(StatementPreview {
            kind,
            rows_affected: u64::try_from(rows_affected).unwrap_or_default(),
            before: rows(before)?,
            after: rows(after)?,
            columns: columns.to_vec(),
            sample_note,
            plan: plan.map(Plan::from),
            error: error.map(|e| PreviewError {
                code: Code::from_i32(e.code),
                message: e.message,
                reason: e.reason,
                transaction_active: e.transaction_active,
            }),
            skipped,
        })
    }
}

impl Client {
    /// Runs `statements` in a transaction that is always rolled back and reports what each
    /// would do, with samples of up to 5 rows; see [`preview_sampled`](Self::preview_sampled).
    pub async fn preview(
        &self,
        database: &str,
        statements: Vec<Statement>,
    ) -> Result<Vec<StatementPreview>> {
        self.preview_sampled(database, statements, 0).await
    }

    /// [`preview`](Self::preview) with up to `sample_rows` rows per sample (0: 5; at most 100).
    /// Nothing is committed; MySQL refuses DDL (it commits implicitly) and Redis refuses
    /// previews, both with FAILED_PRECONDITION before anything runs.
    pub async fn preview_sampled(
        &self,
        database: &str,
        statements: Vec<Statement>,
        sample_rows: u32,
    ) -> Result<Vec<StatementPreview>> {
        let resp = self
            .queries
            .clone()
            .preview(
                self.settings.request(pb::PreviewRequest {
                    database: database.to_owned(),
                    statements: statements
                        .into_iter()
                        .map(|s| pb::Statement {
                            sql: s.sql,
                            params: values(&s.params),
                        })
                        .collect(),
                    sample_rows: i32::try_from(sample_rows).unwrap_or(i32::MAX),
                }),
            )
            .await?
            .into_inner();
        resp.statements
            .into_iter()
            .map(StatementPreview::try_from)
            .collect()
    }
}
