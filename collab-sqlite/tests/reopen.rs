//! What a file store saved is exactly what it returns after being reopened,
//! and the file's schema version is checked on the way in.

use collab_core::{DocumentWrite, SessionChanges, SessionStatus, StoreError, Timestamp};
use collab_server::{MemoryStore, Store};
use collab_sqlite::SqliteStore;

use collab_store_tests::build::{event, first_write, message, record, session_id, version};

/// A few sessions with a bit of everything, saved to `store`.
async fn fill(store: &dyn Store) {
    for n in 1..=3u8 {
        let id = session_id(n);
        store.save(&first_write(&id)).await.unwrap();
        for step in 0..10u64 {
            let mut changes = SessionChanges::empty(id.clone());
            changes.events = vec![event(step + 2, step as u8, "hé \"quoted\"")];
            changes.versions = vec![version(step + 1, step % 3 != 0, "fn main() {}\n")];
            changes.messages = vec![message(step % 4 + 1, &format!("edit {step}"))];
            changes.document = Some(if step == 6 {
                DocumentWrite::Replace(vec![n; 100])
            } else {
                DocumentWrite::Append(vec![step as u8; 7])
            });
            // Some writes hold every version, some leave the last to replay.
            changes.document_rev = step + 1 - step % 2;
            if step == 9 {
                let mut r = record(&id, "Ended", SessionStatus::Ended, 9_000);
                r.expires_after_secs = u64::MAX;
                r.last_activity = Timestamp(u64::MAX - 1);
                changes.record = Some(r);
            }
            store.save(&changes).await.unwrap();
        }
    }
    store.delete(&session_id(2)).await.unwrap();
}

#[tokio::test]
async fn a_reopened_store_returns_exactly_what_was_saved() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sessions.db");
    let reference = MemoryStore::new();
    fill(&reference).await;
    {
        let store = SqliteStore::open(&path).unwrap();
        fill(&store).await;
    }
    let store = SqliteStore::open(&path).unwrap();
    for n in 1..=4u8 {
        let id = session_id(n);
        assert_eq!(
            store.load(&id).await.unwrap(),
            reference.load(&id).await.unwrap(),
            "session {n}"
        );
    }
    let mut got = store.sessions().await.unwrap();
    let mut want = reference.sessions().await.unwrap();
    got.sort_by(|a, b| a.id.cmp(&b.id));
    want.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(got, want);
    assert_eq!(got.len(), 2);

    // And it goes on from where it was: the next event follows the stored ones.
    let id = session_id(1);
    let mut changes = SessionChanges::empty(id.clone());
    changes.events = vec![event(12, 0, "")];
    store.save(&changes).await.unwrap();
    let mut gap = SessionChanges::empty(id.clone());
    gap.events = vec![event(14, 0, "")];
    assert!(matches!(
        store.save(&gap).await,
        Err(StoreError::Damaged { .. })
    ));
}

#[tokio::test]
async fn a_file_from_a_newer_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sessions.db");
    drop(SqliteStore::open(&path).unwrap());
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .unwrap();
        assert_eq!(version, 4);
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |row| row.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        conn.pragma_update(None, "user_version", 5).unwrap();
    }
    match SqliteStore::open(&path) {
        Err(StoreError::Backend(reason)) => {
            assert!(reason.contains("schema version 5"), "{reason}")
        }
        other => panic!("opened a newer file: {other:?}"),
    }
}

/// A file written by schema version 1 stored the document with every
/// version: opened by this version, its sessions say so.
#[tokio::test]
async fn a_file_from_version_1_is_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sessions.db");
    let id = session_id(1);
    {
        let store = SqliteStore::open(&path).unwrap();
        store.save(&first_write(&id)).await.unwrap();
        for rev in 1..=3 {
            let mut changes = SessionChanges::empty(id.clone());
            changes.versions = vec![version(rev, true, "x")];
            changes.document = Some(DocumentWrite::Append(vec![rev as u8]));
            changes.document_rev = rev - 1;
            store.save(&changes).await.unwrap();
        }
        assert_eq!(store.load(&id).await.unwrap().unwrap().document_rev, 2);
    }
    {
        // Back to what version 1 wrote: no columns of later versions.
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "ALTER TABLE sessions DROP COLUMN document_rev;
             ALTER TABLE sessions DROP COLUMN closes_at;",
        )
        .unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    let stored = store.load(&id).await.unwrap().unwrap();
    assert_eq!(stored.versions.len(), 3);
    assert_eq!(stored.document_rev, 3);
    assert_eq!(stored.document, [1, 2, 3]);

    // New sessions start at revision 0, and writes go on as before.
    let fresh = session_id(5);
    store.save(&first_write(&fresh)).await.unwrap();
    let mut changes = SessionChanges::empty(fresh.clone());
    changes.versions = vec![version(1, true, "x")];
    store.save(&changes).await.unwrap();
    assert_eq!(store.load(&fresh).await.unwrap().unwrap().document_rev, 0);
}

