//! A harness that drives one [`Session`] with many virtual clients on a virtual
//! clock, the way the Hub would, but with nothing asynchronous in between.

#![allow(dead_code)] // each test file uses a different part

use std::collections::HashMap;
use std::time::Duration;

use collab_core::ids::ConnectionId;
use collab_core::{
    CloseReason, ErrorCode, Event, Identity, NewSession, ServerFrame, Session, SessionConfig,
    SessionId, Timestamp, Transmit,
};
use serde_json::{json, Value};

pub const T0: Timestamp = Timestamp::from_millis(1_700_000_000_000);

pub struct Harness {
    pub session: Session,
    pub now: Timestamp,
    inbox: HashMap<ConnectionId, Vec<ServerFrame>>,
    binary: HashMap<ConnectionId, Vec<Vec<u8>>>,
    pub closed: HashMap<ConnectionId, CloseReason>,
    joined_as: HashMap<ConnectionId, collab_core::ParticipantId>,
    next_conn: u64,
    /// Credentials clients sent with `authenticate`, for the test to check.
    pub auth_requests: Vec<(ConnectionId, Option<u64>, String)>,
    /// The `through` of every `Transmit::LoadHistory`, in order.
    pub history_requests: Vec<u64>,
}

pub fn host() -> Identity {
    Identity::new("host-user", "Hana")
}

pub fn user(n: u32) -> Identity {
    Identity::new(format!("user-{n}"), format!("User{n}"))
}

impl Harness {
    pub fn new() -> Self {
        Self::with(SessionConfig::default(), NewSession::default())
    }

    pub fn with(config: SessionConfig, new: NewSession) -> Self {
        let session = Session::new(SessionId::from_bytes([9; 16]), new, &host(), config, T0)
            .expect("valid session");
        Self {
            session,
            now: T0,
            inbox: HashMap::new(),
            binary: HashMap::new(),
            closed: HashMap::new(),
            joined_as: HashMap::new(),
            next_conn: 1,
            auth_requests: Vec::new(),
            history_requests: Vec::new(),
        }
    }

    /// Opens a connection without joining.
    pub fn open(&mut self, identity: Identity) -> Result<ConnectionId, collab_core::SessionError> {
        let conn = ConnectionId(self.next_conn);
        self.next_conn += 1;
        self.session.connect(conn, identity, self.now)?;
        self.inbox.insert(conn, Vec::new());
        Ok(conn)
    }

    /// Opens a connection and joins; panics unless welcomed.
    pub fn join(&mut self, identity: Identity) -> ConnectionId {
        let conn = self.open(identity).expect("connect");
        self.send(conn, json!({"type": "join"}));
        let welcomed = self
            .frames(conn)
            .iter()
            .any(|f| matches!(f, ServerFrame::Welcome { .. }));
        assert!(welcomed, "no welcome: {:?}", self.frames(conn));
        conn
    }

    /// The participant id a connection joined as.
    pub fn me(&self, conn: ConnectionId) -> collab_core::ParticipantId {
        self.joined_as[&conn]
    }

    /// Lets `d` pass while `conns` keep sending heartbeats (every 10 s), as
    /// live but quiet clients do.
    pub fn idle(&mut self, conns: &[ConnectionId], d: Duration) {
        let end = self.now.plus(d);
        while self.now < end {
            let step = end.since(self.now).min(Duration::from_secs(10));
            self.advance(step);
            for c in conns {
                if !self.closed.contains_key(c) {
                    self.send(*c, json!({"type": "heartbeat"}));
                }
            }
        }
    }

    pub fn send(&mut self, conn: ConnectionId, frame: Value) {
        self.send_text(conn, &frame.to_string());
    }

    pub fn send_text(&mut self, conn: ConnectionId, text: &str) {
        self.session.handle_text(conn, text, self.now);
        self.pump();
    }

    pub fn disconnect(&mut self, conn: ConnectionId) {
        self.session.disconnect(conn, self.now);
        self.pump();
    }

