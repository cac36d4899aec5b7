//! What a session counts for its driver's metrics: frames in by type and
//! errors sent by code. The core records no metrics itself (it has no
//! global state); the driver takes the tally after each step and reports it.

use std::collections::{BTreeMap, HashMap};

use collab_wire::codes::ErrorCode;

/// Counts since the last [`Session::take_tally`](super::Session::take_tally).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    frames_in: BTreeMap<&'static str, u64>,
    errors: HashMap<ErrorCode, u64>,
}

impl Tally {
    pub(super) fn frame_in(&mut self, kind: &'static str) {
        *self.frames_in.entry(kind).or_default() += 1;
    }

    pub(super) fn error(&mut self, code: ErrorCode) {
        *self.errors.entry(code).or_default() += 1;
    }

    /// Frames received and read, by their `type` (`sync` for a replica's
    /// binary frame); frames refused before reading are counted as errors.
    pub fn frames_in(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        self.frames_in.iter().map(|(k, n)| (*k, *n))
    }

    /// Error frames sent, by code.
    pub fn errors(&self) -> impl Iterator<Item = (ErrorCode, u64)> + '_ {
        self.errors.iter().map(|(k, n)| (*k, *n))
    }

    /// Whether nothing was counted.
    pub fn is_empty(&self) -> bool {
        self.frames_in.is_empty() && self.errors.is_empty()
    }
}
