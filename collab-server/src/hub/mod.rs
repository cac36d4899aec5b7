//! The async driver: a [`Hub`] owns the live sessions, one tokio task each, and
//! hands adapters a [`Connection`] to pump.
//!
//! Each session task is the only writer of its [`Session`]: frames are applied in
//! one order, no lock is held across an await, and the task never waits on a
//! socket. Every connection has a bounded outbound queue; a connection whose
//! queue is full is dropped with [`CloseReason::SlowConsumer`] (it reconnects and
//! catches up with `since`), so one slow reader cannot stall a session.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot, watch};
use tracing::Instrument;

use crate::auth::{
    Access, AuthError, Authenticator, DefaultAccess, Grant, GuestCredential, Identity,
    SessionRequest,
};
use collab_core::document::Revision;
use collab_core::error::{ErrorCode, SessionError};
use collab_core::ids::{ConnectionId, SessionId};
use collab_core::ids::{Seq, UserId};
use collab_core::protocol::{CloseReason, ParticipantState};
use collab_core::session::{
    NewSession, ReadPage, Session, SessionConfig, SessionExport, SessionInfo, SessionUpdate,
    Transmit,
};

mod budget;
mod builder;
mod caller;
mod config;
mod connection;
mod error;
mod limits;
mod nodes;
mod polling;
mod queue;
mod registry;
mod remote;
mod request;
mod task;
mod views;

pub use crate::outbound::Outbound;
pub use builder::HubBuilder;
pub use caller::Caller;
pub use config::HubConfig;
pub use connection::{AddressGuard, Connection, ConnectionReceiver, ConnectionSender};
use connection::{AddressSlot, ConnShared, DisconnectGuard};
pub use error::{HubError, Result};
use task::{run_session, LoadingGuard};
use views::Counters;
pub use views::{HubStats, SessionRead, SessionView};

use crate::backplane::{Backplane, Lease};
use crate::clock::{Clock, TokioClock};
use crate::store::Store;
use crate::telemetry;
use collab_core::store::StoreError;
use collab_core::Timestamp;
pub use limits::Rate;
use limits::RateLimiter;
pub use polling::{ReadQuery, ReadRequest, StreamCursor, StreamItem, MAX_READ_WAIT};
use request::Request;

enum Command {
    Connect {
        conn: ConnectionId,
        identity: Identity,
        address: Option<std::net::IpAddr>,
        outbound: queue::Sender<Outbound>,
        shared: Arc<ConnShared>,
        reply: oneshot::Sender<Result<(), SessionError>>,
    },
    Text {
        conn: ConnectionId,
        text: String,
        /// The message's bytes, held against the budget until applied.
        held: Option<budget::Charge>,
    },
    Binary {
        conn: ConnectionId,
        bytes: Vec<u8>,
        /// The message's bytes, held against the budget until applied.
        held: Option<budget::Charge>,
    },
    /// A client message the connection refused before its session saw it
    /// (a message in parts too large or with no room for it).
    Refused {
        conn: ConnectionId,
        error: collab_core::protocol::ProtocolError,
    },
    Disconnect {
        conn: ConnectionId,
    },
    Touch {
        conn: ConnectionId,
    },
    /// A [`request::Request`], with the connection it comes through (a
    /// REST participant's join) and the channel for the answer.
    Call {
        request: request::Request,
        conn: Option<ConnectionId>,
        reply: oneshot::Sender<Result<request::Reply, SessionError>>,
    },
    Authenticated {
        conn: ConnectionId,
        rid: Option<u64>,
        outcome: Result<Identity, AuthError>,
    },
    /// The versions a session loaded without, read for
    /// `Transmit::LoadHistory` and encoded; `None` if the store could not
    /// read them.
    History {
        versions: Option<Vec<u8>>,
    },
    Shutdown,
}

/// A live session as the hub holds it: the way to its task, and the latest
/// (event sequence, document revision) the task has published, which waiting
/// readers watch.
#[derive(Clone)]
struct SessionHandle {
    tx: mpsc::Sender<Command>,
    position: watch::Receiver<(Seq, Revision)>,
}

struct Inner {
    sessions: Mutex<HashMap<SessionId, SessionHandle>>,
    /// Participants who joined over REST: the connection the hub holds open
    /// for each, by session and user.
    polls: Mutex<HashMap<(SessionId, UserId), polling::PollClient>>,
    /// Where sessions are kept, if anywhere.
    store: Option<Arc<dyn Store>>,
    /// One lock per session being loaded or unloaded, so that it loads
    /// once; other sessions load meanwhile.
    loading: Mutex<HashMap<SessionId, Arc<tokio::sync::Mutex<()>>>>,
    auth: Arc<dyn Authenticator>,
    clock: Arc<dyn Clock>,
    config: HubConfig,
    next_conn: AtomicU64,
    counters: Counters,
    per_address: Mutex<HashMap<std::net::IpAddr, usize>>,
    /// Who may create, read and join which session.
    access: Arc<dyn Access>,
    /// Session creations and guest identities, per user and address.
    rates: Mutex<RateLimiter>,
    /// The other processes serving the same sessions, if any.
    backplane: Option<Arc<dyn Backplane>>,
    /// Connections forwarded to and from other processes.
    nodes: nodes::Nodes,
    /// Set by [`Hub::shutdown`]: no session loads here any more.
    closing: std::sync::atomic::AtomicBool,
    /// Bytes of messages held, in and out, across every connection.
    budget: Arc<budget::Budget>,
}

