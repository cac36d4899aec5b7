//! One session as a deterministic state machine.
//!
//! [`Session`] owns no socket, spawns no task and reads no clock. A driver feeds
//! it connections, frames and the current time (`connect`, `handle_text`,
//! `handle_timeout`, `disconnect`), then drains what to send to whom with
//! [`Session::poll_transmit`] and asks when to wake it next with
//! [`Session::poll_timeout`]. The `Hub` of collab-server is such a driver; tests
//! drive it directly with a virtual clock.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::time::Duration;

use serde::Serialize;

use crate::chat::{find_mentions, Chat, ChatLimits, ChatMessage, ChatPage, CodeAnchor, NewMessage};
use crate::document::{
    Applied, Change, Document, DocumentError, Revision, RunOutput, SideEffect, SyncState, Version,
    DEFAULT_FILE,
};
use crate::error::SessionError;
use crate::events::{EndReason, Event, EventKind, EventPage};
use crate::identity::{AuthError, Identity};
use crate::ids::{ConnectionId, ParticipantId, Seq, SessionId, UserId};
use crate::ot::TextOperation;
use crate::participant::{pick_colour, Action, Participant, Role};
use crate::presence::{Presence, PresenceConfig, PresenceUpdate};
use crate::protocol::{
    decode_client_frame, ClientFrame, ClientMessage, ClientMode, CloseReason, ParticipantState,
    ProtocolError, ServerFrame, PROTOCOL_VERSION,
};
use crate::store::{
    DocumentWrite, SessionChanges, SessionRecord, StoreError, StoredMember, StoredMembership,
    StoredSession,
};
use crate::time::{duration_ms, Timestamp};

pub use collab_wire::session::{NewSession, SessionInfo, SessionStatus, SessionUpdate};

/// Settings of one session. The defaults suit an interview room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// Most participants online at once (default 10).
    pub capacity: usize,
    /// Role of a participant who is not the creator and whose identity grants none
    /// (default Editor).
    pub default_role: Role,
    /// Presence timing.
    pub presence: PresenceConfig,
    /// Chat limits.
    pub chat: ChatLimits,
    /// With nobody connected, a session that sees nothing happen for this long
    /// ends (default 30 minutes).
    pub expires_after: Duration,
    /// The longest expiry a creator may ask for (default 7 days).
    pub max_expires_after: Duration,
    /// Largest text frame accepted, in bytes (default 64 KiB).
    pub max_frame_bytes: usize,
    /// Frames a connection may send a second, sustained (default 60).
    pub frames_per_second: u32,
    /// Frames a connection may send at once above the sustained rate (default 120).
    pub frame_burst: u32,
    /// Most connections open to the session at once, joined or not (default 50).
    pub max_connections: usize,
    /// Largest binary (sync) frame accepted, in bytes (default 16 MiB: a
    /// replica's first sync after long offline work can be large).
    pub max_sync_bytes: usize,
    /// Longest display name, in characters (default 64).
    pub max_name_chars: usize,
    /// Longest title, in characters (default 200).
    pub max_title_chars: usize,
    /// Most events one `events` page carries (default 500).
    pub max_events_page: usize,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            capacity: 10,
            default_role: Role::Editor,
            presence: PresenceConfig::default(),
            chat: ChatLimits::default(),
            expires_after: Duration::from_secs(30 * 60),
            max_expires_after: Duration::from_secs(7 * 24 * 3600),
            max_frame_bytes: 64 * 1024,
            max_sync_bytes: 16 * 1024 * 1024,
            frames_per_second: 60,
            frame_burst: 120,
            max_connections: 50,
            max_name_chars: 64,
            max_title_chars: 200,
            max_events_page: 500,
        }
    }
}

/// What [`Session::read`] returns to a polling client.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReadPage {
    /// Events after the reader's `since`, in order.
    pub events: Vec<Event>,
    /// More events or document changes follow: read again at once.
    pub has_more: bool,
    /// The newest event's sequence number: the next `since`.
    pub last_seq: Seq,
    /// The document's revision now: the next `rev`.
    pub rev: Revision,
    /// Document changes after the reader's `rev`, as WebSocket clients get them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ops: Vec<ServerFrame>,
    /// The session's status (a reader stops once it is `ended`).
    pub status: SessionStatus,
}

