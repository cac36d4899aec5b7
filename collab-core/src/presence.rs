//! Presence: who is here, what they are looking at, whether they are typing.
//!
//! Presence is ephemeral: it is not in the event log. Each participant's state
//! changes as often as their cursor moves, so fan-out is coalesced: the session
//! keeps only the latest state per participant and broadcasts it at most once per
//! [`PresenceConfig::min_broadcast_interval`].

use std::collections::BTreeMap;
use std::time::Duration;

use crate::time::Timestamp;

pub use collab_wire::presence::{
    FileSelection, PresenceUpdate, PresenceView, Status, Viewport, MAX_CURSOR_FILES,
    MAX_FILE_PATH_BYTES,
};

/// Timing of presence. The defaults are those users of such rooms expect.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PresenceConfig {
    /// No activity for this long turns a participant idle (default 60 s).
    pub idle_after: Duration,
    /// No activity for this long turns a participant away (default 5 min).
    pub away_after: Duration,
    /// The typing flag clears itself this long after the last keystroke (default 1.5 s).
    pub typing_timeout: Duration,
    /// At most one presence broadcast per participant per this interval
    /// (default 50 ms: 20 updates a second).
    pub min_broadcast_interval: Duration,
    /// A connection that sends nothing, heartbeats included, for this long is
    /// dropped as stale (default 45 s).
    pub stale_after: Duration,
}

impl Default for PresenceConfig {
    fn default() -> Self {
        Self {
            idle_after: Duration::from_secs(60),
            away_after: Duration::from_secs(5 * 60),
            typing_timeout: Duration::from_millis(1_500),
            min_broadcast_interval: Duration::from_millis(50),
            stale_after: Duration::from_secs(45),
        }
    }
}

/// A presence update that cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PresenceError {
    /// A file path is empty or longer than [`MAX_FILE_PATH_BYTES`]. Caller's mistake.
    #[error("file path must be 1 to {MAX_FILE_PATH_BYTES} bytes")]
    BadFilePath,
    /// The viewport's first line is after its last. Caller's mistake.
    #[error("a viewport's first line must not be after its last")]
    BadViewport,
    /// A client may not declare itself offline. Caller's mistake.
    #[error("status offline is set by the server, not the client")]
    OfflineIsServerOnly,
}

/// One participant's presence and the bookkeeping for its coalesced fan-out.
#[derive(Debug, Clone)]
pub(crate) struct Presence {
    last_activity: Timestamp,
    declared: Option<Status>,
    cursors: BTreeMap<String, (Timestamp, FileSelection)>,
    viewport: Option<Viewport>,
    typing_until: Option<Timestamp>,
    last_broadcast: Option<Timestamp>,
    broadcast_status: Status,
    broadcast_typing: bool,
    dirty: bool,
}

impl Presence {
    pub(crate) fn new(now: Timestamp) -> Self {
        Self {
            last_activity: now,
            declared: None,
            cursors: BTreeMap::new(),
            viewport: None,
            typing_until: None,
            last_broadcast: None,
            broadcast_status: Status::Offline,
            broadcast_typing: false,
            dirty: true,
        }
    }

    /// Records activity (an edit, a message, a cursor move): the participant is active.
    pub(crate) fn touch(&mut self, now: Timestamp) {
        self.last_activity = now;
        self.declared = None;
        self.dirty = true;
    }

    /// Typing was seen now (an edit), without a presence frame. Not a reason
    /// to broadcast by itself: everyone sees the edit, and moves the typist's
    /// cursor with it. Only a change of status or of typing (the first
    /// keystroke after a pause) is broadcast, as time's changes are.
    pub(crate) fn keystroke(&mut self, now: Timestamp, cfg: &PresenceConfig) {
        self.last_activity = now;
        self.declared = None;
        self.typing_until = Some(now.plus(cfg.typing_timeout));
    }

    /// Moves this participant's cursor in `file` along with an edit, so that it
    /// stays on the same character. Not a broadcast: clients move remote
    /// cursors with the edits they receive; this keeps the server's view right
    /// for those who join later.
    pub(crate) fn transform_cursor(&mut self, file: &str, op: &crate::ot::TextOperation) {
        if let Some((_, sel)) = self.cursors.get_mut(file) {
            sel.anchor = op.transform_index(sel.anchor, true);
            sel.head = op.transform_index(sel.head, true);
        }
    }

    /// Drops the cursor in a file that no longer exists.
    pub(crate) fn forget_file(&mut self, file: &str) {
        if self.cursors.remove(file).is_some() {
            self.dirty = true;
        }
    }

    /// Marks the state as needing a broadcast (for example a connection came or went).
    pub(crate) fn mark_dirty(&mut self) {
        self.dirty = true;
    }

