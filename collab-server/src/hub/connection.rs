//! A connection's two halves, as the adapters pump them, and the guards
//! that count connections per address and take a participant offline.

use super::*;
use collab_core::parts::{Assembled, Assembler, Part};
use collab_core::protocol::ProtocolError;

/// Why the session closed a connection, read by the receiving half once its
/// queue runs dry.
#[derive(Default)]
pub(super) struct ConnShared {
    pub(super) close: Mutex<Option<CloseReason>>,
    /// Bytes queued for the client and counted against the hub's budget.
    pub(super) queued: std::sync::atomic::AtomicUsize,
    /// Dropped as a slow consumer: what it still has queued is not written.
    slow: std::sync::atomic::AtomicBool,
    /// Joined as a replica: it has been sent a binary frame (a replica gets
    /// the snapshot as soon as it joins, and nobody else gets one). Only a
    /// replica may start a message in parts.
    replica: std::sync::atomic::AtomicBool,
}

impl ConnShared {
    pub(super) fn set(&self, reason: CloseReason) {
        let mut close = self.close.lock().unwrap_or_else(|e| e.into_inner());
        let reason = *close.get_or_insert(reason);
        if reason == CloseReason::SlowConsumer {
            self.slow.store(true, Ordering::Relaxed);
        }
    }

    /// Notes that the connection was sent a binary frame: it is a replica.
    pub(super) fn sent_binary(&self) {
        self.replica.store(true, Ordering::Relaxed);
    }

    fn get(&self) -> Option<CloseReason> {
        *self.close.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes `bytes` off what is counted as queued for this connection, and
    /// says how much was counted: frames relayed from another process were
    /// never counted here.
    fn written(&self, bytes: usize) -> usize {
        let mut counted = 0;
        let _ = self
            .queued
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |queued| {
                counted = bytes.min(queued);
                Some(queued - counted)
            });
        counted
    }
}

/// The sync message a connection is receiving in parts, and the budget it
/// holds.
#[derive(Default)]
pub(super) struct Assembly {
    parts: Assembler,
    held: Option<budget::Charge>,
    /// When the message's last part must have come.
    deadline: Option<tokio::time::Instant>,
}

/// How long a message in parts may take: ten seconds, and a second for
/// every 64 KiB (a 16 MiB message has four and a half minutes). One whose
/// sender stops, or trickles, gives its room back when the time is up.
fn parts_deadline(total: usize) -> tokio::time::Instant {
    let secs = 10 + total as u64 / (64 * 1024);
    tokio::time::Instant::now() + std::time::Duration::from_secs(secs)
}

/// A request counted against its client address until dropped
/// ([`Hub::hold_address`]).
pub struct AddressGuard {
    pub(super) _slot: AddressSlot,
}

/// Tells the session a connection is gone once both halves are dropped.
pub(super) struct DisconnectGuard {
    pub(super) conn: ConnectionId,
    pub(super) tx: mpsc::Sender<Command>,
    pub(super) hub: Arc<Inner>,
    pub(super) _slot: AddressSlot,
}

/// One connection counted against its client address; released on drop.
pub(super) struct AddressSlot {
    pub(super) hub: Arc<Inner>,
    pub(super) peer: Option<std::net::IpAddr>,
}

impl AddressSlot {
    pub(super) fn take(hub: &Arc<Inner>, peer: Option<std::net::IpAddr>) -> Result<Self, HubError> {
        if let Some(ip) = peer {
            let mut counts = hub.per_address.lock().unwrap_or_else(|e| e.into_inner());
            let n = counts.entry(ip).or_insert(0);
            if *n >= hub.config.max_connections_per_address {
                return Err(HubError::TooManyConnections);
            }
            *n += 1;
        }
        Ok(Self {
            hub: Arc::clone(hub),
            peer,
        })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        if let Some(ip) = self.peer {
            let mut counts = self
                .hub
                .per_address
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if let Some(n) = counts.get_mut(&ip) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    counts.remove(&ip);
                }
            }
        }
    }
}

