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
    NewSession, ReadPage, Session, SessionConfig, SessionInfo, SessionUpdate, Transmit,
};

mod limits;
mod polling;

use crate::clock::{Clock, TokioClock};
use crate::store::Store;
use collab_core::store::StoreError;
use collab_core::Timestamp;
pub use limits::Rate;
use limits::RateLimiter;
pub use polling::{ReadQuery, ReadRequest, StreamCursor, StreamItem, MAX_READ_WAIT};

/// Settings of a [`Hub`].
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// Settings every new session starts from.
    pub session: SessionConfig,
    /// Frames queued for one connection before it counts as a slow consumer
    /// (default 512).
    pub outbound_queue: usize,
    /// Requests queued for one session before senders wait (default 1024).
    pub inbound_queue: usize,
    /// Open connections from one client address, across all sessions (default 20).
    pub max_connections_per_address: usize,
    /// Which pages may open WebSockets (default: the server's own origin only).
    pub origins: OriginPolicy,
    /// How often adapters ping every WebSocket (default 15 s). A peer that
    /// answers nothing, pongs included, is dropped after the session's stale
    /// timeout (45 s).
    pub keepalive: std::time::Duration,
    /// With a store: how long a session with nobody connected stays in
    /// memory before it is unloaded (default 5 min). It loads again on demand.
    pub unload_after: std::time::Duration,
    /// With a store: how long an ended session stays readable before it is
    /// deleted (default 7 days).
    pub keep_ended: std::time::Duration,
    /// With a store: how often to look for sessions to expire or delete
    /// (default 1 min).
    pub sweep_every: std::time::Duration,
    /// Sessions one user, and one client address, may create: 20 at once,
    /// then one every 10 s. Past it: `rate_limited` (429).
    pub session_creation: Rate,
    /// How long a client has to send a request body once its headers are
    /// in (default 10 s); past it the request is answered with
    /// `request_timeout` (408).
    pub body_timeout: std::time::Duration,
    /// Guest identities one client address may be issued: 60 at once, then
    /// one a second (a class or an office behind one address joins at once;
    /// a flood of identities is what this stops).
    pub guest_issue: Rate,
    /// Reverse proxies whose `Forwarded` / `X-Forwarded-For` headers are
    /// believed (default none). Behind a proxy every request comes from the
    /// proxy's address: list it here, and the per-address limits count the
    /// client it forwards for instead. Headers from anyone else are ignored,
    /// so a client cannot pick its own address.
    pub trusted_proxies: Vec<std::net::IpAddr>,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            session: SessionConfig::default(),
            outbound_queue: 512,
            inbound_queue: 1024,
            max_connections_per_address: 20,
            origins: OriginPolicy::SameOrigin,
            keepalive: std::time::Duration::from_secs(15),
            unload_after: std::time::Duration::from_secs(5 * 60),
            keep_ended: std::time::Duration::from_secs(7 * 24 * 3600),
            sweep_every: std::time::Duration::from_secs(60),
            session_creation: Rate::new(20, std::time::Duration::from_secs(10)),
            guest_issue: Rate::new(60, std::time::Duration::from_secs(1)),
            body_timeout: std::time::Duration::from_secs(10),
            trusted_proxies: Vec::new(),
        }
    }
}

/// Which web pages may open a WebSocket to the hub. Browsers send the page's
/// origin with every upgrade and let any page connect anywhere, so without this
/// check a hostile page could talk to the session with its visitor's cookies
/// (cross-site WebSocket hijacking). Clients that are not browsers send no
/// origin and are always let through; they authenticate like everyone else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginPolicy {
    /// Only pages served from the host the upgrade request was sent to.
    SameOrigin,
    /// Only these origins (`https://app.example.com`), compared without case.
    List(Vec<String>),
    /// Any page. For development only.
    Any,
}

impl OriginPolicy {
    /// Whether an upgrade with this `Origin` header, sent to this `Host`, may
    /// go ahead. Origins are compared as scheme, host and port (a default
    /// port written or not is the same port); only `http` and `https` pages
    /// count as the server's own.
    pub fn allows(&self, origin: Option<&str>, host: Option<&str>) -> bool {
        let Some(origin) = origin else { return true };
        match self {
            OriginPolicy::Any => true,
            OriginPolicy::List(list) => {
                let Some(origin) = WebOrigin::parse(origin) else {
                    return false;
                };
                list.iter()
                    .filter_map(|o| WebOrigin::parse(o))
                    .any(|o| o == origin)
            }
            OriginPolicy::SameOrigin => {
                let (Some(origin), Some(host)) = (WebOrigin::parse(origin), host) else {
                    return false;
                };
                let (host_name, host_port) = split_host_port(host);
                origin.host.eq_ignore_ascii_case(host_name)
                    && origin.port == host_port.unwrap_or(default_port(&origin.scheme))
            }
        }
    }
}