    /// Moves the clock forward by `d`, waking the session at every deadline on
    /// the way, as a driver would.
    pub fn advance(&mut self, d: Duration) {
        let end = self.now.plus(d);
        loop {
            match self.session.poll_timeout() {
                Some(t) if t <= end => {
                    assert!(
                        t >= self.now || t == self.now,
                        "deadline {t:?} behind {:?}",
                        self.now
                    );
                    self.now = t.max(self.now);
                    self.session.handle_timeout(self.now);
                    self.pump();
                    let next = self.session.poll_timeout();
                    assert!(
                        next.is_none_or(|n| n > self.now),
                        "handle_timeout left a deadline at or before now: busy loop"
                    );
                }
                _ => break,
            }
        }
        self.now = end;
    }

    pub fn pump(&mut self) {
        while let Some(t) = self.session.poll_transmit() {
            match t {
                Transmit::Send { to, frame } => {
                    if let ServerFrame::Welcome { you, .. } = &frame {
                        self.joined_as.insert(to[0], *you);
                    }
                    for conn in to {
                        assert!(
                            !self.closed.contains_key(&conn),
                            "frame after close to {conn:?}"
                        );
                        self.inbox.entry(conn).or_default().push(frame.clone());
                    }
                }
                Transmit::SendBinary { to, bytes } => {
                    self.binary.entry(to).or_default().push(bytes);
                }
                Transmit::Close { conn, reason } => {
                    self.closed.insert(conn, reason);
                }
                Transmit::Authenticate { conn, rid, token } => {
                    self.auth_requests.push((conn, rid, token));
                }
                Transmit::LoadHistory { through } => self.history_requests.push(through),
            }
        }
    }

    pub fn frames(&self, conn: ConnectionId) -> &[ServerFrame] {
        self.inbox.get(&conn).map_or(&[], Vec::as_slice)
    }

    /// Takes and returns everything received so far.
    pub fn take(&mut self, conn: ConnectionId) -> Vec<ServerFrame> {
        std::mem::take(self.inbox.entry(conn).or_default())
    }

    /// Takes the binary (sync) frames sent to a connection so far.
    pub fn take_binary(&mut self, conn: ConnectionId) -> Vec<Vec<u8>> {
        std::mem::take(self.binary.entry(conn).or_default())
    }

    pub fn clear_all(&mut self) {
        for v in self.inbox.values_mut() {
            v.clear();
        }
    }

    pub fn events(&self, conn: ConnectionId) -> Vec<Event> {
        self.frames(conn)
            .iter()
            .filter_map(|f| match f {
                ServerFrame::Event { event } => Some(event.clone()),
                _ => None,
            })
            .collect()
    }

    pub fn errors(&self, conn: ConnectionId) -> Vec<ErrorCode> {
        self.frames(conn)
            .iter()
            .filter_map(|f| match f {
                ServerFrame::Error { code, .. } => Some(*code),
                _ => None,
            })
            .collect()
    }

    /// The frames as JSON, for assertions on the wire shape.
    pub fn json(&self, conn: ConnectionId) -> Vec<Value> {
        self.frames(conn)
            .iter()
            .map(|f| serde_json::to_value(f).unwrap())
            .collect()
    }

    pub fn event_kinds(&self, conn: ConnectionId) -> Vec<String> {
        self.json(conn)
            .into_iter()
            .filter(|f| f["type"] == "event")
            .map(|f| f["event"]["kind"].as_str().unwrap().to_owned())
            .collect()
    }
}

/// Exchanges sync messages between the session and one replica until both are quiet.
pub fn sync_replica(h: &mut Harness, conn: ConnectionId, replica: &mut collab_core::ReplicaClient) {
    for _ in 0..20 {
        let mut got = false;
        for bytes in h.take_binary(conn) {
            replica.receive(&bytes).unwrap();
            got = true;
        }
        let sent = replica.poll_message();
        if let Some(m) = &sent {
            h.session.handle_binary(conn, m, h.now);
            h.pump();
        }
        if !got && sent.is_none() {
            return;
        }
    }
    panic!("sync did not settle");
}
