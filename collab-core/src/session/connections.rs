//! The connection table: who is connected, their rate allowance, when they
//! were last heard from, and closing them.

use super::*;

#[derive(Debug)]
pub(super) struct Conn {
    pub(super) identity: Identity,
    /// The client's address, when the driver knows it (per-address bans).
    pub(super) address: Option<std::net::IpAddr>,
    pub(super) participant: Option<ParticipantId>,
    pub(super) last_seen: Timestamp,
    /// Set for a replica: its automerge sync state.
    pub(super) sync: Option<SyncState>,
    /// Frames it may still send now, in thousandths (a token bucket).
    pub(super) allowance: u64,
    pub(super) last_refill: Timestamp,
    /// Frames refused in a row for going over the rate.
    pub(super) refused: u32,
}

/// Who is connected. Owns each connection's rate allowance: a frame is
/// charged here, and only here.
#[derive(Debug, Default)]
pub(super) struct Connections {
    table: HashMap<ConnectionId, Conn>,
}

/// What charging a frame to a connection's allowance decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Charge {
    /// Within the rate: read it.
    Admitted,
    /// Over the rate: refuse it, unread.
    Refused,
    /// Over the rate for a whole burst in a row: close the connection.
    Flooding,
    /// No such connection.
    Unknown,
}

impl Connections {
    pub(super) fn get(&self, conn: &ConnectionId) -> Option<&Conn> {
        self.table.get(conn)
    }

    pub(super) fn get_mut(&mut self, conn: &ConnectionId) -> Option<&mut Conn> {
        self.table.get_mut(conn)
    }

    pub(super) fn contains_key(&self, conn: &ConnectionId) -> bool {
        self.table.contains_key(conn)
    }

    pub(super) fn insert(&mut self, conn: ConnectionId, c: Conn) {
        self.table.insert(conn, c);
    }

    pub(super) fn remove(&mut self, conn: &ConnectionId) -> Option<Conn> {
        self.table.remove(conn)
    }

    pub(super) fn values(&self) -> impl Iterator<Item = &Conn> {
        self.table.values()
    }

    pub(super) fn len(&self) -> usize {
        self.table.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// The connections `keep` picks, in id order (so that what the session
    /// does to them is the same every run).
    pub(super) fn picked(&self, keep: impl Fn(ConnectionId, &Conn) -> bool) -> Vec<ConnectionId> {
        let mut conns: Vec<ConnectionId> = self
            .table
            .iter()
            .filter(|(id, c)| keep(**id, c))
            .map(|(id, _)| *id)
            .collect();
        conns.sort_unstable();
        conns
    }

    /// Charges `cost` thousandths of a frame to `conn`'s token bucket,
    /// which refills at `per_second` frames a second up to `burst`.
    pub(super) fn charge(
        &mut self,
        conn: ConnectionId,
        now: Timestamp,
        cost: u64,
        per_second: u32,
        burst: u32,
    ) -> Charge {
        let (rate, burst) = (u64::from(per_second), u64::from(burst));
        let Some(c) = self.table.get_mut(&conn) else {
            return Charge::Unknown;
        };
        let elapsed = now.as_millis().saturating_sub(c.last_refill.as_millis());
        c.allowance = (c.allowance + elapsed.saturating_mul(rate)).min(burst * 1_000);
        c.last_refill = now;
        if c.allowance >= cost {
            c.allowance -= cost;
            c.refused = 0;
            return Charge::Admitted;
        }
        c.refused += 1;
        c.last_seen = now;
        if u64::from(c.refused) > burst {
            Charge::Flooding
        } else {
            Charge::Refused
        }
    }

    /// When the quietest connection was last heard from.
    pub(super) fn earliest_seen(&self) -> Option<Timestamp> {
        self.table.values().map(|c| c.last_seen).min()
    }

    /// The earliest credential expiry among the connections.
    pub(super) fn earliest_expiry(&self) -> Option<Timestamp> {
        self.table
            .values()
            .filter_map(|c| c.identity.expires_at)
            .min()
    }
}

impl std::ops::Index<&ConnectionId> for Connections {
    type Output = Conn;

    fn index(&self, conn: &ConnectionId) -> &Conn {
        &self.table[conn]
    }
}

impl Session {
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
        self.step(now, |s| {
            // An address ban keeps newcomers from there out; members already in
            // the session (the host on the same network, say) stay welcome.
            let newcomer = s.current_member_of(&identity.user_id).is_err();
            // An ended session takes its members back to review it, read-only;
            // nobody new.
            if s.is_ended() && newcomer {
                return Err(SessionError::SessionEnded);
            }
            if s.members.is_banned(&identity.user_id)
                || (newcomer && address.is_some_and(|a| s.members.is_banned(&address_ban(a))))
            {
                return Err(SessionError::Banned);
            }
            if s.connections.len() >= s.config.max_connections {
                return Err(SessionError::TooManyConnections {
                    max: s.config.max_connections,
                });
            }
            s.timers
                .set_by(Timer::Stale, now.plus(s.config.presence.stale_after));
            if let Some(at) = identity.expires_at {
                s.timers.set_by(Timer::CredentialExpiry, at);
            }
            s.connections.insert(
                conn,
                Conn {
                    identity,
                    address,
                    participant: None,
                    last_seen: now,
                    sync: None,
                    allowance: u64::from(s.config.frame_burst) * 1_000,
                    last_refill: now,
                    refused: 0,
                },
            );
            Ok(())
        })
    }

