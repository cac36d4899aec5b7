//! Reading sessions back. Every stored value is checked as it is read: a row
//! that does not parse, or whose body disagrees with its key, makes its
//! session [`StoreError::Damaged`] and leaves every other session readable.

use collab_core::{
    ChatMessage, Event, SessionId, SessionRecord, SessionStatus, SessionSummary, StoreError,
    StoredSession, Timestamp, Version,
};
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension};
use serde::de::DeserializeOwned;

use crate::backend;

/// Everything stored of `id`, read in one transaction so that a load running
/// beside a commit sees all of that commit or none of it; with `recent`,
/// only the versions after the stored document (`Store::load_recent`).
pub(crate) fn load(
    conn: &mut Connection,
    id: &SessionId,
    recent: bool,
) -> Result<Option<StoredSession>, StoreError> {
    let damaged = |reason: String| StoreError::Damaged {
        session: id.clone(),
        reason,
    };
    let tx = conn.transaction().map_err(backend)?;
    let key = id.as_str();

    let row: Option<(Value, Value)> = tx
        .prepare_cached("SELECT record, document_rev FROM sessions WHERE id = ?1")
        .map_err(backend)?
        .query_row([key], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()
        .map_err(backend)?;
    let Some((record, document_rev)) = row else {
        return Ok(None);
    };
    let record: SessionRecord = parse(&record).map_err(|e| damaged(format!("record: {e}")))?;
    if record.id != *id {
        return Err(damaged(format!("record is of session {}", record.id)));
    }

    let events: Vec<Event> = numbered_rows(
        &tx,
        "SELECT seq, body FROM events WHERE session = ?1 ORDER BY seq",
        key,
        |event: &Event| event.seq.0,
    )
    .map_err(|e| e.into_store_error("event", &damaged))?;
    let messages: Vec<ChatMessage> = numbered_rows(
        &tx,
        "SELECT id, body FROM messages WHERE session = ?1 ORDER BY id",
        key,
        |message: &ChatMessage| message.id.0,
    )
    .map_err(|e| e.into_store_error("message", &damaged))?;
    // Schema 1 left the revision out: its document holds every version.
    let after = match document_rev {
        Value::Integer(rev) if recent => u64::try_from(rev).unwrap_or(0),
        _ => 0,
    };
    let mut versions = version_runs(&tx, key, after, u64::MAX, &damaged)?;

    let mut document = Vec::new();
    {
        let mut stmt = tx
            .prepare_cached("SELECT n, bytes FROM doc_chunks WHERE session = ?1 ORDER BY n")
            .map_err(backend)?;
        let mut rows = stmt.query([key]).map_err(backend)?;
        while let Some(row) = rows.next().map_err(backend)? {
            match row.get::<_, Value>(1).map_err(backend)? {
                Value::Blob(bytes) => document.extend_from_slice(&bytes),
                other => {
                    let n = row.get::<_, Value>(0).map_err(backend)?;
                    return Err(damaged(format!(
                        "document chunk {n:?} is {}, not bytes",
                        kind(&other)
                    )));
                }
            }
        }
    }
    // Only read; ending it either way releases the snapshot.
    tx.commit().map_err(backend)?;

    let document_rev = match document_rev {
        // Written by schema version 1, which stored the document with every
        // version.
        Value::Null => {
            let all = versions.len() as u64;
            if recent {
                versions.clear();
            }
            all
        }
        Value::Integer(rev) => u64::try_from(rev)
            .map_err(|_| damaged(format!("the document's revision {rev} is negative")))?,
        other => {
            return Err(damaged(format!(
                "the document's revision is {}, not a number",
                kind(&other)
            )))
        }
    };
    Ok(Some(StoredSession {
        record,
        events,
        messages,
        versions,
        document,
        document_rev,
    }))
}

/// The versions `after + 1 ..= through` of `id`, read in one transaction.
pub(crate) fn versions(
    conn: &mut Connection,
    id: &SessionId,
    after: u64,
    through: u64,
) -> Result<Vec<Version>, StoreError> {
    let damaged = |reason: String| StoreError::Damaged {
        session: id.clone(),
        reason,
    };
    let tx = conn.transaction().map_err(backend)?;
    let versions = version_runs(&tx, id.as_str(), after, through, &damaged)?;
    tx.commit().map_err(backend)?;
    Ok(versions)
}

/// The versions `after + 1 ..= through` of `session`, from the runs that
/// hold them. Rows left in the `versions` table are those a migration could
/// not read: the session is damaged.
fn version_runs(
    conn: &Connection,
    session: &str,
    after: u64,
    through: u64,
    damaged: &impl Fn(String) -> StoreError,
) -> Result<Vec<Version>, StoreError> {
    let unread: bool = conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM versions WHERE session = ?1)")
        .map_err(backend)?
        .query_row([session], |row| row.get(0))
        .map_err(backend)?;
    if unread {
        return Err(damaged(
            "versions stored as JSON rows that could not be read".to_owned(),
        ));
    }
    let bound = |rev: u64| i64::try_from(rev).unwrap_or(i64::MAX);
    let mut stmt = conn
        .prepare_cached(
            "SELECT first_rev, last_rev, bytes FROM version_runs \
             WHERE session = ?1 AND last_rev > ?2 AND first_rev <= ?3 ORDER BY first_rev",
        )
        .map_err(backend)?;
    let mut rows = stmt
        .query(rusqlite::params![session, bound(after), bound(through)])
        .map_err(backend)?;
    let mut versions = Vec::new();
    // The revision the next run must start at, once the first is read.
    let mut next: Option<i64> = None;
    while let Some(row) = rows.next().map_err(backend)? {
        let (first, last) = match (
            row.get::<_, Value>(0).map_err(backend)?,
            row.get::<_, Value>(1).map_err(backend)?,
        ) {
            (Value::Integer(first), Value::Integer(last)) => (first, last),
            (first, _) => {
                return Err(damaged(format!(
                    "version run at {first:?}: its revisions are not numbers"
                )))
            }
        };
        let Value::Blob(bytes) = row.get::<_, Value>(2).map_err(backend)? else {
            return Err(damaged(format!("version run {first}: not bytes")));
        };
        // The first run read must hold `after + 1`; each later one follows
        // the one before.
        let fits = match next {
            None => first >= 1 && first <= bound(after) + 1,
            Some(next) => first == next,
        };
        if !fits {
            return Err(damaged(format!(
                "version run {first} where {} belongs",
                next.unwrap_or(bound(after) + 1)
            )));
        }
        let run = collab_core::document::decode_versions(&bytes, first as u64)
            .map_err(|e| damaged(format!("version run {first}: {e}")))?;
        if last.checked_sub(first).and_then(|n| n.checked_add(1)) != Some(run.len() as i64) {
            return Err(damaged(format!(
                "version run {first}..={last} holds {} versions",
                run.len()
            )));
        }
        next = Some(last + 1);
        versions.extend(
            run.into_iter()
                .filter(|v| v.rev > after && v.rev <= through),
        );
    }
    Ok(versions)
}

