//! Membership: joining, leaving, roles, kicks, the host hand-over and
//! colours, and the one place that decides what a member may do.

use super::*;

/// The fields of a `join` frame.
pub(super) struct JoinRequest {
    pub(super) name: Option<String>,
    pub(super) since: Option<Seq>,
    pub(super) protocol: Option<u32>,
    pub(super) mode: Option<ClientMode>,
    pub(super) rev: Option<Revision>,
}

impl Session {
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
        self.step(now, |s| {
            if !s.connections.contains_key(&conn) {
                return Err(SessionError::NotJoined);
            }
            let request = JoinRequest {
                name,
                since: None,
                protocol: None,
                mode: None,
                rev: None,
            };
            let result = s.join(conn, None, request, now);
            result?;
            let me = s.connections[&conn]
                .participant
                .ok_or(SessionError::NotJoined)?;
            s.participants(now)
                .into_iter()
                .find(|p| p.participant.id == me)
                .ok_or(SessionError::NotJoined)
        })
    }

    /// Removes `target` (a user id or participant id, as in the REST path
    /// `DELETE …/users/{target}`) as `user` asks: themselves, which is
    /// leaving as their `leave` frame would (the event is recorded and every
    /// connection of theirs closes with `left`), or someone else, which is a
    /// host's `kick` (their connections close with `kicked` and they cannot
    /// come back).
    ///
    /// # Errors
    /// [`SessionError::Banned`] for a removed caller;
    /// [`SessionError::UnknownParticipant`] when `target` names no current
    /// member; [`SessionError::NotParticipant`] when the caller is not one;
    /// [`SessionError::NotYourself`] when a caller who may not kick names
    /// someone else.
    pub fn leave_user(
        &mut self,
        user: &UserId,
        target: &str,
        now: Timestamp,
    ) -> Result<(), SessionError> {
        self.step(now, |s| {
            // The caller's standing first: a stranger learns nothing of who
            // is a member.
            let me = s.current_member_of(user);
            match &me {
                Err(SessionError::NotParticipant) if *user == s.created_by => {}
                Err(e) => return Err(e.clone()),
                Ok(_) => {}
            }
            let target = s
                .current_members()
                .find(|m| {
                    m.participant().user_id.to_string() == target
                        || m.participant().id.0.to_string() == target
                })
                .map(|m| m.participant().id)
                .ok_or(SessionError::UnknownParticipant)?;
            if me.as_ref() == Ok(&target) {
                s.leave(target, now);
            } else {
                let by = match s.authorize(Actor::User(user), Action::Kick) {
                    Ok(Some(by)) => by,
                    // The creator acts as a host before joining, but a kick is
                    // recorded as one participant's act on another.
                    Ok(None) => return Err(SessionError::NotParticipant),
                    Err(SessionError::Forbidden { .. }) => return Err(SessionError::NotYourself),
                    Err(e) => return Err(e),
                };
                s.kick(by, target, false, now)?;
            }
            Ok(())
        })
    }

    /// A waiting session is under way once a second person is in it: its
    /// status moves to `active` by itself (recorded as an update by nobody).
    /// A host may still set any status by hand.
    fn start_when_two_are_in(&mut self, now: Timestamp) {
        if self.heading.status() != SessionStatus::Waiting || self.online_count() < 2 {
            return;
        }
        self.heading
            .update(None, None, Some(SessionStatus::Active), now);
        self.record(
            now,
            EventKind::SessionUpdated {
                title: None,
                language: None,
                status: Some(SessionStatus::Active),
                closes_at: None,
                by: None,
            },
        );
    }

    /// Makes the session's creator its first member, a host, before they
    /// connect anywhere: what a creator over REST expects (their own code
    /// edits, leave and kicks work at once), offline until they connect.
    /// Does nothing if they already are one.
    pub fn admit_creator(&mut self, creator: &Identity, now: Timestamp) {
        self.step(now, |s| {
            if creator.user_id != s.created_by || s.members.of_user(&creator.user_id).is_some() {
                return;
            }
            let name = check_name(&creator.name, s.config.max_name_chars)
                .unwrap_or_else(|_| "Host".to_owned());
            s.add_member(&creator.user_id, name, Role::Host, now);
        })
    }

    /// A new member, with a free colour, and the event that says so.
    fn add_member(
        &mut self,
        user: &UserId,
        name: String,
        role: Role,
        now: Timestamp,
    ) -> ParticipantId {
        let participant = Participant {
            id: ParticipantId(0),
            user_id: user.clone(),
            name,
            colour: self.free_colour(),
            role,
            joined_at: now,
        };
        let id = self.members.add(participant, now);
        let participant = self.members[&id].participant().clone();
        self.record(
            now,
            EventKind::ParticipantJoined {
                participant,
                rejoined: false,
            },
        );
        id
    }

    pub(super) fn current_member_of(&self, user: &UserId) -> Result<ParticipantId, SessionError> {
        if self.members.is_banned(user) {
            return Err(SessionError::Banned);
        }
        self.members
            .of_user(user)
            .filter(|id| self.members[id].membership() == Membership::Present)
            .ok_or(SessionError::NotParticipant)
    }

    /// Everyone who has been a member, with presence as of `now`.
    pub fn participants(&self, now: Timestamp) -> Vec<ParticipantState> {
        let cfg = &self.config.presence;
        self.members
            .values()
            .map(|m| ParticipantState {
                participant: m.participant().clone(),
                present: m.membership() == Membership::Present,
                presence: m.presence.view(m.online(), now, cfg),
            })
            .collect()
    }

    /// The participant a user is, if they have joined.
    pub fn participant_of(&self, user: &UserId) -> Option<&Participant> {
        self.members
            .of_user(user)
            .and_then(|p| self.members.get(&p))
            .map(|m| m.participant())
    }

    /// Online participants whose viewport is on `file`.
    pub fn viewers_of(&self, file: &str) -> Vec<ParticipantId> {
        self.members
            .values()
            .filter(|m| m.online() && m.presence.viewing() == Some(file))
            .map(|m| m.participant().id)
            .collect()
    }

    pub(super) fn join(
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
        // Reviewing an ended session: a thin client that reads, records
        // nothing (no rename, no start) and is never a replica.
        let reviewing = self.is_ended();
        if reviewing && replica {
            return Err(SessionError::SessionEnded);
        }
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
        if let Some(rev) = rev {
            // Checked before anything changes: the catch-up below needs them.
            self.document.check_held(rev)?;
        }
        let identity = c.identity.clone();
        // A connection opened before its user was kicked must not get back in.
        if self.members.is_banned(&identity.user_id) {
            return Err(SessionError::Banned);
        }
        let existing = self.members.of_user(&identity.user_id);
        // Without a name, a returning member keeps theirs; a new one gets the
        // authenticator's.
        let name = match (name, existing) {
            (_, Some(id)) if reviewing => self.members[&id].participant().name.clone(),
            (Some(n), _) => check_name(&n, self.config.max_name_chars)?,
            (None, Some(id)) => self.members[&id].participant().name.clone(),
            (None, None) => check_name(&identity.name, self.config.max_name_chars)
                .unwrap_or_else(|_| "Guest".to_owned()),
        };
        let already_online = existing.is_some_and(|p| self.members[&p].online());
        if !reviewing && !already_online && self.online_count() >= self.config.capacity {
            return Err(SessionError::SessionFull {
                capacity: self.config.capacity,
            });
        }

        let id = match existing {
            Some(id) => {
                let rejoined = self.members[&id].membership() == Membership::Left;
                let colour_clash = {
                    let mine = &self.members[&id].participant().colour;
                    self.current_members()
                        .any(|m| m.participant().id != id && &m.participant().colour == mine)
                };
                if colour_clash {
                    let colour = self.free_colour();
                    self.members.recolour(&id, colour);
                }
                let renamed = self.members[&id].participant().name != name;
                self.members.rename(&id, &name);
                self.members.set_membership(&id, Membership::Present);
                let participant = self.members[&id].participant().clone();
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
                let role = if identity.user_id == self.created_by {
                    Role::Host
                } else {
                    identity.role.unwrap_or(self.config.default_role)
                };
                self.add_member(&identity.user_id, name, role, now)
            }
        };
        if let Some(c) = self.connections.get_mut(&conn) {
            c.participant = Some(id);
        }
        let member = self.members.get_mut(&id).expect("just inserted");
        member.connections.insert(conn);
        member.presence.touch(now);
        self.last_activity = now;
        self.start_when_two_are_in(now);

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
            let (versions, _) = self.document.versions_held(rev, usize::MAX);
            let ops = versions.into_iter().map(version_frame).collect();
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

    pub(super) fn leave(&mut self, me: ParticipantId, now: Timestamp) {
        self.members.set_membership(&me, Membership::Left);
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
    pub(super) fn hand_over_hosting(&mut self, leaving: ParticipantId, now: Timestamp) {
        if self
            .current_members()
            .any(|m| m.participant().role == Role::Host)
        {
            return;
        }
        let successor = self
            .current_members()
            .filter(|m| m.participant().role == Role::Editor)
            .min_by_key(|m| (m.participant().joined_at, m.participant().id))
            .map(|m| m.participant().id);
        let Some(successor) = successor else { return };
        self.members.set_role(&successor, Role::Host);
        self.record(
            now,
            EventKind::RoleChanged {
                participant: successor,
                role: Role::Host,
                by: leaving,
            },
        );
    }

    pub(super) fn set_role(
        &mut self,
        by: ParticipantId,
        target: ParticipantId,
        role: Role,
        now: Timestamp,
    ) -> Result<Seq, SessionError> {
        let member = self
            .members
            .get(&target)
            .filter(|m| m.membership() == Membership::Present)
            .ok_or(SessionError::UnknownParticipant)?;
        if member.participant().role == Role::Host && role != Role::Host {
            let hosts = self
                .current_members()
                .filter(|m| m.participant().role == Role::Host)
                .count();
            if hosts <= 1 {
                return Err(SessionError::LastHost);
            }
        }
        self.members.set_role(&target, role);
        Ok(self.record(
            now,
            EventKind::RoleChanged {
                participant: target,
                role,
                by,
            },
        ))
    }

    pub(super) fn kick(
        &mut self,
        by: ParticipantId,
        target: ParticipantId,
        ban_address: bool,
        now: Timestamp,
    ) -> Result<Seq, SessionError> {
        if by == target {
            return Err(SessionError::CannotKickSelf);
        }
        let user = self
            .members
            .get(&target)
            .filter(|m| m.membership() == Membership::Present)
            .map(|m| m.participant().user_id.clone())
            .ok_or(SessionError::UnknownParticipant)?;
        self.members.set_membership(&target, Membership::Kicked);
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
                self.members.ban(address_ban(address));
            }
        }
        // Every connection of the user goes, joined or not yet joined.
        for conn in self.connections_where(|_, c| c.identity.user_id == user) {
            self.close(conn, CloseReason::Kicked, now);
        }
        self.members.ban(user);
        Ok(seq)
    }

    /// The one permission check, for frames and REST requests alike: what
    /// `actor` may do is what their role permits
    /// ([`Role::permits`]), and only present members act (a session's
    /// creator, even before joining, acts as its host). Returns who acted,
    /// when they are a member.
    pub(super) fn authorize(
        &self,
        actor: Actor<'_>,
        action: Action,
    ) -> Result<Option<ParticipantId>, SessionError> {
        let member = match actor {
            Actor::Member(id) => self.members.get(&id),
            Actor::User(user) => self
                .members
                .of_user(user)
                .and_then(|p| self.members.get(&p)),
        };
        let (by, role) = match member {
            Some(m) if m.membership() == Membership::Present => {
                (Some(m.participant().id), m.participant().role)
            }
            Some(_) => return Err(SessionError::NotParticipant),
            None if matches!(actor, Actor::User(user) if *user == self.created_by) => {
                (None, Role::Host)
            }
            None => return Err(SessionError::NotParticipant),
        };
        if !role.permits(action) {
            return Err(SessionError::Forbidden { action, role });
        }
        if action == Action::EditDocument
            && role != Role::Host
            && self.heading.status() == SessionStatus::Paused
        {
            return Err(SessionError::Paused);
        }
        Ok(by)
    }

    pub(super) fn touch_member(&mut self, me: ParticipantId, now: Timestamp) {
        if let Some(m) = self.members.get_mut(&me) {
            m.presence.touch(now);
        }
        self.last_activity = now;
    }

    pub(super) fn current_members(&self) -> impl Iterator<Item = &Member> + Clone {
        self.members
            .values()
            .filter(|m| m.membership() == Membership::Present)
    }

    pub(super) fn free_colour(&self) -> String {
        pick_colour(
            self.current_members()
                .map(|m| (m.participant().colour.as_str(), m.online())),
        )
    }

    pub(super) fn online_count(&self) -> usize {
        self.members.values().filter(|m| m.online()).count()
    }
}
