//! The writer thread: it owns the only connection that writes, and commits
//! every request waiting for it in one transaction (group commit), so one
//! fsync carries the saves of many sessions.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use collab_core::{
    DocumentWrite, SessionChanges, SessionId, SessionSummary, StoreError, StoredSession,
};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use tokio::sync::oneshot;

use crate::{backend, read};

/// The most requests one transaction carries. It bounds how long the first
/// request of a batch waits behind the others, and the memory a batch holds.
pub(crate) const MAX_BATCH: usize = 512;

/// Where the writer sends its answer.
pub(crate) type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// What the writer thread is asked to do.
pub(crate) enum Request {
    /// A save or delete, grouped with the others waiting.
    Write(Write, Reply<()>),
    /// A load (recent versions only, or all), for an in-memory store, whose
    /// only connection is the writer's.
    Load(SessionId, bool, Reply<Option<StoredSession>>),
    /// A range of versions, likewise.
    Versions(SessionId, u64, u64, Reply<Vec<collab_core::Version>>),
    /// A listing, likewise.
    Sessions(Reply<Vec<SessionSummary>>),
    /// The sessions due for a sweep at a time (ms), keeping ended ones so
    /// long (ms), likewise.
    Due(i64, i64, Reply<Vec<SessionSummary>>),
}

/// One atomic write.
pub(crate) enum Write {
    /// Boxed: a request is moved through the channel and queued in batches.
    Save(Box<SessionChanges>),
    Delete(SessionId),
}

/// Starts the writer thread on `conn`. It stops once every sender is gone
/// and the requests already sent are answered.
pub(crate) fn spawn(
    conn: Connection,
    commits: Arc<AtomicU64>,
    commit_window: Duration,
) -> Result<mpsc::Sender<Request>, StoreError> {
    let (sender, requests) = mpsc::channel();
    std::thread::Builder::new()
        .name("collab-sqlite-writer".to_owned())
        .spawn(move || run(conn, &requests, &commits, commit_window))
        .map_err(|e| StoreError::Backend(format!("cannot start the writer thread: {e}")))?;
    Ok(sender)
}

fn run(
    mut conn: Connection,
    requests: &mpsc::Receiver<Request>,
    commits: &AtomicU64,
    window: Duration,
) {
    // The batch is what queued up while the previous commit was syncing,
    // and, while commits follow each other closer than `window`, what comes
    // within `window` of the first request. A lone save is committed at once.
    let mut last_commit: Option<Instant> = None;
    while let Ok(first) = requests.recv() {
        let started = Instant::now();
        let busy = last_commit.is_some_and(|at| started.duration_since(at) < window);
        let deadline = started + window;
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match requests.try_recv() {
                Ok(request) => batch.push(request),
                Err(mpsc::TryRecvError::Empty) if busy => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    match requests.recv_timeout(left) {
                        Ok(request) => batch.push(request),
                        Err(_) => break,
                    }
                }
                Err(_) => break,
            }
        }
        handle(&mut conn, batch, commits);
        last_commit = Some(Instant::now());
    }
}

/// Commits the writes of `batch` together, answers them, then serves its
/// reads (after the commit, so that they never see uncommitted data).
pub(crate) fn handle(conn: &mut Connection, batch: Vec<Request>, commits: &AtomicU64) {
    let mut writes = Vec::new();
    let mut replies = Vec::new();
    let mut reads = Vec::new();
    for request in batch {
        match request {
            Request::Write(write, reply) => {
                writes.push(write);
                replies.push(reply);
            }
            read => reads.push(read),
        }
    }
    if !writes.is_empty() {
        let outcomes = commit(conn, &writes, commits);
        for (reply, outcome) in replies.into_iter().zip(outcomes) {
            // The caller may have stopped waiting; what was written stays.
            let _ = reply.send(outcome);
        }
    }
    for request in reads {
        match request {
            Request::Load(id, recent, reply) => {
                let _ = reply.send(read::load(conn, &id, recent));
            }
            Request::Versions(id, after, through, reply) => {
                let _ = reply.send(read::versions(conn, &id, after, through));
            }
            Request::Sessions(reply) => {
                let _ = reply.send(read::sessions(conn));
            }
            Request::Due(now, keep, reply) => {
                let _ = reply.send(read::due(conn, now, keep));
            }
            Request::Write(..) => {}
        }
    }
}

