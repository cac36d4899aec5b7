//! The presence board: setting a participant's presence and broadcasting
//! what changed, at most once per slot.

use super::*;

impl Session {
    pub(super) fn set_presence(
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

    /// Broadcasts every presence whose coalescing interval has passed, and
    /// sets the presence timer to the next thing due on the board: one pass
    /// over the members, which every step makes anyway.
    pub(super) fn flush_presence(&mut self, now: Timestamp) {
        let cfg = self.config.presence.clone();
        let mut due = Vec::new();
        let mut next: Option<Timestamp> = None;
        for member in self.members.values_mut().filter(|m| m.shows_presence()) {
            let online = member.online();
            if let Some(view) = member.presence.take_due_broadcast(online, now, &cfg) {
                due.push((member.participant().id, view));
            }
            if let Some(at) = member.presence.next_deadline(online, now, &cfg) {
                next = Some(next.map_or(at, |n| n.min(at)));
            }
        }
        self.timers.set_or_stop(Timer::Presence, next);
        if due.is_empty() {
            return;
        }
        for (participant, presence) in due {
            // Not echoed: a participant's own connections know what they sent,
            // and what time alone changes (idle, away, typing) they can tell.
            let to = self.connections_where(|_, c| {
                c.participant.is_some() && c.participant != Some(participant)
            });
            self.send(
                to,
                ServerFrame::Presence {
                    participant,
                    presence,
                },
            );
        }
    }
}
