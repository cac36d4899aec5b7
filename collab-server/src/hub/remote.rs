//! [`Request`]s for a session another process owns: sent to the owner as an
//! [`Envelope::Request`], run there as one of its own, answered with an
//! [`Envelope::Reply`].
//!
//! A request is forwarded once at most: the owner runs it only if it still
//! serves the session, and otherwise answers that it moved.

use std::time::Duration;

use super::request::Request;
use super::*;
use crate::backplane::{BackplaneError, Envelope, Letter, NodeId, Refusal};

/// How long a process waits for the owner's answer, beyond the time the
/// request itself may wait (a long-poll).
const ANSWER_PATIENCE: Duration = Duration::from_secs(10);

/// A session's owner, when another process serves it.
pub(super) struct Owner {
    backplane: Arc<dyn Backplane>,
    node: NodeId,
}

impl Owner {
    /// The process that owns the session.
    pub(super) fn node(&self) -> &NodeId {
        &self.node
    }
}

impl Hub {
    /// Who serves session `id`, when it is another process: `None` for a
    /// hub alone, a session live here, or one this process now owns (it
    /// claims a session nobody holds).
    pub(super) async fn owner_elsewhere(&self, id: &SessionId) -> Result<Option<Owner>, HubError> {
        let Some(backplane) = self.inner.backplane.clone() else {
            return Ok(None);
        };
        if self.sessions().contains_key(id) {
            return Ok(None);
        }
        let lease = self.claim(&backplane, id).await?;
        if lease.owner == *backplane.node() {
            return Ok(None);
        }
        Ok(Some(Owner {
            backplane,
            node: lease.owner,
        }))
    }

    /// Sends `request` about session `id` to its owner and waits for the
    /// answer, longer for a request that waits there.
    pub(super) async fn ask_owner(
        &self,
        owner: Owner,
        id: &SessionId,
        request: &Request,
    ) -> Result<Vec<u8>, HubError> {
        let waits = request.waits();
        let Owner { backplane, node } = owner;
        let call = self.inner.nodes.next_call.fetch_add(1, Ordering::Relaxed);
        let (answer_tx, answer) = oneshot::channel();
        calls(&self.inner).insert(call, answer_tx);
        // Forgets the call however this ends (answered, timed out, dropped).
        struct Forget<'a>(&'a Inner, u64);
        impl Drop for Forget<'_> {
            fn drop(&mut self) {
                calls(self.0).remove(&self.1);
            }
        }
        let _forget = Forget(&self.inner, call);
        let body = serde_json::to_vec(request)
            .map_err(|e| HubError::Backplane(BackplaneError::Backend(e.to_string())))?;
        let letter = Letter {
            from: backplane.node().clone(),
            session: id.clone(),
            conn: ConnectionId(0),
            envelope: Envelope::Request { call, body },
        };
        backplane.send(&node, letter).await?;
        match tokio::time::timeout(waits + ANSWER_PATIENCE, answer).await {
            Ok(Ok(Ok(bytes))) => Ok(bytes),
            Ok(Ok(Err(Refusal { code, message }))) => Err(HubError::Remote { code, message }),
            Ok(Err(_)) | Err(_) => Err(HubError::Backplane(BackplaneError::Unreachable(node))),
        }
    }

    /// As the owner: runs a request another process forwarded, off the
    /// inbox (a long-poll waits), and answers it.
    pub(super) fn answer_request(
        &self,
        backplane: &Arc<dyn Backplane>,
        from: NodeId,
        session: SessionId,
        call: u64,
        body: Vec<u8>,
    ) {
        let (hub, backplane) = (self.clone(), Arc::clone(backplane));
        tokio::spawn(async move {
            let answer = match serde_json::from_slice::<Request>(&body) {
                Ok(request) => hub.run_request(&session, request).await,
                Err(e) => Err(HubError::Backplane(BackplaneError::Backend(format!(
                    "a request that is not one: {e}"
                )))),
            };
            let reply = Letter {
                from: backplane.node().clone(),
                session,
                conn: ConnectionId(0),
                envelope: Envelope::Reply {
                    call,
                    answer: answer.map_err(|e| Refusal {
                        code: e.code(),
                        message: e.to_string(),
                    }),
                },
            };
            if let Err(e) = backplane.send(&from, reply).await {
                tracing::warn!(node = %from, error = %e, "cannot answer a forwarded request");
            }
        });
    }

    /// Hands an owner's answer to the request waiting for it.
    pub(super) fn take_reply(&self, call: u64, answer: Result<Vec<u8>, Refusal>) {
        if let Some(waiting) = calls(&self.inner).remove(&call) {
            let _ = waiting.send(answer);
        }
    }

    /// Runs a forwarded request here, the way a local caller's would run,
    /// without forwarding it again.
    async fn run_request(&self, id: &SessionId, request: Request) -> Result<Vec<u8>, HubError> {
        if let Some(owner) = self.owner_elsewhere(id).await? {
            return Err(HubError::OwnedElsewhere(owner.node));
        }
        let reply = self.call_here(id, request).await?;
        reply
            .encode()
            .map_err(|e| HubError::Backplane(BackplaneError::Backend(e.to_string())))
    }
}

fn calls(inner: &Inner) -> std::sync::MutexGuard<'_, HashMap<u64, nodes::RemoteAnswer>> {
    inner.nodes.calls.lock().unwrap_or_else(|e| e.into_inner())
}
