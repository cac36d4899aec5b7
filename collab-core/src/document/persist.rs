//! What the store keeps of a document: incremental saves, and restoring one
//! with its history.

use super::*;

/// What a restored document had stored: the heads and every change of the
/// stored bytes, before the versions after them were replayed.
#[derive(Debug)]
pub(crate) struct StoredChanges {
    pub(crate) heads: Vec<automerge::ChangeHash>,
    pub(crate) saved: std::collections::HashSet<automerge::ChangeHash>,
}

impl Document {
    /// A stored document back: the saved automerge bytes, which hold every
    /// version up to `saved_rev`, the files as they were at revision 0, and
    /// the stored history. The versions after `saved_rev` are replayed onto
    /// the document as local changes (they were stored only as versions:
    /// nobody outside the process had seen their automerge changes).
    /// `history` is every version, or those after `saved_rev` only: the
    /// versions it leaves out are handed in later, with
    /// [`Document::restore_older_history`], if a read needs them.
    ///
    /// The history before `saved_rev` is not replayed: the text comes from
    /// the document. The checkpoints that [`Document::text_at`] reads from
    /// are built from the history the first time an old revision is read
    /// with the whole history held.
    ///
    /// # Errors
    /// As [`Document::load`], and [`DocumentError::Structure`] when the
    /// history is not numbered consecutively, `saved_rev` is outside it, or a
    /// replayed version does not fit the document.
    pub fn restore(
        saved: &[u8],
        saved_rev: Revision,
        initial: &BTreeMap<String, String>,
        history: Vec<Version>,
    ) -> Result<Self, DocumentError> {
        Self::restore_with_stored(saved, saved_rev, initial, history, false).map(|(doc, _)| doc)
    }

    /// [`Document::restore`], and what the store already holds of it;
    /// `private` when no replica ever shared the stored document (see
    /// [`Document::is_private`]).
    pub(crate) fn restore_with_stored(
        saved: &[u8],
        saved_rev: Revision,
        initial: &BTreeMap<String, String>,
        history: Vec<Version>,
        private: bool,
    ) -> Result<(Self, StoredChanges), DocumentError> {
        let mut this = Self::load(saved)?;
        this.private = private;
        let stored = StoredChanges {
            heads: this.doc.get_heads(),
            saved: this.change_hashes(),
        };
        // The history may leave out versions the stored document holds
        // (a store hands only those after it; the rest are read on demand).
        let floor = history
            .first()
            .map_or(saved_rev, |v| v.rev.saturating_sub(1));
        let end = floor + history.len() as Revision;
        // Whole, or from the stored document on: the texts of revisions in
        // between could not be read.
        if (floor != 0 && floor != saved_rev) || saved_rev > end {
            return Err(DocumentError::Structure(format!(
                "the document holds revision {saved_rev}; the history is {}..={end}",
                floor + 1
            )));
        }
        for (i, v) in history.iter().enumerate() {
            let rev = floor + i as Revision + 1;
            if v.rev != rev {
                return Err(DocumentError::Structure(format!(
                    "version {} where {rev} belongs",
                    v.rev
                )));
            }
            if let (Some(author), Some(oid)) = (v.author, v.oid.as_deref()) {
                this.oids.insert(author, oid, rev);
            }
        }
        // The stored document's texts, before the later versions move them:
        // what the history must lead to (ropes share their nodes: cheap).
        let stored_texts = this.texts();
        for v in &history[(saved_rev - floor) as usize..] {
            this.replay(v)?;
        }
        this.checkpoints = vec![(
            0,
            initial
                .iter()
                .map(|(p, t)| (p.clone(), Rope::from_str(t)))
                .collect(),
        )];
        this.history = log::VersionLog::starting_at(floor as usize);
        for v in &history {
            this.history.push(v);
        }
        // automerge has what the stored bytes hold; the versions after them
        // were replayed onto the ropes and are handed over like local ones.
        this.handed_over = saved_rev;
        this.restored_at = Some((saved_rev, stored_texts));
        Ok((this, stored))
    }

    /// Applies a stored version to automerge and the mirrors as a local change.
    fn replay(&mut self, v: &Version) -> Result<(), DocumentError> {
        let damaged =
            |what: &str| DocumentError::Structure(format!("stored revision {} {what}", v.rev));
        let author = v.author.unwrap_or(ParticipantId(0));
        match &v.change {
            Change::Edit { op } => {
                let file = self
                    .files
                    .get(&v.file)
                    .ok_or_else(|| damaged("edits a file that does not exist"))?;
                if op.check_len(file.text.len_utf16_cu() as u32).is_err() {
                    return Err(damaged("does not fit the text"));
                }
                self.edit_locally(author, &v.file, op)
            }
            Change::Create { text } => {
                self.before_local_change(author);
                self.put_file(&v.file, text);
                Ok(())
            }
            Change::Remove => match self.remove_locally(author, &v.file) {
                Err(DocumentError::UnknownFile(_)) => {
                    Err(damaged("removes a file that does not exist"))
                }
                done => done,
            },
        }
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
            self.must_save = false;
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
        self.must_save = false;
        Some(bytes)
    }