    pub(crate) fn apply(
        &mut self,
        update: PresenceUpdate,
        now: Timestamp,
        cfg: &PresenceConfig,
    ) -> Result<(), PresenceError> {
        validate(&update)?;
        self.touch(now);
        if let Some(sel) = update.cursor {
            if !self.cursors.contains_key(&sel.file) && self.cursors.len() >= MAX_CURSOR_FILES {
                let oldest = self
                    .cursors
                    .iter()
                    .min_by_key(|(_, (at, _))| *at)
                    .map(|(file, _)| file.clone());
                if let Some(file) = oldest {
                    self.cursors.remove(&file);
                }
            }
            self.cursors.insert(sel.file.clone(), (now, sel));
        }
        if let Some(viewport) = update.viewport {
            self.viewport = Some(viewport);
        }
        match update.typing {
            Some(true) => self.typing_until = Some(now.plus(cfg.typing_timeout)),
            Some(false) => self.typing_until = None,
            None => {}
        }
        match update.status {
            Some(Status::Idle) | Some(Status::Away) => self.declared = update.status,
            _ => {}
        }
        Ok(())
    }

    pub(crate) fn status(&self, online: bool, now: Timestamp, cfg: &PresenceConfig) -> Status {
        if !online {
            return Status::Offline;
        }
        let quiet = now.since(self.last_activity);
        let by_time = if quiet >= cfg.away_after {
            Status::Away
        } else if quiet >= cfg.idle_after {
            Status::Idle
        } else {
            Status::Active
        };
        match (self.declared, by_time) {
            (Some(Status::Away), _) | (_, Status::Away) => Status::Away,
            (Some(Status::Idle), _) => Status::Idle,
            _ => by_time,
        }
    }

    pub(crate) fn typing(&self, online: bool, now: Timestamp) -> bool {
        online && self.typing_until.is_some_and(|until| now < until)
    }

    /// The file this participant is looking at: their viewport's.
    pub(crate) fn viewing(&self) -> Option<&str> {
        self.viewport.as_ref().map(|v| v.file.as_str())
    }

    pub(crate) fn view(&self, online: bool, now: Timestamp, cfg: &PresenceConfig) -> PresenceView {
        PresenceView {
            status: self.status(online, now, cfg),
            cursors: self.cursors.values().map(|(_, sel)| sel.clone()).collect(),
            viewport: self.viewport.clone(),
            typing: self.typing(online, now),
            last_active: self.last_activity,
        }
    }

    /// Whether time alone changed what others were last told (status, typing).
    fn drifted(&self, online: bool, now: Timestamp, cfg: &PresenceConfig) -> bool {
        self.status(online, now, cfg) != self.broadcast_status
            || self.typing(online, now) != self.broadcast_typing
    }

    /// If a broadcast is due now, records it as sent and returns what to send.
    pub(crate) fn take_due_broadcast(
        &mut self,
        online: bool,
        now: Timestamp,
        cfg: &PresenceConfig,
    ) -> Option<PresenceView> {
        if !(self.dirty || self.drifted(online, now, cfg)) {
            return None;
        }
        if let Some(last) = self.last_broadcast {
            if now < last.plus(cfg.min_broadcast_interval) {
                return None;
            }
        }
        let view = self.view(online, now, cfg);
        self.dirty = false;
        self.last_broadcast = Some(now);
        self.broadcast_status = view.status;
        self.broadcast_typing = view.typing;
        Some(view)
    }

    /// The next moment something about this presence changes or a coalesced
    /// broadcast becomes due.
    pub(crate) fn next_deadline(
        &self,
        online: bool,
        now: Timestamp,
        cfg: &PresenceConfig,
    ) -> Option<Timestamp> {
        let mut next: Option<Timestamp> = None;
        let mut consider = |t: Timestamp| next = Some(next.map_or(t, |n| n.min(t)));
        if self.dirty || self.drifted(online, now, cfg) {
            let due = self
                .last_broadcast
                .map_or(now, |l| l.plus(cfg.min_broadcast_interval));
            consider(due.max(now));
        }
        if online {
            if let Some(until) = self.typing_until.filter(|u| *u > now) {
                consider(until);
            }
            for after in [cfg.idle_after, cfg.away_after] {
                let at = self.last_activity.plus(after);
                if at > now {
                    consider(at);
                }
            }
        }
        next
    }
}