/// Applies every write in its own savepoint of one transaction and commits
/// once. Returns one outcome per write: a write refused as damaged is rolled
/// back alone; a failure of the transaction itself fails every write of it.
fn commit(conn: &Connection, writes: &[Write], commits: &AtomicU64) -> Vec<Result<(), StoreError>> {
    let fail_all = |outcomes: Vec<Result<(), StoreError>>, error: StoreError| {
        tracing::warn!(%error, writes = writes.len(), "collab-sqlite: a group commit failed");
        let mut failed: Vec<_> = outcomes
            .into_iter()
            .map(|outcome| outcome.and(Err(error.clone())))
            .collect();
        failed.resize(writes.len(), Err(error));
        failed
    };
    // IMMEDIATE takes the write lock now, so a busy database (another
    // process) fails here, before any work, rather than at COMMIT.
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        return fail_all(Vec::new(), backend(e));
    }
    let mut outcomes = Vec::with_capacity(writes.len());
    for write in writes {
        match apply_in_savepoint(conn, write) {
            Ok(outcome) => outcomes.push(outcome),
            Err(lost) => {
                rollback(conn);
                return fail_all(outcomes, lost);
            }
        }
    }
    match conn.execute_batch("COMMIT") {
        Ok(()) => {
            commits.fetch_add(1, Ordering::Relaxed);
            outcomes
        }
        Err(e) => {
            rollback(conn);
            fail_all(outcomes, backend(e))
        }
    }
}

/// Runs one write in a savepoint. The outer error means the enclosing
/// transaction is lost; the inner result is this write's own outcome.
fn apply_in_savepoint(
    conn: &Connection,
    write: &Write,
) -> Result<Result<(), StoreError>, StoreError> {
    conn.execute_batch("SAVEPOINT request").map_err(backend)?;
    let outcome = match write {
        Write::Save(changes) => save(conn, changes),
        Write::Delete(id) => delete(conn, id),
    };
    if conn.is_autocommit() {
        // SQLite rolls the whole transaction back by itself on some errors
        // (disk full, I/O error, out of memory). The earlier writes of the
        // batch are gone with it, and later ones must not run outside a
        // transaction.
        return Err(match outcome {
            Err(e) => e,
            Ok(()) => StoreError::Backend("the transaction was rolled back".to_owned()),
        });
    }
    let end = if outcome.is_ok() {
        "RELEASE request"
    } else {
        "ROLLBACK TO request; RELEASE request"
    };
    conn.execute_batch(end).map_err(backend)?;
    Ok(outcome)
}

fn rollback(conn: &Connection) {
    if !conn.is_autocommit() {
        if let Err(e) = conn.execute_batch("ROLLBACK") {
            tracing::warn!(error = %e, "collab-sqlite: rollback failed");
        }
    }
}

