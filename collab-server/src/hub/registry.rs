//! The registry: which sessions are live, loading one on demand (under its
//! own lock, claimed and fenced when several processes serve sessions),
//! starting its task, and handing it commands; and the sweep of stored
//! sessions.

use super::*;

impl Hub {
    /// Makes and starts a session; `admit`: its creator is a member (a
    /// host) from the start.
    pub(super) async fn start_new(
        &self,
        creator: &Identity,
        new: NewSession,
        admit: bool,
    ) -> Result<SessionInfo, HubError> {
        if self.inner.closing.load(Ordering::SeqCst) {
            return Err(HubError::ShuttingDown);
        }
        let id = random_session_id()?;
        let now = self.inner.clock.now();
        let mut session = Session::new(
            id.clone(),
            new,
            creator,
            self.inner.config.session.clone(),
            now,
        )?;
        if admit {
            session.admit_creator(creator, now);
        }
        let info = session.info();
        let lease = match &self.inner.backplane {
            Some(backplane) => Some(self.claim(backplane, &id).await?),
            None => None,
        };
        if let Some(store) = &self.inner.store {
            let mut changes = session.take_changes();
            if let Some(lease) = &lease {
                store.fence(&id, lease.epoch).await?;
                changes.epoch = lease.epoch;
            }
            // Created means stored: the 201 is an acknowledgement too.
            store.save(&changes).await?;
        }
        self.start(session, lease);
        Ok(info)
    }

    /// Starts a session's task and makes it reachable.
    pub(super) fn start(&self, session: Session, lease: Option<Lease>) -> SessionHandle {
        let (tx, rx) = mpsc::channel(self.inner.config.inbound_queue);
        let (position_tx, position) = watch::channel(session.position());
        let weak = tx.downgrade();
        let handle = SessionHandle { tx, position };
        self.sessions().insert(session.id().clone(), handle.clone());
        let span = tracing::info_span!("session", id = %session.id());
        tokio::spawn(
            run_session(
                session,
                lease,
                rx,
                weak,
                position_tx,
                Arc::clone(&self.inner),
            )
            .instrument(span),
        );
        handle
    }

    /// Looks for stored sessions to expire or delete: an unloaded session
    /// idle past its expiry, or scheduled and past its close, is loaded,
    /// which ends it (and unloads it again);
    /// an ended one past [`HubConfig::keep_ended`] is deleted. Runs on its own
    /// every [`HubConfig::sweep_every`]; callable to force a sweep.
    ///
    /// # Errors
    /// [`HubError::Store`] when the store cannot list its sessions. A session
    /// that cannot be loaded is skipped (and logged).
    pub async fn sweep(&self) -> Result<(), HubError> {
        let Some(store) = self.inner.store.clone() else {
            return Ok(());
        };
        let now = self.inner.clock.now();
        for summary in store.due(now, self.inner.config.keep_ended).await? {
            let loaded = self.sessions().contains_key(&summary.id);
            match summary.ended_at {
                Some(ended) if now >= ended.plus(self.inner.config.keep_ended) => {
                    if !loaded {
                        store.delete(&summary.id).await?;
                    }
                }
                Some(_) => {}
                None => {
                    // Idle past its expiry, or a scheduled one past its close.
                    if !loaded && summary.is_due(now, self.inner.config.keep_ended) {
                        if let Err(e) = self.handle(&summary.id).await {
                            tracing::warn!(session = %summary.id, error = %e, "cannot expire session");
                        }
                    }
                }
            }
        }
        Ok(())
    }

    pub(super) fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<SessionId, SessionHandle>> {
        self.inner
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// The live session `id`, loaded from the store if it is not in memory.
    pub(super) async fn handle(&self, id: &SessionId) -> Result<SessionHandle, HubError> {
        if let Some(handle) = self.sessions().get(id).cloned() {
            return Ok(handle);
        }
        let Some(store) = self.inner.store.clone() else {
            return Err(HubError::SessionNotFound);
        };
        let _loading = LoadingGuard::lock(&self.inner, id).await;
        if let Some(handle) = self.sessions().get(id).cloned() {
            return Ok(handle);
        }
        if self.inner.closing.load(Ordering::SeqCst) {
            return Err(HubError::ShuttingDown);
        }
        // Several processes: only the owner loads, after fencing the store
        // so that a former owner can no longer write.
        let lease = match &self.inner.backplane {
            Some(backplane) => {
                let lease = self.claim(backplane, id).await?;
                if lease.owner != *backplane.node() {
                    return Err(HubError::OwnedElsewhere(lease.owner));
                }
                store.fence(id, lease.epoch).await?;
                Some(lease)
            }
            None => None,
        };
        let started = std::time::Instant::now();
        let stored = store
            .load_recent(id)
            .await?
            .ok_or(HubError::SessionNotFound)?;
        let now = self.inner.clock.now();
        let config = self.inner.config.session.clone();
        // Restoring replays the document and the history: seconds for a big
        // session, which must not hold a runtime worker that other sessions'
        // frames wait for.
        let session = tokio::task::spawn_blocking(move || Session::restore(stored, config, now))
            .await
            .map_err(|_| HubError::ShuttingDown)??;
        let took = started.elapsed();
        metrics::histogram!(telemetry::SESSION_LOAD_SECONDS).record(took.as_secs_f64());
        tracing::debug!(session = %id, ms = took.as_millis() as u64, "session loaded");
        Ok(self.start(session, lease))
    }

    /// The lease of session `id`: this process's, or its owner's.
    pub(super) async fn claim(
        &self,
        backplane: &Arc<dyn Backplane>,
        id: &SessionId,
    ) -> Result<Lease, HubError> {
        let now = self.inner.clock.now();
        backplane
            .claim(id, now, self.inner.config.lease_ttl)
            .await
            .map_err(HubError::Backplane)
    }

    pub(super) async fn command(
        &self,
        id: &SessionId,
        command: Command,
    ) -> Result<mpsc::Sender<Command>, HubError> {
        let tx = self.handle(id).await?.tx;
        if let Err(mpsc::error::SendError(command)) = tx.send(command).await {
            // The session unloaded between the lookup and the send: load it
            // again and ask once more.
            let tx = self.handle(id).await?.tx;
            tx.send(command).await.map_err(|_| HubError::ShuttingDown)?;
            return Ok(tx);
        }
        Ok(tx)
    }
}

/// A fresh session id from the operating system's random source: 128 bits,
/// so a shared link cannot be guessed.
fn random_session_id() -> Result<SessionId, HubError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)
        .map_err(|e| HubError::Random(std::io::Error::other(e.to_string())))?;
    Ok(SessionId::from_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(super) fn random_session_ids_differ_and_parse() {
        let ids: std::collections::HashSet<_> =
            (0..1000).map(|_| random_session_id().unwrap()).collect();
        assert_eq!(ids.len(), 1000);
        for id in ids.iter().take(10) {
            assert_eq!(SessionId::parse(id.as_str()).as_ref(), Ok(id));
        }
    }
}