/// Something the driver must do: send a frame, or close a connection.
// Nearly every transmit is a `Send`; boxing its frame would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Transmit {
    /// Send `frame` to every connection in `to` (serialise it once).
    Send {
        /// Recipients.
        to: Vec<ConnectionId>,
        /// The frame.
        frame: ServerFrame,
    },
    /// Send a binary frame (an automerge sync message) to one replica.
    SendBinary {
        /// The replica's connection.
        to: ConnectionId,
        /// The sync message.
        bytes: Vec<u8>,
    },
    /// Check a client's new credential with the authenticator, then hand the
    /// outcome to [`Session::handle_authenticated`]. The session cannot do it
    /// itself: authenticators are async and may call out.
    Authenticate {
        /// The connection that sent it.
        conn: ConnectionId,
        /// The request id to answer with.
        rid: Option<u64>,
        /// The credential, as the client sent it.
        token: String,
    },
    /// Close the connection after what was queued for it; the session has
    /// already forgotten it.
    Close {
        /// Which connection.
        conn: ConnectionId,
        /// Why (sent before in a `goodbye` frame).
        reason: CloseReason,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Membership {
    Present,
    Left,
    Kicked,
}

#[derive(Debug)]
struct Member {
    participant: Participant,
    membership: Membership,
    presence: Presence,
    connections: BTreeSet<ConnectionId>,
}

impl Member {
    fn online(&self) -> bool {
        !self.connections.is_empty()
    }

    /// Former members drop out of presence: their leaving is an event.
    fn shows_presence(&self) -> bool {
        self.membership == Membership::Present || self.online()
    }
}

#[derive(Debug)]
struct Conn {
    identity: Identity,
    /// The client's address, when the driver knows it (per-address bans).
    address: Option<std::net::IpAddr>,
    participant: Option<ParticipantId>,
    last_seen: Timestamp,
    /// Set for a replica: its automerge sync state.
    sync: Option<SyncState>,
    /// Frames it may still send now, in thousandths (a token bucket).
    allowance: u64,
    last_refill: Timestamp,
    /// Frames refused in a row for going over the rate.
    refused: u32,
}

/// One collaboration session: participants, presence, chat, event log and document.
#[derive(Debug)]
pub struct Session {
    id: SessionId,
    config: SessionConfig,
    title: String,
    language: String,
    status: SessionStatus,
    created_by: UserId,
    created_at: Timestamp,
    updated_at: Timestamp,
    ended_at: Option<Timestamp>,
    last_activity: Timestamp,
    /// The latest time handed in, to tell past deadlines from future ones.
    now: Timestamp,
    document: Document,
    members: BTreeMap<ParticipantId, Member>,
    by_user: HashMap<UserId, ParticipantId>,
    banned: HashSet<UserId>,
    connections: HashMap<ConnectionId, Conn>,
    chat: Chat,
    log: crate::events::EventLog,
    outbox: VecDeque<Transmit>,
    next_participant: u32,
    /// Messages with a code anchor, to move their anchors with edits.
    anchored: Vec<Seq>,
    /// Replicas may lack changes: generate sync messages before returning.
    sync_pending: bool,
    /// When pending local document changes get committed.
    commit_due: Option<Timestamp>,
    /// The files at revision 0, which the stored history replays from.
    initial_files: BTreeMap<String, String>,
    /// What has been handed to the store so far.
    persisted: Persisted,
}

/// How far a session's state has been handed to the store.
#[derive(Debug, Default)]
struct Persisted {
    seq: Seq,
    rev: Revision,
    heads: Vec<automerge::ChangeHash>,
    /// Every document change stored.
    saved: std::collections::HashSet<automerge::ChangeHash>,
    record: Option<SessionRecord>,
    /// Document chunks appended since the last full save.
    chunks: usize,
}

/// How far the last activity may move before the record is written for it alone.
const RECORD_ACTIVITY_STEP: Duration = Duration::from_secs(60);

fn stored_membership(m: Membership) -> StoredMembership {
    match m {
        Membership::Present => StoredMembership::Present,
        Membership::Left => StoredMembership::Left,
        Membership::Kicked => StoredMembership::Kicked,
    }
}

/// Appended document chunks after which the next write is a full save.
const CHUNKS_BEFORE_COMPACTION: usize = 256;

/// How long local document changes may stay uncommitted.
const COMMIT_DELAY: Duration = Duration::from_millis(500);

/// What a handled request answers its sender, besides what it broadcasts.
// Lives only between dispatch and send; boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
enum Reply {
    /// An `ack` if the request had a rid.
    Ack(Option<Seq>),
    /// A response frame (already carrying the rid).
    Frame(ServerFrame),
    /// Nothing more (the request's effect already answered, or closed the connection).
    Nothing,
}

impl Session {
    /// Creates a session. `creator` becomes its Host when they join.
    ///
    /// # Errors
    /// [`SessionError::InvalidInput`] for a title, language or capacity out of range.
    pub fn new(
        id: SessionId,
        new: NewSession,
        creator: &Identity,
        mut config: SessionConfig,
        now: Timestamp,
    ) -> Result<Self, SessionError> {
        if let Some(capacity) = new.capacity {
            if capacity == 0 || capacity > 1_000 {
                return Err(SessionError::InvalidInput(
                    "capacity must be 1 to 1000".into(),
                ));
            }
            config.capacity = capacity;
        }
        if let Some(secs) = new.expires_after_secs {
            if secs == 0 || secs > config.max_expires_after.as_secs() {
                return Err(SessionError::InvalidInput(format!(
                    "expiry must be 1 to {} seconds",
                    config.max_expires_after.as_secs()
                )));
            }
            config.expires_after = Duration::from_secs(secs);
        }
        check_title(&new.title, config.max_title_chars)?;
        check_language(&new.language)?;
        if new.code.len() > config.max_frame_bytes * 16 {
            return Err(SessionError::InvalidInput(
                "initial code is too large".into(),
            ));
        }
        let document = Document::new(&new.language, [(DEFAULT_FILE, new.code.as_str())])
            .map_err(|e| SessionError::InvalidInput(e.to_string()))?;
        Ok(Self {
            id,
            config,
            title: new.title,
            language: new.language,
            status: SessionStatus::Waiting,
            created_by: creator.user_id.clone(),
            created_at: now,
            updated_at: now,
            ended_at: None,
            last_activity: now,
            now,
            document,
            members: BTreeMap::new(),
            by_user: HashMap::new(),
            banned: HashSet::new(),
            connections: HashMap::new(),
            chat: Chat::default(),
            log: crate::events::EventLog::default(),
            outbox: VecDeque::new(),
            next_participant: 1,
            anchored: Vec::new(),
            sync_pending: false,
            commit_due: None,
            initial_files: [(DEFAULT_FILE.to_owned(), new.code)].into_iter().collect(),
            persisted: Persisted::default(),
        })
    }

    /// A session back from the store, as it was at its last write: members
    /// (all offline), chat, events and document. The hub's `config` supplies
    /// the settings that are not stored; capacity and expiry are.
    ///
    /// # Errors
    /// [`StoreError::Damaged`] when the stored parts do not make a session.
    pub fn restore(
        stored: StoredSession,
        mut config: SessionConfig,
        now: Timestamp,
    ) -> Result<Self, StoreError> {
        let StoredSession {
            record,
            events,
            messages,
            versions,
            document,
        } = stored;
        let damaged = |reason: String| StoreError::Damaged {
            session: record.id.clone(),
            reason,
        };
        config.capacity = record.capacity;
        config.expires_after = Duration::from_secs(record.expires_after_secs);
        let rev = versions.len() as Revision;
        let mut document = Document::restore(&document, &record.initial_files, versions)
            .map_err(|e| damaged(e.to_string()))?;
        let log = crate::events::EventLog::restore(events).map_err(damaged)?;
        let chat = Chat::restore(messages);
        let anchored = chat
            .all()
            .iter()
            .filter(|m| m.anchor.is_some() && !m.deleted)
            .map(|m| m.id)
            .collect();
        let mut members = BTreeMap::new();
        let mut by_user = HashMap::new();
        for m in &record.members {
            let id = m.participant.id;
            if id.0 >= record.next_participant {
                return Err(damaged(format!("participant {} not yet given", id.0)));
            }
            by_user.insert(m.participant.user_id.clone(), id);
            members.insert(
                id,
                Member {
                    participant: m.participant.clone(),
                    membership: match m.membership {
                        StoredMembership::Present => Membership::Present,
                        StoredMembership::Left => Membership::Left,
                        StoredMembership::Kicked => Membership::Kicked,
                    },
                    presence: Presence::new(now),
                    connections: BTreeSet::new(),
                },
            );
        }
        let persisted = Persisted {
            seq: log.last_seq(),
            rev,
            heads: document.heads(),
            saved: document.change_hashes(),
            record: Some(record.clone()),
            chunks: CHUNKS_BEFORE_COMPACTION / 2,
        };
        Ok(Self {
            id: record.id,
            config,
            title: record.title,
            language: record.language,
            status: record.status,
            created_by: record.created_by,
            created_at: record.created_at,
            updated_at: record.updated_at,
            ended_at: record.ended_at,
            last_activity: record.last_activity,
            now,
            document,
            members,
            by_user,
            banned: record.banned.into_iter().collect(),
            connections: HashMap::new(),
            chat,
            log,
            outbox: VecDeque::new(),
            next_participant: record.next_participant,
            anchored,
            sync_pending: false,
            commit_due: None,
            initial_files: record.initial_files,
            persisted,
        })
    }

    /// What changed since the last call, for the store: the record when it
    /// changed, new events and versions, changed chat messages, and the
    /// document's new automerge changes (a full save on the first call and,
    /// to compact, after many appended chunks). Commits pending document
    /// changes.
    pub fn take_changes(&mut self) -> SessionChanges {
        let mut changes = SessionChanges::empty(self.id.clone());
        if self.record_changed() {
            let record = self.stored_record();
            self.persisted.record = Some(record.clone());
            changes.record = Some(record);
        }
        if self.log.last_seq() > self.persisted.seq {
            changes.events = self.log.since(self.persisted.seq, usize::MAX).events;
            self.persisted.seq = self.log.last_seq();
        }
        changes.messages = self.chat.take_changed();
        let (versions, _) = self.document.versions(self.persisted.rev, usize::MAX);
        changes.versions = versions.to_vec();
        self.persisted.rev = self.document.rev();
        let first = self.persisted.heads.is_empty();
        let persisted = &mut self.persisted;
        if let Some(bytes) = self
            .document
            .save_since(&mut persisted.heads, &mut persisted.saved)
        {
            persisted.chunks += 1;
            changes.document = if first || persisted.chunks >= CHUNKS_BEFORE_COMPACTION {
                persisted.chunks = 0;
                Some(DocumentWrite::Replace(self.document.save()))
            } else {
                Some(DocumentWrite::Append(bytes))
            };
        }
        if !self.document.has_uncommitted() {
            self.commit_due = None;
        }
        changes
    }

    /// Whether the record differs from the stored one, compared in place:
    /// building it clones the members and the initial files, which a step
    /// that only edits or chats should not pay. The last activity counts once
    /// it moved a minute, or exactly once nobody is connected (it times
    /// expiry, which then starts), so busy steps do not rewrite the record.
    fn record_changed(&self) -> bool {
        let Some(r) = &self.persisted.record else {
            return true;
        };
        let members_differ = r.members.len() != self.members.len()
            || r.members.iter().zip(self.members.values()).any(|(s, m)| {
                s.participant != m.participant || s.membership != stored_membership(m.membership)
            });
        r.title != self.title
            || r.language != self.language
            || r.status != self.status
            || r.updated_at != self.updated_at
            || r.ended_at != self.ended_at
            || r.capacity != self.config.capacity
            || r.expires_after_secs != self.config.expires_after.as_secs()
            || r.next_participant != self.next_participant
            || r.banned.len() != self.banned.len()
            || members_differ
            || (self.last_activity != r.last_activity
                && (self.connections.is_empty()
                    || self.last_activity.since(r.last_activity) >= RECORD_ACTIVITY_STEP))
    }

    /// The session's record as the store keeps it.
    fn stored_record(&self) -> SessionRecord {
        SessionRecord {
            id: self.id.clone(),
            title: self.title.clone(),
            language: self.language.clone(),
            status: self.status,
            created_by: self.created_by.clone(),
            created_at: self.created_at,
            updated_at: self.updated_at,
            ended_at: self.ended_at,
            last_activity: self.last_activity,
            capacity: self.config.capacity,
            expires_after_secs: self.config.expires_after.as_secs(),
            members: self
                .members
                .values()
                .map(|m| StoredMember {
                    participant: m.participant.clone(),
                    membership: stored_membership(m.membership),
                })
                .collect(),
            banned: {
                let mut banned: Vec<UserId> = self.banned.iter().cloned().collect();
                banned.sort_by_key(ToString::to_string);
                banned
            },
            next_participant: self.next_participant,
            initial_files: self.initial_files.clone(),
        }
    }

    // ---- driver interface -------------------------------------------------

    /// Registers a new connection for `identity`. It must send `join` next.
    ///
    /// # Errors
    /// [`SessionError::SessionEnded`] or [`SessionError::Banned`]; nothing changes.
    pub fn connect(
        &mut self,
        conn: ConnectionId,
        identity: Identity,
        now: Timestamp,
    ) -> Result<(), SessionError> {
        self.connect_from(conn, identity, None, now)
    }

    /// [`Session::connect`] for a client at `address`, refused when a host
    /// banned that address (a `kick` with `ban_address`).
    ///
    /// # Errors
    /// As [`Session::connect`].
    pub fn connect_from(
        &mut self,
        conn: ConnectionId,
        identity: Identity,
        address: Option<std::net::IpAddr>,
        now: Timestamp,
    ) -> Result<(), SessionError> {
        self.advance(now);
        if self.is_ended() {
            return Err(SessionError::SessionEnded);
        }
        // An address ban keeps newcomers from there out; members already in
        // the session (the host on the same network, say) stay welcome.
        let newcomer = self.current_member_of(&identity.user_id).is_err();
        if self.banned.contains(&identity.user_id)
            || (newcomer && address.is_some_and(|a| self.banned.contains(&address_ban(a))))
        {
            return Err(SessionError::Banned);
        }
        if self.connections.len() >= self.config.max_connections {
            return Err(SessionError::TooManyConnections {
                max: self.config.max_connections,
            });
        }
        self.connections.insert(
            conn,
            Conn {
                identity,
                address,
                participant: None,
                last_seen: now,
                sync: None,
                allowance: u64::from(self.config.frame_burst) * 1_000,
                last_refill: now,
                refused: 0,
            },
        );
        Ok(())
    }

    /// A connection closed (the client went away or the driver dropped it). Its
    /// participant goes offline if it was their last connection.
    pub fn disconnect(&mut self, conn: ConnectionId, now: Timestamp) {
        self.advance(now);
        let Some(c) = self.connections.remove(&conn) else {
            return;
        };
        self.last_activity = now;
        if let Some(member) = c.participant.and_then(|p| self.members.get_mut(&p)) {
            member.connections.remove(&conn);
            member.presence.mark_dirty();
        }
        self.flush_presence(now);
    }

    /// Handles one text frame from a connection. Unknown connections are ignored
    /// (a frame racing its connection's close).
    pub fn handle_text(&mut self, conn: ConnectionId, text: &str, now: Timestamp) {
        if !self.connections.contains_key(&conn) {
            return;
        }
        self.advance(now);
        let max = self.config.max_frame_bytes;
        if !self.admit(conn, now, FRAME_COST, || {
            crate::protocol::request_id(text, max)
        }) {
            return;
        }
        match decode_client_frame(text, self.config.max_frame_bytes) {
            Ok(msg) => self.handle_message(conn, msg, now),
            Err((rid, err)) => {
                self.touch_connection(conn, now);
                self.send_error(conn, rid, &SessionError::Protocol(err));
            }
        }
    }

    /// Handles one binary frame from a connection. Binary frames are reserved
    /// for document sync; until a connection has negotiated it, a binary frame
    /// is answered with a `malformed_frame` error and the connection goes on.
    pub fn handle_binary(&mut self, conn: ConnectionId, bytes: &[u8], now: Timestamp) {
        if !self.connections.contains_key(&conn) {
            return;
        }
        self.advance(now);
        // A replica answers every sync message it gets; an answer that
        // carries no changes (an acknowledgement of what it received) costs
        // a tenth of a frame, so a replica that only follows a busy session
        // is never refused.
        let follows = self.connections[&conn].sync.is_some()
            && matches!(Document::sync_message_has_changes(bytes), Ok(false));
        let cost = if follows { FRAME_COST / 10 } else { FRAME_COST };
        if !self.admit(conn, now, cost, || None) {
            return;
        }
        self.touch_connection(conn, now);
        if let Err(err) = self.receive_sync(conn, bytes, now) {
            self.send_error(conn, None, &err);
        }
        self.after_input(now);
    }

    /// Handles one decoded frame from a connection.
    pub fn handle_message(&mut self, conn: ConnectionId, msg: ClientMessage, now: Timestamp) {
        if !self.connections.contains_key(&conn) {
            return;
        }
        self.advance(now);
        self.touch_connection(conn, now);
        let rid = msg.rid;
        match self.dispatch(conn, rid, msg.frame, now) {
            Ok(Reply::Ack(seq)) => {
                if let Some(rid) = rid {
                    self.send(vec![conn], ServerFrame::Ack { rid, seq });
                }
            }
            Ok(Reply::Frame(frame)) => self.send(vec![conn], frame),
            Ok(Reply::Nothing) => {}
            Err(err) => self.send_error(conn, rid, &err),
        }
        self.after_input(now);
    }

    /// Lets time pass: clears typing flags, moves statuses to idle and away,
    /// sends coalesced presence, drops stale connections and expires the session.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        self.advance(now);
        let stale_after = self.config.presence.stale_after;
        let stale: Vec<ConnectionId> = self
            .connections
            .iter()
            .filter(|(_, c)| now >= c.last_seen.plus(stale_after))
            .map(|(id, _)| *id)
            .collect();
        for conn in stale {
            self.close(conn, CloseReason::Stale, now);
        }
        let expired: Vec<ConnectionId> = self
            .connections
            .iter()
            .filter(|(_, c)| c.identity.expires_at.is_some_and(|at| now >= at))
            .map(|(id, _)| *id)
            .collect();
        for conn in expired {
            self.close(conn, CloseReason::TokenExpired, now);
        }
        if self.expired(now) {
            self.end_with(None, EndReason::Expired, now);
        }
        if self.commit_due.is_some_and(|due| now >= due) {
            self.document.commit();
            self.commit_due = None;
        }
        self.after_input(now);
    }

    /// The next time [`Session::handle_timeout`] has something to do, if any.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        let now = self.now;
        let mut next: Option<Timestamp> = None;
        let mut consider = |t: Timestamp| next = Some(next.map_or(t, |n| n.min(t)));
        let cfg = &self.config.presence;
        for member in self.members.values().filter(|m| m.shows_presence()) {
            if let Some(t) = member.presence.next_deadline(member.online(), now, cfg) {
                consider(t);
            }
        }
        for c in self.connections.values() {
            consider(c.last_seen.plus(cfg.stale_after));
            if let Some(at) = c.identity.expires_at {
                consider(at);
            }
        }
        if !self.is_ended() && self.connections.is_empty() {
            consider(self.last_activity.plus(self.config.expires_after));
        }
        if let Some(due) = self.commit_due {
            consider(due);
        }
        next
    }

    /// The next thing to send or close, in order.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.outbox.pop_front()
    }

    /// The outcome of a [`Transmit::Authenticate`]: a connection refreshed its
    /// credential. A valid credential for the same user moves the connection's
    /// expiry and is acknowledged; anything else is answered with an error and
    /// the connection keeps its old expiry (and closes with `token_expired`
    /// when that comes). Role and name stay as the session knows them.
    pub fn handle_authenticated(
        &mut self,
        conn: ConnectionId,
        rid: Option<u64>,
        outcome: Result<Identity, AuthError>,
        now: Timestamp,
    ) {
        self.advance(now);
        let Some(c) = self.connections.get_mut(&conn) else {
            return;
        };
        let result = match outcome {
            Err(e) => Err(SessionError::Auth(e)),
            Ok(identity) if identity.user_id != c.identity.user_id => {
                Err(SessionError::TokenForAnotherUser)
            }
            Ok(identity) => {
                c.identity.expires_at = identity.expires_at;
                Ok(())
            }
        };
        match result {
            Ok(()) => {
                if let Some(rid) = rid {
                    self.send(vec![conn], ServerFrame::Ack { rid, seq: None });
                }
            }
            Err(err) => self.send_error(conn, rid, &err),
        }
    }

    // ---- requests that do not come through a connection (REST) ------------

    /// Joins `conn` as its identity, like a `join` frame with only a name: for
    /// clients that join over REST and hold no socket. The driver keeps the
    /// connection open for them (touching it while they poll), so they count
    /// against capacity and show presence like everyone else.
    ///
    /// # Errors
    /// As the `join` frame: [`SessionError::SessionFull`],
    /// [`SessionError::Banned`], [`SessionError::AlreadyJoined`],
    /// [`SessionError::InvalidInput`] for a bad name.
    pub fn join_connection(
        &mut self,
        conn: ConnectionId,
        name: Option<String>,
        now: Timestamp,
    ) -> Result<ParticipantState, SessionError> {
        if !self.connections.contains_key(&conn) {
            return Err(SessionError::NotJoined);
        }
        self.advance(now);
        let request = JoinRequest {
            name,
            since: None,
            protocol: None,
            mode: None,
            rev: None,
        };
        let result = self.join(conn, None, request, now);
        self.after_input(now);
        result?;
        let me = self.connections[&conn]
            .participant
            .ok_or(SessionError::NotJoined)?;
        self.participants(now)
            .into_iter()
            .find(|p| p.participant.id == me)
            .ok_or(SessionError::NotJoined)
    }

    /// Makes `user` leave, as their `leave` frame would: the event is recorded
    /// and every connection of theirs closes with `left`. `target` names who
    /// is to leave, by user id or participant id, and must be `user`
    /// themselves: removing someone else is a host's `kick`.
    ///
    /// # Errors
    /// [`SessionError::NotParticipant`] if they are not a current member,
    /// [`SessionError::NotYourself`] if `target` is someone else.
    pub fn leave_user(
        &mut self,
        user: &UserId,
        target: &str,
        now: Timestamp,
    ) -> Result<(), SessionError> {
        self.advance(now);
        let me = self.current_member_of(user)?;
        if target != user.to_string() && target != me.0.to_string() {
            return Err(SessionError::NotYourself);
        }
        self.leave(me, now);
        self.after_input(now);
        Ok(())
    }

    /// What a polling client reads: the events after `since` and, when it
    /// passes the document revision it holds, the document changes after it
    /// (as the `text_op` and `file_op` frames a WebSocket client gets). Only current members may read.
    ///
    /// # Errors
    /// [`SessionError::Banned`] for a kicked user, [`SessionError::NotParticipant`]
    /// for anyone else who is not a current member,
    /// [`DocumentError::UnknownRevision`] for a revision from the future.
    pub fn read(
        &self,
        user: &UserId,
        since: Seq,
        rev: Option<Revision>,
        limit: usize,
    ) -> Result<ReadPage, SessionError> {
        self.current_member_of(user)?;
        if let Some(rev) = rev.filter(|r| *r > self.document.rev()) {
            return Err(DocumentError::UnknownRevision {
                rev,
                current: self.document.rev(),
            }
            .into());
        }
        let limit = limit.min(self.config.max_events_page);
        let page = self.log.since(since, limit);
        let (ops, ops_more) = match rev {
            Some(rev) => {
                let (versions, more) = self.document.versions(rev, limit);
                (versions.iter().cloned().map(version_frame).collect(), more)
            }
            None => (Vec::new(), false),
        };
        Ok(ReadPage {
            events: page.events,
            has_more: page.has_more || ops_more,
            last_seq: self.log.last_seq(),
            rev: self.document.rev(),
            ops,
            status: self.status,
        })
    }

    /// The latest event's sequence number and the document's revision: what a
    /// waiting reader compares to know whether anything new happened.
    pub fn position(&self) -> (Seq, Revision) {
        (self.log.last_seq(), self.document.rev())
    }

    /// Whether `user`, at `address`, may read the session's code and
    /// participants over REST: its current members and its creator may; a
    /// banned user, or a newcomer from a banned address, gets
    /// [`SessionError::Banned`]; anyone else `Ok(false)` (the public summary).
    ///
    /// # Errors
    /// [`SessionError::Banned`].
    pub fn may_read(
        &self,
        user: &UserId,
        address: Option<std::net::IpAddr>,
    ) -> Result<bool, SessionError> {
        let member = *user == self.created_by || self.current_member_of(user).is_ok();
        if self.banned.contains(user)
            || (!member && address.is_some_and(|a| self.banned.contains(&address_ban(a))))
        {
            return Err(SessionError::Banned);
        }
        Ok(member)
    }

    fn current_member_of(&self, user: &UserId) -> Result<ParticipantId, SessionError> {
        if self.banned.contains(user) {
            return Err(SessionError::Banned);
        }
        self.by_user
            .get(user)
            .copied()
            .filter(|id| self.members[id].membership == Membership::Present)
            .ok_or(SessionError::NotParticipant)
    }

    /// Changes title, language or status on behalf of `user`, who must be
    /// permitted to [`Action::UpdateSession`].
    ///
    /// # Errors
    /// [`SessionError::Forbidden`], [`SessionError::NotParticipant`],
    /// [`SessionError::SessionEnded`] or [`SessionError::InvalidInput`]; nothing changes.
    pub fn update(
        &mut self,
        user: &UserId,
        update: SessionUpdate,
        now: Timestamp,
    ) -> Result<SessionInfo, SessionError> {
        self.advance(now);
        let by = self.authorize_user(user, Action::UpdateSession)?;
        self.apply_update(by, update, now)?;
        self.after_input(now);
        Ok(self.info())
    }

    /// Ends the session on behalf of `user`, who must be permitted to
    /// [`Action::EndSession`]. Every connection is closed.
    ///
    /// # Errors
    /// [`SessionError::Forbidden`], [`SessionError::NotParticipant`] or
    /// [`SessionError::SessionEnded`]; nothing changes.
    pub fn end(&mut self, user: &UserId, now: Timestamp) -> Result<SessionInfo, SessionError> {
        self.advance(now);
        let by = self.authorize_user(user, Action::EndSession)?;
        if self.is_ended() {
            return Err(SessionError::SessionEnded);
        }
        self.end_with(by, EndReason::Ended, now);
        Ok(self.info())
    }

    // ---- reads -------------------------------------------------------------

    /// The session's id.
    pub fn id(&self) -> &SessionId {
        &self.id
    }

    /// The last time anything happened in the session.
    pub fn last_activity(&self) -> Timestamp {
        self.last_activity
    }

    /// The session as the API shows it.
    pub fn info(&self) -> SessionInfo {
        SessionInfo {
            id: self.id.clone(),
            title: self.title.clone(),
            language: self.language.clone(),
            status: self.status,
            capacity: self.config.capacity,
            online: self.online_count(),
            created_by: self.created_by.clone(),
            created_at: self.created_at,
            updated_at: self.updated_at,
            ended_at: self.ended_at,
            expires_after_secs: duration_ms(self.config.expires_after) / 1_000,
            last_seq: self.log.last_seq(),
        }
    }

    /// Whether the session has ended.
    pub fn is_ended(&self) -> bool {
        self.status == SessionStatus::Ended
    }

    /// Everyone who has been a member, with presence as of `now`.
    pub fn participants(&self, now: Timestamp) -> Vec<ParticipantState> {
        let cfg = &self.config.presence;
        self.members
            .values()
            .map(|m| ParticipantState {
                participant: m.participant.clone(),
                present: m.membership == Membership::Present,
                presence: m.presence.view(m.online(), now, cfg),
            })
            .collect()
    }

    /// The participant a user is, if they have joined.
    pub fn participant_of(&self, user: &UserId) -> Option<&Participant> {
        self.by_user
            .get(user)
            .and_then(|p| self.members.get(p))
            .map(|m| &m.participant)
    }

    /// Online participants whose viewport is on `file`.
    pub fn viewers_of(&self, file: &str) -> Vec<ParticipantId> {
        self.members
            .values()
            .filter(|m| m.online() && m.presence.viewing() == Some(file))
            .map(|m| m.participant.id)
            .collect()
    }

    /// Up to `limit` chat messages before `before`, oldest first.
    pub fn chat_page(&self, before: Option<Seq>, limit: usize) -> ChatPage {
        self.chat.page(before, limit.min(self.config.chat.max_page))
    }

    /// One chat message.
    pub fn message(&self, id: Seq) -> Option<&ChatMessage> {
        self.chat.get(id)
    }

    /// Up to `limit` events after `after`, oldest first.
    pub fn events_since(&self, after: Seq, limit: usize) -> EventPage {
        self.log
            .since(after, limit.min(self.config.max_events_page))
    }

    /// The session document.
    pub fn document(&self) -> &Document {
        &self.document
    }

    /// The text of the session's main file.
    pub fn code(&self) -> String {
        self.document.text(DEFAULT_FILE).unwrap_or_default()
    }

    /// The session document, to change it outside a connection (tests, tools).
    pub fn document_mut(&mut self) -> &mut Document {
        &mut self.document
    }

    /// Closes every connection with `reason` (a server shutting down).
    pub fn close_all(&mut self, reason: CloseReason, now: Timestamp) {
        self.advance(now);
        for conn in self.connections_where(|_, _| true) {
            self.close(conn, reason, now);
        }
    }

    /// Number of open connections, joined or not.
    pub fn connection_count(&self) -> usize {
        self.connections.len()
    }

    /// Connections that have joined.
    pub fn joined_connections(&self) -> Vec<ConnectionId> {
        self.connections_where(|_, c| c.participant.is_some())
    }

    /// The connections that `keep` accepts, in id order, so that what the
    /// session sends does not depend on hash-map order.
    fn connections_where(&self, keep: impl Fn(ConnectionId, &Conn) -> bool) -> Vec<ConnectionId> {
        let mut conns: Vec<ConnectionId> = self
            .connections
            .iter()
            .filter(|(id, c)| keep(**id, c))
            .map(|(id, _)| *id)
            .collect();
        conns.sort_unstable();
        conns
    }

    /// Number of chat messages, deleted ones included.
    pub fn message_count(&self) -> usize {
        self.chat.len()
    }

    /// Number of events in the log.
    pub fn event_count(&self) -> usize {
        self.log.len()
    }

    // ---- internals ---------------------------------------------------------

    fn dispatch(
        &mut self,
        conn: ConnectionId,
        rid: Option<u64>,
        frame: ClientFrame,
        now: Timestamp,
    ) -> Result<Reply, SessionError> {
        if let ClientFrame::Join {
            name,
            since,
            protocol,
            mode,
            rev,
        } = frame
        {
            let join = JoinRequest {
                name,
                since,
                protocol,
                mode,
                rev,
            };
            return self.join(conn, rid, join, now);
        }
        if let ClientFrame::Heartbeat = frame {
            return Ok(Reply::Frame(ServerFrame::HeartbeatAck {
                rid,
                server_time: now,
            }));
        }
        if let ClientFrame::Authenticate { token } = frame {
            self.outbox
                .push_back(Transmit::Authenticate { conn, rid, token });
            return Ok(Reply::Nothing);
        }
        let me = self
            .connections
            .get(&conn)
            .and_then(|c| c.participant)
            .ok_or(SessionError::NotJoined)?;
        let role = self.members[&me].participant.role;
        let require = |action: Action| {
            if role.permits(action) {
                Ok(())
            } else {
                Err(SessionError::Forbidden { action, role })
            }
        };
        match frame {
            ClientFrame::Join { .. }
            | ClientFrame::Heartbeat
            | ClientFrame::Authenticate { .. } => unreachable_frame(),
            ClientFrame::Leave => {
                self.leave(me, now);
                Ok(Reply::Nothing)
            }
            ClientFrame::Presence(update) => {
                require(Action::SetPresence)?;
                self.set_presence(me, update, now)?;
                Ok(Reply::Ack(None))
            }
            ClientFrame::UpdateSession {
                title,
                language,
                status,
            } => {
                require(Action::UpdateSession)?;
                let seq = self.apply_update(
                    Some(me),
                    SessionUpdate {
                        title,
                        language,
                        status,
                    },
                    now,
                )?;
                Ok(Reply::Ack(Some(seq)))
            }
            ClientFrame::EndSession => {
                require(Action::EndSession)?;
                // The `session_ended` event and the `goodbye` that follows are the answer.
                self.end_with(Some(me), EndReason::Ended, now);
                Ok(Reply::Nothing)
            }
            ClientFrame::SetRole {
                participant,
                role: new_role,
            } => {
                require(Action::ChangeRole)?;
                self.set_role(me, participant, new_role, now)
                    .map(|s| Reply::Ack(Some(s)))
            }
            ClientFrame::Kick {
                participant,
                ban_address,
            } => {
                require(Action::Kick)?;
                self.kick(me, participant, ban_address, now)
                    .map(|s| Reply::Ack(Some(s)))
            }
            ClientFrame::ChatSend {
                text,
                anchor,
                reply_to,
                cid,
            } => {
                require(Action::PostMessage)?;
                check_client_id(cid.as_deref(), "cid")?;
                if let Some(seq) = cid.as_deref().and_then(|c| self.chat.posted_as(me, c)) {
                    // Sent again after a lost acknowledgement: posted already.
                    return Ok(Reply::Ack(Some(seq)));
                }
                self.post(me, text, anchor, reply_to, cid, now)
                    .map(|s| Reply::Ack(Some(s)))
            }
            ClientFrame::ChatEdit { message, text } => {
                require(Action::PostMessage)?;
                self.edit_message(me, message, text, now)
                    .map(|s| Reply::Ack(Some(s)))
            }
            ClientFrame::ChatDelete { message } => self
                .delete_message(me, role, message, now)
                .map(|s| Reply::Ack(Some(s))),
            ClientFrame::React { message, emoji } => {
                require(Action::React)?;
                self.react(me, message, emoji, now)
                    .map(|s| Reply::Ack(Some(s)))
            }
            ClientFrame::ChatHistory { before, limit } => {
                let page = self.chat_page(before, limit.map_or(50, |l| l as usize));
                Ok(Reply::Frame(ServerFrame::ChatHistory {
                    rid,
                    messages: page.messages,
                    has_more: page.has_more,
                }))
            }
            ClientFrame::EventsSince { since, limit } => {
                let page = self.events_since(since, limit.map_or(usize::MAX, |l| l as usize));
                Ok(Reply::Frame(ServerFrame::Events {
                    rid,
                    events: page.events,
                    has_more: page.has_more,
                }))
            }
            ClientFrame::WhoIsViewing { file } => {
                let participants = self.viewers_of(&file);
                Ok(Reply::Frame(ServerFrame::Viewers {
                    rid,
                    file,
                    participants,
                }))
            }
            ClientFrame::TextOp {
                rev,
                file,
                op,
                oid,
                ties,
            } => {
                check_client_id(oid.as_deref(), "oid")?;
                require(Action::EditDocument)?;
                self.text_op(conn, me, rid, (rev, ties), file, op, oid, now)
            }
            ClientFrame::FileCreate { file, text } => {
                require(Action::EditDocument)?;
                let version = self.document.create_file(me, &file, &text, now)?;
                // The creator gets the `file_op` too: it carries the revision.
                self.after_document_change(None, vec![version], now);
                Ok(Reply::Ack(None))
            }
            ClientFrame::FileRemove { file } => {
                require(Action::EditDocument)?;
                let version = self.document.remove_file(me, &file, now)?;
                self.after_document_change(None, vec![version], now);
                Ok(Reply::Ack(None))
            }
            ClientFrame::RunOutput {
                stdout,
                stderr,
                exit_code,
            } => {
                require(Action::EditDocument)?;
                let run = RunOutput {
                    by: me,
                    at: now,
                    stdout,
                    stderr,
                    exit_code,
                };
                self.document.add_run(run.clone())?;
                self.schedule_commit(now);
                self.sync_pending = true;
                let seq = self.record(now, EventKind::RunFinished { run });
                Ok(Reply::Ack(Some(seq)))
            }
            ClientFrame::History { after, limit } => {
                let limit = limit
                    .map_or(1_000, |l| l as usize)
                    .min(self.config.max_events_page * 20);
                let (versions, has_more) = self.document.versions(after, limit);
                Ok(Reply::Frame(ServerFrame::Versions {
                    rid,
                    versions: versions.to_vec(),
                    has_more,
                }))
            }
            ClientFrame::TextAt { file, rev } => {
                let text = self.document.text_at(&file, rev)?;
                Ok(Reply::Frame(ServerFrame::TextAt {
                    rid,
                    file,
                    rev,
                    text,
                }))
            }
        }
    }

    #[allow(clippy::too_many_arguments)] // one per field of the frame, plus who and when
    fn text_op(
        &mut self,
        conn: ConnectionId,
        me: ParticipantId,
        rid: Option<u64>,
        (rev, ties): (Revision, crate::protocol::Ties),
        file: String,
        op: TextOperation,
        oid: Option<String>,
        now: Timestamp,
    ) -> Result<Reply, SessionError> {
        match self
            .document
            .apply_operation_with(me, rev, &file, op, oid.clone(), ties, now)?
        {
            Applied::Duplicate(rev) => Ok(Reply::Frame(ServerFrame::TextAck { rid, rev, oid })),
            Applied::New(version) => {
                let rev = version.rev;
                if let Some(m) = self.members.get_mut(&me) {
                    m.presence.keystroke(now, &self.config.presence);
                }
                self.last_activity = now;
                self.after_document_change(Some(conn), vec![version], now);
                Ok(Reply::Frame(ServerFrame::TextAck { rid, rev, oid }))
            }
        }
    }

    /// Applies a replica's sync message.
    fn receive_sync(
        &mut self,
        conn: ConnectionId,
        bytes: &[u8],
        now: Timestamp,
    ) -> Result<(), SessionError> {
        if bytes.len() > self.config.max_sync_bytes {
            return Err(ProtocolError::TooLarge {
                len: bytes.len(),
                max: self.config.max_sync_bytes,
            }
            .into());
        }
        let c = self.connections.get(&conn).ok_or(SessionError::NotJoined)?;
        let me = c.participant.ok_or(SessionError::NotJoined)?;
        if c.sync.is_none() {
            return Err(ProtocolError::UnexpectedBinary.into());
        }
        let role = self.members[&me].participant.role;
        if !role.permits(Action::EditDocument) && Document::sync_message_has_changes(bytes)? {
            return Err(SessionError::Forbidden {
                action: Action::EditDocument,
                role,
            });
        }
        let Some(state) = self
            .connections
            .get_mut(&conn)
            .and_then(|c| c.sync.as_mut())
        else {
            return Err(SessionError::NotJoined);
        };
        let (versions, effects) = self.document.receive_sync(state, bytes, Some(me), now)?;
        self.sync_pending = true;
        if !versions.is_empty() {
            if let Some(m) = self.members.get_mut(&me) {
                m.presence.keystroke(now, &self.config.presence);
            }
            self.last_activity = now;
        }
        for effect in effects {
            match effect {
                SideEffect::Language(language) => {
                    self.language.clone_from(&language);
                    self.record(
                        now,
                        EventKind::SessionUpdated {
                            title: None,
                            language: Some(language),
                            status: None,
                            by: Some(me),
                        },
                    );
                }
                SideEffect::Run(run) => {
                    self.record(now, EventKind::RunFinished { run });
                }
            }
        }
        self.after_document_change(Some(conn), versions, now);
        Ok(())
    }

    /// Tells everyone about new versions, and moves cursors and comment anchors.
    fn after_document_change(
        &mut self,
        origin: Option<ConnectionId>,
        versions: Vec<Version>,
        now: Timestamp,
    ) {
        if versions.is_empty() {
            return;
        }
        self.sync_pending = true;
        self.schedule_commit(now);
        let thin = self.connections_where(|id, c| {
            c.participant.is_some() && c.sync.is_none() && Some(id) != origin
        });
        for version in versions {
            match &version.change {
                Change::Edit { op } => {
                    for m in self.members.values_mut() {
                        m.presence.transform_cursor(&version.file, op);
                    }
                    let document = &self.document;
                    self.chat
                        .for_each_anchor_in(&self.anchored, &version.file, |anchor| {
                            if let Some(offset) = anchor.offset {
                                let moved = op.transform_index(offset, true);
                                anchor.offset = Some(moved);
                                if let Some(line) = document.line_of(&version.file, moved) {
                                    anchor.line = line;
                                }
                            }
                        });
                }
                Change::Remove => {
                    for m in self.members.values_mut() {
                        m.presence.forget_file(&version.file);
                    }
                    // Comments stay, but no longer point into a file that a
                    // later one of the same name would move them in.
                    self.chat
                        .for_each_anchor_in(&self.anchored, &version.file, |a| a.offset = None);
                }
                Change::Create { .. } => {}
            }
            if !thin.is_empty() {
                self.send(thin.clone(), version_frame(version));
            }
        }
    }

    fn schedule_commit(&mut self, now: Timestamp) {
        if self.commit_due.is_none() {
            self.commit_due = Some(now.plus(COMMIT_DELAY));
        }
    }

    /// What every input ends with: coalesced presence, and sync messages for
    /// replicas that lack changes.
    fn after_input(&mut self, now: Timestamp) {
        self.flush_presence(now);
        if !self.sync_pending {
            return;
        }
        self.sync_pending = false;
        for conn in self.connections_where(|_, c| c.sync.is_some()) {
            let Some(state) = self
                .connections
                .get_mut(&conn)
                .and_then(|c| c.sync.as_mut())
            else {
                continue;
            };
            if let Some(bytes) = self.document.generate_sync(state) {
                self.outbox
                    .push_back(Transmit::SendBinary { to: conn, bytes });
            }
        }
        if !self.document.has_uncommitted() {
            self.commit_due = None;
        }
    }

    fn join(
        &mut self,
        conn: ConnectionId,
        rid: Option<u64>,
        request: JoinRequest,
        now: Timestamp,
    ) -> Result<Reply, SessionError> {
        let JoinRequest {
            name,
            since,
            protocol,
            mode,
            rev,
        } = request;
        if let Some(v) = protocol.filter(|v| *v != PROTOCOL_VERSION) {
            return Err(SessionError::UnsupportedProtocol(v));
        }
        let replica = mode == Some(ClientMode::Replica);
        let c = &self.connections[&conn];
        if c.participant.is_some() {
            return Err(SessionError::AlreadyJoined);
        }
        let rev = rev.filter(|_| !replica);
        if let Some(rev) = rev.filter(|r| *r > self.document.rev()) {
            return Err(DocumentError::UnknownRevision {
                rev,
                current: self.document.rev(),
            }
            .into());
        }
        let identity = c.identity.clone();
        // A connection opened before its user was kicked must not get back in.
        if self.banned.contains(&identity.user_id) {
            return Err(SessionError::Banned);
        }
        let existing = self.by_user.get(&identity.user_id).copied();
        // Without a name, a returning member keeps theirs; a new one gets the
        // authenticator's.
        let name = match (name, existing) {
            (Some(n), _) => check_name(&n, self.config.max_name_chars)?,
            (None, Some(id)) => self.members[&id].participant.name.clone(),
            (None, None) => check_name(&identity.name, self.config.max_name_chars)
                .unwrap_or_else(|_| "Guest".to_owned()),
        };
        let already_online = existing.is_some_and(|p| self.members[&p].online());
        if !already_online && self.online_count() >= self.config.capacity {
            return Err(SessionError::SessionFull {
                capacity: self.config.capacity,
            });
        }

        let id = match existing {
            Some(id) => {
                let rejoined = self.members[&id].membership == Membership::Left;
                let colour_clash = {
                    let mine = &self.members[&id].participant.colour;
                    self.current_members()
                        .any(|m| m.participant.id != id && &m.participant.colour == mine)
                };
                if colour_clash {
                    let colour = self.free_colour();
                    if let Some(m) = self.members.get_mut(&id) {
                        m.participant.colour = colour;
                    }
                }
                let member = self
                    .members
                    .get_mut(&id)
                    .expect("by_user points at a member");
                let renamed = member.participant.name != name;
                member.participant.name.clone_from(&name);
                member.membership = Membership::Present;
                let participant = member.participant.clone();
                if renamed && !rejoined {
                    self.record(
                        now,
                        EventKind::ParticipantRenamed {
                            participant: id,
                            name,
                        },
                    );
                }
                if rejoined {
                    self.record(
                        now,
                        EventKind::ParticipantJoined {
                            participant,
                            rejoined: true,
                        },
                    );
                }
                id
            }
            None => {
                let id = ParticipantId(self.next_participant);
                self.next_participant += 1;
                let role = if identity.user_id == self.created_by {
                    Role::Host
                } else {
                    identity.role.unwrap_or(self.config.default_role)
                };
                let participant = Participant {
                    id,
                    user_id: identity.user_id.clone(),
                    name,
                    colour: self.free_colour(),
                    role,
                    joined_at: now,
                };
                self.members.insert(
                    id,
                    Member {
                        participant: participant.clone(),
                        membership: Membership::Present,
                        presence: Presence::new(now),
                        connections: BTreeSet::new(),
                    },
                );
                self.by_user.insert(identity.user_id, id);
                self.record(
                    now,
                    EventKind::ParticipantJoined {
                        participant,
                        rejoined: false,
                    },
                );
                id
            }
        };
        if let Some(c) = self.connections.get_mut(&conn) {
            c.participant = Some(id);
        }
        let member = self.members.get_mut(&id).expect("just inserted");
        member.connections.insert(conn);
        member.presence.touch(now);
        self.last_activity = now;

        let welcome = ServerFrame::Welcome {
            rid,
            protocol: PROTOCOL_VERSION,
            session: self.info(),
            you: id,
            participants: self.participants(now),
            last_seq: self.log.last_seq(),
            document: self.document.snapshot(!replica && rev.is_none()),
        };
        self.send(vec![conn], welcome);
        if replica {
            // A late joiner loads the document as saved bytes, then syncs what
            // is newer; the server opens the sync.
            let (snapshot, mut state) = self.document.replica_start();
            self.outbox.push_back(Transmit::SendBinary {
                to: conn,
                bytes: snapshot,
            });
            if let Some(bytes) = self.document.generate_sync(&mut state) {
                self.outbox
                    .push_back(Transmit::SendBinary { to: conn, bytes });
            }
            if let Some(c) = self.connections.get_mut(&conn) {
                c.sync = Some(state);
            }
        } else if let Some(rev) = rev {
            let (versions, _) = self.document.versions(rev, usize::MAX);
            let ops = versions.iter().cloned().map(version_frame).collect();
            self.send(
                vec![conn],
                ServerFrame::TextCatchup {
                    rev: self.document.rev(),
                    ops,
                },
            );
        }
        if let Some(since) = since {
            let page = self.events_since(since, usize::MAX);
            self.send(
                vec![conn],
                ServerFrame::Events {
                    rid: None,
                    events: page.events,
                    has_more: page.has_more,
                },
            );
        }
        Ok(Reply::Nothing)
    }

    fn leave(&mut self, me: ParticipantId, now: Timestamp) {
        if let Some(m) = self.members.get_mut(&me) {
            m.membership = Membership::Left;
        }
        self.record(now, EventKind::ParticipantLeft { participant: me });
        self.close_member(me, CloseReason::Left, now);
        self.hand_over_hosting(me, now);
    }

    /// When the last host leaves, the editor who joined earliest becomes a
    /// host (told as `role_changed` by the one who left), so a session is
    /// never stuck without anyone able to run it. With no editor left it
    /// stays without a host until its creator comes back, who is always a
    /// host. Viewers are never promoted: a viewer is someone a host chose
    /// to keep from changing things.
    fn hand_over_hosting(&mut self, leaving: ParticipantId, now: Timestamp) {
        if self
            .current_members()
            .any(|m| m.participant.role == Role::Host)
        {
            return;
        }
        let successor = self
            .current_members()
            .filter(|m| m.participant.role == Role::Editor)
            .min_by_key(|m| (m.participant.joined_at, m.participant.id))
            .map(|m| m.participant.id);
        let Some(successor) = successor else { return };
        if let Some(m) = self.members.get_mut(&successor) {
            m.participant.role = Role::Host;
        }
        self.record(
            now,
            EventKind::RoleChanged {
                participant: successor,
                role: Role::Host,
                by: leaving,
            },
        );
    }

    fn set_presence(
        &mut self,
        me: ParticipantId,
        update: PresenceUpdate,
        now: Timestamp,
    ) -> Result<(), SessionError> {
        let cfg = self.config.presence.clone();
        let member = self.members.get_mut(&me).ok_or(SessionError::NotJoined)?;
        member.presence.apply(update, now, &cfg)?;
        self.last_activity = now;
        Ok(())
    }

    fn apply_update(
        &mut self,
        by: Option<ParticipantId>,
        update: SessionUpdate,
        now: Timestamp,
    ) -> Result<Seq, SessionError> {
        if self.is_ended() {
            return Err(SessionError::SessionEnded);
        }
        if let Some(title) = &update.title {
            check_title(title, self.config.max_title_chars)?;
        }
        if let Some(language) = &update.language {
            check_language(language)?;
        }
        if update.status == Some(SessionStatus::Ended) {
            return Err(SessionError::InvalidInput(
                "end the session with end_session".into(),
            ));
        }
        if update.title.is_none() && update.language.is_none() && update.status.is_none() {
            return Err(SessionError::InvalidInput("nothing to update".into()));
        }
        if let Some(language) = &update.language {
            self.document.set_language(language)?;
            self.sync_pending = true;
            self.schedule_commit(now);
            self.language.clone_from(language);
        }
        if let Some(title) = &update.title {
            self.title.clone_from(title);
        }
        if let Some(status) = update.status {
            self.status = status;
        }
        self.updated_at = now;
        self.last_activity = now;
        if let Some(m) = by.and_then(|p| self.members.get_mut(&p)) {
            m.presence.touch(now);
        }
        let SessionUpdate {
            title,
            language,
            status,
        } = update;
        Ok(self.record(
            now,
            EventKind::SessionUpdated {
                title,
                language,
                status,
                by,
            },
        ))
    }

    fn set_role(
        &mut self,
        by: ParticipantId,
        target: ParticipantId,
        role: Role,
        now: Timestamp,
    ) -> Result<Seq, SessionError> {
        let member = self
            .members
            .get(&target)
            .filter(|m| m.membership == Membership::Present)
            .ok_or(SessionError::UnknownParticipant)?;
        if member.participant.role == Role::Host && role != Role::Host {
            let hosts = self
                .current_members()
                .filter(|m| m.participant.role == Role::Host)
                .count();
            if hosts <= 1 {
                return Err(SessionError::LastHost);
            }
        }
        if let Some(m) = self.members.get_mut(&target) {
            m.participant.role = role;
        }
        Ok(self.record(
            now,
            EventKind::RoleChanged {
                participant: target,
                role,
                by,
            },
        ))
    }

    fn kick(
        &mut self,
        by: ParticipantId,
        target: ParticipantId,
        ban_address: bool,
        now: Timestamp,
    ) -> Result<Seq, SessionError> {
        if by == target {
            return Err(SessionError::CannotKickSelf);
        }
        let member = self
            .members
            .get_mut(&target)
            .filter(|m| m.membership == Membership::Present)
            .ok_or(SessionError::UnknownParticipant)?;
        member.membership = Membership::Kicked;
        let user = member.participant.user_id.clone();
        let seq = self.record(
            now,
            EventKind::ParticipantKicked {
                participant: target,
                by,
            },
        );
        if ban_address {
            let addresses: Vec<std::net::IpAddr> = self
                .connections
                .values()
                .filter(|c| c.identity.user_id == user)
                .filter_map(|c| c.address)
                .collect();
            for address in addresses {
                self.banned.insert(address_ban(address));
            }
        }
        // Every connection of the user goes, joined or not yet joined.
        for conn in self.connections_where(|_, c| c.identity.user_id == user) {
            self.close(conn, CloseReason::Kicked, now);
        }
        self.banned.insert(user);
        Ok(seq)
    }

    fn post(
        &mut self,
        me: ParticipantId,
        text: String,
        anchor: Option<CodeAnchor>,
        reply_to: Option<Seq>,
        cid: Option<String>,
        now: Timestamp,
    ) -> Result<Seq, SessionError> {
        Chat::check_text(&text, &self.config.chat)?;
        Chat::check_anchor(anchor.as_ref())?;
        let mut anchor = anchor;
        if let Some(a) = anchor.as_mut() {
            let start = self.document.line_start(&a.file, a.line).ok_or_else(|| {
                SessionError::InvalidInput(format!(
                    "{}:{} is not a line of the document",
                    a.file, a.line
                ))
            })?;
            a.offset = Some(start);
        }
        if let Some(parent) = reply_to {
            self.chat.thread_of(parent)?;
        }
        let mentions = self.mentions_in(&text);
        let is_comment = anchor.is_some();
        if is_comment {
            self.anchored.push(self.log.next_seq());
        }
        let message = self.chat.post(NewMessage {
            id: self.log.next_seq(),
            author: me,
            text,
            anchor,
            reply_to,
            mentions,
            at: now,
            cid,
        });
        self.touch_member(me, now);
        let kind = if is_comment {
            EventKind::CommentPosted { message }
        } else {
            EventKind::MessagePosted { message }
        };
        Ok(self.record(now, kind))
    }

    fn edit_message(
        &mut self,
        me: ParticipantId,
        message: Seq,
        text: String,
        now: Timestamp,
    ) -> Result<Seq, SessionError> {
        self.chat.check_edit(message, me)?;
        Chat::check_text(&text, &self.config.chat)?;
        let mentions = self.mentions_in(&text);
        self.chat
            .edit(message, text.clone(), mentions.clone(), now)?;
        self.touch_member(me, now);
        Ok(self.record(
            now,
            EventKind::MessageEdited {
                message,
                text,
                mentions,
            },
        ))
    }

    fn delete_message(
        &mut self,
        me: ParticipantId,
        role: Role,
        message: Seq,
        now: Timestamp,
    ) -> Result<Seq, SessionError> {
        let author = self.chat.check_live(message)?;
        if author != me && !role.permits(Action::DeleteAnyMessage) {
            return Err(SessionError::Forbidden {
                action: Action::DeleteAnyMessage,
                role,
            });
        }
        self.chat.delete(message)?;
        self.touch_member(me, now);
        Ok(self.record(now, EventKind::MessageDeleted { message, by: me }))
    }

    fn react(
        &mut self,
        me: ParticipantId,
        message: Seq,
        emoji: String,
        now: Timestamp,
    ) -> Result<Seq, SessionError> {
        Chat::check_reaction(&emoji, &self.config.chat)?;
        let added = self.chat.toggle_reaction(message, &emoji, me)?;
        self.touch_member(me, now);
        Ok(self.record(
            now,
            EventKind::ReactionToggled {
                message,
                emoji,
                participant: me,
                added,
            },
        ))
    }

    fn end_with(&mut self, by: Option<ParticipantId>, reason: EndReason, now: Timestamp) -> Seq {
        self.status = SessionStatus::Ended;
        self.ended_at = Some(now);
        self.updated_at = now;
        let seq = self.record(now, EventKind::SessionEnded { by, reason });
        self.close_all(CloseReason::SessionEnded, now);
        seq
    }

    /// Authorizes a request made outside a connection (REST) by a user.
    fn authorize_user(
        &self,
        user: &UserId,
        action: Action,
    ) -> Result<Option<ParticipantId>, SessionError> {
        let (by, role) = match self.by_user.get(user).map(|p| &self.members[p]) {
            Some(m) if m.membership == Membership::Present => {
                (Some(m.participant.id), m.participant.role)
            }
            Some(_) => return Err(SessionError::NotParticipant),
            None if *user == self.created_by => (None, Role::Host),
            None => return Err(SessionError::NotParticipant),
        };
        if role.permits(action) {
            Ok(by)
        } else {
            Err(SessionError::Forbidden { action, role })
        }
    }

    /// Sends `goodbye`, closes every connection of a member.
    fn close_member(&mut self, member: ParticipantId, reason: CloseReason, now: Timestamp) {
        let conns: Vec<ConnectionId> = self
            .members
            .get(&member)
            .map(|m| m.connections.iter().copied().collect())
            .unwrap_or_default();
        for conn in conns {
            self.close(conn, reason, now);
        }
    }

    fn close(&mut self, conn: ConnectionId, reason: CloseReason, now: Timestamp) {
        if !self.connections.contains_key(&conn) {
            return;
        }
        self.send(vec![conn], ServerFrame::Goodbye { reason });
        self.outbox.push_back(Transmit::Close { conn, reason });
        self.disconnect(conn, now);
    }

    fn record(&mut self, now: Timestamp, kind: EventKind) -> Seq {
        let event = self.log.append(now, kind).clone();
        let seq = event.seq;
        let to = self.joined_connections();
        self.send(to, ServerFrame::Event { event });
        seq
    }

    fn send(&mut self, to: Vec<ConnectionId>, frame: ServerFrame) {
        if !to.is_empty() {
            self.outbox.push_back(Transmit::Send { to, frame });
        }
    }

    fn send_error(&mut self, conn: ConnectionId, rid: Option<u64>, err: &SessionError) {
        let frame = ServerFrame::Error {
            rid,
            code: err.code(),
            message: err.to_string(),
        };
        self.send(vec![conn], frame);
    }

    /// Broadcasts every presence whose coalescing interval has passed.
    fn flush_presence(&mut self, now: Timestamp) {
        let cfg = self.config.presence.clone();
        let mut due = Vec::new();
        for member in self.members.values_mut().filter(|m| m.shows_presence()) {
            let online = member.online();
            if let Some(view) = member.presence.take_due_broadcast(online, now, &cfg) {
                due.push((member.participant.id, view));
            }
        }
        if due.is_empty() {
            return;
        }
        let to = self.joined_connections();
        for (participant, presence) in due {
            self.send(
                to.clone(),
                ServerFrame::Presence {
                    participant,
                    presence,
                },
            );
        }
    }

    /// Charges a frame to the connection's rate. A frame over the rate is
    /// refused with `rate_limited` (and not read); a connection that keeps
    /// sending a whole burst's worth while refused is closed.
    fn admit(
        &mut self,
        conn: ConnectionId,
        now: Timestamp,
        cost: u64,
        rid: impl FnOnce() -> Option<u64>,
    ) -> bool {
        let (rate, burst) = (
            u64::from(self.config.frames_per_second),
            u64::from(self.config.frame_burst),
        );
        let Some(c) = self.connections.get_mut(&conn) else {
            return false;
        };
        let elapsed = now.as_millis().saturating_sub(c.last_refill.as_millis());
        c.allowance = (c.allowance + elapsed.saturating_mul(rate)).min(burst * 1_000);
        c.last_refill = now;
        if c.allowance >= cost {
            c.allowance -= cost;
            c.refused = 0;
            return true;
        }
        c.refused += 1;
        c.last_seen = now;
        let refused = c.refused;
        if u64::from(refused) > burst {
            self.close(conn, CloseReason::RateLimited, now);
        } else {
            self.send_error(
                conn,
                rid(),
                &SessionError::RateLimited {
                    per_second: self.config.frames_per_second,
                },
            );
        }
        false
    }

    /// Counts a sign of life from the connection that is not a frame (a
    /// WebSocket pong), so that it is not swept as stale.
    pub fn touch(&mut self, conn: ConnectionId, now: Timestamp) {
        self.advance(now);
        self.touch_connection(conn, now);
    }

    fn touch_connection(&mut self, conn: ConnectionId, now: Timestamp) {
        if let Some(c) = self.connections.get_mut(&conn) {
            c.last_seen = now;
        }
    }

    fn touch_member(&mut self, me: ParticipantId, now: Timestamp) {
        if let Some(m) = self.members.get_mut(&me) {
            m.presence.touch(now);
        }
        self.last_activity = now;
    }

    fn mentions_in(&self, text: &str) -> Vec<ParticipantId> {
        find_mentions(
            text,
            self.current_members()
                .map(|m| (m.participant.id, m.participant.name.as_str())),
        )
    }

    fn current_members(&self) -> impl Iterator<Item = &Member> + Clone {
        self.members
            .values()
            .filter(|m| m.membership == Membership::Present)
    }

    fn free_colour(&self) -> String {
        pick_colour(
            self.current_members()
                .map(|m| (m.participant.colour.as_str(), m.online())),
        )
    }

    fn online_count(&self) -> usize {
        self.members.values().filter(|m| m.online()).count()
    }

    fn expired(&self, now: Timestamp) -> bool {
        !self.is_ended()
            && self.connections.is_empty()
            && now >= self.last_activity.plus(self.config.expires_after)
    }

    /// Records the time the driver handed in; time never runs backwards here.
    fn advance(&mut self, now: Timestamp) {
        self.now = self.now.max(now);
    }
}