impl Drop for DisconnectGuard {
    fn drop(&mut self) {
        self.hub
            .counters
            .connections
            .fetch_sub(1, Ordering::Relaxed);
        metrics::gauge!(telemetry::CONNECTIONS).decrement(1.0);
        let command = Command::Disconnect { conn: self.conn };
        if let Err(mpsc::error::TrySendError::Full(command)) = self.tx.try_send(command) {
            // The session is busy: deliver the disconnect as soon as it has room.
            let tx = self.tx.clone();
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                handle.spawn(async move {
                    let _ = tx.send(command).await;
                });
            }
        }
    }
}

/// The connection's way in, as the adapter holds it: one per WebSocket (or
/// long-poll client). Split it to read and write from separate tasks.
pub struct Connection {
    /// The connection's tracing span: session, connection, participant, peer.
    pub(super) span: tracing::Span,
    pub(super) sender: ConnectionSender,
    pub(super) receiver: ConnectionReceiver,
}

impl Connection {
    /// This connection's id.
    pub fn id(&self) -> ConnectionId {
        self.sender.conn
    }

    /// Hands a client's text frame to the session.
    ///
    /// # Errors
    /// [`HubError::ShuttingDown`] once the session has stopped.
    pub async fn send_text(&self, text: impl Into<String>) -> Result<(), HubError> {
        self.sender.send_text(text).await
    }

    /// Sends a typed frame (for Rust clients and tests).
    ///
    /// # Errors
    /// [`HubError::ShuttingDown`] once the session has stopped.
    pub async fn send(
        &self,
        msg: impl Into<collab_core::protocol::ClientMessage>,
    ) -> Result<(), HubError> {
        self.sender.send(msg).await
    }

    /// Hands a client's binary frame to the session: a whole sync message or
    /// a part of one ([`ConnectionSender::send_binary`]).
    ///
    /// # Errors
    /// [`HubError::ShuttingDown`] once the session has stopped.
    pub async fn send_binary(&self, bytes: Vec<u8>) -> Result<(), HubError> {
        self.sender.send_binary(bytes).await
    }

    /// The next thing to send the client; `None` after the close has been given.
    pub async fn recv(&mut self) -> Option<Outbound> {
        self.receiver.recv().await
    }

    /// The connection's tracing span (session, connection id, participant,
    /// peer), for what an adapter logs about it.
    pub fn span(&self) -> &tracing::Span {
        &self.span
    }

    /// Separate halves for a reader task and a writer task.
    pub fn split(self) -> (ConnectionSender, ConnectionReceiver) {
        (self.sender, self.receiver)
    }
}

/// The half of a [`Connection`] that carries client frames to the session.
/// Clones send on the same connection.
#[derive(Clone)]
pub struct ConnectionSender {
    pub(super) conn: ConnectionId,
    pub(super) tx: mpsc::Sender<Command>,
    pub(super) hub: Arc<Inner>,
    /// A sync message arriving in parts; shared by clones, which send on
    /// the same connection.
    pub(super) assembly: Arc<Mutex<Assembly>>,
    /// What the receiving half shares: whether this is a replica.
    pub(super) shared: Arc<ConnShared>,
    #[allow(dead_code)] // held for its Drop
    pub(super) guard: Arc<DisconnectGuard>,
}

impl ConnectionSender {
    /// Hands a client's text frame to the session.
    ///
    /// # Errors
    /// [`HubError::ShuttingDown`] once the session has stopped.
    pub async fn send_text(&self, text: impl Into<String>) -> Result<(), HubError> {
        let text = text.into();
        self.count_in(text.len());
        let held = Some(self.hub.budget.hold(text.len()).await);
        self.command(Command::Text {
            conn: self.conn,
            text,
            held,
        })
        .await
    }

    /// Sends a typed frame (for Rust clients and tests).
    ///
    /// # Errors
    /// [`HubError::ShuttingDown`] once the session has stopped.
    pub async fn send(
        &self,
        msg: impl Into<collab_core::protocol::ClientMessage>,
    ) -> Result<(), HubError> {
        let text = serde_json::to_string(&msg.into()).map_err(|_| HubError::ShuttingDown)?;
        self.send_text(text).await
    }

