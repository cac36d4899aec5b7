//! A request about one session that is not a connection's frame: REST reads
//! and writes, joins and leaves over REST, long-polls (and so event streams).
//!
//! It is one value from end to end. [`Hub`]'s public methods build a
//! [`Request`]; [`Hub::call`] runs it on this process's session task, or
//! sends the same value to the process that owns the session
//! ([`super::remote`]), which runs it the same way. The task answers with a
//! [`Reply`] on a channel beside the request. A new request is a variant
//! here, its arm in [`Task::answer`](super::task::Task) calling one
//! [`Session`] method, the public method that builds it, and a test.

use std::net::IpAddr;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::*;
use collab_core::participant::Action;

/// A request about one session, as the hub hands it to the session's task
/// and as another process forwards it to the owner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(super) enum Request {
    /// [`Hub::session`]: everything, for the host application.
    View,
    /// [`Caller::session`], once access was checked: what `user` at `peer`
    /// may read.
    ViewFor { user: UserId, peer: Option<IpAddr> },
    /// [`Hub::update_session`].
    Update {
        identity: Identity,
        update: SessionUpdate,
    },
    /// [`Hub::end_session`].
    End { identity: Identity },
    /// [`Hub::replace_code`].
    #[serde(rename = "code")]
    ReplaceCode {
        user: UserId,
        rev: Option<Revision>,
        code: String,
    },
    /// [`Caller::join`]: the process that runs it holds the REST participant's
    /// connection, and hands the task its id beside the request.
    Join {
        identity: Identity,
        name: Option<String>,
        peer: Option<IpAddr>,
    },
    /// [`Caller::leave`].
    Leave { user: UserId, target: String },
    /// [`Caller::may`].
    May { user: UserId, action: Action },
    /// [`Caller::read`], once access was checked. The process that runs it
    /// waits up to `wait_ms` for news; the task reads once each time.
    Read {
        user: UserId,
        since: Seq,
        rev: Option<Revision>,
        wait_ms: u64,
    },
    /// [`Caller::export`]: the whole session, for a host.
    Export { user: UserId },
}

impl Request {
    /// How long the request may wait where it runs, beyond its answer's
    /// usual patience.
    pub(super) fn waits(&self) -> Duration {
        match self {
            Request::Read { wait_ms, .. } => Duration::from_millis(*wait_ms),
            _ => Duration::ZERO,
        }
    }
}

/// A session task's answer to a [`Request`]. Forwarded, it travels as the
/// bare value ([`Reply::encode`]), which the asking process reads as the
/// type it expects: the form processes of earlier releases send and read,
/// so a cluster upgraded one process at a time still answers.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Reply {
    /// To [`Request::View`].
    View(SessionView),
    /// To [`Request::ViewFor`].
    Read(SessionRead),
    /// To [`Request::Update`] and [`Request::End`].
    Info(SessionInfo),
    /// To [`Request::ReplaceCode`]: the revision after the edit.
    Revision(Revision),
    /// To [`Request::Join`].
    Joined(ParticipantState),
    /// To [`Request::Leave`] and [`Request::May`].
    Done,
    /// To [`Request::Read`].
    Page(ReadPage),
    /// To [`Request::Export`]; boxed, being large.
    Export(Box<SessionExport>),
}

impl Reply {
    /// The answer as it travels to the process that asked: its value alone
    /// (`null` for [`Reply::Done`]).
    pub(super) fn encode(&self) -> Result<Vec<u8>, serde_json::Error> {
        match self {
            Reply::View(v) => serde_json::to_vec(v),
            Reply::Read(r) => serde_json::to_vec(r),
            Reply::Info(i) => serde_json::to_vec(i),
            Reply::Revision(r) => serde_json::to_vec(r),
            Reply::Joined(p) => serde_json::to_vec(p),
            Reply::Done => serde_json::to_vec(&()),
            Reply::Page(p) => serde_json::to_vec(p),
            Reply::Export(e) => serde_json::to_vec(e),
        }
    }
}

/// What each public method takes out of the [`Reply`] it expects.
macro_rules! reply_of {
    ($($variant:ident($ty:ty)),* $(,)?) => {$(
        impl TryFrom<Reply> for $ty {
            type Error = HubError;
            fn try_from(reply: Reply) -> Result<Self, HubError> {
                match reply {
                    Reply::$variant(value) => Ok(value),
                    other => Err(HubError::unexpected(&other)),
                }
            }
        }
    )*};
}
reply_of!(
    View(SessionView),
    Read(SessionRead),
    Info(SessionInfo),
    Revision(Revision),
    Joined(ParticipantState),
    Page(ReadPage),
    Export(Box<SessionExport>),
);

