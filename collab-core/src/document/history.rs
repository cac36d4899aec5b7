//! The document's history: every version, and any file's text at any
//! revision (from checkpoints, replaying at most a checkpoint's worth).

use super::*;

impl Document {
    /// Up to `limit` versions after `after`, oldest first: the history to
    /// replay a session's edits step by step.
    pub fn versions(&self, after: Revision, limit: usize) -> (&[Version], bool) {
        let start = (after as usize).min(self.history.len());
        let end = start.saturating_add(limit).min(self.history.len());
        (&self.history[start..end], end < self.history.len())
    }

    /// The text of `path` as it was at revision `rev` (`None` if the file did
    /// not exist then).
    ///
    /// # Errors
    /// [`DocumentError::UnknownRevision`] for a revision in the future.
    pub fn text_at(&self, path: &str, rev: Revision) -> Result<Option<String>, DocumentError> {
        if rev > self.rev() {
            return Err(DocumentError::UnknownRevision {
                rev,
                current: self.rev(),
            });
        }
        let i = self.checkpoints.partition_point(|(r, _)| *r <= rev) - 1;
        let (from, texts) = &self.checkpoints[i];
        let mut text = texts.get(path).cloned();
        for v in &self.history[*from as usize..rev as usize] {
            if v.file != path {
                continue;
            }
            match &v.change {
                Change::Edit { op } => {
                    if let Some(t) = text.as_mut() {
                        apply_to_rope(t, op);
                    }
                }
                Change::Create { text: t } => text = Some(Rope::from_str(t)),
                Change::Remove => text = None,
            }
        }
        Ok(text.map(|t| t.to_string()))
    }

    pub(super) fn push(&mut self, version: Version) {
        self.history.push(version);
        let rev = self.rev();
        if rev % CHECKPOINT_EVERY == 0 {
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
