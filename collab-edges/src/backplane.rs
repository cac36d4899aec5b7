//! Running one session across several processes: the [`Backplane`] seam.
//!
//! Each live session has one owner process (thin clients rebase against one
//! linear history). A process claims a session's ownership as a [`Lease`]
//! with an epoch that grows with every new owner; before loading the session
//! it fences the store at that epoch, so that a former owner that stalled
//! and lost its lease can no longer write. Other processes forward a
//! connection's frames to the owner and the owner's answers back, through
//! each process's inbox.
//!
//! [`MemoryBackplane`] connects hubs in one process, for tests; a Redis
//! implementation connects processes.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;

use collab_core::ids::ConnectionId;
use collab_core::{ErrorCode, Identity, SessionId, Timestamp};

use crate::outbound::Outbound;

/// A process serving sessions, as the backplane knows it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub String);

impl NodeId {
    /// A name no other process has: `address` (where this process listens,
    /// which tells an operator which one it is) and a random tag, since
    /// several machines may listen on the same address, and a restarted
    /// process must not be taken for the one before it.
    ///
    /// ```
    /// let a = collab_edges::backplane::NodeId::unique("10.0.0.7:8080").unwrap();
    /// let b = collab_edges::backplane::NodeId::unique("10.0.0.7:8080").unwrap();
    /// assert!(a.0.starts_with("10.0.0.7:8080-") && a != b);
    /// ```
    ///
    /// # Errors
    /// When the operating system has no random source.
    pub fn unique(address: impl fmt::Display) -> std::io::Result<Self> {
        let mut tag = [0u8; 4];
        getrandom::fill(&mut tag).map_err(|e| std::io::Error::other(e.to_string()))?;
        let tag: String = tag.iter().map(|b| format!("{b:02x}")).collect();
        Ok(Self(format!("{address}-{tag}")))
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who owns a session, since which epoch, until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The session.
    pub session: SessionId,
    /// Its owner.
    pub owner: NodeId,
    /// Grows by one with every change of owner; the store refuses writes
    /// of an older epoch once it has seen a newer one.
    pub epoch: u64,
    /// When the lease lapses unless renewed.
    pub expires: Timestamp,
}

/// What a client sent, on its way to the owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    /// A text frame.
    Text(String),
    /// A binary frame.
    Binary(Vec<u8>),
    /// The client answered a ping.
    Touch,
}

/// One message between processes, about one connection of one session.
/// Connection ids are the sending process's own; the pair (process,
/// connection) names a connection everywhere.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Envelope {
    /// Open a connection to the session for this identity (to the owner).
    Connect {
        /// The client, as the process it connected to authenticated it.
        identity: Identity,
        /// The client's address, for the session's address bans.
        address: Option<std::net::IpAddr>,
    },
    /// The answer to `Connect` (to the process the client is on).
    Connected(Result<(), Refusal>),
    /// A frame from the client (to the owner).
    Inbound(Inbound),
    /// A frame for the client (to the process the client is on).
    Outbound(Outbound),
    /// The client went away (to the owner).
    Disconnect,
    /// A request that is not a connection's (a REST read, an update, a
    /// long-poll), to the owner: `body` is the hub's own encoding of it,
    /// `call` the asking process's number for it.
    Request {
        /// The asker's number for this request.
        call: u64,
        /// The request, as the hub encodes it.
        body: Vec<u8>,
    },
    /// The owner's answer to a `Request` (to the asking process).
    Reply {
        /// The number of the request answered.
        call: u64,
        /// The answer as the hub encodes it, or why it was refused.
        answer: Result<Vec<u8>, Refusal>,
    },
}

/// Why the owner refused a connection, as it travels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The error's code.
    pub code: ErrorCode,
    /// Its message.
    pub message: String,
}

/// An [`Envelope`] with its addressing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Letter {
    /// The process that sent it.
    pub from: NodeId,
    /// The session it is about.
    pub session: SessionId,
    /// The sending or receiving process's connection id.
    pub conn: ConnectionId,
    /// What it says.
    pub envelope: Envelope,
}

/// A letter's bytes could not be read back as a letter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed letter: {0}")]
pub struct MalformedLetter(String);

