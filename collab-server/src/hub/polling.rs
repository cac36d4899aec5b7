//! Clients that cannot hold a WebSocket: join and leave over REST, read the
//! session by long-poll or as a server-sent event stream.
//!
//! A participant who joins over REST gets a connection the hub holds open for
//! them, so they count against capacity and show presence like everyone else;
//! each read touches it, and a client that stops polling goes stale and offline
//! after the session's stale timeout, as a silent WebSocket would. Reads come
//! from the session's event log and document history, so a reader resumes from
//! its last `since` and `rev` with no gap and no duplicate.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::request::{Reply, Request};
use super::{ConnectionSender, Hub, HubError, Outbound};
use crate::auth::Identity;
use collab_core::document::Revision;
use collab_core::error::SessionError;
use collab_core::events::Event;
use collab_core::ids::{ConnectionId, Seq, SessionId, UserId};
use collab_core::protocol::ServerFrame;
use collab_core::session::{ReadPage, SessionStatus};

/// The longest a long-poll read waits for something new.
pub const MAX_READ_WAIT: Duration = Duration::from_secs(30);

/// How long one read of an event stream waits before asking again (which also
/// keeps a REST participant from going stale).
pub(super) const STREAM_WAIT: Duration = Duration::from_secs(20);

/// The connection held open for a participant who joined over REST.
pub(super) struct PollClient {
    conn: ConnectionId,
    sender: ConnectionSender,
    drain: tokio::task::AbortHandle,
}

impl Drop for PollClient {
    fn drop(&mut self) {
        // The drain task holds the receiving half; with both halves gone the
        // session is told the connection closed.
        self.drain.abort();
    }
}

/// A long-poll read: what the client has, and how long it will wait.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadRequest {
    /// The last event sequence number the client has (0 for none).
    pub since: Seq,
    /// The document revision the client holds; with it, the read includes the
    /// document changes after it.
    pub rev: Option<Revision>,
    /// How long to wait when nothing is new (capped at [`MAX_READ_WAIT`]).
    pub wait: Duration,
}

/// The query string of a read, as adapters parse it: `since`, `rev`, `wait`
/// (seconds) and the `token` credential. Numbers are kept as text so that a bad
/// one gets the collab error body rather than the framework's.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ReadQuery {
    /// The credential, for clients (such as `EventSource`) that cannot set headers.
    pub token: Option<String>,
    /// The last event sequence number the client has.
    pub since: Option<String>,
    /// The document revision the client holds.
    pub rev: Option<String>,
    /// Seconds to wait for something new.
    pub wait: Option<String>,
}

impl ReadQuery {
    /// The read this query asks for. A stream's `Last-Event-ID` header, when
    /// present, takes the place of `since` and `rev`.
    ///
    /// # Errors
    /// [`HubError::Session`] with [`SessionError::InvalidInput`] for a value
    /// that is not a number.
    pub fn request(&self, last_event_id: Option<&str>) -> Result<ReadRequest, HubError> {
        let mut request = ReadRequest {
            since: Seq(number(self.since.as_deref(), "since")?.unwrap_or(0)),
            rev: number(self.rev.as_deref(), "rev")?,
            wait: Duration::from_secs(number(self.wait.as_deref(), "wait")?.unwrap_or(0))
                .min(MAX_READ_WAIT),
        };
        if let Some(id) = last_event_id.filter(|id| !id.trim().is_empty()) {
            let cursor = StreamCursor::parse(id)?;
            request.since = cursor.since;
            request.rev = cursor.rev;
        }
        Ok(request)
    }
}

fn number(text: Option<&str>, name: &str) -> Result<Option<u64>, HubError> {
    text.map(|t| {
        t.trim().parse::<u64>().map_err(|_| {
            HubError::Session(SessionError::InvalidInput(format!(
                "{name} must be a whole number"
            )))
        })
    })
    .transpose()
}

/// Where an event stream is: sent as each item's SSE `id`, so that a client
/// that reconnects with `Last-Event-ID` resumes right after it. Written
/// `since` or `since.rev`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamCursor {
    /// The last event sequence number delivered.
    pub since: Seq,
    /// The last document revision delivered, if the stream carries the document.
    pub rev: Option<Revision>,
}

