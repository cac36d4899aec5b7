//! The store: a session's parts under keys of its own, each save one Lua
//! script that checks the fence and the sequences before it writes.

use async_trait::async_trait;
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};

use collab_core::store::{
    DocumentWrite, SessionChanges, SessionSummary, StoreError, StoredSession,
};
use collab_core::{
    ChatMessage, Event, SessionId, SessionRecord, SessionStatus, Timestamp, Version,
};
use collab_edges::Store;

use crate::{open, ConnectError};

/// A [`Store`] on Redis that every process of a cluster shares. See the
/// [crate docs](crate) for the Redis settings it needs.
///
/// Per session it keeps the record (JSON), events (a list of JSON, appended
/// to), versions (a list appended to, each in collab-core's compact
/// encoding; older builds' JSON reads too), chat messages (a hash by id), the document's chunks
/// (a list of automerge saves, replaced on compaction) and small counters;
/// the fence lives apart from them and survives a delete, so a former
/// owner cannot recreate a session that was deleted after a takeover.
#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    prefix: String,
    save: redis::Script,
    fence: redis::Script,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// What `sessions` lists, kept beside the record so that listing does not
/// read every record.
#[derive(Serialize, Deserialize)]
struct Summary {
    status: SessionStatus,
    last_activity: Timestamp,
    ended_at: Option<Timestamp>,
    expires_after_secs: u64,
    /// A scheduled session's closing time (absent in summaries written
    /// before it was kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    closes_at: Option<Timestamp>,
}

/// One save. Fails with `{'fenced', epoch}` or `{'damaged', reason}` and
/// writes nothing then; `{'ok'}` once everything is written.
///
/// KEYS: record, events, versions, messages, document, counters, fence,
/// the session index. ARGV: epoch, session id, record JSON or '', summary
/// JSON or '', then three lists each as a count followed by that many
/// (number, body) pairs — events by seq, versions by rev, messages by id —
/// then the document write ('none', 'append' or 'replace'), its bytes, and
/// the revision it holds.
const SAVE: &str = r"
local fence = tonumber(redis.call('GET', KEYS[7]) or '0')
if tonumber(ARGV[1]) < fence then return {'fenced', tostring(fence)} end
local record = ARGV[3]
if record == '' and redis.call('EXISTS', KEYS[1]) == 0 then
  return {'damaged', 'first write without a record'}
