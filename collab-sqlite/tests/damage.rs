//! Bad stored data damages only its own session, and never panics.

use collab_core::{DocumentWrite, SessionChanges, SessionId, StoreError};
use collab_server::Store;
use collab_sqlite::SqliteStore;

use collab_store_tests::build::{event, first_write, message, session_id, version};

fn assert_damaged(result: Result<impl std::fmt::Debug, StoreError>, id: &SessionId, what: &str) {
    match result {
        Err(StoreError::Damaged { session, reason }) => {
            assert_eq!(&session, id, "{what}");
            eprintln!("{what}: {reason}");
        }
        other => panic!("{what}: {other:?}"),
    }
}

#[tokio::test]
async fn a_damaged_row_damages_its_session_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let store = SqliteStore::open(&path).unwrap();
    for n in 1..=6 {
        let id = session_id(n);
        let mut changes = first_write(&id);
        changes.events.push(event(2, 2, "hello"));
        changes.messages = vec![message(2, "hello")];
        changes.versions = vec![version(1, true, "x")];
        changes.document = Some(DocumentWrite::Append(vec![1, 2, 3]));
        store.save(&changes).await.unwrap();
    }

    // Another connection, as a faulty tool or a bad disk block would.
    let conn = rusqlite::Connection::open(&path).unwrap();
    let damage = [
        (1, "UPDATE sessions SET record = '{\"id\": ' WHERE id = ?1"),
        (
            2,
            "UPDATE events SET body = 'garbage' WHERE session = ?1 AND seq = 2",
        ),
        (
            3,
            "UPDATE messages SET body = replace(body, '\"id\":2', '\"id\":7') WHERE session = ?1",
        ),
        (4, "UPDATE doc_chunks SET bytes = 'text' WHERE session = ?1"),
        (
            5,
            "UPDATE version_runs SET bytes = x'ff00' WHERE session = ?1",
        ),
    ];
    for (n, sql) in damage {
        let changed = conn.execute(sql, [session_id(n).as_str()]).unwrap();
        assert_eq!(changed, 1, "{sql}");
    }

    for (n, what) in [
        (1, "record"),
        (2, "event"),
        (3, "message"),
        (4, "chunk"),
        (5, "version"),
    ] {
        let id = session_id(n);
        assert_damaged(store.load(&id).await, &id, what);
    }
    let fine = store.load(&session_id(6)).await.unwrap().unwrap();
    assert_eq!(fine.events.len(), 2);
    assert_eq!(fine.document, [1, 2, 3]);
    assert_eq!(store.sessions().await.unwrap().len(), 6);

    // Unreadable summary columns leave that session out of the listing
    // instead of failing it for everyone.
    conn.execute(
        "UPDATE sessions SET status = 'sleeping' WHERE id = ?1",
        [session_id(1).as_str()],
    )
    .unwrap();
    conn.execute(
        "UPDATE sessions SET last_activity = 'soon' WHERE id = ?1",
        [session_id(2).as_str()],
    )
    .unwrap();
    let listed = store.sessions().await.unwrap();
    assert_eq!(listed.len(), 4);
    assert!(listed
        .iter()
        .all(|s| s.id != session_id(1) && s.id != session_id(2)));

    // The store goes on writing, damaged sessions included.
    let mut changes = SessionChanges::empty(session_id(6));
    changes.events = vec![event(3, 0, "")];
    store.save(&changes).await.unwrap();
    let mut changes = SessionChanges::empty(session_id(2));
    changes.events = vec![event(3, 0, "")];
    store.save(&changes).await.unwrap();
}
