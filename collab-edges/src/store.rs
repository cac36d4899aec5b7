//! Where sessions are kept: the [`Store`] trait the hub writes through, and
//! [`MemoryStore`] for tests. What a store writes and reads back, and the
//! durability contract, are in [`collab_core::store`].

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use collab_core::store::{
    apply_in_place, SessionChanges, SessionSummary, StoreError, StoredSession,
};
use std::time::Duration;

use collab_core::{Revision, SessionId, Timestamp, Version};

/// Where sessions are kept. Implementations must make [`Store::save`] atomic
/// and durable before it returns (see the [module docs](self)), and should
/// group concurrent saves into one commit.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Writes one session's changes, atomically and durably.
    async fn save(&self, changes: &SessionChanges) -> Result<(), StoreError>;

    /// Everything stored of a session; `None` if nothing is.
    async fn load(&self, id: &SessionId) -> Result<Option<StoredSession>, StoreError>;

    /// What a session needs to load: [`Store::load`] without the versions
    /// its stored document already holds (those at or before
    /// [`StoredSession::document_rev`]). The hub loads sessions with it and
    /// reads the earlier versions with [`Store::versions`] only when a
    /// request reads that far back, so a load costs what was edited since
    /// the document was last written, not the whole history. The default
    /// reads everything and drops them; a store that can read less should.
    async fn load_recent(&self, id: &SessionId) -> Result<Option<StoredSession>, StoreError> {
        let mut stored = self.load(id).await?;
        if let Some(s) = stored.as_mut() {
            let document_rev = s.document_rev;
            s.versions.retain(|v| v.rev > document_rev);
        }
        Ok(stored)
    }

    /// The stored versions `after + 1 ..= through`, oldest first; fewer if
    /// the history ends sooner, none if the session is not stored. The hub
    /// reads a session's older history a few thousand versions at a time.
    /// The default reads the whole session for every range; a store that
    /// can read a range should.
    async fn versions(
        &self,
        id: &SessionId,
        after: Revision,
        through: Revision,
    ) -> Result<Vec<Version>, StoreError> {
        let Some(stored) = self.load(id).await? else {
            return Ok(Vec::new());
        };
        Ok(stored
            .versions
            .into_iter()
            .filter(|v| v.rev > after && v.rev <= through)
            .collect())
    }

    /// Every stored session, briefly.
    async fn sessions(&self) -> Result<Vec<SessionSummary>, StoreError>;

    /// The stored sessions a sweep at `now` has work for (see
    /// [`SessionSummary::is_due`]): open ones idle past their expiry,
    /// scheduled ones past the time they close (and not before, however
    /// idle), ended ones ended longer than `keep_ended` ago. The default filters
    /// [`Store::sessions`]; a store that can ask an index should.
    async fn due(
        &self,
        now: Timestamp,
        keep_ended: Duration,
    ) -> Result<Vec<SessionSummary>, StoreError> {
        let mut all = self.sessions().await?;
        all.retain(|s| s.is_due(now, keep_ended));
        Ok(all)
    }

    /// Fences the session at `epoch` before a new owner loads it: from now
    /// on, writes of a lower [`SessionChanges::epoch`] are refused with
    /// [`StoreError::Fenced`], so a former owner that stalled cannot write
    /// over the new one. A store only one process writes to may ignore it
    /// (the default).
    async fn fence(&self, id: &SessionId, epoch: u64) -> Result<(), StoreError> {
        let _ = (id, epoch);
        Ok(())
    }

    /// Forgets a session entirely.
    async fn delete(&self, id: &SessionId) -> Result<(), StoreError>;
}

/// A [`Store`] in memory: for tests, and for hosts that want sessions to be
/// unloaded and reloaded without keeping them across restarts. It keeps
/// fences, so hubs sharing one in a test behave as processes sharing a
/// database.
#[derive(Debug, Default)]
pub struct MemoryStore {
    sessions: Mutex<HashMap<SessionId, StoredSession>>,
    fences: Mutex<HashMap<SessionId, u64>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn save(&self, changes: &SessionChanges) -> Result<(), StoreError> {
        let fences = self.fences.lock().unwrap_or_else(|e| e.into_inner());
        let current = fences.get(&changes.id).copied().unwrap_or(0);
        if changes.epoch < current {
            return Err(StoreError::Fenced {
                session: changes.id.clone(),
                epoch: changes.epoch,
                current,
            });
        }
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        let mut entry = sessions.remove(&changes.id);
        let id = changes.id.clone();
        let result = apply_in_place(&mut entry, changes.clone());
        if let Some(s) = entry {
            sessions.insert(id, s);
        }
        result
    }

    async fn load(&self, id: &SessionId) -> Result<Option<StoredSession>, StoreError> {
        let sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        Ok(sessions.get(id).cloned())
    }

    async fn load_recent(&self, id: &SessionId) -> Result<Option<StoredSession>, StoreError> {
        let sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        Ok(sessions.get(id).map(|s| {
            let held = s.versions.partition_point(|v| v.rev <= s.document_rev);
            StoredSession {
                record: s.record.clone(),
                events: s.events.clone(),
                messages: s.messages.clone(),
                versions: s.versions[held..].to_vec(),
                document: s.document.clone(),
                document_rev: s.document_rev,
            }
        }))
    }

    async fn versions(
        &self,
        id: &SessionId,
        after: Revision,
        through: Revision,
    ) -> Result<Vec<Version>, StoreError> {
        let sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        Ok(sessions.get(id).map_or_else(Vec::new, |s| {
            s.versions
                .iter()
                .filter(|v| v.rev > after && v.rev <= through)
                .cloned()
                .collect()
        }))
    }

    async fn sessions(&self) -> Result<Vec<SessionSummary>, StoreError> {
        let sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        Ok(sessions.values().map(StoredSession::summary).collect())
    }

    async fn fence(&self, id: &SessionId, epoch: u64) -> Result<(), StoreError> {
        let mut fences = self.fences.lock().unwrap_or_else(|e| e.into_inner());
        let current = fences.entry(id.clone()).or_default();
        *current = (*current).max(epoch);
        Ok(())
    }

    async fn delete(&self, id: &SessionId) -> Result<(), StoreError> {
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        sessions.remove(id);
        Ok(())
    }
}
