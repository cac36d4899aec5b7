//! The session's timers: one deadline per kind of timed work, so that the
//! driver's "when next?" is a look at five slots, not a walk over every
//! member and connection.
//!
//! Some deadlines are kept as lower bounds: a connection heard from again,
//! or a session active again, only moves its true deadline later, so the
//! slot is left where it is. When such a timer fires, the session looks at
//! what is really due, does it, and arms the timer for what remains. A
//! timer may fire early, never late.

use collab_wire::time::Timestamp;

/// A kind of timed work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Timer {
    /// A coalesced presence broadcast, a typing flag clearing, or a member
    /// turning idle or away. Exact: set after every step.
    Presence = 0,
    /// The earliest a connection can have gone quiet for the stale timeout.
    Stale = 1,
    /// The earliest a connection's credential can expire.
    CredentialExpiry = 2,
    /// The earliest the session, with nobody connected, can expire.
    SessionExpiry = 3,
    /// Direct writes to the automerge document (the language, a run) get
    /// committed; edits wait for whatever reads automerge next.
    Commit = 4,
    /// A scheduled session's warning before it closes, then its close.
    /// Exact: set whenever the schedule moves.
    Schedule = 5,
}

impl Timer {
    const COUNT: usize = 6;
}

/// One optional deadline per [`Timer`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct TimerTable {
    data: [Option<Timestamp>; Timer::COUNT],
}

impl TimerTable {
    /// Sets `timer` to fire at `at`, replacing what it had.
    pub(super) fn set(&mut self, timer: Timer, at: Timestamp) {
        self.data[timer as usize] = Some(at);
    }

    /// Sets `timer` to fire at `at` unless it fires sooner already.
    pub(super) fn set_by(&mut self, timer: Timer, at: Timestamp) {
        let slot = &mut self.data[timer as usize];
        *slot = Some(slot.map_or(at, |t| t.min(at)));
    }

    /// Sets `timer` to `at`, or stops it for `None`.
    pub(super) fn set_or_stop(&mut self, timer: Timer, at: Option<Timestamp>) {
        self.data[timer as usize] = at;
    }

    /// Stops `timer`.
    pub(super) fn stop(&mut self, timer: Timer) {
        self.data[timer as usize] = None;
    }

    /// When `timer` fires, if it is set.
    pub(super) fn get(&self, timer: Timer) -> Option<Timestamp> {
        self.data[timer as usize]
    }

    /// Whether `timer` is set and due at `now`.
    pub(super) fn is_expired(&self, timer: Timer, now: Timestamp) -> bool {
        self.get(timer).is_some_and(|at| at <= now)
    }

    /// The earliest deadline of all.
    pub(super) fn next_timeout(&self) -> Option<Timestamp> {
        self.data.iter().flatten().min().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_keeps_the_earliest_when_asked() {
        let mut t = TimerTable::default();
        assert_eq!(t.next_timeout(), None);
        t.set(Timer::Commit, Timestamp(50));
        t.set_by(Timer::Stale, Timestamp(30));
        t.set_by(Timer::Stale, Timestamp(40));
        assert_eq!(t.get(Timer::Stale), Some(Timestamp(30)));
        assert_eq!(t.next_timeout(), Some(Timestamp(30)));
        assert!(t.is_expired(Timer::Stale, Timestamp(30)));
        assert!(!t.is_expired(Timer::Commit, Timestamp(30)));
        t.stop(Timer::Stale);
        t.set_or_stop(Timer::Presence, None);
        assert_eq!(t.next_timeout(), Some(Timestamp(50)));
        t.set(Timer::Commit, Timestamp(90));
        assert_eq!(t.next_timeout(), Some(Timestamp(90)));
    }
}