    /// Every change the document holds, by hash (what is stored after a full
    /// save or a load). Costs the history: for loads and compactions only.
    pub(crate) fn change_hashes(&mut self) -> std::collections::HashSet<automerge::ChangeHash> {
        self.commit();
        // The metadata, not the changes: automerge 0.7 and later keep changes
        // encoded, and decoding every one would cost far more than the hashes.
        self.doc
            .get_changes_meta(&[])
            .iter()
            .map(|c| c.hash)
            .collect()
    }

    /// Whether the next store write must carry the document's changes: see
    /// the field `must_save`.
    pub(crate) fn must_save(&self) -> bool {
        self.must_save
    }

    /// Whether no automerge change of this document has left the process
    /// or come into it: no replica ever joined. A new document is private;
    /// a loaded one is not, unless its store says so.
    pub fn is_private(&self) -> bool {
        self.private
    }

    /// automerge's heads, pending local changes committed first.
    pub(crate) fn heads(&mut self) -> Vec<automerge::ChangeHash> {
        self.commit();
        self.doc.get_heads()
    }

    /// Starts automerge afresh from what the document holds now (the
    /// language, every file's text, the runs) when it is private, and says
    /// whether it did. automerge keeps every character ever inserted, and a
    /// document typed and deleted for hours holds and loads all of it; one
    /// whose automerge history nobody else has can drop it, since the
    /// versions, not automerge, are its history. Costs the texts' size.
    /// The caller must then replace the stored document with
    /// [`Document::save`] in the same write.
    pub(crate) fn restart_private(&mut self) -> Result<bool, DocumentError> {
        if !self.private {
            return Ok(false);
        }
        self.commit();
        self.rebuild_from_texts()?;
        Ok(true)
    }

    /// Whether automerge was started afresh since the last call, outside a
    /// compaction: the store must then replace its document.
    pub(crate) fn take_restarted(&mut self) -> bool {
        std::mem::take(&mut self.restarted)
    }

    /// A new automerge document holding the language, the ropes' texts and
    /// the runs, in place of the current one, which then holds every version
    /// up to now.
    pub(super) fn rebuild_from_texts(&mut self) -> Result<(), DocumentError> {
        let mut doc = automerge_utf16();
        doc.put(ROOT, "language", self.language.as_str())
            .map_err(refused)?;
        let files_obj = doc
            .put_object(ROOT, "files", ObjType::Map)
            .map_err(refused)?;
        let runs = doc
            .put_object(ROOT, "runs", ObjType::List)
            .map_err(refused)?;
        let mut objs = BTreeMap::new();
        let mut by_obj = HashMap::new();
        for (path, file) in &self.files {
            let obj = doc
                .put_object(&files_obj, path, ObjType::Text)
                .map_err(refused)?;
            for chunk in file.text.chunks() {
                thin::bound_transaction(&mut doc, &[]);
                let at = doc.length(&obj);
                doc.splice_text(&obj, at, 0, chunk).map_err(refused)?;
            }
            by_obj.insert(obj.clone(), path.clone());
            objs.insert(path.clone(), obj);
        }
        for (i, run) in self.runs.iter().enumerate() {
            thin::write_run(&mut doc, &runs, i, run)?;
        }
        doc.commit();
        self.churn = 0;
        self.doc = doc;
        self.files_obj = files_obj;
        self.objs = objs;
        self.by_obj = by_obj;
        self.snapshot = self.doc.save();
        self.snapshot_full_len = self.snapshot.len();
        self.snapshot_heads = self.doc.get_heads();
        self.handed_over = self.rev();
        Ok(())
    }

    /// Whether the document is private and automerge holds much more than
    /// its texts: more units inserted and deleted since it was started
    /// than twice the texts' length and 64 Ki. Starting it afresh then
    /// ([`Document::restart_private`]) costs the texts' length, so over
    /// time it costs a constant share of the edits, and automerge holds at
    /// most about three times the text.
    pub(crate) fn wants_restart(&self) -> bool {
        self.private && self.churn > 2 * self.total_len() + 64 * 1024
    }

    /// The document in automerge's compact binary format. The bytes may go
    /// anywhere, so the document is no longer private: its automerge
    /// history is kept from now on.
    pub fn save(&mut self) -> Vec<u8> {
        self.commit();
        self.private = false;
        self.doc.save()
    }

    /// [`Document::save`] for the session's own store, which replaces what
    /// it holds whenever the document is started afresh: it stays private.
    pub(crate) fn save_for_store(&mut self) -> Vec<u8> {
        self.commit();
        self.doc.save()
    }
}
