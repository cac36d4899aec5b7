//! Reads of the history a store has not handed in yet.
//!
//! A session loaded from a store holds only the versions after its stored
//! document ([`Document::history_floor`]): loading costs what was edited
//! since the last checkpoint, not the whole interview. A frame that reads
//! further back (a `history` page, an old text, an edit made on an old
//! revision, a resume from one) waits here while the driver reads the rest
//! from the store ([`Transmit::LoadHistory`]), and is handled when it comes
//! ([`Session::handle_history`]). Later frames of the same connection wait
//! behind it, so each connection's frames keep their order.

use super::*;

/// At most this many frames wait for the history at once, a few frames'
/// worth of memory. Past it, a frame that needs the history is answered
/// `storage_failed` at once, and a frame of a connection that already waits
/// `server_busy`: nothing runs ahead of a frame sent before it.
const MAX_WAITING: usize = 64;

/// Frames waiting for the older history, and whether it was asked for.
#[derive(Debug, Default)]
pub(super) struct HistoryWait {
    frames: VecDeque<(ConnectionId, ClientMessage)>,
    /// The driver was asked to load it and has not answered yet.
    requested: bool,
    /// The waiting frames are being handled: none waits again.
    draining: bool,
}

/// What to do with a frame while the history may be missing.
pub(super) enum Waited {
    /// Handle it now.
    Go(ClientMessage),
    /// Kept until the history is in.
    Kept,
    /// Refused: its connection's earlier frames wait and there is no room.
    Refused(Option<u64>),
}

impl Session {
    /// Keeps `msg` to handle once the older history is in, if it reads it
    /// (and its connection has joined, or it is the join) or a frame of its
    /// connection already waits.
    pub(super) fn wait_for_history(&mut self, conn: ConnectionId, msg: ClientMessage) -> Waited {
        let wait = &self.history_wait;
        // Every frame passes here: the common case costs two reads.
        if wait.draining || (wait.frames.is_empty() && self.document.history_floor() == 0) {
            return Waited::Go(msg);
        }
        let queued = wait.frames.iter().any(|(c, _)| *c == conn);
        let joined = self
            .connections
            .get(&conn)
            .is_some_and(|c| c.participant.is_some());
        let behind = (joined || matches!(msg.frame, ClientFrame::Join { .. }))
            && self.reads_before(&msg.frame);
        if !queued && !behind {
            return Waited::Go(msg);
        }
        if wait.frames.len() >= MAX_WAITING {
            return if queued {
                Waited::Refused(msg.rid)
            } else {
                Waited::Go(msg)
            };
        }
        self.history_wait.frames.push_back((conn, msg));
        self.request_history();
        Waited::Kept
    }

    /// Whether the session waits for the store's history: asked for it,
    /// or holds frames for it.
    pub fn awaits_history(&self) -> bool {
        self.history_wait.requested || !self.history_wait.frames.is_empty()
    }

    /// Whether `frame` reads versions or texts the session does not hold.
    fn reads_before(&self, frame: &ClientFrame) -> bool {
        let floor = self.document.history_floor();
        match frame {
            ClientFrame::History { after, .. } => *after < floor,
            ClientFrame::TextOp { rev, .. } => *rev < floor,
            ClientFrame::TextAt { rev, .. } => *rev < self.document.text_floor(),
            ClientFrame::Join { rev, mode, .. } if *mode != Some(ClientMode::Replica) => {
                rev.is_some_and(|rev| rev < floor)
            }
            _ => false,
        }
    }

    /// Whether `user`'s REST read of the versions after `rev`
    /// ([`Session::read`]) needs the store's history first: only a member's
    /// does, since the read refuses anyone else.
    pub fn read_needs_history(&self, user: &UserId, rev: Option<Revision>) -> bool {
        rev.is_some_and(|rev| rev < self.document.history_floor())
            && self.current_member_of(user).is_ok()
    }

    /// Whether `user`'s REST replace made on `base`
    /// ([`Session::replace_code`]) needs the store's history first: only a
    /// member's does.
    pub fn replace_needs_history(&self, user: &UserId, base: Option<Revision>) -> bool {
        base.is_some_and(|rev| rev < self.document.text_floor())
            && self.current_member_of(user).is_ok()
    }

    /// Asks the driver for the versions the session does not hold
    /// ([`Transmit::LoadHistory`]), unless it was asked already or holds
    /// them all. A driver calls it before a request of its own that reads
    /// before [`Session::history_floor`] (a REST read or replace), and hands
    /// that request in after [`Session::handle_history`].
    pub fn request_history(&mut self) {
        let through = self.document.history_floor();
        if through == 0 || self.history_wait.requested {
            return;
        }
        self.history_wait.requested = true;
        self.outbox.push_back(Transmit::LoadHistory { through });
    }

    /// The last revision whose version the session does not hold in memory
    /// (0: it holds them all). See [`Document::history_floor`].
    pub fn history_floor(&self) -> Revision {
        self.document.history_floor()
    }

    /// Takes what the driver read for [`Transmit::LoadHistory`]: the
    /// versions `1..=through` encoded with
    /// [`encode_versions`](crate::document::encode_versions) (a driver may
    /// read and encode them a range at a time and join the buffers), or
    /// `None` when the store could not read them (the driver says why in
    /// its logs). Then handles the frames that
    /// waited for them, in order; if the history is still not in, those that
    /// need it are answered `storage_failed`, and the next such frame asks
    /// again.
    ///
    /// # Errors
    /// [`DocumentError::Structure`] when the versions do not fit the
    /// document: they were not taken.
    pub fn handle_history(
        &mut self,
        versions: Option<&[u8]>,
        now: Timestamp,
    ) -> Result<(), DocumentError> {
        self.step(now, |s| {
            s.history_wait.requested = false;
            let taken = match versions {
                Some(versions) => s.document.restore_older_history(versions),
                None => Ok(()),
            };
            s.history_wait.draining = true;
            while let Some((conn, msg)) = s.history_wait.frames.pop_front() {
                if s.connections.contains_key(&conn) {
                    s.dispatch_message(conn, msg, now);
                }
            }
            s.history_wait.draining = false;
            taken
        })
    }
}
