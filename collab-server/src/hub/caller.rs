//! [`Caller`]: the hub as a client's requests reach it, checked on their
//! behalf.
//!
//! [`Hub`]'s own methods are the host application's calls, trusted as they
//! are. What a client asks for (over REST, a WebSocket, an event stream)
//! goes through a `Caller`, made for that client's identity and address:
//! the [`Access`] policy decides who may create, read and join (and so
//! connect, poll, stream and [`Caller::may`]), rate limits and the
//! per-address cap count, and reads show only what the caller may see.
//! Changes (update, replace the code, end, leave) are the session's to
//! decide, by the caller's role there. The two differ by type, so a route
//! cannot take the trusted path by a slip of a suffix.

use std::collections::VecDeque;
use std::net::IpAddr;

use futures::Stream;

use super::polling::{frame_rev, Cursored, STREAM_WAIT};
use super::request::Request;
use super::*;
use collab_core::participant::Action;
use collab_core::session::SessionStatus;

/// A client the hub acts for: who they are, and the address they connect
/// from. Cheap to clone.
///
/// ```
/// use collab_server::{Hub, Identity, TokenAuthenticator};
/// use collab_core::NewSession;
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let hub = Hub::new(TokenAuthenticator::new());
/// let ann = hub.caller(Identity::new("ann", "Ann"), "192.0.2.1".parse().ok());
/// let info = ann.create_session(NewSession::default()).await?;
/// let read = ann.session(&info.id).await?;
/// assert!(matches!(read, collab_server::SessionRead::Full(_)));
/// # Ok::<_, collab_server::HubError>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct Caller {
    hub: Hub,
    identity: Identity,
    peer: Option<IpAddr>,
}

impl Hub {
    /// The hub acting for a client with `identity` (as the authenticator
    /// returned it) at `peer` (see
    /// [`crate::http::HttpConfig::client_address`]).
    pub fn caller(&self, identity: Identity, peer: Option<IpAddr>) -> Caller {
        Caller {
            hub: self.clone(),
            identity,
            peer,
        }
    }
}

impl Caller {
    /// Who the caller is.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// Where the caller connects from, when known.
    pub fn peer(&self) -> Option<IpAddr> {
        self.peer
    }

    /// Creates a session with the caller as its host: the [`Access`]
    /// policy must allow it, and at most [`HubConfig::session_creation`]
    /// per user and per address. The caller is the session's first member,
    /// offline until they connect.
    ///
    /// # Errors
    /// As [`Hub::create_session`], and [`HubError::Forbidden`],
    /// [`HubError::RateLimited`].
    pub async fn create_session(&self, new: NewSession) -> Result<SessionInfo, HubError> {
        let hub = &self.hub;
        hub.authorize(&self.identity, SessionRequest::Create)
            .await?;
        let mut keys = vec![format!("create-user:{}", self.identity.user_id)];
        if let Some(ip) = self.peer {
            keys.push(format!("create-ip:{ip}"));
        }
        hub.admit(hub.inner.config.session_creation, &keys)?;
        hub.start_new(&self.identity, new, true).await
    }

    /// The session as the caller may read it: all of it for a member or
    /// its creator, the summary for others the [`Access`] policy lets read,
    /// nothing for the banned (by identity, or a newcomer from a banned
    /// address).
    ///
    /// # Errors
    /// [`HubError::SessionNotFound`]; [`HubError::Forbidden`];
    /// [`SessionError::Banned`].
    pub async fn session(&self, id: &SessionId) -> Result<SessionRead, HubError> {
        self.hub
            .authorize(&self.identity, SessionRequest::Read(id))
            .await?;
        let user = self.identity.user_id.clone();
        let peer = self.peer;
        self.hub.call(id, Request::ViewFor { user, peer }).await
    }

    /// Opens the caller's connection to a session, in the role the
    /// [`Access`] policy gives, counted against
    /// [`HubConfig::max_connections_per_address`]. The first frame should
    /// be `join`.
    ///
    /// # Errors
    /// As [`Hub::connect`], and [`HubError::Forbidden`],
    /// [`HubError::TooManyConnections`].
    pub async fn connect(&self, id: &SessionId) -> Result<Connection, HubError> {
        self.hub
            .open(id, self.identity.clone(), self.peer, true)
            .await
    }

    /// Joins the caller to the session over REST, with an optional display
    /// name. The hub holds a connection open for them until they leave, are
    /// removed, or stop reading for the stale timeout; joining again replaces
    /// it and keeps the same participant.
    ///
    /// # Errors
    /// As [`Caller::connect`], and as the `join` frame
    /// ([`SessionError::SessionFull`], [`SessionError::InvalidInput`] for a bad name).
    pub async fn join(
        &self,
        id: &SessionId,
        name: Option<String>,
    ) -> Result<ParticipantState, HubError> {
        let request = Request::Join {
            identity: self.identity.clone(),
            name,
            peer: self.peer,
        };
        self.hub.call(id, request).await
    }

    /// Makes the caller leave the session, closing every connection they
    /// hold. `target` (a user id or participant id, as in the REST path)
    /// must name the caller.
    ///
    /// # Errors
    /// [`HubError::SessionNotFound`]; [`SessionError::NotParticipant`] if they
    /// are not a current member; [`SessionError::NotYourself`].
    pub async fn leave(&self, id: &SessionId, target: &str) -> Result<(), HubError> {
        let request = Request::Leave {
            user: self.identity.user_id.clone(),
            target: target.to_owned(),
        };
        self.hub.call(id, request).await
    }

