//! Serving one session from several processes over a [`Backplane`]: a
//! connection to a process that does not own its session is forwarded to
//! the owner, which runs it as one of its own connections and sends its
//! frames back.
//!
//! On the client's process, the connection looks like any other: its
//! commands go to a forwarder task instead of a session task, and the
//! owner's frames are put in its queue as they arrive in the inbox. On the
//! owner, a forwarded connection is an ordinary connection whose frames are
//! posted back to the client's process.

use super::*;
use crate::backplane::{Backplane, Envelope, Inbound, Letter, NodeId, Refusal};
use collab_core::protocol::ServerFrame;

/// How long a process waits for the owner to accept a forwarded connection.
const CONNECT_PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);

/// A process's forwarding state.
#[derive(Default)]
pub(super) struct Nodes {
    /// Connections of this process forwarded to an owner elsewhere: where
    /// the owner's frames for them go.
    pub(super) forwarded: Mutex<HashMap<ConnectionId, Forwarded>>,
    /// Forwarded connections waiting for the owner's answer.
    pub(super) pending: Mutex<HashMap<ConnectionId, oneshot::Sender<Result<(), Refusal>>>>,
    /// Connections of other processes that this one serves as owner.
    pub(super) hosted: Mutex<HashMap<(NodeId, ConnectionId), Hosted>>,
    /// Requests sent to owners elsewhere, waiting for their answers.
    pub(super) calls: Mutex<HashMap<u64, RemoteAnswer>>,
    /// The number of the next request sent to an owner.
    pub(super) next_call: AtomicU64,
}

/// Where an owner's answer to a request goes.
pub(super) type RemoteAnswer = oneshot::Sender<Result<Vec<u8>, Refusal>>;

/// A connection of this process whose session another process owns.
pub(super) struct Forwarded {
    session: SessionId,
    owner: NodeId,
    /// The client's queue.
    queue: queue::Sender<Outbound>,
    /// What the client's connection here shares with its halves.
    shared: Arc<ConnShared>,
}

impl Forwarded {
    /// Tells the client to go (it reconnects, to wherever the session is
    /// served then), as a session would.
    fn close(&self, reason: CloseReason) {
        let goodbye = ServerFrame::Goodbye { reason }.to_json();
        let _ = self.queue.try_send(Outbound::Text(goodbye.into()));
        let _ = self.queue.try_send(Outbound::Close(reason));
    }
}