/// [`collab_core::apply_changes`] in SQL, with the same checks. Runs inside a
/// savepoint, so a refusal half-way leaves nothing behind.
fn save(conn: &Connection, changes: &SessionChanges) -> Result<(), StoreError> {
    let id = changes.id.as_str();
    let damaged = |reason: String| StoreError::Damaged {
        session: changes.id.clone(),
        reason,
    };

    match &changes.record {
        Some(record) => {
            // The reference does not check this; stored under another id, a
            // record would make `load` and `sessions` disagree about it.
            if record.id != changes.id {
                return Err(damaged(format!("the record is of session {}", record.id)));
            }
            let json = to_json(record).map_err(|e| damaged(format!("record: {e}")))?;
            let status = match serde_json::to_value(record.status) {
                Ok(serde_json::Value::String(status)) => status,
                _ => return Err(damaged("status does not serialise as a name".to_owned())),
            };
            conn.prepare_cached(
                "INSERT INTO sessions
                     (id, record, status, last_activity, ended_at, expires_after_secs,
                      document_rev, closes_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, ?7)
                 ON CONFLICT (id) DO UPDATE SET
                     record = excluded.record,
                     status = excluded.status,
                     last_activity = excluded.last_activity,
                     ended_at = excluded.ended_at,
                     expires_after_secs = excluded.expires_after_secs,
                     closes_at = excluded.closes_at",
            )
            .map_err(backend)?
            .execute(params![
                id,
                json,
                status,
                to_sql_u64(record.last_activity.0),
                record.ended_at.map(|t| to_sql_u64(t.0)),
                to_sql_u64(record.expires_after_secs),
                record.closes_at.map(|t| to_sql_u64(t.0)),
            ])
            .map_err(backend)?;
        }
        None => {
            let exists = conn
                .prepare_cached("SELECT 1 FROM sessions WHERE id = ?1")
                .map_err(backend)?
                .exists([id])
                .map_err(backend)?;
            if !exists {
                return Err(damaged("first write without a record".to_owned()));
            }
        }
    }

    append_numbered(
        conn,
        id,
        &changes.events,
        |event| event.seq.0,
        [
            "SELECT MAX(seq) FROM events WHERE session = ?1",
            "INSERT INTO events (session, seq, body) VALUES (?1, ?2, ?3)",
        ],
        &|reason| damaged(format!("events {reason}")),
    )?;
    append_versions(conn, id, &changes.versions, &|reason| {
        damaged(format!("versions {reason}"))
    })?;

    if !changes.messages.is_empty() {
        let mut upsert = conn
            .prepare_cached(
                "INSERT INTO messages (session, id, body) VALUES (?1, ?2, ?3)
                 ON CONFLICT (session, id) DO UPDATE SET body = excluded.body",
            )
            .map_err(backend)?;
        for message in &changes.messages {
            let key = key(message.id.0).map_err(|e| damaged(format!("message {e}")))?;
            let json = to_json(message).map_err(|e| damaged(format!("message {key}: {e}")))?;
            upsert.execute(params![id, key, json]).map_err(backend)?;
        }
    }

    match &changes.document {
        // An empty chunk would change nothing that `load` returns.
        Some(DocumentWrite::Append(bytes)) if !bytes.is_empty() => {
            conn.prepare_cached(
                "INSERT INTO doc_chunks (session, n, bytes)
                 VALUES (?1, (SELECT COALESCE(MAX(n), 0) + 1 FROM doc_chunks WHERE session = ?1), ?2)",
            )
            .map_err(backend)?
            .execute(params![id, bytes])
            .map_err(backend)?;
        }
        Some(DocumentWrite::Replace(bytes)) => {
            conn.prepare_cached("DELETE FROM doc_chunks WHERE session = ?1")
                .map_err(backend)?
                .execute([id])
                .map_err(backend)?;
            if !bytes.is_empty() {
                conn.prepare_cached(
                    "INSERT INTO doc_chunks (session, n, bytes) VALUES (?1, 1, ?2)",
                )
                .map_err(backend)?
                .execute(params![id, bytes])
                .map_err(backend)?;
            }
        }
        Some(DocumentWrite::Append(_)) | None => {}
    }
    if changes.document.is_some() {
        let last_rev: Option<i64> = conn
            .prepare_cached("SELECT MAX(last_rev) FROM version_runs WHERE session = ?1")
            .map_err(backend)?
            .query_row([id], |row| row.get(0))
            .map_err(backend)?;
        let document_rev = key(changes.document_rev).map_err(&damaged)?;
        if document_rev > last_rev.unwrap_or(0) {
            // The reference's words, so that both stores refuse alike.
            return Err(damaged(
                "the document covers versions that are not stored".to_owned(),
            ));
        }
        conn.prepare_cached("UPDATE sessions SET document_rev = ?2 WHERE id = ?1")
            .map_err(backend)?
            .execute(params![id, document_rev])
            .map_err(backend)?;
    }
    Ok(())
}

/// A write's versions join the last run while it is smaller than this;
/// past it they start a new one. Runs of a few KiB make a load read a few
/// rows, not one per write (a session that writes one keystroke at a time
/// would otherwise leave a row for each), and an append rewrites at most
/// this much.
const RUN_BYTES: usize = 8 * 1024;