/// A web origin: `scheme://host[:port]`, lower case, with its port filled in.
#[derive(Debug, PartialEq, Eq)]
struct WebOrigin {
    scheme: String,
    host: String,
    port: u16,
}

impl WebOrigin {
    fn parse(text: &str) -> Option<Self> {
        let (scheme, rest) = text.trim().split_once("://")?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return None;
        }
        if rest.is_empty() || rest.contains(['/', '?', '#', '@']) {
            return None;
        }
        let (host, port) = split_host_port(rest);
        Some(Self {
            port: port.unwrap_or(default_port(&scheme)),
            host: host.to_ascii_lowercase(),
            scheme,
        })
    }
}

fn default_port(scheme: &str) -> u16 {
    if scheme == "https" {
        443
    } else {
        80
    }
}

/// `host:port`, `[v6]:port`, `host` or `[v6]`; a port that is not a number
/// leaves the text whole as the host (and so matches nothing).
fn split_host_port(text: &str) -> (&str, Option<u16>) {
    let bracket_end = text.rfind(']').unwrap_or(0);
    match text.rfind(':') {
        Some(colon) if colon > bracket_end && (bracket_end > 0 || !text.starts_with('[')) => {
            match text[colon + 1..].parse() {
                Ok(port) => (&text[..colon], Some(port)),
                Err(_) => (text, None),
            }
        }
        _ => (text, None),
    }
}

/// Why a hub request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HubError {
    /// The credential was refused.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// No live session has that id.
    #[error("no such session")]
    SessionNotFound,
    /// The session refused the request; nothing changed.
    #[error(transparent)]
    Session(#[from] SessionError),
    /// The operating system could not provide randomness for a session id. Fatal.
    #[error("no random source for session ids: {0}")]
    Random(getrandom::Error),
    /// The session's task has stopped (the hub is shutting down).
    #[error("session is shutting down")]
    ShuttingDown,
    /// A WebSocket upgrade from a page whose origin the policy does not allow.
    #[error("origin not allowed")]
    OriginNotAllowed,
    /// This client address has as many connections open as it may.
    #[error("too many connections from this address")]
    TooManyConnections,
    /// The store could not load or save the session.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The host application's [`Access`] policy does not allow this
    /// identity to do this with this session. Caller's mistake.
    #[error("not allowed for this session")]
    Forbidden,
    /// Too many requests of this kind from this user or address (session
    /// creation, guest identities). Retry later.
    #[error("too many requests; try again later")]
    RateLimited,
    /// The authenticator issues no guest identities.
    #[error("guest access is not offered")]
    GuestsNotOffered,
}

impl HubError {
    /// The code this error travels as.
    pub fn code(&self) -> ErrorCode {
        match self {
            HubError::Auth(_) => ErrorCode::Unauthorized,
            HubError::SessionNotFound => ErrorCode::SessionNotFound,
            HubError::Session(e) => e.code(),
            HubError::Random(_) | HubError::ShuttingDown => ErrorCode::Internal,
            HubError::OriginNotAllowed => ErrorCode::OriginNotAllowed,
            HubError::TooManyConnections => ErrorCode::TooManyConnections,
            HubError::Store(_) => ErrorCode::StorageFailed,
            HubError::Forbidden | HubError::GuestsNotOffered => ErrorCode::Forbidden,
            HubError::RateLimited => ErrorCode::RateLimited,
        }
    }
}

/// What a connection receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outbound {
    /// A JSON text frame, serialised once for all its recipients.
    Text(Arc<str>),
    /// A binary frame: an automerge sync message for a replica.
    Binary(Vec<u8>),
    /// The session closed this connection; nothing follows.
    Close(CloseReason),
}

/// A session's state as the REST API shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SessionView {
    /// The session.
    #[serde(flatten)]
    pub info: SessionInfo,
    /// The text of the main file.
    pub code: String,
    /// The document revision `code` is at (a polling client's first `rev`).
    pub rev: Revision,
    /// Everyone, with presence.
    pub participants: Vec<ParticipantState>,
}

/// A REST read of a session: all of it for its members (and its creator),
/// its public summary for anyone else the [`Access`] policy lets read.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(untagged)]
pub enum SessionRead {
    /// Code, revision and participants: for members.
    Full(SessionView),
    /// Title, language, status, capacity and how many are online: enough to
    /// decide whether to join.
    Summary(SessionInfo),
}

/// Counters across the hub, for a stats endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct HubStats {
    /// Live sessions.
    pub sessions: u64,
    /// Open connections.
    pub connections: u64,
    /// Frames received from clients.
    pub frames_in: u64,
    /// Bytes received from clients.
    pub bytes_in: u64,
    /// Frames queued to clients (one per recipient).
    pub frames_out: u64,
    /// Bytes queued to clients.
    pub bytes_out: u64,
    /// Connections dropped for not keeping up.
    pub slow_consumer_drops: u64,
}

