//! The document's history: every version, and any file's text at any
//! revision (from checkpoints, replaying at most a checkpoint's worth).

use super::*;

/// Versions a live session keeps in memory however far its store has them,
/// for clients that rebase or resume from a little behind (a session just
/// loaded holds those after its stored document).
pub(crate) const KEEP_RECENT: Revision = 1_024;

impl Document {
    /// Up to `limit` versions after `after`, oldest first, and whether more
    /// follow: the history to replay a session's edits step by step.
    ///
    /// # Errors
    /// [`DocumentError::HistoryNotLoaded`] when `after` is before
    /// [`Document::history_floor`].
    pub fn versions(
        &self,
        after: Revision,
        limit: usize,
    ) -> Result<(Vec<Version>, bool), DocumentError> {
        self.check_held(after)?;
        Ok(self.versions_held(after, limit))
    }

    /// [`Document::versions`] of what is held: after the floor, whatever
    /// `after` says.
    pub(crate) fn versions_held(&self, after: Revision, limit: usize) -> (Vec<Version>, bool) {
        let start = usize::try_from(after)
            .unwrap_or(usize::MAX)
            .clamp(self.history.start(), self.history.len());
        let end = start.saturating_add(limit).min(self.history.len());
        (
            self.history.range(start, end).collect(),
            end < self.history.len(),
        )
    }

    /// The last revision whose version is not in memory: 0 when the whole
    /// history is. A document restored from a store holds only the versions
    /// after its stored automerge document; reading further back (old
    /// versions, old texts, rebasing an edit made on an old revision) needs
    /// the earlier ones handed in with [`Document::restore_older_history`].
    pub fn history_floor(&self) -> Revision {
        self.history.start() as Revision
    }

    /// Takes the versions a restore left in the store: versions
    /// `1..=`[`Document::history_floor`], encoded as [`encode_versions`]
    /// writes them (buffers of consecutive versions may be joined), so that
    /// they are never all held decoded at once.
    ///
    /// # Errors
    /// [`DocumentError::Structure`] when they are not those versions;
    /// nothing changes.
    pub fn restore_older_history(&mut self, older: &[u8]) -> Result<(), DocumentError> {
        // One pass: the ids go into a copy (of the recent ones: small),
        // kept only if every version decodes.
        let mut oids = self.oids.clone();
        let whole = self
            .history
            .with_older(older, |v| {
                if let (Some(author), Some(oid)) = (v.author, v.oid.as_deref()) {
                    oids.insert(author, oid, v.rev);
                }
            })
            .map_err(|e| DocumentError::Structure(format!("the earlier versions: {e}")))?;
        self.history = whole;
        self.oids = oids;
        self.older_read = Some(self.rev());
        Ok(())
    }

    /// Lets go of the versions a store holds, up to the last checkpoint at
    /// or before `stored` (the revision the store's document holds) that is
    /// at least [`KEEP_RECENT`] revisions old, and of the checkpoints before
    /// it: the session then holds what a load from the store would. The
    /// recent versions stay for clients that rebase or resume from a little
    /// behind; reading further back reads the store again. Once the older
    /// history was read back for a reader it stays for another
    /// [`KEEP_RECENT`] revisions, since readers of old history page through
    /// it.
    pub(crate) fn forget_stored_history(&mut self, stored: Revision) {
        if self
            .older_read
            .is_some_and(|at| self.rev() < at.saturating_add(KEEP_RECENT))
        {
            return;
        }
        let floor = self.history_floor();
        let limit = stored
            .min(self.handed_over)
            .min(self.rev().saturating_sub(KEEP_RECENT));
        let Some(i) = self
            .checkpoints
            .iter()
            .rposition(|(r, _)| *r > floor && *r <= limit)
        else {
            return;
        };
        let later = self.checkpoints.split_off(i + 1);
        let base = self.checkpoints.pop().expect("the one found");
        self.checkpoints.truncate(1);
        self.checkpoints.extend(later);
        let rev = base.0;
        // Replayed from the initial files and checked here, once the older
        // history is read back (`build_checkpoints`).
        self.restored_at = Some(base);
        self.history = self.history.without_through(rev as usize);
        self.oids.forget_through(rev);
    }

    /// The first revision whose texts [`Document::text_at`] can give
    /// without the store's history: the floor's, which is kept; 0 once the
    /// whole history is held.
    pub(crate) fn text_floor(&self) -> Revision {
        let floor = self.history_floor();
        match &self.restored_at {
            Some((at, _)) if floor > 0 => floor.max(*at),
            _ => floor,
        }
    }