/// A letter's header as it travels: who, which connection, and what kind of
/// envelope with its small fields; a frame's payload follows it as is.
#[derive(serde::Serialize, serde::Deserialize)]
struct Header {
    from: String,
    session: SessionId,
    conn: ConnectionId,
    #[serde(flatten)]
    kind: Kind,
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Kind {
    Connect {
        identity: Identity,
        address: Option<std::net::IpAddr>,
    },
    Connected {
        refused: Option<(ErrorCode, String)>,
    },
    InboundText,
    InboundBinary,
    Touch,
    OutboundText,
    OutboundBinary,
    /// Never sent by a session (a socket's pump pings on its own clock);
    /// here so that every [`Outbound`] has a form.
    Ping,
    Close {
        reason: collab_core::CloseReason,
    },
    Disconnect,
    Request {
        call: u64,
    },
    Reply {
        call: u64,
        refused: Option<(ErrorCode, String)>,
    },
}

impl Letter {
    /// The letter as bytes, for a backplane that carries bytes: a line of
    /// JSON (addressing and small fields), then the frame's payload
    /// unchanged, so a sync message is not inflated into JSON.
    pub fn encode(&self) -> Vec<u8> {
        let (kind, payload): (Kind, &[u8]) = match &self.envelope {
            Envelope::Connect { identity, address } => (
                Kind::Connect {
                    identity: identity.clone(),
                    address: *address,
                },
                &[],
            ),
            Envelope::Connected(answer) => (
                Kind::Connected {
                    refused: answer.as_ref().err().map(|r| (r.code, r.message.clone())),
                },
                &[],
            ),
            Envelope::Inbound(Inbound::Text(text)) => (Kind::InboundText, text.as_bytes()),
            Envelope::Inbound(Inbound::Binary(bytes)) => (Kind::InboundBinary, bytes),
            Envelope::Inbound(Inbound::Touch) => (Kind::Touch, &[]),
            Envelope::Outbound(Outbound::Text(text)) => (Kind::OutboundText, text.as_bytes()),
            Envelope::Outbound(Outbound::Binary(bytes)) => (Kind::OutboundBinary, bytes),
            Envelope::Outbound(Outbound::Ping) => (Kind::Ping, &[]),
            Envelope::Outbound(Outbound::Close(reason)) => (Kind::Close { reason: *reason }, &[]),
            Envelope::Disconnect => (Kind::Disconnect, &[]),
            Envelope::Request { call, body } => (Kind::Request { call: *call }, body),
            Envelope::Reply { call, answer } => match answer {
                Ok(body) => (
                    Kind::Reply {
                        call: *call,
                        refused: None,
                    },
                    body,
                ),
                Err(r) => (
                    Kind::Reply {
                        call: *call,
                        refused: Some((r.code, r.message.clone())),
                    },
                    &[],
                ),
            },
        };
        let header = Header {
            from: self.from.0.clone(),
            session: self.session.clone(),
            conn: self.conn,
            kind,
        };
        // JSON escapes newlines in strings: the first newline ends the header.
        let mut bytes = serde_json::to_vec(&header).unwrap_or_default();
        bytes.push(b'\n');
        bytes.extend_from_slice(payload);
        bytes
    }

