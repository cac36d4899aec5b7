//! What the store keeps of a document: incremental saves, and restoring one
//! with its history.

use super::*;

impl Document {
    /// A stored document back: the saved automerge bytes, the files as they
    /// were at revision 0, and the stored history. Replaying the history from
    /// those files must give the saved texts; anything else means the stored
    /// parts do not belong together, and is refused.
    ///
    /// # Errors
    /// As [`Document::load`], and [`DocumentError::Structure`] when the
    /// history does not lead to the saved texts.
    pub fn restore(
        saved: &[u8],
        initial: &BTreeMap<String, String>,
        history: Vec<Version>,
    ) -> Result<Self, DocumentError> {
        let mut this = Self::load(saved)?;
        let mut texts: BTreeMap<String, Rope> = initial
            .iter()
            .map(|(p, t)| (p.clone(), Rope::from_str(t)))
            .collect();
        let mut checkpoints = vec![(0, texts.clone())];
        for (i, v) in history.iter().enumerate() {
            let rev = i as Revision + 1;
            if v.rev != rev {
                return Err(DocumentError::Structure(format!(
                    "version {} where {rev} belongs",
                    v.rev
                )));
            }
            match &v.change {
                Change::Edit { op } => {
                    let Some(text) = texts.get_mut(&v.file) else {
                        return Err(DocumentError::Structure(format!(
                            "revision {rev} edits {}, which does not exist",
                            v.file
                        )));
                    };
                    apply_to_rope(text, op);
                }
                Change::Create { text } => {
                    texts.insert(v.file.clone(), Rope::from_str(text));
                }
                Change::Remove => {
                    texts.remove(&v.file);
                }
            }
            if rev % CHECKPOINT_EVERY == 0 {
                checkpoints.push((rev, texts.clone()));
            }
            if let (Some(author), Some(oid)) = (v.author, v.oid.as_ref()) {
                this.oids.insert((author, oid.clone()), rev);
            }
        }
        if texts != this.texts() {
            return Err(DocumentError::Structure(
                "the stored history does not lead to the stored text".into(),
            ));
        }
        this.history = history;
        this.checkpoints = checkpoints;
        Ok(this)
    }

    /// The changes made since `heads` as bytes to append to a stored
    /// document, committing pending local changes first; `None` when there
    /// are none. `heads` moves to the document's heads, and `saved` (every
    /// change already stored) grows by what is returned.
    ///
    /// Walks back from the heads to the first stored changes, so it costs the
    /// new changes, not the history (automerge's `save_after` scans the
    /// whole history on every call).
    pub(crate) fn save_since(
        &mut self,
        heads: &mut Vec<automerge::ChangeHash>,
        saved: &mut std::collections::HashSet<automerge::ChangeHash>,
    ) -> Option<Vec<u8>> {
        self.commit();
        let now = self.doc.get_heads();
        if &now == heads {
            return None;
        }
        // Depth first, dependencies before the changes that need them.
        let mut bytes = Vec::new();
        let mut stack: Vec<(automerge::ChangeHash, bool)> =
            now.iter().map(|h| (*h, false)).collect();
        while let Some((hash, deps_done)) = stack.pop() {
            if saved.contains(&hash) {
                continue;
            }
            let Some(change) = self.doc.get_change_by_hash(&hash) else {
                continue;
            };
            if deps_done {
                bytes.extend_from_slice(change.raw_bytes());
                saved.insert(hash);
            } else {
                let deps: Vec<_> = change.deps().to_vec();
                stack.push((hash, true));
                stack.extend(
                    deps.into_iter()
                        .filter(|d| !saved.contains(d))
                        .map(|d| (d, false)),
                );
            }
        }
        *heads = now;
        Some(bytes)
    }

    /// Every change the document holds, by hash (what is stored after a full
    /// save or a load). Costs the history: for loads and compactions only.
    pub(crate) fn change_hashes(&mut self) -> std::collections::HashSet<automerge::ChangeHash> {
        self.commit();
        self.doc.get_changes(&[]).iter().map(|c| c.hash()).collect()
    }

    /// The document's current heads.
    pub(crate) fn heads(&mut self) -> Vec<automerge::ChangeHash> {
        self.doc.get_heads()
    }

    /// The document in automerge's compact binary format.
    pub fn save(&mut self) -> Vec<u8> {
        self.commit();
        self.doc.save()
    }
}