    /// A connection closed (the client went away or the driver dropped it). Its
    /// participant goes offline if it was their last connection.
    pub fn disconnect(&mut self, conn: ConnectionId, now: Timestamp) {
        self.step(now, |s| s.forget_connection(conn, now));
    }

    /// [`Session::disconnect`] within a step already under way (a close the
    /// session decided).
    pub(super) fn forget_connection(&mut self, conn: ConnectionId, now: Timestamp) {
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

    /// Closes every connection with `reason` (a server shutting down).
    pub fn close_all(&mut self, reason: CloseReason, now: Timestamp) {
        self.step(now, |s| s.close_everyone(reason, now));
    }

    /// [`Session::close_all`] within a step already under way (the session
    /// ending).
    pub(super) fn close_everyone(&mut self, reason: CloseReason, now: Timestamp) {
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
    pub(super) fn connections_where(
        &self,
        keep: impl Fn(ConnectionId, &Conn) -> bool,
    ) -> Vec<ConnectionId> {
        self.connections.picked(keep)
    }

    /// Sends `goodbye`, closes every connection of a member.
    pub(super) fn close_member(
        &mut self,
        member: ParticipantId,
        reason: CloseReason,
        now: Timestamp,
    ) {
        let conns: Vec<ConnectionId> = self
            .members
            .get(&member)
            .map(|m| m.connections.iter().copied().collect())
            .unwrap_or_default();
        for conn in conns {
            self.close(conn, reason, now);
        }
    }

    pub(super) fn close(&mut self, conn: ConnectionId, reason: CloseReason, now: Timestamp) {
        if !self.connections.contains_key(&conn) {
            return;
        }
        self.send(vec![conn], ServerFrame::Goodbye { reason });
        self.outbox.push_back(Transmit::Close { conn, reason });
        self.forget_connection(conn, now);
    }

    /// Charges a frame to the connection's rate. A frame over the rate is
    /// refused with `rate_limited` (and not read); a connection that keeps
    /// sending a whole burst's worth while refused is closed.
    pub(super) fn admit(
        &mut self,
        conn: ConnectionId,
        now: Timestamp,
        cost: u64,
        rid: impl FnOnce() -> Option<u64>,
    ) -> bool {
        match self.connections.charge(
            conn,
            now,
            cost,
            self.config.frames_per_second,
            self.config.frame_burst,
        ) {
            Charge::Admitted => true,
            Charge::Unknown => false,
            Charge::Flooding => {
                self.close(conn, CloseReason::RateLimited, now);
                false
            }
            Charge::Refused => {
                let per_second = self.config.frames_per_second;
                self.send_error(conn, rid(), &SessionError::RateLimited { per_second });
                false
            }
        }
    }

    /// Counts a sign of life from the connection that is not a frame (a
    /// WebSocket pong), so that it is not swept as stale.
    pub fn touch(&mut self, conn: ConnectionId, now: Timestamp) {
        self.step(now, |s| {
            s.touch_connection(conn, now);
        })
    }

    pub(super) fn touch_connection(&mut self, conn: ConnectionId, now: Timestamp) {
        if let Some(c) = self.connections.get_mut(&conn) {
            c.last_seen = now;
        }
    }

    /// Closes the connections quiet for the stale timeout, and sets the
    /// stale timer for the earliest of the others.
    pub(super) fn close_stale(&mut self, now: Timestamp) {
        let stale_after = self.config.presence.stale_after;
        for conn in self.connections_where(|_, c| now >= c.last_seen.plus(stale_after)) {
            self.close(conn, CloseReason::Stale, now);
        }
        let next = self.connections.earliest_seen();
        self.timers
            .set_or_stop(Timer::Stale, next.map(|t| t.plus(stale_after)));
    }

    /// Closes the connections whose credential expired, and sets the
    /// credential timer for the earliest expiry of the others.
    pub(super) fn close_expired_credentials(&mut self, now: Timestamp) {
        let expired =
            self.connections_where(|_, c| c.identity.expires_at.is_some_and(|at| now >= at));
        for conn in expired {
            self.close(conn, CloseReason::TokenExpired, now);
        }
        let next = self.connections.earliest_expiry();
        self.timers.set_or_stop(Timer::CredentialExpiry, next);
    }

    /// With nobody connected, sets the expiry timer for when the session
    /// ends if nothing happens.
    pub(super) fn arm_session_expiry(&mut self) {
        // A scheduled session closes at its time instead (`arm_schedule`).
        if !self.is_ended() && self.connections.is_empty() && self.heading.schedule().is_none() {
            let at = self.last_activity.plus(self.config.expires_after);
            self.timers.set_by(Timer::SessionExpiry, at);
        }
    }
}