/// Why reading a table of numbered bodies failed.
enum RowsError {
    Backend(rusqlite::Error),
    Damaged(String),
}

impl RowsError {
    fn into_store_error(self, what: &str, damaged: &impl Fn(String) -> StoreError) -> StoreError {
        match self {
            Self::Backend(e) => backend(e),
            Self::Damaged(reason) => damaged(format!("{what} {reason}")),
        }
    }
}

/// Reads `(number, JSON body)` rows in order, checking that each body parses
/// and carries the number it is stored under.
fn numbered_rows<T: DeserializeOwned>(
    conn: &Connection,
    sql: &str,
    session: &str,
    number_of: impl Fn(&T) -> u64,
) -> Result<Vec<T>, RowsError> {
    let mut stmt = conn.prepare_cached(sql).map_err(RowsError::Backend)?;
    let mut rows = stmt.query([session]).map_err(RowsError::Backend)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(RowsError::Backend)? {
        let number = match row.get::<_, Value>(0).map_err(RowsError::Backend)? {
            Value::Integer(n) => n,
            other => return Err(RowsError::Damaged(format!("key is {}", kind(&other)))),
        };
        let body = row.get::<_, Value>(1).map_err(RowsError::Backend)?;
        let item: T = parse(&body).map_err(|e| RowsError::Damaged(format!("{number}: {e}")))?;
        if u64::try_from(number).ok() != Some(number_of(&item)) {
            return Err(RowsError::Damaged(format!(
                "{number}: stored body is numbered {}",
                number_of(&item)
            )));
        }
        out.push(item);
    }
    Ok(out)
}

/// Every stored session, briefly. A row whose summary columns cannot be read
/// is left out with a warning rather than failing the whole list: one bad
/// session must not stop the expiry of all the others, and its `load` reports
/// it as damaged.
pub(crate) fn sessions(conn: &mut Connection) -> Result<Vec<SessionSummary>, StoreError> {
    summaries(
        conn,
        "SELECT id, status, last_activity, ended_at, expires_after_secs, closes_at \
         FROM sessions",
        [],
    )
}