/// Live sessions and their tasks. Cheap to clone; clones share the sessions.
///
/// ```
/// use collab_server::{Hub, Identity, TokenAuthenticator};
/// use collab_core::NewSession;
/// use collab_core::protocol::ClientFrame;
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let hub = Hub::new(TokenAuthenticator::new());
/// let ann = Identity::new("u1", "Ann");
/// let info = hub.create_session(&ann, NewSession { code: "print(1)".into(), ..Default::default() }).await?;
///
/// let mut conn = hub.connect(&info.id, ann).await?;
/// conn.send(ClientFrame::join()).await?;
/// let welcome = conn.recv().await.unwrap();
/// assert!(matches!(welcome, collab_server::Outbound::Text(t) if t.contains(r#""type":"welcome""#)));
/// # Ok::<_, collab_server::HubError>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

impl Hub {
    /// A hub with default settings, on tokio's clock, keeping sessions in
    /// memory only: [`Hub::builder`] sets the rest.
    pub fn new(auth: impl Authenticator) -> Self {
        Self::builder(Arc::new(auth)).build()
    }

    /// Starts a hub with `auth` checking credentials; everything else has a
    /// default until set.
    pub fn builder(auth: Arc<dyn Authenticator>) -> HubBuilder {
        HubBuilder::new(auth)
    }

    /// Starts the sweep of a hub with a store.
    fn serving(hub: Self) -> Self {
        let weak = Arc::downgrade(&hub.inner);
        let every = hub.inner.config.sweep_every;
        let clock = Arc::clone(&hub.inner.clock);
        tokio::spawn(async move {
            let mut next = clock.now();
            loop {
                clock.sleep_until(next).await;
                next = clock.now().plus(every);
                let Some(inner) = weak.upgrade() else { break };
                let hub = Hub { inner };
                if let Err(e) = hub.sweep().await {
                    tracing::warn!(error = %e, "session sweep failed");
                }
            }
        });
        hub
    }

    fn assemble(parts: HubBuilder) -> Self {
        let HubBuilder {
            auth,
            clock,
            config,
            store,
            backplane,
            access,
        } = parts;
        telemetry::describe();
        let budget = budget::Budget::new(config.max_bytes_in_flight);
        Self {
            inner: Arc::new(Inner {
                budget,
                sessions: Mutex::new(HashMap::new()),
                auth,
                clock,
                config,
                next_conn: AtomicU64::new(1),
                counters: Counters::default(),
                per_address: Mutex::new(HashMap::new()),
                polls: Mutex::new(HashMap::new()),
                store,
                loading: Mutex::new(HashMap::new()),
                access,
                rates: Mutex::new(RateLimiter::default()),
                backplane,
                nodes: nodes::Nodes::default(),
                closing: std::sync::atomic::AtomicBool::new(false),
            }),
        }
    }

    /// Checks a credential with the hub's authenticator.
    ///
    /// # Errors
    /// [`HubError::Auth`] when it is refused.
    pub async fn authenticate(&self, token: Option<&str>) -> Result<Identity, HubError> {
        Ok(self.inner.auth.authenticate(token).await?)
    }

    /// Asks the [`Access`] policy; a denial is [`HubError::Forbidden`].
    pub(super) async fn authorize(
        &self,
        who: &Identity,
        request: SessionRequest<'_>,
    ) -> Result<Option<collab_core::participant::Role>, HubError> {
        match self.inner.access.authorize(who, request).await? {
            Grant::Allow { role } => Ok(role),
            // A grant of a kind this hub does not know allows nothing.
            _ => Err(HubError::Forbidden),
        }
    }

    /// Takes one request of `rate` for every key, or refuses them all.
    pub(super) fn admit(&self, rate: Rate, keys: &[String]) -> Result<(), HubError> {
        let now = self.inner.clock.now();
        let mut rates = self.inner.rates.lock().unwrap_or_else(|e| e.into_inner());
        if rates.admit(rate, keys, now) {
            Ok(())
        } else {
            Err(HubError::RateLimited)
        }
    }

