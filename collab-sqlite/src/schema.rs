//! Opening a connection the way every connection of the store needs it, and
//! the schema with its version.

use std::path::Path;
use std::time::Duration;

use collab_core::StoreError;
use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use crate::backend;

/// The schema this build writes. Kept in `PRAGMA user_version` so a later
/// build can migrate a file written by this one, and this one can refuse a
/// file written by a later one instead of misreading it.
pub(crate) const SCHEMA_VERSION: i64 = 4;

/// How long a connection waits for another process's lock (a second server on
/// the same file, a backup tool, a checkpoint) before failing with
/// [`StoreError::Backend`]. Within one store the writer thread is the only
/// writer and WAL readers never block it, so this only matters across
/// processes.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Version 1. Events, messages and versions are keyed by (session, number)
/// and read in key order, so they are `WITHOUT ROWID` tables clustered on that
/// key: a load reads one contiguous range. Their bodies are mostly small. The
/// document chunks are blobs of any size, which SQLite stores better in an
/// ordinary rowid table. The summary columns of `sessions` repeat fields of
/// the record so that listing sessions need not parse every record (which
/// carries the initial files).
const SCHEMA_V1: &str = "
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY NOT NULL,
    record TEXT NOT NULL,
    status TEXT NOT NULL,
    last_activity INTEGER NOT NULL,
    ended_at INTEGER,
    expires_after_secs INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    session TEXT NOT NULL,
    seq INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (session, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS messages (
    session TEXT NOT NULL,
    id INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (session, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS versions (
    session TEXT NOT NULL,
    rev INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (session, rev)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS doc_chunks (
    session TEXT NOT NULL,
    n INTEGER NOT NULL,
    bytes BLOB NOT NULL,
    PRIMARY KEY (session, n)
);
";

/// Version 2: the revision the stored document holds. Edits of thin clients
/// are stored as versions at once and in the document's changes only now and
/// then; a load replays the versions after this revision onto the document.
/// NULL (a session written by version 1) means every version.
const SCHEMA_V2: &str = "
ALTER TABLE sessions ADD COLUMN document_rev INTEGER;
";

/// Version 3: versions in runs. Each write appends its new versions as one
/// blob in collab-core's compact encoding (`encode_versions`: some 20 bytes
/// a keystroke where a JSON row took over 100), so a load reads a few blobs
/// and decodes varints instead of parsing a row of JSON per edit. The rows
/// of the `versions` table are moved into runs by [`migrate`]; the table
/// stays, empty, for the rows of a session whose JSON could not be read
/// (its load reports it damaged, as version 2 would have).
const SCHEMA_V3: &str = "
CREATE TABLE IF NOT EXISTS version_runs (
    session TEXT NOT NULL,
    first_rev INTEGER NOT NULL,
    last_rev INTEGER NOT NULL,
    bytes BLOB NOT NULL,
    PRIMARY KEY (session, first_rev)
);
";

/// Version 4: when a scheduled session closes, as a column beside its idle
/// expiry, so that a sweep chooses due sessions from the columns alone
/// rather than reading every record. Filled from the records that hold it.
const SCHEMA_V4: &str = "
ALTER TABLE sessions ADD COLUMN closes_at INTEGER;
UPDATE sessions SET closes_at = json_extract(record, '$.closes_at')
    WHERE json_valid(record) AND json_type(record, '$.closes_at') = 'integer';
";

/// Opens the writer's connection to the file at `path`, creating the file and
/// the schema if needed.
pub(crate) fn open_writer(path: &Path) -> Result<Connection, StoreError> {
    let mut conn = Connection::open(path).map_err(backend)?;
    configure(&conn)?;
    // Some file systems (network mounts, some containers) cannot give WAL its
    // shared memory; SQLite then stays in another mode. Say so instead of
    // silently losing concurrent reads.
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
        .map_err(backend)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Backend(format!(
            "{}: cannot use WAL journal mode (SQLite chose {mode:?})",
            path.display()
        )));
    }
    migrate(&mut conn)?;
    Ok(conn)
}

/// Opens a private in-memory database with the schema.
pub(crate) fn open_memory() -> Result<Connection, StoreError> {
    let mut conn = Connection::open_in_memory().map_err(backend)?;
    configure(&conn)?;
    migrate(&mut conn)?;
    Ok(conn)
}

/// Opens a connection for reads to the file the writer already opened.
pub(crate) fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    // Read-write flags with `query_only` rather than a read-only open: a
    // read-only connection cannot create the WAL index if it happens to be
    // missing, and would fail where this one just works.
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(backend)?;
    configure(&conn)?;
    conn.pragma_update(None, "query_only", true)
        .map_err(backend)?;
    Ok(conn)
}

/// Settings every connection needs; they are per connection, not stored.
fn configure(conn: &Connection) -> Result<(), StoreError> {
    conn.busy_timeout(BUSY_TIMEOUT).map_err(backend)?;
    // FULL makes every commit sync the WAL, so a committed transaction
    // survives power loss, not only a crash of this process (NORMAL, the
    // usual WAL setting, may lose the last commits on power loss).
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(backend)?;
    // On macOS fsync does not flush the drive's cache; F_FULLFSYNC does.
    // Elsewhere these are no-ops.
    conn.pragma_update(None, "fullfsync", true)
        .map_err(backend)?;
    conn.pragma_update(None, "checkpoint_fullfsync", true)
        .map_err(backend)?;
    Ok(())
}

/// Moves every session's JSON version rows into one run. Every process
/// using the file must run a build of schema 3 or later: one still on
/// schema 2 would keep writing JSON rows, which this build reads as damage. A session whose
/// rows do not parse, or are not numbered 1, 2, 3…, keeps them as they
/// are, and its load says it is damaged.
fn versions_into_runs(tx: &rusqlite::Transaction<'_>) -> Result<(), StoreError> {
    let sessions: Vec<String> = tx
        .prepare("SELECT DISTINCT session FROM versions")
        .map_err(backend)?
        .query_map([], |row| row.get(0))
        .map_err(backend)?
        .collect::<Result<_, _>>()
        .map_err(backend)?;
    for session in sessions {
        let bodies: Vec<(i64, rusqlite::types::Value)> = tx
            .prepare_cached("SELECT rev, body FROM versions WHERE session = ?1 ORDER BY rev")
            .map_err(backend)?
            .query_map([&session], |row| Ok((row.get(0)?, row.get(1)?)))
            .map_err(backend)?
            .collect::<Result<_, _>>()
            .map_err(backend)?;
        let versions: Option<Vec<collab_core::Version>> = bodies
            .iter()
            .enumerate()
            .map(|(i, (rev, body))| {
                let v: collab_core::Version = crate::read::parse(body).ok()?;
                (v.rev == i as u64 + 1 && *rev == i as i64 + 1).then_some(v)
            })
            .collect();
        let Some(versions) = versions.filter(|v| !v.is_empty()) else {
            tracing::warn!(
                session,
                "stored versions do not read back; left as they are"
            );
            continue;
        };
        tx.prepare_cached(
            "INSERT INTO version_runs (session, first_rev, last_rev, bytes) VALUES (?1, 1, ?2, ?3)",
        )
        .map_err(backend)?
        .execute(rusqlite::params![
            session,
            versions.len() as i64,
            collab_core::document::encode_versions(&versions)
        ])
        .map_err(backend)?;
        tx.prepare_cached("DELETE FROM versions WHERE session = ?1")
            .map_err(backend)?
            .execute([&session])
            .map_err(backend)?;
    }
    Ok(())
}

/// Brings the schema to [`SCHEMA_VERSION`], or refuses a newer one.
fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    // IMMEDIATE: two processes opening a new file at once must not both
    // create the schema.
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(backend)?;
    let version: i64 = tx
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(backend)?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::Backend(format!(
            "the database has schema version {version}, newer than version {SCHEMA_VERSION} \
             that this build of collab-sqlite knows; use a newer build"
        )));
    }
    if version < 0 {
        return Err(StoreError::Backend(format!(
            "the database has schema version {version}: not a collab-sqlite database"
        )));
    }
    // Version runs are joined with `||`, which joins blobs as text in the
    // database's encoding: in UTF-16 it would drop an odd byte. A file
    // another tool created as UTF-16 is refused rather than damaged.
    let encoding: String = tx
        .query_row("PRAGMA encoding", [], |row| row.get(0))
        .map_err(backend)?;
    if !encoding.eq_ignore_ascii_case("UTF-8") {
        return Err(StoreError::Backend(format!(
            "the database's text encoding is {encoding}; collab-sqlite needs UTF-8"
        )));
    }
    if version < SCHEMA_VERSION {
        // Version 0 is a new file. One step each, in order.
        if version < 1 {
            tx.execute_batch(SCHEMA_V1).map_err(backend)?;
        }
        if version < 2 {
            tx.execute_batch(SCHEMA_V2).map_err(backend)?;
        }
        if version < 3 {
            tx.execute_batch(SCHEMA_V3).map_err(backend)?;
            versions_into_runs(&tx)?;
        }
        if version < 4 {
            tx.execute_batch(SCHEMA_V4).map_err(backend)?;
        }
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(backend)?;
    }
    tx.commit().map_err(backend)
}