fn validate(update: &PresenceUpdate) -> Result<(), PresenceError> {
    let path_ok = |p: &str| !p.is_empty() && p.len() <= MAX_FILE_PATH_BYTES;
    if let Some(sel) = &update.cursor {
        if !path_ok(&sel.file) {
            return Err(PresenceError::BadFilePath);
        }
    }
    if let Some(v) = &update.viewport {
        if !path_ok(&v.file) {
            return Err(PresenceError::BadFilePath);
        }
        if v.first_line > v.last_line {
            return Err(PresenceError::BadViewport);
        }
    }
    if update.status == Some(Status::Offline) {
        return Err(PresenceError::OfflineIsServerOnly);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Timestamp = Timestamp(1_000_000);

    #[test]
    fn status_follows_quiet_time() {
        let cfg = PresenceConfig::default();
        let p = Presence::new(T0);
        assert_eq!(p.status(true, T0, &cfg), Status::Active);
        assert_eq!(
            p.status(true, T0.plus(Duration::from_secs(59)), &cfg),
            Status::Active
        );
        assert_eq!(
            p.status(true, T0.plus(Duration::from_secs(60)), &cfg),
            Status::Idle
        );
        assert_eq!(
            p.status(true, T0.plus(Duration::from_secs(299)), &cfg),
            Status::Idle
        );
        assert_eq!(
            p.status(true, T0.plus(Duration::from_secs(300)), &cfg),
            Status::Away
        );
        assert_eq!(p.status(false, T0, &cfg), Status::Offline);
    }

    #[test]
    fn declared_status_holds_until_activity() {
        let cfg = PresenceConfig::default();
        let mut p = Presence::new(T0);
        p.apply(
            PresenceUpdate {
                status: Some(Status::Away),
                ..Default::default()
            },
            T0,
            &cfg,
        )
        .unwrap();
        assert_eq!(p.status(true, T0, &cfg), Status::Away);
        p.touch(T0.plus(Duration::from_secs(1)));
        assert_eq!(
            p.status(true, T0.plus(Duration::from_secs(1)), &cfg),
            Status::Active
        );
    }

    #[test]
    fn typing_clears_itself() {
        let cfg = PresenceConfig::default();
        let mut p = Presence::new(T0);
        p.apply(
            PresenceUpdate {
                typing: Some(true),
                ..Default::default()
            },
            T0,
            &cfg,
        )
        .unwrap();
        assert!(p.typing(true, T0.plus(Duration::from_millis(1_499))));
        assert!(!p.typing(true, T0.plus(Duration::from_millis(1_500))));
        p.take_due_broadcast(true, T0, &cfg);
        let deadline = p.next_deadline(true, T0.plus(Duration::from_millis(10)), &cfg);
        assert_eq!(
            deadline,
            Some(T0.plus(cfg.typing_timeout)),
            "wakes to clear the flag"
        );
    }

    #[test]
    fn broadcasts_are_coalesced_to_the_interval() {
        let cfg = PresenceConfig::default();
        let mut p = Presence::new(T0);
        assert!(p.take_due_broadcast(true, T0, &cfg).is_some());
        p.touch(T0.plus(Duration::from_millis(10)));
        let at = T0.plus(Duration::from_millis(10));
        assert!(
            p.take_due_broadcast(true, at, &cfg).is_none(),
            "within 50 ms of the last"
        );
        assert_eq!(
            p.next_deadline(true, at, &cfg),
            Some(T0.plus(Duration::from_millis(50)))
        );
        assert!(p
            .take_due_broadcast(true, T0.plus(Duration::from_millis(50)), &cfg)
            .is_some());
        assert!(
            p.take_due_broadcast(true, T0.plus(Duration::from_millis(200)), &cfg)
                .is_none(),
            "nothing new"
        );
    }

    #[test]
    fn bad_updates_are_rejected_and_change_nothing() {
        let cfg = PresenceConfig::default();
        let mut p = Presence::new(T0);
        let bad_view = Viewport {
            file: "a.rs".into(),
            first_line: 9,
            last_line: 3,
        };
        let err = p.apply(
            PresenceUpdate {
                viewport: Some(bad_view),
                ..Default::default()
            },
            T0,
            &cfg,
        );
        assert_eq!(err, Err(PresenceError::BadViewport));
        let long = FileSelection {
            file: "x".repeat(MAX_FILE_PATH_BYTES + 1),
            anchor: 0,
            head: 0,
        };
        let err = p.apply(
            PresenceUpdate {
                cursor: Some(long),
                ..Default::default()
            },
            T0,
            &cfg,
        );
        assert_eq!(err, Err(PresenceError::BadFilePath));
        let err = p.apply(
            PresenceUpdate {
                status: Some(Status::Offline),
                ..Default::default()
            },
            T0,
            &cfg,
        );
        assert_eq!(err, Err(PresenceError::OfflineIsServerOnly));
        assert!(p.view(true, T0, &cfg).viewport.is_none());
        assert!(p.view(true, T0, &cfg).cursors.is_empty());
    }

    #[test]
    fn cursor_files_are_bounded() {
        let cfg = PresenceConfig::default();
        let mut p = Presence::new(T0);
        for i in 0..(MAX_CURSOR_FILES as u64 + 10) {
            let sel = FileSelection {
                file: format!("f{i}"),
                anchor: 1,
                head: 2,
            };
            p.apply(
                PresenceUpdate {
                    cursor: Some(sel),
                    ..Default::default()
                },
                T0.plus(Duration::from_millis(i)),
                &cfg,
            )
            .unwrap();
        }
        let view = p.view(true, T0, &cfg);
        assert_eq!(view.cursors.len(), MAX_CURSOR_FILES);
        assert!(
            !view.cursors.iter().any(|c| c.file == "f0"),
            "oldest forgotten"
        );
    }
}