    /// Hands a client's binary frame to the session: a whole sync message,
    /// or a part of one ([`collab_core::parts`]), which is put together
    /// here and handed over once whole. A message in parts must come from a
    /// replica and fit the session's sync limit and the hub's budget at its
    /// first part, or it is refused unread (`malformed_frame`,
    /// `frame_too_large`, `server_busy`) and its other parts are dropped.
    ///
    /// # Errors
    /// [`HubError::ShuttingDown`] once the session has stopped.
    pub async fn send_binary(&self, bytes: Vec<u8>) -> Result<(), HubError> {
        self.count_in(bytes.len());
        let command = match Part::decode(&bytes) {
            // Larger than a WebSocket message: only from another process
            // (relayed whole) or a caller in this one. Nothing waits for
            // room for it: a message this size leaves a quarter free, or is
            // refused, as in parts.
            None if bytes.len() > self.hub.config.session.max_frame_bytes * 2 => {
                match self.hub.budget.try_hold_large(bytes.len()) {
                    Some(held) => Command::Binary {
                        conn: self.conn,
                        held: Some(held),
                        bytes,
                    },
                    None => Command::Refused {
                        conn: self.conn,
                        error: ProtocolError::Busy { len: bytes.len() },
                    },
                }
            }
            None => Command::Binary {
                conn: self.conn,
                held: Some(self.hub.budget.hold(bytes.len()).await),
                bytes,
            },
            Some(part) => match self.assemble(part) {
                Ok(None) => return Ok(()),
                Ok(Some(command)) => command,
                Err(error) => Command::Refused {
                    conn: self.conn,
                    error,
                },
            },
        };
        self.command(command).await
    }

    /// Takes one part: the whole message's command once its last part has
    /// come.
    fn assemble(
        &self,
        part: Result<Part<'_>, ProtocolError>,
    ) -> Result<Option<Command>, ProtocolError> {
        let mut assembly = self.assembly.lock().unwrap_or_else(|e| e.into_inner());
        let part = match part {
            Ok(part) => part,
            Err(e) => {
                *assembly = Assembly::default();
                return Err(e);
            }
        };
        if part.offset != 0
            && assembly
                .deadline
                .is_some_and(|d| d <= tokio::time::Instant::now())
        {
            *assembly = Assembly::default();
            return Err(ProtocolError::PartsTooSlow);
        }
        if part.offset == 0 {
            // A new message; one left unfinished is dropped with its room.
            *assembly = Assembly::default();
            if !self.shared.replica.load(Ordering::Relaxed) {
                return Err(ProtocolError::UnexpectedBinary);
            }
            let len = part.total as usize;
            let max = self.hub.config.session.max_sync_bytes;
            if len > max {
                return Err(ProtocolError::TooLarge { len, max });
            }
            let held = self
                .hub
                .budget
                .try_hold_large(len)
                .ok_or(ProtocolError::Busy { len })?;
            assembly.held = Some(held);
            assembly.deadline = Some(parts_deadline(len));
            assembly.parts.start(len);
        }
        match assembly.parts.push(&part) {
            Ok(Assembled::Pending | Assembled::Dropped) => Ok(None),
            Ok(Assembled::Whole(bytes)) => Ok(Some(Command::Binary {
                conn: self.conn,
                bytes,
                held: assembly.held.take(),
            })),
            Err(e) => {
                *assembly = Assembly::default();
                Err(e)
            }
        }
    }

    /// When the message in parts being put together must be whole, if one
    /// is: a driver calls [`ConnectionSender::parts_overdue`] then, unless
    /// its last part came first.
    pub fn parts_deadline(&self) -> Option<tokio::time::Instant> {
        let assembly = self.assembly.lock().unwrap_or_else(|e| e.into_inner());
        assembly.deadline.filter(|_| assembly.parts.is_started())
    }