    /// A letter back from [`Letter::encode`]'s bytes.
    ///
    /// # Errors
    /// [`MalformedLetter`] when the header is not one, or a text payload is
    /// not UTF-8.
    pub fn decode(bytes: &[u8]) -> Result<Self, MalformedLetter> {
        let split = bytes
            .iter()
            .position(|b| *b == b'\n')
            .ok_or_else(|| MalformedLetter("no header".into()))?;
        let header: Header =
            serde_json::from_slice(&bytes[..split]).map_err(|e| MalformedLetter(e.to_string()))?;
        let payload = &bytes[split + 1..];
        let text = || -> Result<String, MalformedLetter> {
            String::from_utf8(payload.to_vec()).map_err(|e| MalformedLetter(e.to_string()))
        };
        let envelope = match header.kind {
            Kind::Connect { identity, address } => Envelope::Connect { identity, address },
            Kind::Connected { refused } => Envelope::Connected(match refused {
                None => Ok(()),
                Some((code, message)) => Err(Refusal { code, message }),
            }),
            Kind::InboundText => Envelope::Inbound(Inbound::Text(text()?)),
            Kind::InboundBinary => Envelope::Inbound(Inbound::Binary(payload.to_vec())),
            Kind::Touch => Envelope::Inbound(Inbound::Touch),
            Kind::OutboundText => Envelope::Outbound(Outbound::Text(text()?.into())),
            Kind::OutboundBinary => Envelope::Outbound(Outbound::Binary(payload.to_vec())),
            Kind::Ping => Envelope::Outbound(Outbound::Ping),
            Kind::Close { reason } => Envelope::Outbound(Outbound::Close(reason)),
            Kind::Disconnect => Envelope::Disconnect,
            Kind::Request { call } => Envelope::Request {
                call,
                body: payload.to_vec(),
            },
            Kind::Reply { call, refused } => Envelope::Reply {
                call,
                answer: match refused {
                    None => Ok(payload.to_vec()),
                    Some((code, message)) => Err(Refusal { code, message }),
                },
            },
        };
        Ok(Letter {
            from: NodeId(header.from),
            session: header.session,
            conn: header.conn,
            envelope,
        })
    }
}

/// Why a backplane request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BackplaneError {
    /// The lease was taken by another process (this one stalled or was cut
    /// off). The former owner must stop serving the session.
    #[error("lost the lease of session {session} to {owner}")]
    Lost {
        /// The session.
        session: SessionId,
        /// Its owner now.
        owner: NodeId,
    },
    /// The process addressed is not reachable. May be retried.
    #[error("node {0} is not reachable")]
    Unreachable(NodeId),
    /// The backplane itself failed (connection down). May be retried.
    #[error("backplane failed: {0}")]
    Backend(String),
}