    /// Reads what happened after `request.since` (and, with `request.rev`, the
    /// document changes after it), waiting up to `request.wait` for something
    /// new when nothing is. Only current members may read; reading keeps a
    /// REST participant online.
    ///
    /// # Errors
    /// [`HubError::SessionNotFound`]; [`HubError::Forbidden`];
    /// [`SessionError::NotParticipant`] or [`SessionError::Banned`]; an
    /// unknown revision.
    pub async fn read(&self, id: &SessionId, request: ReadRequest) -> Result<ReadPage, HubError> {
        self.hub
            .authorize(&self.identity, SessionRequest::Read(id))
            .await?;
        let request = Request::Read {
            user: self.identity.user_id.clone(),
            since: request.since,
            rev: request.rev,
            wait_ms: request.wait.min(MAX_READ_WAIT).as_millis() as u64,
        };
        self.hub.call(id, request).await
    }

    /// The whole session as one document ([`SessionExport`]): every edit
    /// with its author and time, every message, comment, run and event, and
    /// the files at the start and now. Only a host may export; a session
    /// whose older history is in the store reads it first.
    ///
    /// # Errors
    /// [`HubError::SessionNotFound`]; [`HubError::Forbidden`];
    /// [`SessionError::NotParticipant`] or [`SessionError::Forbidden`];
    /// [`DocumentError::HistoryNotLoaded`](collab_core::DocumentError)
    /// (`storage_failed`) when the store's history could not be read.
    pub async fn export(&self, id: &SessionId) -> Result<SessionExport, HubError> {
        self.hub
            .authorize(&self.identity, SessionRequest::Read(id))
            .await?;
        let user = self.identity.user_id.clone();
        let export: Box<SessionExport> = self.hub.call(id, Request::Export { user }).await?;
        Ok(*export)
    }

    /// Whether the caller may do `action` in session `id` now: the
    /// [`Access`] policy must let them read it, and the session decides as
    /// for their frames (roles, and while it is paused only hosts change
    /// the code). For routes of the host application that act on a
    /// session, such as running its code.
    ///
    /// # Errors
    /// [`HubError::SessionNotFound`]; [`HubError::Forbidden`];
    /// [`SessionError::NotParticipant`], [`SessionError::Forbidden`] or
    /// [`SessionError::Paused`].
    pub async fn may(&self, id: &SessionId, action: Action) -> Result<(), HubError> {
        self.hub
            .authorize(&self.identity, SessionRequest::Read(id))
            .await?;
        let user = self.identity.user_id.clone();
        self.hub.call(id, Request::May { user, action }).await
    }

    /// Changes title, language or status; the caller must be a host.
    ///
    /// # Errors
    /// As [`Hub::update_session`].
    pub async fn update_session(
        &self,
        id: &SessionId,
        update: SessionUpdate,
    ) -> Result<SessionInfo, HubError> {
        self.hub.update_session(id, &self.identity, update).await
    }

    /// Sets the main file's text as the caller's edit made at `rev`.
    ///
    /// # Errors
    /// As [`Hub::replace_code`].
    pub async fn replace_code(
        &self,
        id: &SessionId,
        rev: Option<Revision>,
        code: String,
    ) -> Result<Revision, HubError> {
        self.hub.replace_code(id, &self.identity, rev, code).await
    }

    /// Ends the session; the caller must be a host.
    ///
    /// # Errors
    /// As [`Hub::end_session`].
    pub async fn end_session(&self, id: &SessionId) -> Result<SessionInfo, HubError> {
        self.hub.end_session(id, &self.identity).await
    }

    /// The session's events (and, from `request.rev`, its document changes) as
    /// an endless stream, for server-sent events: it ends when the session
    /// ends, or with one error when the reader may no longer read (kicked,
    /// left) or the session is gone.
    pub fn stream(
        &self,
        id: SessionId,
        request: ReadRequest,
    ) -> impl Stream<Item = Result<(StreamCursor, StreamItem), HubError>> + Send + 'static {
        struct State {
            caller: Caller,
            id: SessionId,
            cursor: StreamCursor,
            buffered: VecDeque<Cursored>,
            finished: bool,
        }
        let state = State {
            caller: self.clone(),
            id,
            cursor: StreamCursor {
                since: request.since,
                rev: request.rev,
            },
            buffered: VecDeque::new(),
            finished: false,
        };
        futures::stream::unfold(state, |mut st| async move {
            loop {
                if let Some(item) = st.buffered.pop_front() {
                    return Some((Ok(item), st));
                }
                if st.finished {
                    return None;
                }
                let request = ReadRequest {
                    since: st.cursor.since,
                    rev: st.cursor.rev,
                    wait: STREAM_WAIT,
                };
                match st.caller.read(&st.id, request).await {
                    Err(e) => {
                        st.finished = true;
                        return Some((Err(e), st));
                    }
                    Ok(page) => {
                        st.finished = page.status == SessionStatus::Ended && !page.has_more;
                        for event in page.events {
                            st.cursor.since = event.seq;
                            st.buffered.push_back((st.cursor, StreamItem::Event(event)));
                        }
                        for op in page.ops {
                            if let Some(rev) = frame_rev(&op) {
                                st.cursor.rev = Some(rev);
                            }
                            st.buffered.push_back((st.cursor, StreamItem::Document(op)));
                        }
                    }
                }
            }
        })
    }
}