/// The fields of a `join` frame.
struct JoinRequest {
    name: Option<String>,
    since: Option<Seq>,
    protocol: Option<u32>,
    mode: Option<ClientMode>,
    rev: Option<Revision>,
}

/// The frame that tells thin clients about a version.
fn version_frame(version: Version) -> ServerFrame {
    let Version {
        rev,
        file,
        change,
        author,
        oid,
        ..
    } = version;
    match change {
        Change::Edit { op } => ServerFrame::TextOp {
            rev,
            file,
            op,
            author,
            oid,
        },
        change => ServerFrame::FileOp {
            rev,
            file,
            change,
            author,
        },
    }
}

/// `Join` and `Heartbeat` are answered before the match that would reach this.
fn unreachable_frame() -> Result<Reply, SessionError> {
    Ok(Reply::Nothing)
}

/// What one frame costs a connection's rate allowance, in thousandths.
const FRAME_COST: u64 = 1_000;

/// Longest client-chosen id (`oid`, `cid`), in bytes: ids are kept with what
/// they name, stored and compared on every retry.
pub const MAX_CLIENT_ID_BYTES: usize = 64;

fn check_client_id(id: Option<&str>, field: &str) -> Result<(), SessionError> {
    match id {
        Some(id) if id.is_empty() || id.len() > MAX_CLIENT_ID_BYTES => {
            Err(SessionError::InvalidInput(format!(
                "`{field}` must be 1 to {MAX_CLIENT_ID_BYTES} bytes"
            )))
        }
        _ => Ok(()),
    }
}

/// How a banned address sits among the banned user ids: no user id an
/// authenticator makes starts with a space.
fn address_ban(address: std::net::IpAddr) -> UserId {
    UserId::new(format!(" address {address}"))
}

fn check_name(name: &str, max: usize) -> Result<String, SessionError> {
    let name = name.trim();
    let len = name.chars().count();
    if len == 0 || len > max || name.chars().any(char::is_control) {
        return Err(SessionError::InvalidInput(format!(
            "a name is 1 to {max} characters"
        )));
    }
    Ok(name.to_owned())
}

fn check_title(title: &str, max: usize) -> Result<(), SessionError> {
    if title.chars().count() > max || title.chars().any(char::is_control) {
        return Err(SessionError::InvalidInput(format!(
            "a title is at most {max} characters"
        )));
    }
    Ok(())
}

fn check_language(language: &str) -> Result<(), SessionError> {
    let ok = language.len() <= 32
        && language
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+#-_.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(SessionError::InvalidInput(
            "a language is up to 32 of a-z, 0-9, + # - _ .".into(),
        ))
    }
}