    /// Drops the message in parts whose time is up, giving its room back,
    /// and tells the client (`request_timeout`).
    ///
    /// # Errors
    /// [`HubError::ShuttingDown`] once the session has stopped.
    pub async fn parts_overdue(&self) -> Result<(), HubError> {
        let overdue = {
            let mut assembly = self.assembly.lock().unwrap_or_else(|e| e.into_inner());
            let overdue = assembly
                .deadline
                .is_some_and(|d| d <= tokio::time::Instant::now());
            if overdue {
                *assembly = Assembly::default();
            }
            overdue
        };
        if !overdue {
            return Ok(());
        }
        self.command(Command::Refused {
            conn: self.conn,
            error: ProtocolError::PartsTooSlow,
        })
        .await
    }

    /// Tells the session the client is alive (it answered a ping).
    ///
    /// # Errors
    /// [`HubError::ShuttingDown`] once the session has stopped.
    pub async fn touch(&self) -> Result<(), HubError> {
        self.command(Command::Touch { conn: self.conn }).await
    }

    fn count_in(&self, bytes: usize) {
        self.hub.counters.frames_in.fetch_add(1, Ordering::Relaxed);
        self.hub
            .counters
            .bytes_in
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }

    async fn command(&self, command: Command) -> Result<(), HubError> {
        self.tx
            .send(command)
            .await
            .map_err(|_| HubError::ShuttingDown)
    }
}

/// The half of a [`Connection`] that carries frames to the client.
pub struct ConnectionReceiver {
    pub(super) rx: queue::Receiver<Outbound>,
    pub(super) shared: Arc<ConnShared>,
    pub(super) done: bool,
    pub(super) guard: Arc<DisconnectGuard>,
}

impl ConnectionReceiver {
    /// The next thing to send the client; `None` after the close has been given.
    pub async fn recv(&mut self) -> Option<Outbound> {
        if self.done {
            return None;
        }
        let next = self.rx.recv().await;
        self.received(next)
    }

    /// The next thing to send the client if one is queued already, without
    /// waiting: lets a driver write everything that is ready at once.
    pub fn try_recv(&mut self) -> Option<Outbound> {
        if self.done {
            return None;
        }
        match self.rx.try_recv() {
            Ok(out) => self.received(Some(out)),
            Err(queue::TryRecvError::Empty) => None,
            Err(queue::TryRecvError::Disconnected) => self.received(None),
        }
    }

    fn received(&mut self, next: Option<Outbound>) -> Option<Outbound> {
        if let Some(out) = &next {
            self.written(out);
        }
        if next.is_some() && self.shared.slow.load(Ordering::Relaxed) {
            // A client that did not keep up gets no more of its backlog,
            // which would stay in memory for as long as it reads slowly.
            self.discard();
            self.done = true;
            return Some(Outbound::Close(CloseReason::SlowConsumer));
        }
        match next {
            Some(Outbound::Close(reason)) => {
                self.done = true;
                Some(Outbound::Close(reason))
            }
            Some(frame) => Some(frame),
            None => {
                self.done = true;
                Some(Outbound::Close(
                    self.shared.get().unwrap_or(CloseReason::ServerShutdown),
                ))
            }
        }
    }
}

impl ConnectionReceiver {
    /// A frame left the queue: its bytes no longer count against the budget.
    fn written(&self, out: &Outbound) {
        let len = match out {
            Outbound::Text(text) => text.len(),
            Outbound::Binary(bytes) => bytes.len(),
            Outbound::Ping | Outbound::Close(_) => 0,
        };
        let counted = self.shared.written(len);
        if counted > 0 {
            self.guard.hub.budget.dequeue(counted);
        }
    }
}

impl ConnectionReceiver {
    /// Drops everything still queued, and anything queued later.
    fn discard(&mut self) {
        self.rx.close();
        while let Ok(out) = self.rx.try_recv() {
            self.written(&out);
        }
    }
}

impl Drop for ConnectionReceiver {
    fn drop(&mut self) {
        // What was never written is no longer held either.
        self.discard();
    }
}
