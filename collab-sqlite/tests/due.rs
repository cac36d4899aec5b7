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
/// never-ending expiries, and scheduled ones that close before or long
/// after their idle expiry.
async fn fill(store: &dyn Store) {
    let cases: [(u8, SessionStatus, u64, u64, Option<u64>); 8] = [
        (1, SessionStatus::Active, 10_000, 60, None),
        (2, SessionStatus::Waiting, 50_000, 1_800, None),
        (3, SessionStatus::Ended, 20_000, 60, None),
        (4, SessionStatus::Ended, 5_000_000, 60, None),
        (5, SessionStatus::Paused, 30_000, u64::MAX, None),
        (6, SessionStatus::Active, u64::MAX - 1, 60, None),
        (7, SessionStatus::Waiting, 10_000, 60, Some(3_620_000)),
        (8, SessionStatus::Active, 10_000, 1_800, Some(69_999)),
    ];
    for (n, status, at, expires, closes_at) in cases {
        let id = session_id(n);
        store.save(&first_write(&id)).await.unwrap();
        let mut r = record(&id, "s", status, at);
        r.expires_after_secs = expires;
        r.starts_at = closes_at.map(|_| Timestamp(at));
        r.closes_at = closes_at.map(Timestamp);
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
        // A scheduled session idle past its expiry is not due before it
        // closes, and is at once then.
        let ids = |due: Vec<collab_core::SessionSummary>| -> Vec<_> {
            due.into_iter().map(|s| s.id).collect()
        };
        let before = ids(store.due(Timestamp(3_619_999), KEEP_ENDED).await.unwrap());
        assert!(!before.contains(&session_id(7)) && before.contains(&session_id(8)));
        let at = ids(store.due(Timestamp(3_620_000), KEEP_ENDED).await.unwrap());
        assert!(at.contains(&session_id(7)));
    }
}
