//! The sweep's question, "which sessions have work due?", answered by
//! SQLite's WHERE clause, agrees with the reference rule
//! (`SessionSummary::is_due`, the trait's default) at every moment around
//! each session's deadline.

use std::time::Duration;

use collab_core::{SessionChanges, SessionStatus, Timestamp};
use collab_server::{MemoryStore, Store};
use collab_sqlite::SqliteStore;

use collab_store_tests::build::{first_write, record, session_id};

const KEEP_ENDED: Duration = Duration::from_secs(3_600);

/// Sessions open and ended, active at different times, with short, long and
/// never-ending expiries.
async fn fill(store: &dyn Store) {
    let cases: [(u8, SessionStatus, u64, u64); 6] = [
        (1, SessionStatus::Active, 10_000, 60),
        (2, SessionStatus::Waiting, 50_000, 1_800),
        (3, SessionStatus::Ended, 20_000, 60),
        (4, SessionStatus::Ended, 5_000_000, 60),
        (5, SessionStatus::Paused, 30_000, u64::MAX),
        (6, SessionStatus::Active, u64::MAX - 1, 60),
    ];
    for (n, status, at, expires) in cases {
        let id = session_id(n);
        store.save(&first_write(&id)).await.unwrap();
        let mut r = record(&id, "s", status, at);
        r.expires_after_secs = expires;
        let mut changes = SessionChanges::empty(id);
        changes.record = Some(r);
        store.save(&changes).await.unwrap();
    }
}

#[tokio::test]
async fn sqlite_and_the_reference_rule_agree_on_what_is_due() {
    let dir = tempfile::tempdir().unwrap();
    let reference = MemoryStore::new();
    fill(&reference).await;
    for store in [
        SqliteStore::open(dir.path().join("sessions.db")).unwrap(),
        SqliteStore::open_in_memory().unwrap(),
    ] {
        fill(&store).await;
        let mut moments = vec![
            0, 1, 69_999, 70_000, 70_001, 1_850_000, 3_620_000, 8_600_000,
        ];
        moments.extend([u64::MAX / 2, i64::MAX as u64]);
        let mut seen_due = 0;
        for now in moments {
            let now = Timestamp(now);
            let mut got: Vec<_> = store
                .due(now, KEEP_ENDED)
                .await
                .unwrap()
                .into_iter()
                .map(|s| s.id)
                .collect();
            let mut want: Vec<_> = reference
                .due(now, KEEP_ENDED)
                .await
                .unwrap()
                .into_iter()
                .map(|s| s.id)
                .collect();
            got.sort();
            want.sort();
            assert_eq!(got, want, "at {now:?}");
            seen_due += got.len();
        }
        assert!(seen_due >= 10, "the moments cover deadlines ({seen_due})");
    }
}