impl TryFrom<Reply> for () {
    type Error = HubError;
    fn try_from(reply: Reply) -> Result<Self, HubError> {
        match reply {
            Reply::Done => Ok(()),
            other => Err(HubError::unexpected(&other)),
        }
    }
}

impl HubError {
    /// A reply of another kind than the request's: only a process of
    /// another version, forwarding, could send one.
    fn unexpected(reply: &Reply) -> Self {
        HubError::Backplane(crate::backplane::BackplaneError::Backend(format!(
            "an answer of the wrong kind: {reply:?}"
        )))
    }
}

impl Hub {
    /// Runs `request` about session `id` where the session is served, here
    /// or at its owner, and takes the answer of the kind `T` it expects.
    pub(super) async fn call<T>(&self, id: &SessionId, request: Request) -> Result<T, HubError>
    where
        T: TryFrom<Reply, Error = HubError> + DeserializeOwned,
    {
        match self.owner_elsewhere(id).await? {
            Some(owner) => {
                let node = owner.node().clone();
                let bytes = self.ask_owner(owner, id, &request).await?;
                serde_json::from_slice(&bytes).map_err(|e| {
                    HubError::Backplane(crate::backplane::BackplaneError::Backend(format!(
                        "an answer from {node} that is not one: {e}"
                    )))
                })
            }
            None => self.call_here(id, request).await?.try_into(),
        }
    }

    /// Runs `request` on this process's task for session `id`. A join
    /// first opens the connection the hub holds for the REST participant;
    /// a read waits for news.
    pub(super) async fn call_here(
        &self,
        id: &SessionId,
        request: Request,
    ) -> Result<Reply, HubError> {
        match request {
            Request::Join {
                identity,
                name,
                peer,
            } => self.join_here(id, identity, name, peer).await,
            Request::Read {
                user,
                since,
                rev,
                wait_ms,
            } => {
                let wait = Duration::from_millis(wait_ms);
                self.read_here(id, user, since, rev, wait).await
            }
            request => self.ask_task(id, request, None).await,
        }
    }

    /// Hands `request` to the session's task, with the connection it comes
    /// through if any, and waits for the answer.
    pub(super) async fn ask_task(
        &self,
        id: &SessionId,
        request: Request,
        conn: Option<ConnectionId>,
    ) -> Result<Reply, HubError> {
        let (reply, answer) = oneshot::channel();
        let command = Command::Call {
            request,
            conn,
            reply,
        };
        self.command(id, command).await?;
        Ok(answer.await.map_err(|_| HubError::ShuttingDown)??)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A forwarded request travels as tagged JSON and reads back the same.
    #[test]
    fn requests_travel_under_their_names() {
        let request = Request::ReplaceCode {
            user: UserId::new("u1"),
            rev: Some(3),
            code: "x".into(),
        };
        let json = serde_json::to_string(&request).unwrap();
        assert_eq!(json, r#"{"op":"code","user":"u1","rev":3,"code":"x"}"#);
        assert_eq!(serde_json::from_str::<Request>(&json).unwrap(), request);
        let read = Request::Read {
            user: UserId::new("u1"),
            since: Seq(4),
            rev: None,
            wait_ms: 1500,
        };
        assert_eq!(read.waits(), Duration::from_millis(1500));
        let json = serde_json::to_string(&read).unwrap();
        assert_eq!(serde_json::from_str::<Request>(&json).unwrap(), read);
    }

    /// A forwarded answer is the bare value, as earlier releases sent it,
    /// and reads back as the type the asker expects.
    #[test]
    fn replies_travel_as_their_value() {
        assert_eq!(Reply::Revision(7).encode().unwrap(), b"7");
        assert_eq!(Reply::Done.encode().unwrap(), b"null");
        let () = serde_json::from_slice(&Reply::Done.encode().unwrap()).unwrap();
        let rev: Revision = serde_json::from_slice(&Reply::Revision(9).encode().unwrap()).unwrap();
        assert_eq!(rev, 9);
    }

    #[test]
    fn a_reply_of_another_kind_is_an_error() {
        let revision: Result<Revision, _> = Reply::Revision(7).try_into();
        assert_eq!(revision.unwrap(), 7);
        let wrong: Result<SessionInfo, _> = Reply::Done.try_into();
        assert!(matches!(wrong, Err(HubError::Backplane(_))));
        let done: Result<(), _> = Reply::Revision(1).try_into();
        assert!(done.is_err());
    }
}