/// A connection served here for a client on another process.
pub(super) struct Hosted {
    sender: ConnectionSender,
    /// Posts the session's frames back; aborted when the client goes.
    relay: tokio::task::JoinHandle<()>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Hub {
    /// Opens a connection to a session another process owns: the owner is
    /// asked to accept it, then its frames travel through the backplane.
    pub(super) async fn connect_remote(
        &self,
        backplane: &Arc<dyn Backplane>,
        owner: &NodeId,
        id: &SessionId,
        identity: Identity,
        peer: Option<std::net::IpAddr>,
        slot: AddressSlot,
    ) -> Result<Connection, HubError> {
        let conn = ConnectionId(self.inner.next_conn.fetch_add(1, Ordering::Relaxed));
        let span = connection_span(id, conn, &identity, peer);
        let (out_tx, out_rx) = queue::channel(self.inner.config.outbound_queue);
        let shared = Arc::new(ConnShared::default());
        let (answer_tx, answer) = oneshot::channel();
        lock(&self.inner.nodes.forwarded).insert(
            conn,
            Forwarded {
                session: id.clone(),
                owner: owner.clone(),
                queue: out_tx,
                shared: Arc::clone(&shared),
            },
        );
        lock(&self.inner.nodes.pending).insert(conn, answer_tx);
        let letter = Letter {
            from: backplane.node().clone(),
            session: id.clone(),
            conn,
            envelope: Envelope::Connect {
                identity,
                address: peer,
            },
        };
        let forget = |inner: &Inner| {
            lock(&inner.nodes.forwarded).remove(&conn);
            lock(&inner.nodes.pending).remove(&conn);
        };
        if let Err(e) = backplane.send(owner, letter).await {
            forget(&self.inner);
            return Err(HubError::Backplane(e));
        }
        let answered = tokio::time::timeout(CONNECT_PATIENCE, answer).await;
        match answered {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(refusal))) => {
                forget(&self.inner);
                return Err(HubError::Remote {
                    code: refusal.code,
                    message: refusal.message,
                });
            }
            Ok(Err(_)) | Err(_) => {
                forget(&self.inner);
                return Err(HubError::Backplane(
                    crate::backplane::BackplaneError::Unreachable(owner.clone()),
                ));
            }
        }
        // The connection's commands go to a forwarder, as they would go to
        // a session task.
        let (cmd_tx, cmd_rx) = mpsc::channel(self.inner.config.inbound_queue);
        tokio::spawn(
            forward_commands(
                Arc::clone(backplane),
                owner.clone(),
                id.clone(),
                conn,
                cmd_rx,
                Arc::clone(&self.inner),
            )
            .instrument(span.clone()),
        );
        Ok(self.connection(conn, cmd_tx, out_rx, shared, slot, span))
    }

    /// Closes every connection this process forwards to an owner elsewhere.
    pub(super) fn close_forwarded(&self, reason: CloseReason) {
        for (_, forwarded) in lock(&self.inner.nodes.forwarded).drain() {
            forwarded.close(reason);
        }
    }

    /// Watches the owners of the sessions this process forwards to, every
    /// third of a lease: when a session's lease has passed to another
    /// process (its owner died, stalled, or handed it over), the
    /// connections forwarded to the former owner are closed, and their
    /// clients reconnect to the session's new home. The check is a claim:
    /// if nobody holds the lease any more, this process takes it, since its
    /// clients are about to come back.
    pub(super) async fn watch_owners(weak: std::sync::Weak<Inner>, backplane: Arc<dyn Backplane>) {
        loop {
            let (clock, every) = match weak.upgrade() {
                Some(inner) => (Arc::clone(&inner.clock), inner.config.lease_ttl / 3),
                None => return,
            };
            clock.sleep_until(clock.now().plus(every)).await;
            let Some(inner) = weak.upgrade() else { return };
            let hub = Hub { inner };
            let watched: std::collections::HashSet<(SessionId, NodeId)> =
                lock(&hub.inner.nodes.forwarded)
                    .values()
                    .map(|f| (f.session.clone(), f.owner.clone()))
                    .collect();
            for (session, owner) in watched {
                let Ok(lease) = hub.claim(&backplane, &session).await else {
                    // The backplane is down: the connections fail on their
                    // own when a letter cannot go.
                    continue;
                };
                if lease.owner == owner {
                    continue;
                }
                tracing::info!(session = %session, former = %owner, owner = %lease.owner, "session moved; closing its forwarded connections");
                let mut forwarded = lock(&hub.inner.nodes.forwarded);
                forwarded.retain(|_, f| {
                    let moved = f.session == session && f.owner == owner;
                    if moved {
                        f.close(CloseReason::ServerShutdown);
                    }
                    !moved
                });
            }
        }
    }

    /// Runs this process's inbox until the backplane is gone.
    pub(super) async fn serve_inbox(weak: std::sync::Weak<Inner>, backplane: Arc<dyn Backplane>) {
        while let Some(letter) = backplane.recv().await {
            let Some(inner) = weak.upgrade() else { break };
            let hub = Hub { inner };
            hub.deliver_letter(&backplane, letter).await;
        }
    }

    async fn deliver_letter(&self, backplane: &Arc<dyn Backplane>, letter: Letter) {
        let Letter {
            from,
            session,
            conn,
            envelope,
        } = letter;
        let nodes = &self.inner.nodes;
        match envelope {
            Envelope::Connect { identity, address } => {
                let answer = self
                    .host(backplane, &from, &session, conn, identity, address)
                    .await;
                let reply = Letter {
                    from: backplane.node().clone(),
                    session,
                    conn,
                    envelope: Envelope::Connected(answer),
                };
                if let Err(e) = backplane.send(&from, reply).await {
                    tracing::warn!(node = %from, error = %e, "cannot answer a forwarded connection");
                    if let Some(hosted) = lock(&nodes.hosted).remove(&(from, conn)) {
                        hosted.relay.abort();
                    }
                }
            }
            Envelope::Connected(answer) => {
                if let Some(waiting) = lock(&nodes.pending).remove(&conn) {
                    let _ = waiting.send(answer);
                }
            }
            Envelope::Inbound(frame) => {
                let sender = lock(&nodes.hosted)
                    .get(&(from.clone(), conn))
                    .map(|h| h.sender.clone());
                let Some(sender) = sender else { return };
                let delivered = match frame {
                    Inbound::Text(text) => sender.send_text(text).await,
                    Inbound::Binary(bytes) => sender.send_binary(bytes).await,
                    Inbound::Touch => sender.touch().await,
                };
                if delivered.is_err() {
                    if let Some(hosted) = lock(&nodes.hosted).remove(&(from, conn)) {
                        hosted.relay.abort();
                    }
                }
            }
            Envelope::Outbound(out) => {
                let closes = matches!(out, Outbound::Close(_));
                let queue = lock(&nodes.forwarded).get(&conn).map(|f| {
                    if matches!(out, Outbound::Binary(_)) {
                        // The owner sends binary frames to replicas only.
                        f.shared.sent_binary();
                    }
                    f.queue.clone()
                });
                if let Some(queue) = queue {
                    // As for a local connection: a client that does not
                    // read loses its connection, nobody waits for it.
                    if queue.try_send(out).is_err() || closes {
                        lock(&nodes.forwarded).remove(&conn);
                    }
                }
            }
            Envelope::Disconnect => {
                if let Some(hosted) = lock(&nodes.hosted).remove(&(from, conn)) {
                    // Dropping both halves takes the participant offline.
                    hosted.relay.abort();
                }
            }
            Envelope::Request { call, body } => {
                self.answer_request(backplane, from, session, call, body);
            }
            Envelope::Reply { call, answer } => self.take_reply(call, answer),
            // From a newer process during a rolling upgrade: nothing here
            // knows what to do with it.
            _ => tracing::debug!(node = %from, "a letter of a kind this process does not know"),
        }
    }

    /// Accepts a connection forwarded by `from`, as its session's owner.
    async fn host(
        &self,
        backplane: &Arc<dyn Backplane>,
        from: &NodeId,
        session: &SessionId,
        conn: ConnectionId,
        identity: Identity,
        address: Option<std::net::IpAddr>,
    ) -> Result<(), Refusal> {
        let refusal = |e: HubError| Refusal {
            code: e.code(),
            message: e.to_string(),
        };
        // The client's process already counted its address.
        let slot = AddressSlot::take(&self.inner, None).map_err(refusal)?;
        let local = self
            .connect_local(session, identity, address, slot)
            .await
            .map_err(refusal)?;
        let (sender, mut receiver) = local.split();
        let (backplane, from_node, session) =
            (Arc::clone(backplane), from.clone(), session.clone());
        let me = backplane.node().clone();
        let relay = tokio::spawn(async move {
            while let Some(out) = receiver.recv().await {
                let closes = matches!(out, Outbound::Close(_));
                let letter = Letter {
                    from: me.clone(),
                    session: session.clone(),
                    conn,
                    envelope: Envelope::Outbound(out),
                };
                if backplane.send(&from_node, letter).await.is_err() || closes {
                    break;
                }
            }
        });
        lock(&self.inner.nodes.hosted).insert((from.clone(), conn), Hosted { sender, relay });
        Ok(())
    }
}

