//! The roster: the session's members, past and present, and the ban list.
//! What the store keeps of it changes only through its methods, which mark
//! it for the next write.

use super::*;

/// The session's members, past and present. Keeps the members, the index
/// by user and the next participant id in step (a user is one participant
/// for the life of the session), and the ban list.
#[derive(Debug, Default)]
pub(super) struct Roster {
    by_id: BTreeMap<ParticipantId, Member>,
    by_user: HashMap<UserId, ParticipantId>,
    banned: HashSet<UserId>,
    next_id: u32,
    /// What the store keeps of it changed since it was last handed over.
    changed: bool,
}

impl Roster {
    /// An empty roster; the first participant will be 1.
    pub(super) fn new() -> Self {
        Self {
            next_id: 1,
            ..Self::default()
        }
    }

    /// The roster a stored record describes.
    ///
    /// # Errors
    /// A message saying what does not fit: a participant id not yet given.
    pub(super) fn restore(
        members: impl IntoIterator<Item = Member>,
        banned: impl IntoIterator<Item = UserId>,
        next_id: u32,
    ) -> Result<Self, String> {
        let mut roster = Self {
            next_id,
            banned: banned.into_iter().collect(),
            ..Self::default()
        };
        for member in members {
            let id = member.participant.id;
            if id.0 >= next_id {
                return Err(format!("participant {} not yet given", id.0));
            }
            roster
                .by_user
                .insert(member.participant.user_id.clone(), id);
            roster.by_id.insert(id, member);
        }
        Ok(roster)
    }

    /// Adds a participant for `participant.user_id` under the next id.
    pub(super) fn add(&mut self, mut participant: Participant, now: Timestamp) -> ParticipantId {
        let id = ParticipantId(self.next_id);
        self.next_id += 1;
        self.changed = true;
        participant.id = id;
        self.by_user.insert(participant.user_id.clone(), id);
        self.by_id.insert(
            id,
            Member {
                participant,
                membership: Membership::Present,
                presence: Presence::new(now),
                connections: BTreeSet::new(),
            },
        );
        id
    }

    /// The id the next participant will get.
    pub(super) fn next_id(&self) -> u32 {
        self.next_id
    }

    /// The participant `user` is or was.
    pub(super) fn of_user(&self, user: &UserId) -> Option<ParticipantId> {
        self.by_user.get(user).copied()
    }

    /// Bans a user id (or an address, as [`address_ban`] spells it).
    pub(super) fn ban(&mut self, who: UserId) {
        self.changed |= self.banned.insert(who);
    }

    /// Sets a member's role.
    pub(super) fn set_role(&mut self, id: &ParticipantId, role: Role) {
        if let Some(m) = self.by_id.get_mut(id) {
            self.changed |= m.participant.role != role;
            m.participant.role = role;
        }
    }

    /// Sets whether a member is in, left or was removed.
    pub(super) fn set_membership(&mut self, id: &ParticipantId, membership: Membership) {
        if let Some(m) = self.by_id.get_mut(id) {
            self.changed |= m.membership != membership;
            m.membership = membership;
        }
    }

    /// Gives a member another colour.
    pub(super) fn recolour(&mut self, id: &ParticipantId, colour: String) {
        if let Some(m) = self.by_id.get_mut(id) {
            self.changed |= m.participant.colour != colour;
            m.participant.colour = colour;
        }
    }

    /// Renames a member.
    pub(super) fn rename(&mut self, id: &ParticipantId, name: &str) {
        if let Some(m) = self.by_id.get_mut(id) {
            if m.participant.name != name {
                m.participant.name = name.to_owned();
                self.changed = true;
            }
        }
    }

    /// Whether what the store keeps changed since the last call.
    pub(super) fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    /// Whether `who` is banned.
    pub(super) fn is_banned(&self, who: &UserId) -> bool {
        self.banned.contains(who)
    }

    /// The ban list, in a stable order.
    pub(super) fn banned(&self) -> Vec<UserId> {
        let mut banned: Vec<UserId> = self.banned.iter().cloned().collect();
        banned.sort_by_key(ToString::to_string);
        banned
    }

    pub(super) fn get(&self, id: &ParticipantId) -> Option<&Member> {
        self.by_id.get(id)
    }

    pub(super) fn get_mut(&mut self, id: &ParticipantId) -> Option<&mut Member> {
        self.by_id.get_mut(id)
    }

    pub(super) fn values(&self) -> impl Iterator<Item = &Member> + Clone {
        self.by_id.values()
    }

    pub(super) fn values_mut(&mut self) -> impl Iterator<Item = &mut Member> {
        self.by_id.values_mut()
    }
}

impl std::ops::Index<&ParticipantId> for Roster {
    type Output = Member;

    fn index(&self, id: &ParticipantId) -> &Member {
        &self.by_id[id]
    }
}

/// Who asks for something: a member, by a frame on their connection, or a
/// user, by a REST request.
#[derive(Debug, Clone, Copy)]
pub(super) enum Actor<'a> {
    /// A joined connection's participant.
    Member(ParticipantId),
    /// The host application's user, through the REST API.
    User(&'a UserId),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Membership {
    Present,
    Left,
    Kicked,
}

/// A member: who they are and whether they are in, as the store keeps it
/// (changed only through [`Roster`], which marks it), and their presence
/// and connections, which live only here.
#[derive(Debug)]
pub(super) struct Member {
    participant: Participant,
    membership: Membership,
    pub(super) presence: Presence,
    pub(super) connections: BTreeSet<ConnectionId>,
}

impl Member {
    /// A member as a stored record describes them, offline.
    pub(super) fn restored(
        participant: Participant,
        membership: Membership,
        now: Timestamp,
    ) -> Self {
        Self {
            participant,
            membership,
            presence: Presence::new(now),
            connections: BTreeSet::new(),
        }
    }

    pub(super) fn participant(&self) -> &Participant {
        &self.participant
    }

    pub(super) fn membership(&self) -> Membership {
        self.membership
    }

    pub(super) fn online(&self) -> bool {
        !self.connections.is_empty()
    }

    /// Former members drop out of presence: their leaving is an event.
    pub(super) fn shows_presence(&self) -> bool {
        self.membership == Membership::Present || self.online()
    }
}