end
local i = 5
local function numbered(stored, what)
  local n = tonumber(ARGV[i]); i = i + 1
  local new, last, last_text = {}, stored, nil
  for _ = 1, n do
    local number, body = tonumber(ARGV[i]), ARGV[i + 1]
    -- Numbers already stored are skipped: a retried write goes through.
    if number > stored then
      if number ~= last + 1 then return nil, what .. ' out of sequence' end
      last, last_text = number, ARGV[i]
      new[#new + 1] = body
    end
    i = i + 2
  end
  return new, last, last_text
end
local seq = tonumber(redis.call('HGET', KEYS[6], 'seq') or '0')
local rev = tonumber(redis.call('HGET', KEYS[6], 'rev') or '0')
local events, last_seq, seq_text = numbered(seq, 'events')
if not events then return {'damaged', last_seq} end
local versions, last_rev, rev_text = numbered(rev, 'versions')
if not versions then return {'damaged', last_rev} end
local n = tonumber(ARGV[i]); i = i + 1
local messages = {}
for _ = 1, n do
  messages[#messages + 1] = {ARGV[i], ARGV[i + 1]}; i = i + 2
end
local mode, bytes, document_rev = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
if mode ~= 'none' and document_rev > last_rev then
  return {'damaged', 'the document covers versions that are not stored'}
end
if record ~= '' then
  redis.call('SET', KEYS[1], record)
  redis.call('HSET', KEYS[8], ARGV[2], ARGV[4])
end
local function append(key, items)
  for from = 1, #items, 1000 do
    redis.call('RPUSH', key, unpack(items, from, math.min(from + 999, #items)))
  end
end
append(KEYS[2], events)
append(KEYS[3], versions)
for _, m in ipairs(messages) do redis.call('HSET', KEYS[4], m[1], m[2]) end
if mode == 'replace' then redis.call('DEL', KEYS[5]) end
if mode ~= 'none' then
  redis.call('RPUSH', KEYS[5], bytes)
  redis.call('HSET', KEYS[6], 'document_rev', ARGV[i + 2])
end
-- Numbers are written as they came: Lua would print large ones with an exponent.
if seq_text then redis.call('HSET', KEYS[6], 'seq', seq_text) end
if rev_text then redis.call('HSET', KEYS[6], 'rev', rev_text) end
return {'ok'}
";

/// Raises a session's fence to ARGV[1] (never lowers it).
const FENCE: &str = r"
local fence = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > fence then redis.call('SET', KEYS[1], ARGV[1]) end
return 1
";

impl RedisStore {
    /// Everything stored of `id` but the versions up to `after`, and
    /// `after`: one transaction, the parts as one save left them.
    async fn load_after(
        &self,
        id: &SessionId,
        after: u64,
    ) -> Result<Option<(StoredSession, u64)>, StoreError> {
        let [record, events, versions, messages, document, counters, ..] = self.keys(id);
        type Parts = (
            Option<String>,
            Vec<String>,
            Vec<Vec<u8>>,
            Vec<(u64, String)>,
            Vec<Vec<u8>>,
            Option<u64>,
        );
        // One transaction: the parts as one save left them.
        let (record, events, versions, messages, chunks, document_rev): Parts = redis::pipe()
            .atomic()
            .get(record)
            .lrange(events, 0, -1)
            .lrange(versions, isize::try_from(after).unwrap_or(isize::MAX), -1)
            .hgetall(messages)
            .lrange(document, 0, -1)
            .hget(counters, "document_rev")
            .query_async(&mut self.conn.clone())
            .await
            .map_err(backend)?;
        let Some(record) = record else {
            return Ok(None);
        };
        let damaged = |what: &str, e: serde_json::Error| StoreError::Damaged {
            session: id.clone(),
            reason: format!("{what}: {e}"),
        };
        let record: SessionRecord =
            serde_json::from_str(&record).map_err(|e| damaged("record", e))?;
        if record.id != *id {
            return Err(StoreError::Damaged {
                session: id.clone(),
                reason: format!("record is of session {}", record.id),
            });
        }
        let events = events
            .iter()
            .map(|e| serde_json::from_str::<Event>(e).map_err(|e| damaged("event", e)))
            .collect::<Result<Vec<_>, _>>()?;
        let versions = versions
            .iter()
            .enumerate()
            .map(|(i, body)| {
                let rev = after + i as u64 + 1;
                read_version(body, rev).map_err(|reason| StoreError::Damaged {
                    session: id.clone(),
                    reason: format!("version {rev}: {reason}"),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut messages = messages
            .iter()
            .map(|(_, m)| serde_json::from_str::<ChatMessage>(m).map_err(|e| damaged("message", e)))
            .collect::<Result<Vec<_>, _>>()?;
        messages.sort_by_key(|m| m.id);
        let stored = StoredSession {
            record,
            events,
            messages,
            versions,
            document: chunks.concat(),
            document_rev: document_rev.unwrap_or(0),
        };
        Ok(Some((stored, after)))
    }

    /// Connects to the Redis at `url` (`redis://host:port/db`), keeping
    /// every key under `prefix`. Logs a warning when Redis is not set up to
    /// keep acknowledged writes (see the [crate docs](crate)).
    ///
    /// # Errors
    /// [`ConnectError`] when the URL is wrong or Redis cannot be reached.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, ConnectError> {
        let (_, mut conn) = open(url).await?;
        let settings: Vec<String> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("append*")
            .query_async(&mut conn)
            .await
            .unwrap_or_default();
        let setting = |name: &str| {
            settings
                .chunks(2)
                .find(|kv| kv[0] == name)
                .and_then(|kv| kv.get(1).cloned())
        };
        if setting("appendonly").as_deref() != Some("yes")
            || setting("appendfsync").as_deref() != Some("always")
        {
            tracing::warn!(
                appendonly = ?setting("appendonly"),
                appendfsync = ?setting("appendfsync"),
                "Redis may lose acknowledged writes when it dies: \
                 run it with `appendonly yes` and `appendfsync always`"
            );
        }
        Ok(Self {
            conn,
            prefix: prefix.to_owned(),
            save: redis::Script::new(SAVE),
            fence: redis::Script::new(FENCE),
        })
    }

    /// A secret every process of the cluster shares, kept in Redis under
    /// `PREFIX:secret:NAME`: the first process to ask stores `fresh` (random
    /// bytes it made), and everyone gets what is stored. For keys that must
    /// be the same on every node, such as the key guest tokens are signed
    /// with.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when Redis cannot be reached.
    pub async fn shared_secret(&self, name: &str, fresh: &[u8]) -> Result<Vec<u8>, StoreError> {
        let key = format!("{}:secret:{name}", self.prefix);
        // The SET's reply is ignored: the pipeline answers the GET alone.
        let (stored,): (Vec<u8>,) = redis::pipe()
            .atomic()
            .cmd("SET")
            .arg(&key)
            .arg(fresh)
            .arg("NX")
            .ignore()
            .get(&key)
            .query_async(&mut self.conn.clone())
            .await
            .map_err(backend)?;
        Ok(stored)
    }

    /// The key guest tokens are signed with, the same on every process of
    /// the cluster ([`RedisStore::shared_secret`] under `guest-key`), for
    /// `GuestAuthenticator::new`: a guest stays who they are whichever
    /// process they reach.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when Redis cannot be reached, there is no
    /// random source, or the stored key is not 32 bytes (delete it to make
    /// a new one).
    pub async fn shared_guest_key(&self) -> Result<[u8; 32], StoreError> {
        let mut fresh = [0u8; 32];
        getrandom::fill(&mut fresh).map_err(|e| StoreError::Backend(e.to_string()))?;
        let stored = self.shared_secret("guest-key", &fresh).await?;
        stored.try_into().map_err(|_| {
            StoreError::Backend(format!(
                "the guest key in Redis ({}:secret:guest-key) is not 32 bytes; delete it to make a new one",
                self.prefix
            ))
        })
    }

    fn key(&self, id: &SessionId, part: &str) -> String {
        format!("{}:{{{}}}:{part}", self.prefix, id.as_str())
    }

    fn index(&self) -> String {
        format!("{}:sessions", self.prefix)
    }

    /// The session's keys in the order the save script takes them.
    fn keys(&self, id: &SessionId) -> [String; 8] {
        [
            self.key(id, "record"),
            self.key(id, "events"),
            self.key(id, "versions"),
            self.key(id, "messages"),
            self.key(id, "document"),
            self.key(id, "counters"),
            self.key(id, "fence"),
            self.index(),
        ]
    }
}

fn backend(e: redis::RedisError) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn json<T: Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Backend(e.to_string()))
}

#[async_trait]
impl Store for RedisStore {
    async fn save(&self, changes: &SessionChanges) -> Result<(), StoreError> {
        let id = &changes.id;
        let damaged = |reason: String| StoreError::Damaged {
            session: id.clone(),
            reason,
        };
        if changes.record.as_ref().is_some_and(|r| r.id != *id) {
            return Err(damaged("the record is of another session".into()));
        }
        let mut call = self.save.prepare_invoke();
        for key in self.keys(id) {
            call.key(key);
        }
        call.arg(changes.epoch).arg(id.as_str());
        match &changes.record {
            Some(record) => {
                let summary = Summary {
                    status: record.status,
                    last_activity: record.last_activity,
                    ended_at: record.ended_at,
                    expires_after_secs: record.expires_after_secs,
                    closes_at: record.closes_at,
                };
                call.arg(json(record)?).arg(json(&summary)?);
            }
            None => {
                call.arg("").arg("");
            }
        }
        call.arg(changes.events.len());
        for event in &changes.events {
            call.arg(event.seq.0).arg(json(event)?);
        }
        call.arg(changes.versions.len());
        for version in &changes.versions {
            call.arg(version.rev).arg(version_body(version));
        }
        call.arg(changes.messages.len());
        for message in &changes.messages {
            call.arg(message.id.0).arg(json(message)?);
        }
        match &changes.document {
            None => call.arg("none").arg(""),
            Some(DocumentWrite::Append(bytes)) => call.arg("append").arg(bytes.as_slice()),
            Some(DocumentWrite::Replace(bytes)) => call.arg("replace").arg(bytes.as_slice()),
        };
        call.arg(changes.document_rev);
        let answer: Vec<String> = call
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(backend)?;
        match answer.first().map(String::as_str) {
            Some("ok") => Ok(()),
            Some("fenced") => Err(StoreError::Fenced {
                session: id.clone(),
                epoch: changes.epoch,
                current: answer.get(1).and_then(|e| e.parse().ok()).unwrap_or(0),
            }),
            Some("damaged") => Err(damaged(answer.get(1).cloned().unwrap_or_default())),
            _ => Err(StoreError::Backend(format!("unexpected answer {answer:?}"))),
        }
    }

    async fn load(&self, id: &SessionId) -> Result<Option<StoredSession>, StoreError> {
        self.load_after(id, 0)
            .await
            .map(|loaded| loaded.map(|(s, _)| s))
    }

    async fn load_recent(&self, id: &SessionId) -> Result<Option<StoredSession>, StoreError> {
        // The document's revision decides which versions to read, and a
        // save may move it between the two reads. Moved forward, the
        // versions read still cover it; moved back (the session deleted and
        // created again meanwhile), read again.
        let counters = self.key(id, "counters");
        for _ in 0..3 {
            let guess: Option<u64> = redis::cmd("HGET")
                .arg(&counters)
                .arg("document_rev")
                .query_async(&mut self.conn.clone())
                .await
                .map_err(backend)?;
            let guess = guess.unwrap_or(0);
            let Some((mut stored, first)) = self.load_after(id, guess).await? else {
                return Ok(None);
            };
            if stored.document_rev >= first {
                let document_rev = stored.document_rev;
                stored.versions.retain(|v| v.rev > document_rev);
                return Ok(Some(stored));
            }
        }
        self.load(id).await
    }

    async fn versions(
        &self,
        id: &SessionId,
        after: collab_core::Revision,
        through: collab_core::Revision,
    ) -> Result<Vec<Version>, StoreError> {
        if through <= after {
            return Ok(Vec::new());
        }
        let clamp = |rev: u64| isize::try_from(rev).unwrap_or(isize::MAX);
        let bodies: Vec<Vec<u8>> = redis::cmd("LRANGE")
            .arg(self.key(id, "versions"))
            .arg(clamp(after))
            .arg(clamp(through - 1))
            .query_async(&mut self.conn.clone())
            .await
            .map_err(backend)?;
        bodies
            .iter()
            .zip(after + 1..)
            .map(|(body, rev)| {
                read_version(body, rev).map_err(|reason| StoreError::Damaged {
                    session: id.clone(),
                    reason: format!("version {rev}: {reason}"),
                })
            })
            .collect()
    }

    async fn sessions(&self) -> Result<Vec<SessionSummary>, StoreError> {
        let all: Vec<(String, String)> = redis::cmd("HGETALL")
            .arg(self.index())
            .query_async(&mut self.conn.clone())
            .await
            .map_err(backend)?;
        let mut summaries = Vec::with_capacity(all.len());
        for (id, summary) in all {
            let Ok(id) = SessionId::parse(&id) else {
                tracing::warn!(id, "a session index entry that is not a session id");
                continue;
            };
            let summary: Summary =
                serde_json::from_str(&summary).map_err(|e| StoreError::Damaged {
                    session: id.clone(),
                    reason: format!("summary: {e}"),
                })?;
            summaries.push(SessionSummary {
                id,
                status: summary.status,
                last_activity: summary.last_activity,
                ended_at: summary.ended_at,
                expires_after_secs: summary.expires_after_secs,
                closes_at: summary.closes_at,
            });
        }
        Ok(summaries)
    }

    async fn fence(&self, id: &SessionId, epoch: u64) -> Result<(), StoreError> {
        self.fence
            .key(self.key(id, "fence"))
            .arg(epoch)
            .invoke_async::<i64>(&mut self.conn.clone())
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn delete(&self, id: &SessionId) -> Result<(), StoreError> {
        let [record, events, versions, messages, document, counters, _fence, index] = self.keys(id);
        redis::pipe()
            .atomic()
            .del(&[record, events, versions, messages, document, counters])
            .hdel(index, id.as_str())
            .query_async::<()>(&mut self.conn.clone())
            .await
            .map_err(backend)
    }
}

/// The first byte of a version stored in collab-core's encoding. Versions
/// were stored as JSON before, which never starts with it, so both read.
const ENCODED_VERSION: u8 = 0;

/// A version as the versions list keeps it: [`ENCODED_VERSION`] and the
/// version in `encode_versions`' format, some 20 bytes a keystroke where
/// its JSON took over 100.
fn version_body(version: &Version) -> Vec<u8> {
    let mut body = vec![ENCODED_VERSION];
    body.extend(collab_core::document::encode_versions(
        std::slice::from_ref(version),
    ));
    body
}

/// A stored version back: encoded (numbered `rev`, its place in the list)
/// or, as older builds stored it, JSON.
fn read_version(body: &[u8], rev: u64) -> Result<Version, String> {
    match body.split_first() {
        Some((&ENCODED_VERSION, encoded)) => {
            let mut one =
                collab_core::document::decode_versions(encoded, rev).map_err(|e| e.to_string())?;
            match (one.pop(), one.is_empty()) {
                (Some(version), true) => Ok(version),
                _ => Err("not exactly one version".to_owned()),
            }
        }
        _ => serde_json::from_slice(body).map_err(|e| e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use collab_core::{Change, ParticipantId, TextOperation, Timestamp};

    #[test]
    fn versions_read_back_encoded_or_as_older_builds_stored_them() {
        let mut op = TextOperation::new();
        op.retain(4).insert("é");
        let version = Version {
            rev: 3,
            file: "main".into(),
            change: Change::Edit { op },
            author: Some(ParticipantId(2)),
            at: Timestamp::from_millis(1_700_000_000_000),
            oid: Some("c2-9".into()),
        };
        let body = version_body(&version);
        assert!(body.len() < 30, "{} bytes", body.len());
        assert_eq!(read_version(&body, 3), Ok(version.clone()));
        let json = serde_json::to_vec(&version).unwrap();
        assert_eq!(read_version(&json, 3), Ok(version));
        assert!(read_version(&[ENCODED_VERSION, 0xff], 1).is_err());
        assert!(read_version(b"{", 1).is_err());
        assert!(read_version(&[], 1).is_err());
    }
}