#[derive(Default)]
struct Counters {
    connections: AtomicU64,
    frames_in: AtomicU64,
    bytes_in: AtomicU64,
    frames_out: AtomicU64,
    bytes_out: AtomicU64,
    drops: AtomicU64,
}

enum Command {
    Connect {
        conn: ConnectionId,
        identity: Identity,
        address: Option<std::net::IpAddr>,
        outbound: mpsc::Sender<Outbound>,
        shared: Arc<ConnShared>,
        reply: oneshot::Sender<Result<(), SessionError>>,
    },
    Text {
        conn: ConnectionId,
        text: String,
    },
    Binary {
        conn: ConnectionId,
        bytes: Vec<u8>,
    },
    Disconnect {
        conn: ConnectionId,
    },
    Touch {
        conn: ConnectionId,
    },
    View {
        reply: oneshot::Sender<SessionView>,
    },
    ViewFor {
        user: UserId,
        peer: Option<std::net::IpAddr>,
        reply: oneshot::Sender<Result<SessionRead, SessionError>>,
    },
    Update {
        user: Identity,
        update: SessionUpdate,
        reply: oneshot::Sender<Result<SessionInfo, SessionError>>,
    },
    End {
        user: Identity,
        reply: oneshot::Sender<Result<SessionInfo, SessionError>>,
    },
    Join {
        conn: ConnectionId,
        name: Option<String>,
        reply: oneshot::Sender<Result<ParticipantState, SessionError>>,
    },
    Leave {
        user: UserId,
        target: String,
        reply: oneshot::Sender<Result<(), SessionError>>,
    },
    Read {
        user: UserId,
        since: Seq,
        rev: Option<Revision>,
        reply: oneshot::Sender<Result<ReadPage, SessionError>>,
    },
    Authenticated {
        conn: ConnectionId,
        rid: Option<u64>,
        outcome: Result<Identity, AuthError>,
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
    access: std::sync::RwLock<Arc<dyn Access>>,
    /// Session creations and guest identities, per user and address.
    rates: Mutex<RateLimiter>,
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
    /// A hub with default settings, on tokio's clock.
    pub fn new(auth: impl Authenticator) -> Self {
        Self::with_config(
            Arc::new(auth),
            Arc::new(TokioClock::new()),
            HubConfig::default(),
        )
    }

    /// A hub with the given authenticator, clock and settings.
    pub fn with_config(
        auth: Arc<dyn Authenticator>,
        clock: Arc<dyn Clock>,
        config: HubConfig,
    ) -> Self {
        Self::build(auth, clock, config, None)
    }

    /// A hub whose sessions are kept in `store`: every acknowledged change is
    /// saved before the acknowledgement goes out (see [`crate::store`]),
    /// sessions idle for [`HubConfig::unload_after`] leave memory and load
    /// again on demand, after a restart too, and a sweep every
    /// [`HubConfig::sweep_every`] expires idle sessions and deletes ended
    /// ones after [`HubConfig::keep_ended`]. Must be called within a tokio
    /// runtime (the sweep is a task).
    pub fn with_store(
        auth: Arc<dyn Authenticator>,
        clock: Arc<dyn Clock>,
        config: HubConfig,
        store: Arc<dyn Store>,
    ) -> Self {
        let hub = Self::build(auth, clock, config, Some(store));
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

    fn build(
        auth: Arc<dyn Authenticator>,
        clock: Arc<dyn Clock>,
        config: HubConfig,
        store: Option<Arc<dyn Store>>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
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
                access: std::sync::RwLock::new(Arc::new(DefaultAccess)),
                rates: Mutex::new(RateLimiter::default()),
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

    /// The same hub deciding who may create, read and join which session
    /// with `access` instead of [`DefaultAccess`]. Call it before serving.
    pub fn with_access(self, access: impl Access) -> Self {
        *self.inner.access.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(access);
        self
    }

    /// Asks the [`Access`] policy; a denial is [`HubError::Forbidden`].
    async fn authorize(
        &self,
        who: &Identity,
        request: SessionRequest<'_>,
    ) -> Result<Option<collab_core::participant::Role>, HubError> {
        let access = Arc::clone(&self.inner.access.read().unwrap_or_else(|e| e.into_inner()));
        match access.authorize(who, request).await? {
            Grant::Allow { role } => Ok(role),
            Grant::Deny => Err(HubError::Forbidden),
        }
    }

    /// Takes one request of `rate` for every key, or refuses them all.
    fn admit(&self, rate: Rate, keys: &[String]) -> Result<(), HubError> {
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

    /// The address of the client behind a request that came from `peer`:
    /// `peer` itself, unless it is one of [`HubConfig::trusted_proxies`],
    /// whose `Forwarded` (RFC 7239) or else `X-Forwarded-For` header names
    /// the client. The last address a trusted proxy appended is taken,
    /// skipping further trusted proxies in a chain, so a client cannot
    /// choose its own address by sending the header itself.
    pub fn client_address(
        &self,
        peer: Option<std::net::IpAddr>,
        forwarded: Option<&str>,
        x_forwarded_for: Option<&str>,
    ) -> Option<std::net::IpAddr> {
        crate::transport::client_address(
            &self.inner.config.trusted_proxies,
            peer,
            forwarded,
            x_forwarded_for,
        )
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
    /// [`Hub::create_session_from`]. Must be called within a tokio runtime.
    ///
    /// # Errors
    /// [`HubError::Session`] for invalid settings; [`HubError::Random`] if no id can be made.
    pub async fn create_session(
        &self,
        creator: &Identity,
        new: NewSession,
    ) -> Result<SessionInfo, HubError> {
        self.start_new(creator, new).await
    }

    /// [`Hub::create_session`] for a client at `peer`: the [`Access`] policy
    /// must allow it, and at most [`HubConfig::session_creation`] per user
    /// and per address.
    ///
    /// # Errors
    /// As [`Hub::create_session`], and [`HubError::Forbidden`],
    /// [`HubError::RateLimited`].
    pub async fn create_session_from(
        &self,
        creator: &Identity,
        new: NewSession,
        peer: Option<std::net::IpAddr>,
    ) -> Result<SessionInfo, HubError> {
        self.authorize(creator, SessionRequest::Create).await?;
        let mut keys = vec![format!("create-user:{}", creator.user_id)];
        if let Some(ip) = peer {
            keys.push(format!("create-ip:{ip}"));
        }
        self.admit(self.inner.config.session_creation, &keys)?;
        self.start_new(creator, new).await
    }

    async fn start_new(
        &self,
        creator: &Identity,
        new: NewSession,
    ) -> Result<SessionInfo, HubError> {
        let id = random_session_id()?;
        let now = self.inner.clock.now();
        let mut session = Session::new(
            id.clone(),
            new,
            creator,
            self.inner.config.session.clone(),
            now,
        )?;
        let info = session.info();
        if let Some(store) = &self.inner.store {
            // Created means stored: the 201 is an acknowledgement too.
            store.save(&session.take_changes()).await?;
        }
        self.start(session);
        Ok(info)
    }

    /// Starts a session's task and makes it reachable.
    fn start(&self, session: Session) -> SessionHandle {
        let (tx, rx) = mpsc::channel(self.inner.config.inbound_queue);
        let (position_tx, position) = watch::channel(session.position());
        let weak = tx.downgrade();
        let handle = SessionHandle { tx, position };
        self.sessions().insert(session.id().clone(), handle.clone());
        tokio::spawn(run_session(
            session,
            rx,
            weak,
            position_tx,
            Arc::clone(&self.inner),
        ));
        handle
    }

    /// Looks for stored sessions to expire or delete: an unloaded session
    /// idle past its expiry is loaded, which ends it (and unloads it again);
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
                    let expires = summary
                        .last_activity
                        .plus(std::time::Duration::from_secs(summary.expires_after_secs));
                    if !loaded && now >= expires {
                        if let Err(e) = self.handle(&summary.id).await {
                            tracing::warn!(session = %summary.id, error = %e, "cannot expire session");
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// The session as `who`, at `peer`, may read it over REST: all of it for
    /// a member or its creator, the summary for others the [`Access`] policy
    /// lets read, nothing for the banned (by identity, or a newcomer from a
    /// banned address).
    ///
    /// # Errors
    /// [`HubError::SessionNotFound`]; [`HubError::Forbidden`];
    /// [`SessionError::Banned`].
    pub async fn session_for(
        &self,
        id: &SessionId,
        who: &Identity,
        peer: Option<std::net::IpAddr>,
    ) -> Result<SessionRead, HubError> {
        self.authorize(who, SessionRequest::Read(id)).await?;
        let user = who.user_id.clone();
        Ok(self
            .ask(id, |reply| Command::ViewFor { user, peer, reply })
            .await??)
    }

    /// The session's info, code and participants, for the host application
    /// itself (no access check: REST reads go through [`Hub::session_for`]).
    ///
    /// # Errors
    /// [`HubError::SessionNotFound`].
    pub async fn session(&self, id: &SessionId) -> Result<SessionView, HubError> {
        let (reply, rx) = oneshot::channel();
        self.command(id, Command::View { reply }).await?;
        rx.await.map_err(|_| HubError::ShuttingDown)
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
        let (reply, rx) = oneshot::channel();
        self.command(
            id,
            Command::Update {
                user: user.clone(),
                update,
                reply,
            },
        )
        .await?;
        Ok(rx.await.map_err(|_| HubError::ShuttingDown)??)
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
        let (reply, rx) = oneshot::channel();
        self.command(
            id,
            Command::End {
                user: user.clone(),
                reply,
            },
        )
        .await?;
        Ok(rx.await.map_err(|_| HubError::ShuttingDown)??)
    }

    /// Opens a connection to a session for an authenticated `identity`. The
    /// client's first frame should be `join`.
    ///
    /// # Errors
    /// [`HubError::SessionNotFound`], or [`HubError::Session`] if the session
    /// has ended or the user was kicked.
    pub async fn connect(
        &self,
        id: &SessionId,
        identity: Identity,
    ) -> Result<Connection, HubError> {
        self.connect_from(id, identity, None).await
    }

    /// Checks an upgrade's `Origin` header against the hub's [`OriginPolicy`].
    ///
    /// # Errors
    /// [`HubError::OriginNotAllowed`].
    pub fn check_origin(&self, origin: Option<&str>, host: Option<&str>) -> Result<(), HubError> {
        if self.inner.config.origins.allows(origin, host) {
            Ok(())
        } else {
            Err(HubError::OriginNotAllowed)
        }
    }

    /// The largest WebSocket message the protocol takes (a text frame or a
    /// replica's sync message, whichever limit is larger): adapters set
    /// their framework's message and frame size to it, so nothing larger is
    /// ever buffered.
    pub fn max_message_bytes(&self) -> usize {
        let session = &self.inner.config.session;
        session.max_frame_bytes.max(session.max_sync_bytes)
    }

    /// How long adapters wait for a request body ([`HubConfig::body_timeout`]).
    pub fn body_timeout(&self) -> std::time::Duration {
        self.inner.config.body_timeout
    }

    /// The keepalive interval adapters ping idle WebSockets at.
    pub fn keepalive(&self) -> std::time::Duration {
        self.inner.config.keepalive
    }

    /// [`Hub::connect`] for a client at `peer`, counted against
    /// [`HubConfig::max_connections_per_address`].
    ///
    /// # Errors
    /// As [`Hub::connect`], and [`HubError::TooManyConnections`].
    pub async fn connect_from(
        &self,
        id: &SessionId,
        identity: Identity,
        peer: Option<std::net::IpAddr>,
    ) -> Result<Connection, HubError> {
        let mut identity = identity;
        identity.role = self.authorize(&identity, SessionRequest::Join(id)).await?;
        let slot = AddressSlot::take(&self.inner, peer)?;
        let conn = ConnectionId(self.inner.next_conn.fetch_add(1, Ordering::Relaxed));
        let (out_tx, out_rx) = mpsc::channel(self.inner.config.outbound_queue);
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
        self.inner
            .counters
            .connections
            .fetch_add(1, Ordering::Relaxed);
        let guard = Arc::new(DisconnectGuard {
            conn,
            tx: session_tx.clone(),
            hub: Arc::clone(&self.inner),
            _slot: slot,
        });
        Ok(Connection {
            sender: ConnectionSender {
                conn,
                tx: session_tx,
                guard: Arc::clone(&guard),
                hub: Arc::clone(&self.inner),
            },
            receiver: ConnectionReceiver {
                rx: out_rx,
                shared,
                done: false,
                _guard: guard,
            },
        })
    }

    /// Closes every connection with [`CloseReason::ServerShutdown`] and stops
    /// every session task. Clients get a `goodbye` frame and close code 1001.
    pub async fn shutdown(&self) {
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
        }
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<SessionId, SessionHandle>> {
        self.inner
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// The live session `id`, loaded from the store if it is not in memory.
    async fn handle(&self, id: &SessionId) -> Result<SessionHandle, HubError> {
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
        let stored = store.load(id).await?.ok_or(HubError::SessionNotFound)?;
        let now = self.inner.clock.now();
        let config = self.inner.config.session.clone();
        // Restoring replays the document and the history: seconds for a big
        // session, which must not hold a runtime worker that other sessions'
        // frames wait for.
        let session = tokio::task::spawn_blocking(move || Session::restore(stored, config, now))
            .await
            .map_err(|_| HubError::ShuttingDown)??;
        Ok(self.start(session))
    }

    async fn command(
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

    /// Sends `command` built around a reply channel and waits for the answer.
    async fn ask<T>(
        &self,
        id: &SessionId,
        command: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, HubError> {
        let (reply, rx) = oneshot::channel();
        self.command(id, command(reply)).await?;
        rx.await.map_err(|_| HubError::ShuttingDown)
    }
}

/// Why the session closed a connection, read by the receiving half once its
/// queue runs dry.
#[derive(Default)]
struct ConnShared {
    close: Mutex<Option<CloseReason>>,
}

impl ConnShared {
    fn set(&self, reason: CloseReason) {
        let mut close = self.close.lock().unwrap_or_else(|e| e.into_inner());
        close.get_or_insert(reason);
    }

    fn get(&self) -> Option<CloseReason> {
        *self.close.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A request counted against its client address until dropped
/// ([`Hub::hold_address`]).
pub struct AddressGuard {
    _slot: AddressSlot,
}

/// Tells the session a connection is gone once both halves are dropped.
struct DisconnectGuard {
    conn: ConnectionId,
    tx: mpsc::Sender<Command>,
    hub: Arc<Inner>,
    _slot: AddressSlot,
}

/// One connection counted against its client address; released on drop.
struct AddressSlot {
    hub: Arc<Inner>,
    peer: Option<std::net::IpAddr>,
}

impl AddressSlot {
    fn take(hub: &Arc<Inner>, peer: Option<std::net::IpAddr>) -> Result<Self, HubError> {
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
    sender: ConnectionSender,
    receiver: ConnectionReceiver,
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

    /// The next thing to send the client; `None` after the close has been given.
    pub async fn recv(&mut self) -> Option<Outbound> {
        self.receiver.recv().await
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
    conn: ConnectionId,
    tx: mpsc::Sender<Command>,
    hub: Arc<Inner>,
    #[allow(dead_code)] // held for its Drop
    guard: Arc<DisconnectGuard>,
}

impl ConnectionSender {
    /// Hands a client's text frame to the session.
    ///
    /// # Errors
    /// [`HubError::ShuttingDown`] once the session has stopped.
    pub async fn send_text(&self, text: impl Into<String>) -> Result<(), HubError> {
        let text = text.into();
        self.count_in(text.len());
        self.command(Command::Text {
            conn: self.conn,
            text,
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

    /// Hands a client's binary frame to the session.
    ///
    /// # Errors
    /// [`HubError::ShuttingDown`] once the session has stopped.
    pub async fn send_binary(&self, bytes: Vec<u8>) -> Result<(), HubError> {
        self.count_in(bytes.len());
        self.command(Command::Binary {
            conn: self.conn,
            bytes,
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
    rx: mpsc::Receiver<Outbound>,
    shared: Arc<ConnShared>,
    done: bool,
    _guard: Arc<DisconnectGuard>,
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
            Err(mpsc::error::TryRecvError::Empty) => None,
            Err(mpsc::error::TryRecvError::Disconnected) => self.received(None),
        }
    }

    fn received(&mut self, next: Option<Outbound>) -> Option<Outbound> {
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

struct Peer {
    tx: mpsc::Sender<Outbound>,
    shared: Arc<ConnShared>,
}

/// A reply that may go out only once the step's changes are stored.
type Deferred = Box<dyn FnOnce() + Send>;

/// Commands taken at once before one store write: the group commit.
const MAX_BATCH: usize = 256;

/// One session's task state.
struct Task {
    session: Session,
    peers: HashMap<ConnectionId, Peer>,
    hub: Arc<Inner>,
    me: mpsc::WeakSender<Command>,
    deferred: Vec<Deferred>,
    stop: bool,
    /// When the last command arrived: a session just loaded to answer a
    /// request is in use even if nothing happens in it.
    last_command: Timestamp,
}

impl Task {
    fn apply(&mut self, command: Command) {
        let now = self.hub.clock.now();
        self.last_command = now;
        let session = &mut self.session;
        match command {
            Command::Connect {
                conn,
                identity,
                address,
                outbound,
                shared,
                reply,
            } => {
                let result = session.connect_from(conn, identity, address, now);
                if result.is_ok() {
                    self.peers.insert(
                        conn,
                        Peer {
                            tx: outbound,
                            shared,
                        },
                    );
                }
                let _ = reply.send(result);
            }
            Command::Text { conn, text } => session.handle_text(conn, &text, now),
            Command::Binary { conn, bytes } => session.handle_binary(conn, &bytes, now),
            Command::Touch { conn } => session.touch(conn, now),
            Command::Disconnect { conn } => {
                self.peers.remove(&conn);
                session.disconnect(conn, now);
            }
            Command::View { reply } => {
                let view = SessionView {
                    info: session.info(),
                    code: session.code(),
                    rev: session.position().1,
                    participants: session.participants(now),
                };
                let _ = reply.send(view);
            }
            Command::ViewFor { user, peer, reply } => {
                let read = session.may_read(&user, peer).map(|member| {
                    if member {
                        SessionRead::Full(SessionView {
                            info: session.info(),
                            code: session.code(),
                            rev: session.position().1,
                            participants: session.participants(now),
                        })
                    } else {
                        SessionRead::Summary(session.info())
                    }
                });
                let _ = reply.send(read);
            }
            Command::Update {
                user,
                update,
                reply,
            } => {
                let result = session.update(&user.user_id, update, now);
                self.defer(reply, result);
            }
            Command::End { user, reply } => {
                let result = session.end(&user.user_id, now);
                self.defer(reply, result);
            }
            Command::Join { conn, name, reply } => {
                let result = session.join_connection(conn, name, now);
                self.defer(reply, result);
            }
            Command::Leave {
                user,
                target,
                reply,
            } => {
                let result = session.leave_user(&user, &target, now);
                self.defer(reply, result);
            }
            Command::Read {
                user,
                since,
                rev,
                reply,
            } => {
                let _ = reply.send(session.read(&user, since, rev, usize::MAX));
            }
            Command::Authenticated { conn, rid, outcome } => {
                session.handle_authenticated(conn, rid, outcome, now);
            }
            Command::Shutdown => {
                session.close_all(CloseReason::ServerShutdown, now);
                self.stop = true;
            }
        }
    }

    fn defer<T: Send + 'static>(&mut self, reply: oneshot::Sender<T>, value: T) {
        self.deferred.push(Box::new(move || {
            let _ = reply.send(value);
        }));
    }

    /// Stores what changed, retrying while the store is down: nothing the
    /// step produced goes out before. `false` if the session cannot be
    /// stored at all (damaged), after closing everyone: nothing of what was
    /// not stored is acknowledged, and the session loads again from what was.
    async fn persist(&mut self) -> bool {
        let Some(store) = self.hub.store.clone() else {
            return true;
        };
        let changes = self.session.take_changes();
        if changes.is_empty() {
            return true;
        }
        let mut delay = std::time::Duration::from_millis(20);
        loop {
            match store.save(&changes).await {
                Ok(()) => return true,
                Err(e @ StoreError::Damaged { .. }) => {
                    tracing::error!(session = %self.session.id(), error = %e, "cannot store session; closing it");
                    while self.session.poll_transmit().is_some() {}
                    self.deferred.clear();
                    let now = self.hub.clock.now();
                    self.session.close_all(CloseReason::ServerShutdown, now);
                    self.stop = true;
                    return false;
                }
                Err(e) => {
                    tracing::warn!(session = %self.session.id(), error = %e, "store write failed; retrying");
                    let clock = &self.hub.clock;
                    clock.sleep_until(clock.now().plus(delay)).await;
                    delay = (delay * 2).min(std::time::Duration::from_secs(5));
                }
            }
        }
    }

    /// Stores, then sends, then answers: the order the durability contract needs.
    async fn finish_step(&mut self, position: &watch::Sender<(Seq, Revision)>) {
        self.persist().await;
        deliver(&mut self.session, &mut self.peers, &self.hub, &self.me);
        for reply in self.deferred.drain(..) {
            reply();
        }
        let now_at = self.session.position();
        position.send_if_modified(|p| std::mem::replace(p, now_at) != now_at);
    }

    /// When to unload, with a store: at once for an ended session nobody is
    /// connected to, after [`HubConfig::unload_after`] for an idle one.
    fn unload_at(&self) -> Option<Timestamp> {
        if self.hub.store.is_none() || self.session.connection_count() > 0 {
            return None;
        }
        if self.session.is_ended() {
            return Some(self.session.last_activity());
        }
        let last_use = self.session.last_activity().max(self.last_command);
        Some(last_use.plus(self.hub.config.unload_after))
    }

    /// Leaves the hub's map, under the load lock so the session cannot load
    /// again until its last changes are stored. `false` (and back in the map)
    /// if a connection arrived meanwhile.
    async fn unload(
        &mut self,
        rx: &mut mpsc::Receiver<Command>,
        position: &watch::Sender<(Seq, Revision)>,
    ) -> bool {
        let hub = Arc::clone(&self.hub);
        let id = self.session.id().clone();
        let _loading = LoadingGuard::lock(&hub, &id).await;
        let mine = self.me.upgrade();
        {
            let mut sessions = hub.sessions.lock().unwrap_or_else(|e| e.into_inner());
            if let (Some(h), Some(mine)) = (sessions.get(&id), mine.as_ref()) {
                if h.tx.same_channel(mine) {
                    sessions.remove(&id);
                }
            }
        }
        while let Ok(command) = rx.try_recv() {
            self.apply(command);
        }
        self.finish_step(position).await;
        if self.session.connection_count() == 0 || self.stop {
            return true;
        }
        if let Some(tx) = mine {
            let handle = SessionHandle {
                tx,
                position: position.subscribe(),
            };
            hub.sessions
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(id, handle);
        }
        false
    }
}

/// Holds one session's loading lock; the last holder forgets the lock.
struct LoadingGuard {
    inner: Arc<Inner>,
    id: SessionId,
    lock: Arc<tokio::sync::Mutex<()>>,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl LoadingGuard {
    async fn lock(inner: &Arc<Inner>, id: &SessionId) -> Self {
        let lock = Arc::clone(
            inner
                .loading
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(id.clone())
                .or_default(),
        );
        let guard = Arc::clone(&lock).lock_owned().await;
        Self {
            inner: Arc::clone(inner),
            id: id.clone(),
            lock,
            guard: Some(guard),
        }
    }
}

impl Drop for LoadingGuard {
    fn drop(&mut self) {
        self.guard.take();
        let mut loading = self.inner.loading.lock().unwrap_or_else(|e| e.into_inner());
        // The map's and ours: nobody else waits for this session.
        if Arc::strong_count(&self.lock) == 2 {
            loading.remove(&self.id);
        }
    }
}

async fn run_session(
    session: Session,
    mut rx: mpsc::Receiver<Command>,
    me: mpsc::WeakSender<Command>,
    position: watch::Sender<(Seq, Revision)>,
    hub: Arc<Inner>,
) {
    let hub_now = hub.clock.now();
    let mut task = Task {
        session,
        peers: HashMap::new(),
        hub,
        me,
        deferred: Vec::new(),
        stop: false,
        last_command: hub_now,
    };
    loop {
        let unload_at = task.unload_at();
        let deadline = match (task.session.poll_timeout(), unload_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let clock = Arc::clone(&task.hub.clock);
        let wake = async {
            match deadline {
                Some(at) => clock.sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            command = rx.recv() => {
                let Some(command) = command else { break };
                task.apply(command);
                // Everything already waiting joins this step and its one write.
                for _ in 0..MAX_BATCH {
                    match rx.try_recv() {
                        Ok(command) => task.apply(command),
                        Err(_) => break,
                    }
                }
            }
            () = wake => task.session.handle_timeout(task.hub.clock.now()),
        }
        task.finish_step(&position).await;
        if task.stop {
            break;
        }
        let now = task.hub.clock.now();
        if task.unload_at().is_some_and(|at| now >= at) && task.unload(&mut rx, &position).await {
            break;
        }
    }
    if task.stop {
        // Shut down or damaged: out of the map, if still there.
        let id = task.session.id().clone();
        let mine = task.me.upgrade();
        let mut sessions = task.hub.sessions.lock().unwrap_or_else(|e| e.into_inner());
        if let (Some(h), Some(mine)) = (sessions.get(&id), mine.as_ref()) {
            if h.tx.same_channel(mine) {
                sessions.remove(&id);
            }
        }
    }
}

/// Hands everything the session wants sent to the connections' queues, without
/// ever waiting: a full queue drops that connection as a slow consumer.
fn deliver(
    session: &mut Session,
    peers: &mut HashMap<ConnectionId, Peer>,
    hub: &Arc<Inner>,
    me: &mpsc::WeakSender<Command>,
) {
    loop {
        let mut slow = Vec::new();
        while let Some(transmit) = session.poll_transmit() {
            match transmit {
                Transmit::Send { to, frame } => {
                    let text: Arc<str> = frame.to_json().into();
                    for conn in to {
                        let Some(peer) = peers.get(&conn) else {
                            continue;
                        };
                        if peer.tx.try_send(Outbound::Text(Arc::clone(&text))).is_ok() {
                            hub.counters.frames_out.fetch_add(1, Ordering::Relaxed);
                            hub.counters
                                .bytes_out
                                .fetch_add(text.len() as u64, Ordering::Relaxed);
                        } else {
                            slow.push(conn);
                        }
                    }
                }
                Transmit::SendBinary { to, bytes } => {
                    let Some(peer) = peers.get(&to) else { continue };
                    let len = bytes.len() as u64;
                    if peer.tx.try_send(Outbound::Binary(bytes)).is_ok() {
                        hub.counters.frames_out.fetch_add(1, Ordering::Relaxed);
                        hub.counters.bytes_out.fetch_add(len, Ordering::Relaxed);
                    } else {
                        slow.push(to);
                    }
                }
                Transmit::Authenticate { conn, rid, token } => {
                    // Checked off the session task, which must not wait on an
                    // authenticator; the outcome comes back as a command.
                    let (Some(tx), auth) = (me.upgrade(), Arc::clone(&hub.auth)) else {
                        continue;
                    };
                    tokio::spawn(async move {
                        let outcome = auth.authenticate(Some(&token)).await;
                        let _ = tx.send(Command::Authenticated { conn, rid, outcome }).await;
                    });
                }
                Transmit::Close { conn, reason } => {
                    if let Some(peer) = peers.remove(&conn) {
                        peer.shared.set(reason);
                        let _ = peer.tx.try_send(Outbound::Close(reason));
                    }
                }
            }
        }
        if slow.is_empty() {
            return;
        }
        let now = hub.clock.now();
        for conn in slow {
            if let Some(peer) = peers.remove(&conn) {
                hub.counters.drops.fetch_add(1, Ordering::Relaxed);
                peer.shared.set(CloseReason::SlowConsumer);
                session.disconnect(conn, now);
            }
        }
    }
}

/// A fresh session id from the operating system's random source: 128 bits,
/// so a shared link cannot be guessed.
fn random_session_id() -> Result<SessionId, HubError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(HubError::Random)?;
    Ok(SessionId::from_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_session_ids_differ_and_parse() {
        let ids: std::collections::HashSet<_> =
            (0..1000).map(|_| random_session_id().unwrap()).collect();
        assert_eq!(ids.len(), 1000);
        for id in ids.iter().take(10) {
            assert_eq!(SessionId::parse(id.as_str()).as_ref(), Ok(id));
        }
    }
}
