//! The conformance suite on the embedded SQLite backend: each client is its own session on
//! one database file, as separate processes would be.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use nodepool_store::testing::Harness;
use nodepool_store::{Backend, SqliteBackend, SqliteOptions};

struct SqliteHarness {
    _dir: tempfile::TempDir,
    options: SqliteOptions,
    /// Plays "another process" that reaps stalled sessions.
    admin: SqliteBackend,
}

async fn harness() -> SqliteHarness {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut options = SqliteOptions::new(dir.path().join("nodepool.db"));
    options.session_timeout = Duration::from_millis(900);
    let admin = SqliteBackend::open(options.clone()).await.expect("open");
    SqliteHarness {
        _dir: dir,
        options,
        admin,
    }
}

#[async_trait]
impl Harness for SqliteHarness {
    async fn client(&self) -> Arc<dyn Backend> {
        Arc::new(
            SqliteBackend::open(self.options.clone())
                .await
                .expect("open"),
        )
    }

    async fn expire(&self, client: &Arc<dyn Backend>) {
        let old = client.session_id();
        self.admin.expire_session(old).await.expect("expire");
        // Lost is followed at once by Connected with a new session: wait for the new id.
        tokio::time::timeout(Duration::from_secs(10), async {
            while client.session_id() == old {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("the client notices its session was lost");
    }
}

nodepool_store::conformance_tests!(harness().await);