/// Appends the versions not stored yet, to the last run or as a new one,
/// refusing them unless they carry the next revisions.
fn append_versions(
    conn: &Connection,
    session: &str,
    versions: &[collab_core::Version],
    damaged: &dyn Fn(String) -> StoreError,
) -> Result<(), StoreError> {
    if versions.is_empty() {
        return Ok(());
    }
    let last: Option<(i64, i64, i64)> = conn
        .prepare_cached(
            "SELECT first_rev, last_rev, length(bytes) FROM version_runs
             WHERE session = ?1 ORDER BY first_rev DESC LIMIT 1",
        )
        .map_err(backend)?
        .query_row([session], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .optional()
        .map_err(backend)?;
    let stored = last.map_or(Ok(0), |(_, max, _)| {
        u64::try_from(max).map_err(|_| damaged(format!("stored up to {max}, out of range")))
    })?;
    // Those stored already come from a write retried after a failure that
    // came after its commit (an I/O error on the way back, say).
    let new = &versions[versions.partition_point(|v| v.rev <= stored)..];
    let Some(newest) = new.last() else {
        return Ok(());
    };
    if new.iter().zip(stored + 1..).any(|(v, rev)| v.rev != rev) {
        // The reference's words, so that both stores refuse alike.
        return Err(damaged("out of sequence".to_owned()));
    }
    // Encoded runs join by concatenation (see `encode_versions`).
    let bytes = collab_core::document::encode_versions(new);
    let newest = key(newest.rev).map_err(damaged)?;
    match last {
        Some((first, _, len)) if usize::try_from(len).is_ok_and(|len| len < RUN_BYTES) => {
            // `||` joins the bytes as text (unchanged: the file is UTF-8);
            // the cast keeps the result a blob, which `load` insists on.
            conn.prepare_cached(
                "UPDATE version_runs SET bytes = CAST(bytes || ?3 AS BLOB), last_rev = ?4
                 WHERE session = ?1 AND first_rev = ?2",
            )
            .map_err(backend)?
            .execute(params![session, first, bytes, newest])
            .map_err(backend)?;
        }
        _ => {
            conn.prepare_cached(
                "INSERT INTO version_runs (session, first_rev, last_rev, bytes)
                 VALUES (?1, ?2, ?3, ?4)",
            )
            .map_err(backend)?
            .execute(params![
                session,
                key(stored + 1).map_err(damaged)?,
                newest,
                bytes
            ])
            .map_err(backend)?;
        }
    }
    Ok(())
}

/// Appends `items` (events) after the stored ones, refusing
/// any that does not carry the next number. `sql` is the query for the
/// stored maximum and the insert; `damaged` words a refusal.
fn append_numbered<T: Serialize>(
    conn: &Connection,
    session: &str,
    items: &[T],
    number_of: impl Fn(&T) -> u64,
    [max_sql, insert_sql]: [&str; 2],
    damaged: &dyn Fn(String) -> StoreError,
) -> Result<(), StoreError> {
    if items.is_empty() {
        return Ok(());
    }
    let max: Option<i64> = conn
        .prepare_cached(max_sql)
        .map_err(backend)?
        .query_row([session], |row| row.get(0))
        .map_err(backend)?;
    let first = match max {
        None => 1,
        Some(max) => u64::try_from(max)
            .ok()
            .and_then(|max| max.checked_add(1))
            .ok_or_else(|| damaged(format!("stored up to {max}, out of range")))?,
    };
    let mut insert = conn.prepare_cached(insert_sql).map_err(backend)?;
    let mut next = first;
    for item in items {
        let number = number_of(item);
        if number < first {
            // Stored already: a write retried after a failure that came after
            // its commit (an I/O error on the way back, say).
            continue;
        }
        if number != next {
            // The reference's words, so that both stores refuse alike.
            return Err(damaged("out of sequence".to_owned()));
        }
        let json = to_json(item).map_err(|e| damaged(format!("{number}: {e}")))?;
        let key = key(number).map_err(damaged)?;
        insert
            .execute(params![session, key, json])
            .map_err(backend)?;
        next += 1;
    }
    Ok(())
}

fn delete(conn: &Connection, id: &SessionId) -> Result<(), StoreError> {
    for sql in [
        "DELETE FROM sessions WHERE id = ?1",
        "DELETE FROM events WHERE session = ?1",
        "DELETE FROM messages WHERE session = ?1",
        "DELETE FROM versions WHERE session = ?1",
        "DELETE FROM version_runs WHERE session = ?1",
        "DELETE FROM doc_chunks WHERE session = ?1",
    ] {
        conn.prepare_cached(sql)
            .map_err(backend)?
            .execute([id.as_str()])
            .map_err(backend)?;
    }
    Ok(())
}

fn to_json<T: Serialize>(value: &T) -> Result<String, String> {
    serde_json::to_string(value).map_err(|e| format!("cannot be serialised: {e}"))
}

/// A sequence number, message id or revision as a key. SQLite's integers are
/// signed; numbers above `i64::MAX` would sort wrongly, so they are refused
/// (no session gets near them).
fn key(number: u64) -> Result<i64, String> {
    i64::try_from(number).map_err(|_| format!("{number} is too large to store"))
}

/// A timestamp or duration for a summary column, bit for bit: read back with
/// `read::from_sql_u64` it is the same `u64`, even `u64::MAX` (an expiry that
/// never comes). Only equality and small values matter in these columns.
pub(crate) fn to_sql_u64(value: u64) -> i64 {
    value as i64
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use collab_core::{SessionRecord, SessionStatus, Timestamp, UserId};

    use super::*;
    use crate::schema;

    fn first_write(n: u8) -> SessionChanges {
        let id = SessionId::from_bytes([n; 16]);
        let mut changes = SessionChanges::empty(id.clone());
        changes.record = Some(SessionRecord {
            id,
            title: "t".to_owned(),
            language: "rust".to_owned(),
            status: SessionStatus::Active,
            created_by: UserId::new("u"),
            created_at: Timestamp(1),
            updated_at: Timestamp(1),
            ended_at: None,
            last_activity: Timestamp(1),
            capacity: 2,
            expires_after_secs: 60,
            members: Vec::new(),
            banned: Vec::new(),
            next_participant: 1,
            initial_files: BTreeMap::new(),
            document_private: false,
            end_reason: None,
            starts_at: None,
            closes_at: None,
        });
        changes.document = Some(DocumentWrite::Append(vec![n]));
        changes
    }

    /// One batch, deterministically: the refused request is rolled back on
    /// its own, the others commit, all in one transaction.
    #[test]
    fn a_refused_request_does_not_spoil_its_batch() {
        let mut conn = schema::open_memory().unwrap();
        let commits = AtomicU64::new(0);
        let mut answers = Vec::new();
        let mut batch = Vec::new();
        let no_record = SessionChanges {
            document: Some(DocumentWrite::Append(vec![2])),
            ..SessionChanges::empty(SessionId::from_bytes([2; 16]))
        };
        for changes in [first_write(1), no_record, first_write(3)] {
            let (reply, answer) = oneshot::channel();
            batch.push(Request::Write(Write::Save(Box::new(changes)), reply));
            answers.push(answer);
        }
        let (reply, listing) = oneshot::channel();
        batch.push(Request::Sessions(reply));

        handle(&mut conn, batch, &commits);

        let outcomes: Vec<_> = answers
            .into_iter()
            .map(|mut a| a.try_recv().unwrap())
            .collect();
        assert_eq!(outcomes[0], Ok(()));
        assert!(matches!(outcomes[1], Err(StoreError::Damaged { .. })));
        assert_eq!(outcomes[2], Ok(()));
        assert_eq!(commits.load(Ordering::Relaxed), 1);
        // The read of the same batch sees the commit, and only what it kept.
        let mut listing = listing;
        assert_eq!(listing.try_recv().unwrap().unwrap().len(), 2);
        let chunks: i64 = conn
            .query_row("SELECT COUNT(*) FROM doc_chunks", [], |row| row.get(0))
            .unwrap();
        assert_eq!(chunks, 2);
    }
}
