//! Many sessions saving at once: every save lands, refused ones alone fail,
//! and the saves share commits.

use std::sync::Arc;
use std::time::Instant;

use collab_core::{DocumentWrite, SessionChanges, StoreError};
use collab_server::Store;
use collab_sqlite::SqliteStore;

use collab_store_tests::build::{event, first_write, message, session_id};

const SESSIONS: u8 = 50;
const SAVES: u64 = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_saves_all_land_in_fewer_commits() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path().join("s.db")).unwrap());

    let started = Instant::now();
    let mut tasks = Vec::new();
    for n in 0..SESSIONS {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let id = session_id(n);
            store.save(&first_write(&id)).await.unwrap();
            let mut refused = 0;
            for seq in 2..=SAVES {
                let mut changes = SessionChanges::empty(id.clone());
                changes.events = vec![event(seq, 1, "x")];
                changes.document = Some(DocumentWrite::Append(vec![n; 3]));
                if seq % 10 == 0 {
                    changes.messages = vec![message(seq % 3 + 1, "m")];
                }
                if seq % 40 == 0 {
                    // A save with a gap, among everyone's valid ones: it
                    // fails alone and writes nothing.
                    let mut bad = changes.clone();
                    bad.events = vec![event(seq + 1, 1, "gap")];
                    bad.document = Some(DocumentWrite::Replace(Vec::new()));
                    let result = store.save(&bad).await;
                    assert!(
                        matches!(result, Err(StoreError::Damaged { .. })),
                        "{result:?}"
                    );
                    refused += 1;
                }
                store.save(&changes).await.unwrap();
            }
            refused
        }));
    }
    let mut refused = 0;
    for task in tasks {
        refused += task.await.unwrap();
    }
    let elapsed = started.elapsed();
    let saves = u64::from(SESSIONS) * SAVES + refused;
    let commits = store.commits();
    eprintln!(
        "{saves} saves from {SESSIONS} tasks in {elapsed:?} ({:.0} saves/s), {commits} commits",
        saves as f64 / elapsed.as_secs_f64()
    );
    assert!(commits < saves, "{commits} commits for {saves} saves");

    for n in 0..SESSIONS {
        let stored = store.load(&session_id(n)).await.unwrap().unwrap();
        assert_eq!(stored.events.len() as u64, SAVES);
        assert!(stored.events.iter().zip(1..).all(|(e, seq)| e.seq.0 == seq));
        assert_eq!(stored.document, vec![n; 3 * (SAVES as usize - 1)]);
        assert_eq!(stored.messages.len(), 3);
    }
}

/// One save at a time cannot be grouped: each is its own commit. Also prints
/// the rate, to compare with the grouped one above.
#[tokio::test]
async fn sequential_saves_commit_one_by_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("s.db")).unwrap();
    let id = session_id(1);
    store.save(&first_write(&id)).await.unwrap();
    let count = 300;
    let started = Instant::now();
    for seq in 2..count + 2 {
        let mut changes = SessionChanges::empty(id.clone());
        changes.events = vec![event(seq, 1, "x")];
        store.save(&changes).await.unwrap();
    }
    let elapsed = started.elapsed();
    eprintln!(
        "{count} sequential saves in {elapsed:?} ({:.0} saves/s)",
        count as f64 / elapsed.as_secs_f64()
    );
    assert_eq!(store.commits(), count + 1);
}

/// With a commit window, saves that arrive close after a commit wait for
/// the others of the window and share one commit; a save that finds the
/// writer idle commits at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_commit_window_gathers_saves_that_come_close_together() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = collab_sqlite::SqliteOptions::default();
    options.commit_window = std::time::Duration::from_secs(1);
    let store = Arc::new(SqliteStore::open_with(dir.path().join("s.db"), options).unwrap());

    // Idle: committed at once, well before the window would end.
    let started = Instant::now();
    store.save(&first_write(&session_id(0))).await.unwrap();
    assert!(started.elapsed() < std::time::Duration::from_millis(900));
    assert_eq!(store.commits(), 1);

    // Twenty saves, one every 10 ms, right after that commit: one commit.
    let mut tasks = Vec::new();
    for n in 1..=20u8 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(10 * u64::from(n))).await;
            store.save(&first_write(&session_id(n))).await.unwrap();
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(store.commits(), 2, "the window's saves share a commit");
    assert_eq!(store.sessions().await.unwrap().len(), 21);
}
