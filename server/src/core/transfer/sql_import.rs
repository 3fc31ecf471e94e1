//! SQL scripts, split as they stream in and run in one transaction.

use futures::StreamExt;
use tracing::warn;

use super::{ImportStream, too_large};
use crate::backend::Session;
use crate::core::{
    access::{Principal, Role},
    error::{Error, Result},
    forge::Forge,
    script::Splitter,
    value::Statement,
};

/// What an ImportSql did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScriptReport {
    /// Statements run.
    pub statements: u64,
    /// Rows changed in total.
    pub rows_affected: u64,
}

impl Forge {
    /// Runs an SQL script in one transaction (see TransferService.ImportSql for MySQL's DDL).
    pub async fn import_sql(
        &self,
        who: &Principal,
        db: &str,
        mut input: ImportStream,
    ) -> Result<ScriptReport> {
        let t = self.transfer_target(who, db, Role::Write).await?;
        if !(t.capabilities.sql && t.capabilities.sessions) {
            return Err(Error::Unsupported {
                operation: "ImportSql",
                backend: t.kind.as_str(),
            });
        }
        let mut splitter = Splitter::new(t.kind, t.limits.max_import_line_bytes);
        let mut session = t.database.session(t.whole.clone()).await?;
        session.begin().await?;
        let mut report = ScriptReport::default();
        let mut total = 0u64;
        let outcome: Result<()> = async {
            loop {
                let stmts = match input.next().await {
                    Some(chunk) => {
                        let chunk = chunk?;
                        total += chunk.len() as u64;
                        if total > t.limits.max_import_bytes {
                            return Err(too_large(t.limits.max_import_bytes));
                        }
                        splitter.push(&chunk)?
                    }
                    None => break,
                };
                run_script(&mut *session, stmts, &mut report).await?;
            }
            let rest = std::mem::replace(&mut splitter, Splitter::new(t.kind, 0)).finish()?;
            run_script(&mut *session, rest, &mut report).await
        }
        .await;
        match outcome {
            Ok(()) => {
                session.commit().await?;
                Ok(report)
            }
            Err(e) => {
                if let Err(rb) = session.rollback().await {
                    warn!(error = %rb, "rolling back a failed SQL import failed");
                }
                Err(e)
            }
        }
    }
}

/// Runs split statements on the import's session, naming the failing one.
async fn run_script(
    session: &mut dyn Session,
    stmts: Vec<crate::core::script::ScriptStatement>,
    report: &mut ScriptReport,
) -> Result<()> {
    for s in stmts {
        let result = session
            .execute(Statement::new(s.sql))
            .await
            .map_err(|e| at_statement(e, s.number, s.line))?;
        report.statements += 1;
        report.rows_affected += result.rows_affected;
    }
    Ok(())
}

/// Prefixes an error's message with where in the script it happened.
fn at_statement(err: Error, number: usize, line: u64) -> Error {
    let place = format!("statement {number} (line {line})");
    match err {
        Error::Query {
            kind,
            code,
            message,
            ..
        } => Error::Query {
            kind,
            code,
            message: format!("{place}: {message}"),
            statement_index: Some(number - 1),
        },
        Error::InvalidArgument { field, reason } => Error::InvalidArgument {
            field,
            reason: format!("{place}: {reason}"),
        },
        Error::PermissionDenied(m) => Error::PermissionDenied(format!("{place}: {m}")),
        Error::LimitExceeded(m) => Error::LimitExceeded(format!("{place}: {m}")),
        Error::Timeout(m) => Error::Timeout(format!("{place}: {m}")),
        other => other,
    }
}
