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

use collab_core::{SessionId, Timestamp};

/// Where sessions are kept. Implementations must make [`Store::save`] atomic
/// and durable before it returns (see the [module docs](self)), and should
/// group concurrent saves into one commit.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Writes one session's changes, atomically and durably.
    async fn save(&self, changes: &SessionChanges) -> Result<(), StoreError>;

    /// Everything stored of a session; `None` if nothing is.
    async fn load(&self, id: &SessionId) -> Result<Option<StoredSession>, StoreError>;

    /// Every stored session, briefly.
    async fn sessions(&self) -> Result<Vec<SessionSummary>, StoreError>;

    /// The stored sessions a sweep at `now` has work for (see
    /// [`SessionSummary::is_due`]): open ones idle past their expiry, ended
    /// ones ended longer than `keep_ended` ago. The default filters
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