/// Carries a forwarded connection's commands to the owner until the client
/// goes.
async fn forward_commands(
    backplane: Arc<dyn Backplane>,
    owner: NodeId,
    session: SessionId,
    conn: ConnectionId,
    mut commands: mpsc::Receiver<Command>,
    inner: Arc<Inner>,
) {
    let me = backplane.node().clone();
    while let Some(command) = commands.recv().await {
        let envelope = match command {
            Command::Text { text, .. } => Envelope::Inbound(Inbound::Text(text)),
            Command::Binary { bytes, .. } => Envelope::Inbound(Inbound::Binary(bytes)),
            Command::Touch { .. } => Envelope::Inbound(Inbound::Touch),
            Command::Disconnect { .. } => Envelope::Disconnect,
            Command::Refused { error, .. } => {
                // Refused here, before the owner saw anything: the error
                // (which never has a rid) goes straight to the client.
                let frame = ServerFrame::Error {
                    rid: None,
                    code: error.code(),
                    message: error.to_string(),
                };
                let queue = lock(&inner.nodes.forwarded)
                    .get(&conn)
                    .map(|f| f.queue.clone());
                if let Some(queue) = queue {
                    let _ = queue.try_send(Outbound::Text(frame.to_json().into()));
                }
                continue;
            }
            // Only a connection's own commands come this way.
            _ => continue,
        };
        let leaving = matches!(envelope, Envelope::Disconnect);
        let letter = Letter {
            from: me.clone(),
            session: session.clone(),
            conn,
            envelope,
        };
        if let Err(e) = backplane.send(&owner, letter).await {
            tracing::warn!(node = %owner, error = %e, "cannot reach the session's owner");
            break;
        }
        if leaving {
            break;
        }
    }
    // The owner is gone or the client left: the client's queue ends.
    lock(&inner.nodes.forwarded).remove(&conn);
}
