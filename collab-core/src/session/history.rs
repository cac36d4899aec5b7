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
/// worth of memory; past it a frame that needs the history is answered
/// `storage_failed` at once, and its connection's later frames go on.
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

impl Session {
    /// Keeps `msg` to handle once the older history is in, if it reads it
    /// or a frame of its connection already waits; gives it back otherwise.
    pub(super) fn wait_for_history(
        &mut self,
        conn: ConnectionId,
        msg: ClientMessage,
    ) -> Option<ClientMessage> {
        let floor = self.document.history_floor();
        let wait = &mut self.history_wait;
        if floor == 0 || wait.draining || wait.frames.len() >= MAX_WAITING {
            return Some(msg);
        }
        let behind = reads_from(&msg.frame).is_some_and(|rev| rev < floor);
        if !behind && !wait.frames.iter().any(|(c, _)| *c == conn) {
            return Some(msg);
        }
        wait.frames.push_back((conn, msg));
        self.request_history();
        None
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
        self.advance(now);
        self.history_wait.requested = false;
        let taken = match versions {
            Some(versions) => self.document.restore_older_history(versions),
            None => Ok(()),
        };
        self.history_wait.draining = true;
        while let Some((conn, msg)) = self.history_wait.frames.pop_front() {
            if self.connections.contains_key(&conn) {
                self.dispatch_message(conn, msg, now);
            }
        }
        self.history_wait.draining = false;
        self.after_input(now);
        taken
    }
}

/// The revision whose later versions `frame` reads, if it reads any.
fn reads_from(frame: &ClientFrame) -> Option<Revision> {
    match frame {
        ClientFrame::History { after, .. } => Some(*after),
        ClientFrame::TextAt { rev, .. } | ClientFrame::TextOp { rev, .. } => Some(*rev),
        ClientFrame::Join { rev, mode, .. } if *mode != Some(ClientMode::Replica) => *rev,
        _ => None,
    }
}
