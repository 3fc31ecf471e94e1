//! NDJSON key records into a key-value database, all or nothing.

use futures::StreamExt;

use super::{ImportStream, too_large};
use crate::core::{
    access::{Principal, Role},
    error::{Error, Result},
    forge::Forge,
};

impl Forge {
    /// Imports NDJSON key records into a key-value database, all or nothing.
    pub async fn import_ndjson(
        &self,
        who: &Principal,
        db: &str,
        mut input: ImportStream,
    ) -> Result<u64> {
        let t = self.transfer_target(who, db, Role::Write).await?;
        if !t.capabilities.key_value {
            return Err(Error::Unsupported {
                operation: "ImportNdjson",
                backend: t.kind.as_str(),
            });
        }
        let mut data = Vec::new();
        while let Some(chunk) = input.next().await {
            let chunk = chunk?;
            if (data.len() + chunk.len()) as u64 > t.limits.max_import_bytes {
                return Err(too_large(t.limits.max_import_bytes));
            }
            data.extend_from_slice(&chunk);
        }
        let max_line = t.limits.max_import_line_bytes;
        if let Some((i, _)) = data
            .split(|b| *b == b'\n')
            .enumerate()
            .find(|(_, l)| l.len() > max_line)
        {
            return Err(Error::LimitExceeded(format!(
                "line {} is longer than the import line limit of {max_line} bytes",
                i + 1
            )));
        }
        t.database.import_records(&data, &t.whole).await
    }
}