/// Schema version 2 kept a JSON row per version; version 3 moves them into
/// one run per session, and leaves the rows of a session whose JSON does not
/// read (that session loads as damaged, the others as before).
#[tokio::test]
async fn a_file_from_version_2_has_its_versions_moved_into_runs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sessions.db");
    let (good, bad) = (session_id(1), session_id(2));
    let versions: Vec<_> = (1..=5)
        .map(|rev| version(rev, rev % 2 == 0, "é\n"))
        .collect();
    {
        let store = SqliteStore::open(&path).unwrap();
        for id in [&good, &bad] {
            store.save(&first_write(id)).await.unwrap();
        }
    }
    {
        // What version 2 wrote: a JSON row per version.
        let conn = rusqlite::Connection::open(&path).unwrap();
        for id in [&good, &bad] {
            for v in &versions {
                conn.execute(
                    "INSERT INTO versions (session, rev, body) VALUES (?1, ?2, ?3)",
                    rusqlite::params![id.as_str(), v.rev as i64, serde_json::to_string(v).unwrap()],
                )
                .unwrap();
            }
        }
        conn.execute(
            "UPDATE versions SET body = 'garbage' WHERE session = ?1 AND rev = 3",
            [bad.as_str()],
        )
        .unwrap();
        conn.execute_batch(
            "DROP TABLE version_runs;
             ALTER TABLE sessions DROP COLUMN closes_at;",
        )
        .unwrap();
        conn.pragma_update(None, "user_version", 2).unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.load(&good).await.unwrap().unwrap().versions, versions);
    assert!(matches!(
        store.load(&bad).await,
        Err(StoreError::Damaged { session, .. }) if session == bad
    ));
    // Writes go on after the moved runs.
    let mut changes = SessionChanges::empty(good.clone());
    changes.versions = vec![version(6, true, "x")];
    store.save(&changes).await.unwrap();
    let stored = store.load(&good).await.unwrap().unwrap();
    assert_eq!(stored.versions.len(), 6);
    assert_eq!(stored.versions[..5], versions[..]);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let left: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM versions WHERE session = ?1",
            [good.as_str()],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(left, 0);
}

/// A session that writes one version at a time leaves a few runs, not a row
/// a write, and reads back every version in order.
#[tokio::test]
async fn versions_written_one_at_a_time_share_runs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sessions.db");
    let id = session_id(1);
    let store = SqliteStore::open(&path).unwrap();
    store.save(&first_write(&id)).await.unwrap();
    let versions: Vec<_> = (1..=2_000)
        .map(|rev| version(rev, rev % 5 != 0, "let x = 1;\n"))
        .collect();
    for v in &versions {
        let mut changes = SessionChanges::empty(id.clone());
        changes.versions = vec![v.clone()];
        store.save(&changes).await.unwrap();
    }
    drop(store);
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.load(&id).await.unwrap().unwrap().versions, versions);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let runs: i64 = conn
        .query_row("SELECT COUNT(*) FROM version_runs", [], |r| r.get(0))
        .unwrap();
    assert!((2..=20).contains(&runs), "{runs} runs");
}

/// A file made as UTF-16 by another tool is refused: version runs are
/// joined as text in the file's encoding, which in UTF-16 drops odd bytes.
#[tokio::test]
async fn a_utf16_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sessions.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch("PRAGMA encoding = 'UTF-16le'; CREATE TABLE t (x);")
            .unwrap();
    }
    match SqliteStore::open(&path) {
        Err(StoreError::Backend(reason)) => assert!(reason.contains("UTF-16"), "{reason}"),
        other => panic!("opened a UTF-16 file: {other:?}"),
    }
}

/// Schema version 3 kept a scheduled session's closing time in its record
/// only; version 4 copies it into a column, from which a sweep finds it due.
#[tokio::test]
async fn a_file_from_version_3_gets_its_closing_times_in_a_column() {
    use collab_core::Timestamp;
    use collab_store_tests::build::record;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sessions.db");
    let id = session_id(3);
    {
        let store = SqliteStore::open(&path).unwrap();
        store.save(&first_write(&id)).await.unwrap();
        let mut r = record(&id, "s", collab_core::SessionStatus::Waiting, 10_000);
        r.starts_at = Some(Timestamp(10_000));
        r.closes_at = Some(Timestamp(5_000_000));
        let mut changes = SessionChanges::empty(id.clone());
        changes.record = Some(r);
        store.save(&changes).await.unwrap();
    }
    {
        // Back to what version 3 wrote: no column, version 3.
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch("ALTER TABLE sessions DROP COLUMN closes_at")
            .unwrap();
        conn.pragma_update(None, "user_version", 3).unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    let keep = std::time::Duration::from_secs(3600);
    let due = |at| {
        let store = &store;
        async move {
            store
                .due(Timestamp(at), keep)
                .await
                .unwrap()
                .into_iter()
                .map(|s| s.id)
                .collect::<Vec<_>>()
        }
    };
    assert!(due(4_999_999).await.is_empty(), "idle, but scheduled");
    assert_eq!(due(5_000_000).await, vec![id.clone()]);
    let listed = store.sessions().await.unwrap();
    assert_eq!(listed[0].closes_at, Some(Timestamp(5_000_000)));
}