    /// Issues a fresh guest identity (`POST /api/v1/guests`) to a client at
    /// `peer`, at most [`HubConfig::guest_issue`] per address.
    ///
    /// # Errors
    /// [`HubError::GuestsNotOffered`] unless the authenticator issues guests;
    /// [`HubError::RateLimited`].
    pub fn issue_guest(&self, peer: Option<std::net::IpAddr>) -> Result<GuestCredential, HubError> {
        let Some(issue) = self.inner.auth.issue_guest() else {
            return Err(HubError::GuestsNotOffered);
        };
        if let Some(ip) = peer {
            self.admit(self.inner.config.guest_issue, &[format!("guest-ip:{ip}")])?;
        }
        Ok(issue?)
    }

    /// Counts a request from `peer` against
    /// [`HubConfig::max_connections_per_address`] for as long as the guard
    /// lives: adapters hold one for each long-poll and event stream.
    ///
    /// # Errors
    /// [`HubError::TooManyConnections`].
    pub fn hold_address(&self, peer: Option<std::net::IpAddr>) -> Result<AddressGuard, HubError> {
        Ok(AddressGuard {
            _slot: AddressSlot::take(&self.inner, peer)?,
        })
    }

    /// Creates a session whose Host is `creator`, and starts its task: the
    /// host application's own call, trusted as it is (no [`Access`] check, no
    /// rate limit). Requests from clients go through
    /// [`Caller::create_session`]. Must be called within a tokio runtime.
    ///
    /// # Errors
    /// [`HubError::Session`] for invalid settings; [`HubError::Random`] if no id can be made.
    pub async fn create_session(
        &self,
        creator: &Identity,
        new: NewSession,
    ) -> Result<SessionInfo, HubError> {
        self.start_new(creator, new, false).await
    }

    /// The session's info, code and participants, for the host application
    /// itself (no access check: REST reads go through [`Caller::session`]).
    ///
    /// # Errors
    /// [`HubError::SessionNotFound`].
    pub async fn session(&self, id: &SessionId) -> Result<SessionView, HubError> {
        self.call(id, Request::View).await
    }

    /// Changes title, language or status as `user`, who must be a host.
    ///
    /// # Errors
    /// [`HubError::SessionNotFound`], or [`HubError::Session`] when refused.
    pub async fn update_session(
        &self,
        id: &SessionId,
        user: &Identity,
        update: SessionUpdate,
    ) -> Result<SessionInfo, HubError> {
        let identity = user.clone();
        self.call(id, Request::Update { identity, update }).await
    }

    /// Sets the main file's text to `code` as `user`'s edit, made at
    /// revision `rev` (the current one when `None`): rebased over what
    /// others typed since, never overwriting it. Returns the revision after
    /// it. See [`Session::replace_code`].
    ///
    /// # Errors
    /// [`HubError::SessionNotFound`], or [`HubError::Session`] when refused
    /// (not a member who may edit, an unknown revision, too large).
    pub async fn replace_code(
        &self,
        id: &SessionId,
        user: &Identity,
        rev: Option<Revision>,
        code: String,
    ) -> Result<Revision, HubError> {
        let user = user.user_id.clone();
        self.call(id, Request::ReplaceCode { user, rev, code })
            .await
    }

    /// Ends the session as `user`, who must be a host.
    ///
    /// # Errors
    /// [`HubError::SessionNotFound`], or [`HubError::Session`] when refused.
    pub async fn end_session(
        &self,
        id: &SessionId,
        user: &Identity,
    ) -> Result<SessionInfo, HubError> {
        let identity = user.clone();
        self.call(id, Request::End { identity }).await
    }

    /// Opens a connection to a session for `identity`, as the host
    /// application vouches for it: in the role it carries, with no
    /// [`Access`] check and no per-address count (a client's connection
    /// goes through [`Caller::connect`]). The first frame should be `join`.
    ///
    /// # Errors
    /// [`HubError::SessionNotFound`], or [`HubError::Session`] if the session
    /// has ended or the user was kicked.
    pub async fn connect(
        &self,
        id: &SessionId,
        identity: Identity,
    ) -> Result<Connection, HubError> {
        self.open(id, identity, None, false).await
    }

    /// The largest WebSocket message read: twice the text frame limit, so
    /// that a text frame a little over its limit is read and answered with
    /// `frame_too_large` while the connection goes on. Adapters set their
    /// framework's message and frame size to it, so nothing larger is ever
    /// buffered; a replica sends a larger sync message in parts
    /// ([`collab_core::parts`]).
    pub fn max_message_bytes(&self) -> usize {
        self.inner.config.session.max_frame_bytes.saturating_mul(2)
    }