    /// Whether the versions after `rev` are all in memory.
    pub(crate) fn check_held(&self, rev: Revision) -> Result<(), DocumentError> {
        let floor = self.history_floor();
        if rev < floor {
            return Err(DocumentError::HistoryNotLoaded { floor });
        }
        Ok(())
    }

    /// The text of `path` as it was at revision `rev` (`None` if the file did
    /// not exist then).
    ///
    /// A restored document has no checkpoints before the revision it was
    /// restored at until [`Document::build_checkpoints`] runs: until then,
    /// reading an older revision replays from the initial files, unchecked.
    ///
    /// # Errors
    /// [`DocumentError::UnknownRevision`] for a revision in the future;
    /// [`DocumentError::HistoryNotLoaded`] for one before
    /// [`Document::history_floor`].
    pub fn text_at(&self, path: &str, rev: Revision) -> Result<Option<String>, DocumentError> {
        if rev > self.rev() {
            return Err(DocumentError::UnknownRevision {
                rev,
                current: self.rev(),
            });
        }
        if rev < self.text_floor() {
            return Err(DocumentError::HistoryNotLoaded {
                floor: self.history_floor(),
            });
        }
        let i = self.checkpoints.partition_point(|(r, _)| *r <= rev) - 1;
        let (mut from, mut texts) = (self.checkpoints[i].0, &self.checkpoints[i].1);
        // The stored document's texts are a checkpoint too, and the only
        // one at or after the floor until the next multiple is reached.
        if let Some((at, restored)) = &self.restored_at {
            if *at <= rev && *at > from {
                (from, texts) = (*at, restored);
            }
        }
        let mut text = texts.get(path).cloned();
        for v in self.history.range(from as usize, rev as usize) {
            if v.file == path {
                step_text(&mut text, &v.change);
            }
        }
        Ok(text.map(|t| t.to_string()))
    }

    /// Builds the checkpoints a restore left out, if any: replays the history
    /// from the initial files to the revision it was restored at, keeping a
    /// checkpoint every 1,024 revisions, and checks that it
    /// leads to the text the stored document had there. A restore leaves
    /// this undone so that loading costs what automerge's load costs; the
    /// first read of an old revision pays for the replay, once.
    ///
    /// # Errors
    /// [`DocumentError::Structure`] when the history does not lead to the
    /// stored text (the stored parts do not belong together); the current
    /// text, which is the stored document's, is not affected.
    pub fn build_checkpoints(&mut self) -> Result<(), DocumentError> {
        if self.restored_at.is_none() {
            return Ok(());
        }
        self.check_held(0)?;
        let Some(at) = self.restored_at.take() else {
            return Ok(());
        };
        let to = at.0;
        let mut texts = self.checkpoints[0].1.clone();
        let mut built = Vec::new();
        for v in self.history.range(0, to as usize) {
            let mut text = texts.remove(&v.file);
            step_text(&mut text, &v.change);
            if let Some(text) = text {
                texts.insert(v.file.clone(), text);
            }
            if v.rev % CHECKPOINT_EVERY == 0 && v.rev < to {
                built.push((v.rev, texts.clone()));
            }
        }
        if texts != at.1 {
            self.restored_at = Some(at);
            return Err(DocumentError::Structure(
                "the stored history does not lead to the stored text".into(),
            ));
        }
        // Those kept since the restore are all later than `to`.
        let later = self.checkpoints.split_off(1);
        self.checkpoints.extend(built);
        if to > 0 {
            self.checkpoints.push(at);
        }
        self.checkpoints.extend(later);
        Ok(())
    }

    pub(super) fn push(&mut self, version: &Version) {
        self.history.push(version);
        let rev = self.rev();
        if rev.is_multiple_of(CHECKPOINT_EVERY) {
            self.checkpoints.push((rev, self.texts()));
        }
    }

    pub(super) fn texts(&self) -> BTreeMap<String, Rope> {
        self.files
            .iter()
            .map(|(p, f)| (p.clone(), f.text.clone()))
            .collect()
    }
}

/// Moves one file's text (`None`: the file does not exist) over a change to it.
fn step_text(text: &mut Option<Rope>, change: &Change) {
    match change {
        Change::Edit { op } => {
            if let Some(t) = text.as_mut() {
                apply_to_rope(t, op);
            }
        }
        Change::Create { text: created } => *text = Some(Rope::from_str(created)),
        Change::Remove => *text = None,
    }
}
