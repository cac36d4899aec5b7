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

use serde::{Deserialize, Serialize};

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

pub use collab_wire::session::{
    FilesAt, NewSession, SessionExport, SessionInfo, SessionStatus, SessionUpdate, EXPORT_FORMAT,
};

mod chat_ops;
mod config;
mod connections;
mod edits;
mod heading;
mod history;
mod lifecycle;
mod members;
mod persist;
mod presence_board;
mod roster;
mod tally;
mod timer;

pub use config::{ReadPage, SessionConfig, Transmit};
use connections::Connections;
use heading::Heading;
use history::HistoryWait;
use members::{Actor, Member, Membership, Roster};
use persist::Persisted;
use roster::JoinRequest;
pub use tally::Tally;
use timer::{Timer, TimerTable};

/// One collaboration session: participants, presence, chat, event log and document.
#[derive(Debug)]
pub struct Session {
    id: SessionId,
    config: SessionConfig,
    /// Title, language, status and their times: changed only through
    /// its methods, which mark the record for the store.
    heading: Heading,
    created_by: UserId,
    created_at: Timestamp,
    last_activity: Timestamp,
    /// The latest time handed in, to tell past deadlines from future ones.
    now: Timestamp,
    document: Document,
    members: Roster,
    connections: Connections,
    chat: Chat,
    log: crate::events::EventLog,
    outbox: VecDeque<Transmit>,
    /// Messages with a code anchor, to move their anchors with edits.
    anchored: Vec<Seq>,
    /// Replicas may lack changes: generate sync messages before returning.
    sync_pending: bool,
    /// When each kind of timed work is next due.
    timers: TimerTable,
    /// Frames in and errors out since the driver last took them.
    tally: Tally,
    /// The files at revision 0, which the stored history replays from.
    initial_files: BTreeMap<String, String>,
    /// What has been handed to the store so far.
    persisted: Persisted,
    /// Frames waiting for the history the store has not handed in.
    history_wait: HistoryWait,
    /// The closing time everyone was last warned of (a `session_closing`
    /// event), so that a warning is given once per time.
    warned_closing: Option<Timestamp>,
}