/// The seam between processes serving the same sessions.
#[async_trait]
pub trait Backplane: Send + Sync + 'static {
    /// This process.
    fn node(&self) -> &NodeId;

    /// The session's lease: ours (claimed now, with a new epoch, if nobody
    /// held it or the holder's lapsed) or the current owner's.
    async fn claim(
        &self,
        session: &SessionId,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<Lease, BackplaneError>;

    /// Extends our lease.
    ///
    /// # Errors
    /// [`BackplaneError::Lost`] when another process holds it now.
    async fn renew(
        &self,
        lease: &Lease,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<Lease, BackplaneError>;

    /// Gives up our lease, so that the next process asked takes the session
    /// at once instead of after the lease lapses (a graceful shutdown, an
    /// idle session leaving memory). Does nothing when another process
    /// holds it now. The default does nothing: the lease lapses.
    async fn release(&self, lease: &Lease) -> Result<(), BackplaneError> {
        let _ = lease;
        Ok(())
    }

    /// Puts `letter` in `to`'s inbox.
    async fn send(&self, to: &NodeId, letter: Letter) -> Result<(), BackplaneError>;

    /// The next letter in this process's inbox; `None` once the backplane
    /// is gone.
    async fn recv(&self) -> Option<Letter>;
}

/// Hubs in one process joined as if they were processes: leases, epochs and
/// inboxes in memory, and a way to cut one off, for tests.
#[derive(Debug, Default)]
pub struct MemoryNet {
    leases: Mutex<HashMap<SessionId, Lease>>,
    inboxes: Mutex<HashMap<NodeId, mpsc::UnboundedSender<Letter>>>,
    cut_off: Mutex<HashSet<NodeId>>,
}

impl MemoryNet {
    /// A network with nobody on it.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// A process named `name` on this network.
    pub fn node(self: &Arc<Self>, name: &str) -> MemoryBackplane {
        let (tx, rx) = mpsc::unbounded_channel();
        let node = NodeId(name.to_owned());
        lock(&self.inboxes).insert(node.clone(), tx);
        MemoryBackplane {
            net: Arc::clone(self),
            node,
            inbox: tokio::sync::Mutex::new(rx),
        }
    }

    /// Cuts `node` off (a stalled or partitioned process): its claims,
    /// renewals and letters fail, and nothing reaches it.
    pub fn cut_off(&self, node: &NodeId) {
        lock(&self.cut_off).insert(node.clone());
    }

    /// The lease of `session`, as the network has it.
    pub fn lease(&self, session: &SessionId) -> Option<Lease> {
        lock(&self.leases).get(session).cloned()
    }

    fn reachable(&self, node: &NodeId) -> Result<(), BackplaneError> {
        if lock(&self.cut_off).contains(node) {
            Err(BackplaneError::Unreachable(node.clone()))
        } else {
            Ok(())
        }
    }
}

/// One process's view of a [`MemoryNet`].
#[derive(Debug)]
pub struct MemoryBackplane {
    net: Arc<MemoryNet>,
    node: NodeId,
    inbox: tokio::sync::Mutex<mpsc::UnboundedReceiver<Letter>>,
}

#[async_trait]
impl Backplane for MemoryBackplane {
    fn node(&self) -> &NodeId {
        &self.node
    }

    async fn claim(
        &self,
        session: &SessionId,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<Lease, BackplaneError> {
        self.net.reachable(&self.node)?;
        let mut leases = lock(&self.net.leases);
        let lease = match leases.get(session) {
            Some(held) if held.expires > now => held.clone(),
            lapsed => {
                let epoch = lapsed.map_or(1, |l| l.epoch + 1);
                let lease = Lease {
                    session: session.clone(),
                    owner: self.node.clone(),
                    epoch,
                    expires: now.plus(ttl),
                };
                leases.insert(session.clone(), lease.clone());
                lease
            }
        };
        Ok(lease)
    }

    async fn renew(
        &self,
        lease: &Lease,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<Lease, BackplaneError> {
        self.net.reachable(&self.node)?;
        let mut leases = lock(&self.net.leases);
        match leases.get_mut(&lease.session) {
            Some(held) if held.owner == self.node && held.epoch == lease.epoch => {
                held.expires = now.plus(ttl);
                Ok(held.clone())
            }
            Some(held) => Err(BackplaneError::Lost {
                session: lease.session.clone(),
                owner: held.owner.clone(),
            }),
            None => Err(BackplaneError::Lost {
                session: lease.session.clone(),
                owner: self.node.clone(),
            }),
        }
    }

    async fn release(&self, lease: &Lease) -> Result<(), BackplaneError> {
        self.net.reachable(&self.node)?;
        let mut leases = lock(&self.net.leases);
        let ours = leases
            .get(&lease.session)
            .is_some_and(|held| held.owner == self.node && held.epoch == lease.epoch);
        if ours {
            // Lapsed at once, keeping its epoch for the next claim to pass.
            if let Some(held) = leases.get_mut(&lease.session) {
                held.expires = Timestamp(0);
            }
        }
        Ok(())
    }

    async fn send(&self, to: &NodeId, letter: Letter) -> Result<(), BackplaneError> {
        self.net.reachable(&self.node)?;
        self.net.reachable(to)?;
        let inboxes = lock(&self.net.inboxes);
        let inbox = inboxes
            .get(to)
            .ok_or_else(|| BackplaneError::Unreachable(to.clone()))?;
        inbox
            .send(letter)
            .map_err(|_| BackplaneError::Unreachable(to.clone()))
    }

    async fn recv(&self) -> Option<Letter> {
        self.inbox.lock().await.recv().await
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn leases_pass_on_with_a_new_epoch_only_when_they_lapse() {
        let net = MemoryNet::new();
        let (a, b) = (net.node("a"), net.node("b"));
        let s = SessionId::from_bytes([1; 16]);
        let ttl = Duration::from_secs(10);
        let t0 = Timestamp(1_000);
        let first = a.claim(&s, t0, ttl).await.unwrap();
        assert_eq!((first.owner.0.as_str(), first.epoch), ("a", 1));
        let seen = b
            .claim(&s, t0.plus(Duration::from_secs(5)), ttl)
            .await
            .unwrap();
        assert_eq!(seen, first, "held: b learns the owner");
        let renewed = a
            .renew(&first, t0.plus(Duration::from_secs(9)), ttl)
            .await
            .unwrap();
        assert_eq!(renewed.epoch, 1);
        let later = t0.plus(Duration::from_secs(30));
        let taken = b.claim(&s, later, ttl).await.unwrap();
        assert_eq!((taken.owner.0.as_str(), taken.epoch), ("b", 2));
        assert!(matches!(
            a.renew(&renewed, later, ttl).await,
            Err(BackplaneError::Lost { owner, .. }) if owner.0 == "b"
        ));
        a.release(&renewed).await.unwrap();
        assert_eq!(
            net.lease(&s).as_ref(),
            Some(&taken),
            "a lease not ours is not released"
        );
        b.release(&taken).await.unwrap();
        let next = a.claim(&s, later, ttl).await.unwrap();
        assert_eq!(
            (next.owner.0.as_str(), next.epoch),
            ("a", 3),
            "released: taken at once, with a new epoch"
        );
    }

    #[test]
    fn letters_travel_as_bytes_and_come_back_the_same() {
        let identity = Identity {
            user_id: collab_core::UserId::new("ada"),
            name: "Ada \n Lovelace".into(),
            role: None,
            expires_at: Some(Timestamp(5)),
            sessions: None,
        };
        let envelopes = [
            Envelope::Connect {
                identity,
                address: Some("127.0.0.1".parse().unwrap()),
            },
            Envelope::Connected(Ok(())),
            Envelope::Connected(Err(Refusal {
                code: ErrorCode::SessionFull,
                message: "full".into(),
            })),
            Envelope::Inbound(Inbound::Text("{\"type\":\"ping\"}\n".into())),
            Envelope::Inbound(Inbound::Binary(vec![0, b'\n', 255])),
            Envelope::Inbound(Inbound::Touch),
            Envelope::Outbound(Outbound::Text("é\n".into())),
            Envelope::Outbound(Outbound::Binary(vec![])),
            Envelope::Outbound(Outbound::Ping),
            Envelope::Outbound(Outbound::Close(collab_core::CloseReason::Kicked)),
            Envelope::Disconnect,
            Envelope::Request {
                call: 9,
                body: b"{\"op\":\"view\"}\n".to_vec(),
            },
            Envelope::Reply {
                call: 9,
                answer: Ok(vec![1, b'\n']),
            },
            Envelope::Reply {
                call: u64::MAX,
                answer: Err(Refusal {
                    code: ErrorCode::SessionNotFound,
                    message: "gone".into(),
                }),
            },
        ];
        for envelope in envelopes {
            let letter = Letter {
                from: NodeId("node \"a\"".into()),
                session: SessionId::from_bytes([3; 16]),
                conn: ConnectionId(u64::MAX),
                envelope,
            };
            assert_eq!(Letter::decode(&letter.encode()), Ok(letter));
        }
        for bad in [&b""[..], b"{}\n", b"not json\n", b"{\"from\":1}"] {
            assert!(Letter::decode(bad).is_err(), "{bad:?}");
        }
        let text = Letter {
            from: NodeId("a".into()),
            session: SessionId::from_bytes([3; 16]),
            conn: ConnectionId(1),
            envelope: Envelope::Inbound(Inbound::Text("x".into())),
        };
        let mut bytes = text.encode();
        bytes.pop();
        bytes.push(0xff);
        assert!(
            Letter::decode(&bytes).is_err(),
            "a text payload that is not UTF-8"
        );
    }

    #[tokio::test]
    async fn letters_reach_inboxes_unless_cut_off() {
        let net = MemoryNet::new();
        let (a, b) = (net.node("a"), net.node("b"));
        let letter = Letter {
            from: a.node().clone(),
            session: SessionId::from_bytes([2; 16]),
            conn: ConnectionId(7),
            envelope: Envelope::Disconnect,
        };
        a.send(b.node(), letter.clone()).await.unwrap();
        assert_eq!(b.recv().await, Some(letter.clone()));
        net.cut_off(b.node());
        assert!(matches!(
            a.send(b.node(), letter).await,
            Err(BackplaneError::Unreachable(_))
        ));
    }
}