/// The sessions a sweep at `now` has work for, chosen by SQLite from the
/// summary columns: open ones idle past their expiry (scheduled ones: past
/// the time they close), ended ones ended more than `keep_ended_ms` ago:
/// [`SessionSummary::is_due`], in SQL. Columns
/// holding numbers past `i64::MAX` read negative here (see
/// `write::to_sql_u64`); they are far-future times and never-expiring
/// sessions, never due.
pub(crate) fn due(
    conn: &mut Connection,
    now: i64,
    keep_ended_ms: i64,
) -> Result<Vec<SessionSummary>, StoreError> {
    summaries(
        conn,
        "SELECT id, status, last_activity, ended_at, expires_after_secs, closes_at \
         FROM sessions \
         WHERE (ended_at IS NOT NULL AND ended_at >= 0 AND ended_at <= ?1 - ?2) \
            OR (ended_at IS NULL AND closes_at IS NOT NULL AND closes_at >= 0 \
                AND closes_at <= ?1) \
            OR (ended_at IS NULL AND closes_at IS NULL \
                AND last_activity >= 0 AND expires_after_secs >= 0 \
                AND last_activity <= ?1 \
                AND expires_after_secs <= (?1 - last_activity) / 1000)",
        [now, keep_ended_ms],
    )
}

fn summaries(
    conn: &mut Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<SessionSummary>, StoreError> {
    let tx = conn.transaction().map_err(backend)?;
    let mut out = Vec::new();
    {
        let mut stmt = tx.prepare_cached(sql).map_err(backend)?;
        let mut rows = stmt.query(params).map_err(backend)?;
        while let Some(row) = rows.next().map_err(backend)? {
            let values = (0..6)
                .map(|i| row.get::<_, Value>(i))
                .collect::<Result<Vec<_>, _>>()
                .map_err(backend)?;
            match summary(values) {
                Ok(summary) => out.push(summary),
                Err(reason) => {
                    tracing::warn!(%reason, "collab-sqlite: a stored session is damaged; it is not listed")
                }
            }
        }
    }
    tx.commit().map_err(backend)?;
    Ok(out)
}

/// One row of `sessions` as a summary.
fn summary(values: Vec<Value>) -> Result<SessionSummary, String> {
    let [id, status, last_activity, ended_at, expires_after_secs, closes_at]: [Value; 6] = values
        .try_into()
        .map_err(|_| "wrong number of columns".to_owned())?;
    let id = match id {
        Value::Text(id) => SessionId::parse(&id).map_err(|e| format!("session {id:?}: {e}"))?,
        other => return Err(format!("a session id is {}", kind(&other))),
    };
    let status: SessionStatus = match status {
        Value::Text(status) => serde_json::from_value(serde_json::Value::String(status))
            .map_err(|e| format!("session {id}: status: {e}"))?,
        other => return Err(format!("session {id}: status is {}", kind(&other))),
    };
    let int = |value: Value, what: &str| match value {
        Value::Integer(n) => Ok(from_sql_u64(n)),
        other => Err(format!("session {id}: {what} is {}", kind(&other))),
    };
    let ended_at = match ended_at {
        Value::Null => None,
        other => Some(Timestamp(int(other, "ended_at")?)),
    };
    let closes_at = match closes_at {
        Value::Null => None,
        other => Some(Timestamp(int(other, "closes_at")?)),
    };
    Ok(SessionSummary {
        status,
        last_activity: Timestamp(int(last_activity, "last_activity")?),
        ended_at,
        expires_after_secs: int(expires_after_secs, "expires_after_secs")?,
        closes_at,
        id,
    })
}

/// The JSON in a TEXT column (or a BLOB holding UTF-8, which other tools may
/// write), parsed.
pub(crate) fn parse<T: DeserializeOwned>(value: &Value) -> Result<T, String> {
    let json = match value {
        Value::Text(text) => text.as_str(),
        Value::Blob(bytes) => std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8: {e}"))?,
        other => return Err(format!("is {}, not JSON", kind(other))),
    };
    serde_json::from_str(json).map_err(|e| e.to_string())
}

/// A stored value's type, for error messages.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "NULL",
        Value::Integer(_) => "an integer",
        Value::Real(_) => "a real number",
        Value::Text(_) => "text",
        Value::Blob(_) => "a blob",
    }
}

/// The inverse of [`crate::write::to_sql_u64`]: the same 64 bits back.
fn from_sql_u64(n: i64) -> u64 {
    n as u64
}
