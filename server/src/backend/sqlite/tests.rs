//! The conformance suite on SQLite (always available: it is embedded).

use std::sync::Arc;

use super::{SqliteBackend, SqliteConfig};
use crate::backend::conformance::{self, Hooks};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance() {
    let dir = tempfile::tempdir().expect("temp dir");
    let backend = SqliteBackend::new(SqliteConfig {
        dir: dir.path().to_path_buf(),
        max_readers: 4,
        cache_kib: 2048,
        max_value_bytes: 4 << 20,
        max_size_bytes: 1 << 30,
    })
    .expect("backend");
    let hooks = Hooks {
        slow_query: "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) \
                     SELECT count(*) FROM c"
            .into(),
        series_query:
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ?) \
                       SELECT x, 'row ' || x FROM c"
                .into(),
    };
    conformance::run_all(Arc::new(backend), &hooks).await;
}