/// How long a direct write to the automerge document (the language, a run)
/// may stay uncommitted.
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
        let schedule = schedule_of(&new, &config, now)?;
        if new.code.len() > config.max_frame_bytes * 16 {
            return Err(SessionError::InvalidInput(
                "initial code is too large".into(),
            ));
        }
        let document = Document::new(&new.language, [(DEFAULT_FILE, new.code.as_str())])
            .map_err(|e| SessionError::InvalidInput(e.to_string()))?;
        let mut session = Self {
            id,
            config,
            heading: Heading::new(new.title, new.language, schedule, now),
            created_by: creator.user_id.clone(),
            created_at: now,
            last_activity: now,
            now,
            document,
            members: Roster::new(),
            connections: Connections::default(),
            chat: Chat::default(),
            log: crate::events::EventLog::default(),
            outbox: VecDeque::new(),
            history_wait: HistoryWait::default(),
            anchored: Vec::new(),
            sync_pending: false,
            timers: TimerTable::default(),
            tally: Tally::default(),
            initial_files: [(DEFAULT_FILE.to_owned(), new.code)].into_iter().collect(),
            persisted: Persisted::default(),
            warned_closing: None,
        };
        session
            .document
            .set_max_len(session.config.max_document_units);
        session.arm_session_expiry();
        session.arm_schedule(now);
        Ok(session)
    }

    /// Handles one text frame from a connection. Unknown connections are ignored
    /// (a frame racing its connection's close).
    pub fn handle_text(&mut self, conn: ConnectionId, text: &str, now: Timestamp) {
        self.step(now, |s| {
            if !s.connections.contains_key(&conn) {
                return;
            }
            let max = s.config.max_frame_bytes;
            if !s.admit(conn, now, FRAME_COST, || {
                crate::protocol::request_id(text, max)
            }) {
                return;
            }
            match decode_client_frame(text, s.config.max_frame_bytes) {
                Ok(msg) => s.handle_message(conn, msg, now),
                Err((rid, err)) => {
                    s.touch_connection(conn, now);
                    s.send_error(conn, rid, &SessionError::Protocol(err));
                }
            }
        })
    }

    /// Handles one binary frame from a connection. Binary frames are reserved
    /// for document sync; until a connection has negotiated it, a binary frame
    /// is answered with a `malformed_frame` error and the connection goes on.
    pub fn handle_binary(&mut self, conn: ConnectionId, bytes: &[u8], now: Timestamp) {
        self.handle_binaries(conn, &[bytes], now);
    }

    /// Answers a binary frame its driver refused before the session saw it:
    /// a sync message sent in parts ([`crate::parts`]) over
    /// [`SessionConfig::max_sync_bytes`], one the process had no room for,
    /// or parts that do not fit together. The client gets the error,
    /// without a `rid`, and the connection goes on.
    pub fn handle_refused(&mut self, conn: ConnectionId, error: ProtocolError, now: Timestamp) {
        self.step(now, |s| {
            if !s.connections.contains_key(&conn) {
                return;
            }
            // Counted like the frame it stands for: a flood of refused parts
            // ends in `rate_limited` as any other.
            if !s.admit(conn, now, FRAME_COST, || None) {
                return;
            }
            s.touch_connection(conn, now);
            s.send_error(conn, None, &SessionError::Protocol(error));
        })
    }

    /// Handles binary frames that arrived together from one connection, in
    /// order: each is rate limited and checked as
    /// [`Session::handle_binary`] does, and the sync messages admitted are
    /// applied to the document as one (one automerge call for all their
    /// changes, whose cost grows with the history) and answered once.
    pub fn handle_binaries(&mut self, conn: ConnectionId, frames: &[&[u8]], now: Timestamp) {
        self.step(now, |s| {
            if !s.connections.contains_key(&conn) || frames.is_empty() {
                return;
            }
            let mut admitted = Vec::with_capacity(frames.len());
            for bytes in frames {
                if !s.connections.contains_key(&conn) {
                    // Closed for going on past the rate limit.
                    return;
                }
                // A replica answers every sync message it gets; an answer that
                // carries no changes (an acknowledgement of what it received)
                // costs a tenth of a frame, so a replica that only follows a
                // busy session is never refused.
                let follows = s.connections[&conn].sync.is_some()
                    && matches!(Document::sync_message_has_changes(bytes), Ok(false));
                let cost = if follows { FRAME_COST / 10 } else { FRAME_COST };
                if !s.admit(conn, now, cost, || None) {
                    continue;
                }
                s.tally.frame_in("sync");
                admitted.push(*bytes);
            }
            if admitted.is_empty() {
                return;
            }
            s.touch_connection(conn, now);
            let mut refused = Vec::new();
            s.receive_syncs(conn, &admitted, now, &mut refused);
            for err in refused {
                s.send_error(conn, None, &err);
            }
        })
    }

    /// Handles one decoded frame from a connection that the rate limit
    /// admitted.
    fn handle_message(&mut self, conn: ConnectionId, msg: ClientMessage, now: Timestamp) {
        if !self.connections.contains_key(&conn) {
            return;
        }
        self.touch_connection(conn, now);
        self.tally.frame_in(msg.frame.type_name());
        match self.wait_for_history(conn, msg) {
            history::Waited::Go(msg) => self.dispatch_message(conn, msg, now),
            history::Waited::Kept => {}
            history::Waited::Refused(rid) => {
                let busy = SessionError::Protocol(crate::protocol::ProtocolError::Busy { len: 0 });
                self.send_error(conn, rid, &busy);
            }
        }
    }

    /// Carries out a frame and answers it.
    fn dispatch_message(&mut self, conn: ConnectionId, msg: ClientMessage, now: Timestamp) {
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
    }

    /// Lets time pass: clears typing flags, moves statuses to idle and away,
    /// sends coalesced presence, drops stale connections and expires the session.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        self.step(now, |s| {
            if s.timers.is_expired(Timer::Stale, now) {
                s.close_stale(now);
            }
            if s.timers.is_expired(Timer::CredentialExpiry, now) {
                s.close_expired_credentials(now);
            }
            if s.timers.is_expired(Timer::SessionExpiry, now) {
                s.timers.stop(Timer::SessionExpiry);
                if s.expired(now) {
                    s.end_with(None, EndReason::Expired, now);
                }
            }
            if s.timers.is_expired(Timer::Commit, now) {
                s.document.commit();
                s.timers.stop(Timer::Commit);
            }
            if s.timers.is_expired(Timer::Schedule, now) {
                s.keep_schedule(now);
            }
        })
    }

    /// The next time [`Session::handle_timeout`] has something to do, if
    /// any. It may be early (see the timer table), never late.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        self.timers.next_timeout()
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
        self.step(now, |s| {
            let Some(c) = s.connections.get_mut(&conn) else {
                return;
            };
            let result = match outcome {
                Err(e) => Err(SessionError::Auth(e)),
                Ok(identity) if identity.user_id != c.identity.user_id => {
                    Err(SessionError::TokenForAnotherUser)
                }
                Ok(identity) => {
                    c.identity.expires_at = identity.expires_at;
                    if let Some(at) = identity.expires_at {
                        // A fresh credential may expire sooner than the old one.
                        s.timers.set_by(Timer::CredentialExpiry, at);
                    }
                    Ok(())
                }
            };
            match result {
                Ok(()) => {
                    if let Some(rid) = rid {
                        s.send(vec![conn], ServerFrame::Ack { rid, seq: None });
                    }
                }
                Err(err) => s.send_error(conn, rid, &err),
            }
        })
    }

    // ---- requests that do not come through a connection (REST) ------------

    /// The session's id.
    pub fn id(&self) -> &SessionId {
        &self.id
    }

    /// The last time anything happened in the session.
    pub fn last_activity(&self) -> Timestamp {
        self.last_activity
    }

    /// Whether the session has ended.
    pub fn is_ended(&self) -> bool {
        self.heading.status() == SessionStatus::Ended
    }

    /// Up to `limit` events after `after`, oldest first.
    pub fn events_since(&self, after: Seq, limit: usize) -> EventPage {
        self.log
            .since(after, limit.min(self.config.max_events_page))
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
        // An ended session is only reviewed: reads, nothing that changes it.
        if self.is_ended() && !reads_only(&frame) {
            return Err(SessionError::SessionEnded);
        }
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
        if let Some(action) = required_action(&frame) {
            self.authorize(Actor::Member(me), action)?;
        }
        match frame {
            ClientFrame::Join { .. }
            | ClientFrame::Heartbeat
            | ClientFrame::Authenticate { .. } => unreachable_frame(),
            ClientFrame::Leave => {
                self.leave(me, now);
                Ok(Reply::Nothing)
            }
            ClientFrame::Presence(update) => {
                self.set_presence(me, update, now)?;
                Ok(Reply::Ack(None))
            }
            ClientFrame::UpdateSession {
                title,
                language,
                status,
                closes_at,
            } => {
                let seq = self.apply_update(
                    Some(me),
                    SessionUpdate {
                        title,
                        language,
                        status,
                        closes_at,
                    },
                    now,
                )?;
                Ok(Reply::Ack(Some(seq)))
            }
            ClientFrame::EndSession => {
                // The `session_ended` event and the `goodbye` that follows are the answer.
                self.end_with(Some(me), EndReason::Ended, now);
                Ok(Reply::Nothing)
            }
            ClientFrame::SetRole {
                participant,
                role: new_role,
            } => self
                .set_role(me, participant, new_role, now)
                .map(|s| Reply::Ack(Some(s))),
            ClientFrame::Kick {
                participant,
                ban_address,
            } => self
                .kick(me, participant, ban_address, now)
                .map(|s| Reply::Ack(Some(s))),
            ClientFrame::ChatSend {
                text,
                anchor,
                reply_to,
                cid,
            } => {
                check_client_id(cid.as_deref(), "cid")?;
                if let Some(seq) = cid.as_deref().and_then(|c| self.chat.posted_as(me, c)) {
                    // Sent again after a lost acknowledgement: posted already.
                    return Ok(Reply::Ack(Some(seq)));
                }
                self.post(me, text, anchor, reply_to, cid, now)
                    .map(|s| Reply::Ack(Some(s)))
            }
            ClientFrame::ChatEdit { message, text } => self
                .edit_message(me, message, text, now)
                .map(|s| Reply::Ack(Some(s))),
            ClientFrame::ChatDelete { message } => self
                .delete_message(me, message, now)
                .map(|s| Reply::Ack(Some(s))),
            ClientFrame::React { message, emoji } => self
                .react(me, message, emoji, now)
                .map(|s| Reply::Ack(Some(s))),
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
                self.text_op(conn, me, rid, (rev, ties), file, op, oid, now)
            }
            ClientFrame::FileCreate { file, text } => {
                let version = self.document.create_file(me, &file, &text, now)?;
                // The creator gets the `file_op` too: it carries the revision.
                self.after_document_change(None, vec![version]);
                Ok(Reply::Ack(None))
            }
            ClientFrame::FileRemove { file } => {
                let version = self.document.remove_file(me, &file, now)?;
                self.after_document_change(None, vec![version]);
                Ok(Reply::Ack(None))
            }
            ClientFrame::RunOutput {
                stdout,
                stderr,
                exit_code,
            } => {
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
                let (versions, has_more) = self.document.versions(after, limit)?;
                Ok(Reply::Frame(ServerFrame::Versions {
                    rid,
                    versions,
                    has_more,
                }))
            }
            ClientFrame::TextAt { file, rev } => {
                // With only the versions after the stored document held, the
                // texts read come from it and from later checkpoints.
                if self.document.history_floor() == 0 {
                    self.document.build_checkpoints()?;
                }
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

    fn record(&mut self, now: Timestamp, kind: EventKind) -> Seq {
        let event = self.log.append(now, kind).clone();
        let seq = event.seq;
        let to = self.joined_connections();
        self.send(to, ServerFrame::Event { event });
        seq
    }

    fn send(&mut self, to: Vec<ConnectionId>, frame: ServerFrame) {
        if let ServerFrame::Error { code, .. } = &frame {
            self.tally.error(*code);
        }
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

    /// Frames read and errors sent since the last call, for the driver's
    /// metrics.
    pub fn take_tally(&mut self) -> Tally {
        std::mem::take(&mut self.tally)
    }

    /// Records the time the driver handed in; time never runs backwards here.
    fn advance(&mut self, now: Timestamp) {
        self.now = self.now.max(now);
    }

    /// One input, start to end: the clock moves to `now`, `input` changes
    /// the session, and the step ends as every input's does
    /// ([`Session::after_input`]: coalesced presence, sync messages for
    /// replicas, the expiry timer). Every public method that changes the
    /// session is one step, whether a frame or a REST-style call brought it.
    fn step<T>(&mut self, now: Timestamp, input: impl FnOnce(&mut Self) -> T) -> T {
        self.advance(now);
        let out = input(self);
        self.after_input(now);
        out
    }
}

/// What a member must be allowed to do for a frame to be carried out;
/// `None` for frames everyone may send (leaving, reading).
/// Frames that change nothing in the session: what a member reviewing an
/// ended session may send.
fn reads_only(frame: &ClientFrame) -> bool {
    matches!(
        frame,
        ClientFrame::Join { .. }
            | ClientFrame::Heartbeat
            | ClientFrame::Authenticate { .. }
            | ClientFrame::ChatHistory { .. }
            | ClientFrame::EventsSince { .. }
            | ClientFrame::WhoIsViewing { .. }
            | ClientFrame::History { .. }
            | ClientFrame::TextAt { .. }
    )
}

fn required_action(frame: &ClientFrame) -> Option<Action> {
    match frame {
        ClientFrame::Presence(_) => Some(Action::SetPresence),
        ClientFrame::UpdateSession { .. } => Some(Action::UpdateSession),
        ClientFrame::EndSession => Some(Action::EndSession),
        ClientFrame::SetRole { .. } => Some(Action::ChangeRole),
        ClientFrame::Kick { .. } => Some(Action::Kick),
        ClientFrame::ChatSend { .. } | ClientFrame::ChatEdit { .. } => Some(Action::PostMessage),
        ClientFrame::React { .. } => Some(Action::React),
        ClientFrame::TextOp { .. }
        | ClientFrame::FileCreate { .. }
        | ClientFrame::FileRemove { .. }
        | ClientFrame::RunOutput { .. } => Some(Action::EditDocument),
        // Deleting is checked with the message: everyone may delete their own.
        ClientFrame::ChatDelete { .. }
        | ClientFrame::Join { .. }
        | ClientFrame::Heartbeat
        | ClientFrame::Authenticate { .. }
        | ClientFrame::Leave
        | ClientFrame::ChatHistory { .. }
        | ClientFrame::EventsSince { .. }
        | ClientFrame::WhoIsViewing { .. }
        | ClientFrame::History { .. }
        | ClientFrame::TextAt { .. } => None,
    }
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

/// The schedule `new` asks for, checked: a start at most
/// [`SessionConfig::max_expires_after`] away and no more than an hour ago,
/// open for 1 minute to [`SessionConfig::max_open_for`] (one hour when a
/// start alone is given), closing more than a minute from now (a session
/// is never made closed).
fn schedule_of(
    new: &NewSession,
    config: &SessionConfig,
    now: Timestamp,
) -> Result<Option<heading::Schedule>, SessionError> {
    if new.starts_at.is_none() && new.open_for_secs.is_none() {
        return Ok(None);
    }
    let starts_at = new.starts_at.unwrap_or(now);
    let hour = Duration::from_secs(3600);
    if starts_at.plus(hour) < now || starts_at > now.plus(config.max_expires_after) {
        return Err(SessionError::InvalidInput(format!(
            "starts_at must be between an hour ago and {} days from now",
            config.max_expires_after.as_secs() / 86_400
        )));
    }
    let open_for = new.open_for_secs.unwrap_or(3600);
    if open_for < 60 || open_for > config.max_open_for.as_secs() {
        return Err(SessionError::InvalidInput(format!(
            "open_for_secs must be 60 to {}",
            config.max_open_for.as_secs()
        )));
    }
    let closes_at = starts_at.plus(Duration::from_secs(open_for));
    if closes_at <= now.plus(Duration::from_secs(60)) {
        return Err(SessionError::InvalidInput(
            "the session would close within a minute: start it later or keep it open longer".into(),
        ));
    }
    Ok(Some(heading::Schedule {
        starts_at,
        closes_at,
    }))
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