impl StreamCursor {
    /// Reads a cursor back from its text.
    ///
    /// # Errors
    /// [`SessionError::InvalidInput`] for anything but `N` or `N.M`.
    pub fn parse(text: &str) -> Result<Self, HubError> {
        let bad = || {
            HubError::Session(SessionError::InvalidInput(
                "Last-Event-ID must be SEQ or SEQ.REV".into(),
            ))
        };
        let (since, rev) = match text.trim().split_once('.') {
            Some((s, r)) => (s, Some(r)),
            None => (text.trim(), None),
        };
        Ok(Self {
            since: Seq(since.parse().map_err(|_| bad())?),
            rev: rev.map(str::parse).transpose().map_err(|_| bad())?,
        })
    }
}

impl std::fmt::Display for StreamCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.rev {
            Some(rev) => write!(f, "{}.{rev}", self.since.0),
            None => write!(f, "{}", self.since.0),
        }
    }
}

/// One item of an event stream.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum StreamItem {
    /// An event of the session's log.
    Event(Event),
    /// A document change (`text_op`, `file_op`), as
    /// WebSocket clients get it.
    Document(ServerFrame),
}

/// One item with the cursor just after it.
pub(super) type Cursored = (StreamCursor, StreamItem);

impl Hub {
    /// [`Request::Join`] on this process: opens the connection the hub
    /// holds for the participant, then joins through it.
    pub(super) async fn join_here(
        &self,
        id: &SessionId,
        identity: Identity,
        name: Option<String>,
        peer: Option<std::net::IpAddr>,
    ) -> Result<Reply, HubError> {
        let user = identity.user_id.clone();
        let connection = self.open(id, identity.clone(), peer, true).await?;
        let conn = connection.id();
        let request = Request::Join {
            identity,
            name,
            peer,
        };
        let joined = self.ask_task(id, request, Some(conn)).await?;
        let (sender, mut receiver) = connection.split();
        let key = (id.clone(), user);
        let polls = self.clone();
        let drain_key = key.clone();
        // Nobody reads this connection's frames (readers use the log), but its
        // queue must not fill, and its close must unregister it.
        let drain = tokio::spawn(async move {
            while let Some(out) = receiver.recv().await {
                if matches!(out, Outbound::Close(_)) {
                    break;
                }
            }
            let mut map = polls.polls();
            if map.get(&drain_key).is_some_and(|p| p.conn == conn) {
                map.remove(&drain_key);
            }
        });
        let client = PollClient {
            conn,
            sender,
            drain: drain.abort_handle(),
        };
        // Dropped outside the lock: the old connection closes after the new one
        // joined, so the participant never blinks offline.
        let replaced = self.polls().insert(key, client);
        drop(replaced);
        Ok(joined)
    }

    /// [`Request::Read`] on this process: reads, and while there is nothing
    /// new, waits for the session to move and reads again.
    pub(super) async fn read_here(
        &self,
        id: &SessionId,
        user: UserId,
        since: Seq,
        rev: Option<Revision>,
        wait: Duration,
    ) -> Result<Reply, HubError> {
        let deadline = tokio::time::Instant::now() + wait.min(MAX_READ_WAIT);
        let mut position = self.handle(id).await?.position;
        self.touch_poll(id, &user).await;
        loop {
            // Marked seen before reading, so a change between the read and the
            // wait below still wakes it.
            position.borrow_and_update();
            // Each read is answered at once; the waiting is done here.
            let read = Request::Read {
                user: user.clone(),
                since,
                rev,
                wait_ms: 0,
            };
            let page: ReadPage = self.ask_task(id, read, None).await?.try_into()?;
            let news = !page.events.is_empty() || !page.ops.is_empty();
            if news || page.status == SessionStatus::Ended {
                return Ok(Reply::Page(page));
            }
            match tokio::time::timeout_at(deadline, position.changed()).await {
                Ok(Ok(())) => continue,
                // Timed out, or the session's task stopped.
                _ => return Ok(Reply::Page(page)),
            }
        }
    }

    async fn touch_poll(&self, id: &SessionId, user: &UserId) {
        let sender = self
            .polls()
            .get(&(id.clone(), user.clone()))
            .map(|p| p.sender.clone());
        if let Some(sender) = sender {
            let _ = sender.touch().await;
        }
    }

    fn polls(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<(SessionId, UserId), PollClient>> {
        self.inner.polls.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub(super) fn frame_rev(frame: &ServerFrame) -> Option<Revision> {
    match frame {
        ServerFrame::TextOp { rev, .. } | ServerFrame::FileOp { rev, .. } => Some(*rev),
        _ => None,
    }
}
