//! Requests that are not a connection's (REST reads and writes, joins over
//! REST, long-polls and so event streams) for a session another process
//! owns: sent to the owner as an [`Envelope::Request`], run there as one of
//! its own, answered with an [`Envelope::Reply`].
//!
//! A request is forwarded once at most: the owner runs it only if it still
//! serves the session, and otherwise answers that it moved.

use std::net::IpAddr;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::*;
use crate::backplane::{BackplaneError, Envelope, Letter, NodeId, Refusal};

/// How long a process waits for the owner's answer, beyond the time the
/// request itself may wait (a long-poll).
const ANSWER_PATIENCE: Duration = Duration::from_secs(10);

/// A request for the owner, as it travels.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(super) enum Request {
    /// [`Hub::session`].
    View,
    /// [`Hub::session_for`], once the asking process checked access.
    ViewFor { user: UserId, peer: Option<IpAddr> },
    /// [`Hub::update_session`].
    Update {
        identity: Identity,
        update: SessionUpdate,
    },
    /// [`Hub::end_session`].
    End { identity: Identity },
    /// [`Hub::replace_code`].
    Code {
        user: UserId,
        rev: Option<Revision>,
        code: String,
    },
    /// [`Hub::join`]: the owner holds the REST participant's connection.
    Join {
        identity: Identity,
        name: Option<String>,
        peer: Option<IpAddr>,
    },
    /// [`Hub::leave`].
    Leave { user: UserId, target: String },
    /// [`Hub::read`], once the asking process checked access; the owner
    /// waits.
    Read {
        user: UserId,
        since: Seq,
        rev: Option<Revision>,
        wait_ms: u64,
    },
}

/// A session's owner, when another process serves it.
pub(super) struct Owner {
    backplane: Arc<dyn Backplane>,
    node: NodeId,
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
    /// answer, `waits` longer for a request that waits there.
    pub(super) async fn ask_owner<T: DeserializeOwned>(
        &self,
        owner: Owner,
        id: &SessionId,
        request: Request,
        waits: Duration,
    ) -> Result<T, HubError> {
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
        let body = serde_json::to_vec(&request)
            .map_err(|e| HubError::Backplane(BackplaneError::Backend(e.to_string())))?;
        let letter = Letter {
            from: backplane.node().clone(),
            session: id.clone(),
            conn: ConnectionId(0),
            envelope: Envelope::Request { call, body },
        };
        backplane.send(&node, letter).await?;
        match tokio::time::timeout(waits + ANSWER_PATIENCE, answer).await {
            Ok(Ok(Ok(bytes))) => serde_json::from_slice(&bytes).map_err(|e| {
                HubError::Backplane(BackplaneError::Backend(format!(
                    "an answer from {node} that is not one: {e}"
                )))
            }),
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
        fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, HubError> {
            serde_json::to_vec(value)
                .map_err(|e| HubError::Backplane(BackplaneError::Backend(e.to_string())))
        }
        if let Some(owner) = self.owner_elsewhere(id).await? {
            return Err(HubError::OwnedElsewhere(owner.node));
        }
        match request {
            Request::View => encode(&self.ask(id, |reply| Command::View { reply }).await?),
            Request::ViewFor { user, peer } => encode(
                &self
                    .ask(id, |reply| Command::ViewFor { user, peer, reply })
                    .await??,
            ),
            Request::Update { identity, update } => {
                encode(&self.update_local(id, &identity, update).await?)
            }
            Request::End { identity } => encode(&self.end_local(id, &identity).await?),
            Request::Code { user, rev, code } => {
                encode(&self.replace_code_local(id, user, rev, code).await?)
            }
            Request::Join {
                identity,
                name,
                peer,
            } => encode(&self.join_local(id, identity, name, peer).await?),
            Request::Leave { user, target } => {
                self.leave_local(id, &user, &target).await?;
                encode(&())
            }
            Request::Read {
                user,
                since,
                rev,
                wait_ms,
            } => {
                let request = ReadRequest {
                    since,
                    rev,
                    wait: Duration::from_millis(wait_ms),
                };
                encode(&self.read_local(id, &user, request).await?)
            }
        }
    }
}

fn calls(inner: &Inner) -> std::sync::MutexGuard<'_, HashMap<u64, nodes::RemoteAnswer>> {
    inner.nodes.calls.lock().unwrap_or_else(|e| e.into_inner())
}