    /// Opens a connection to session `id`; `checked`, for a client at
    /// `peer`: the [`Access`] policy gives the role, and the connection
    /// counts against [`HubConfig::max_connections_per_address`].
    pub(super) async fn open(
        &self,
        id: &SessionId,
        identity: Identity,
        peer: Option<std::net::IpAddr>,
        checked: bool,
    ) -> Result<Connection, HubError> {
        if self.inner.closing.load(Ordering::SeqCst) {
            return Err(HubError::ShuttingDown);
        }
        let mut identity = identity;
        if checked {
            identity.role = self.authorize(&identity, SessionRequest::Join(id)).await?;
        }
        let slot = AddressSlot::take(&self.inner, peer)?;
        if let Some(backplane) = &self.inner.backplane {
            let lease = self.claim(backplane, id).await?;
            if lease.owner != *backplane.node() {
                return self
                    .connect_remote(backplane, &lease.owner, id, identity, peer, slot)
                    .await;
            }
        }
        self.connect_local(id, identity, peer, slot).await
    }

    /// Opens a connection to a session this process serves.
    async fn connect_local(
        &self,
        id: &SessionId,
        identity: Identity,
        peer: Option<std::net::IpAddr>,
        slot: AddressSlot,
    ) -> Result<Connection, HubError> {
        let conn = ConnectionId(self.inner.next_conn.fetch_add(1, Ordering::Relaxed));
        let span = connection_span(id, conn, &identity, peer);
        let (out_tx, out_rx) = queue::channel(self.inner.config.outbound_queue);
        let shared = Arc::new(ConnShared::default());
        let (reply, rx) = oneshot::channel();
        let command = Command::Connect {
            conn,
            identity,
            address: peer,
            outbound: out_tx,
            shared: Arc::clone(&shared),
            reply,
        };
        let session_tx = self.command(id, command).await?;
        rx.await.map_err(|_| HubError::ShuttingDown)??;
        Ok(self.connection(conn, session_tx, out_rx, shared, slot, span))
    }

    /// A connection's two halves around the queue its commands go to.
    fn connection(
        &self,
        conn: ConnectionId,
        commands: mpsc::Sender<Command>,
        outbound: queue::Receiver<Outbound>,
        shared: Arc<ConnShared>,
        slot: AddressSlot,
        span: tracing::Span,
    ) -> Connection {
        self.inner
            .counters
            .connections
            .fetch_add(1, Ordering::Relaxed);
        metrics::gauge!(telemetry::CONNECTIONS).increment(1.0);
        let guard = Arc::new(DisconnectGuard {
            conn,
            tx: commands.clone(),
            hub: Arc::clone(&self.inner),
            _slot: slot,
        });
        Connection {
            span,
            sender: ConnectionSender {
                conn,
                tx: commands,
                guard: Arc::clone(&guard),
                hub: Arc::clone(&self.inner),
                assembly: Arc::default(),
                shared: Arc::clone(&shared),
            },
            receiver: ConnectionReceiver {
                rx: outbound,
                shared,
                done: false,
                guard,
            },
        }
    }

    /// Closes every connection with [`CloseReason::ServerShutdown`] and stops
    /// every session task. Clients get a `goodbye` frame and close code 1001.
    ///
    /// With a backplane this is a hand-over: each session's last changes
    /// are stored and its lease given back before its clients are told to
    /// go, so that whichever process they reconnect to serves it at once;
    /// connections this process forwarded elsewhere are closed the same
    /// way, and no session loads here any more.
    pub async fn shutdown(&self) {
        self.inner.closing.store(true, Ordering::SeqCst);
        self.close_forwarded(CloseReason::ServerShutdown);
        let sessions: Vec<mpsc::Sender<Command>> =
            self.sessions().drain().map(|(_, h)| h.tx).collect();
        self.inner
            .polls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        for tx in sessions {
            let _ = tx.send(Command::Shutdown).await;
            tx.closed().await;
        }
    }

    /// Counters across the hub.
    pub fn stats(&self) -> HubStats {
        let c = &self.inner.counters;
        HubStats {
            sessions: self.sessions().len() as u64,
            connections: c.connections.load(Ordering::Relaxed),
            frames_in: c.frames_in.load(Ordering::Relaxed),
            bytes_in: c.bytes_in.load(Ordering::Relaxed),
            frames_out: c.frames_out.load(Ordering::Relaxed),
            bytes_out: c.bytes_out.load(Ordering::Relaxed),
            slow_consumer_drops: c.drops.load(Ordering::Relaxed),
            bytes_held_in: self.inner.budget.held().0 as u64,
            bytes_held_out: self.inner.budget.held().1 as u64,
        }
    }
}

/// A connection's tracing span: session, connection, participant, peer.
fn connection_span(
    id: &SessionId,
    conn: ConnectionId,
    identity: &Identity,
    peer: Option<std::net::IpAddr>,
) -> tracing::Span {
    tracing::info_span!(
        "connection",
        session = %id,
        conn = conn.0,
        participant = %identity.user_id,
        peer = ?peer,
    )
}
