//! Thin clients' edits: text operations rebased over what they missed and
//! applied as local automerge transactions, and the other local changes
//! (files, language, runs).

use super::*;

impl Document {
    /// Applies a thin client's operation typed against revision `base`:
    /// rebases it over every later change to the same file (the history wins
    /// ties), checks it against the text, applies it, and records it as the
    /// next version.
    ///
    /// # Errors
    /// [`DocumentError::UnknownRevision`], [`DocumentError::UnknownFile`],
    /// [`DocumentError::Operation`] (out of range, splits a surrogate pair),
    /// [`DocumentError::TooLarge`]. Nothing changes on error.
    pub fn apply_operation(
        &mut self,
        author: ParticipantId,
        base: Revision,
        path: &str,
        op: TextOperation,
        oid: Option<String>,
        now: Timestamp,
    ) -> Result<Applied, DocumentError> {
        self.apply_operation_with(author, base, path, op, oid, Ties::History, now)
    }

    /// [`Document::apply_operation`] with ties against concurrent inserts
    /// broken by `ties` ([`Ties::Author`]: by author, see
    /// [`crate::ot::inserts_first`]).
    ///
    /// # Errors
    /// As [`Document::apply_operation`].
    #[allow(clippy::too_many_arguments)] // the operation and how to place it
    pub fn apply_operation_with(
        &mut self,
        author: ParticipantId,
        base: Revision,
        path: &str,
        op: TextOperation,
        oid: Option<String>,
        ties: Ties,
        now: Timestamp,
    ) -> Result<Applied, DocumentError> {
        if let Some(rev) = oid
            .as_ref()
            .and_then(|o| self.oids.get(&(author, o.clone())))
        {
            return Ok(Applied::Duplicate(*rev));
        }
        let current = self.rev();
        if base > current {
            return Err(DocumentError::UnknownRevision { rev: base, current });
        }
        let mut op = op;
        for v in &self.history[base as usize..] {
            if v.file != path {
                continue;
            }
            match &v.change {
                Change::Edit { op: applied } => {
                    op = match ties {
                        Ties::History => TextOperation::transform(applied, &op).1,
                        Ties::Author => {
                            TextOperation::transform_by_author(applied, v.author, &op, Some(author))
                                .1
                        }
                    };
                }
                // The file was removed or replaced since: the edit has nothing to land on.
                Change::Remove | Change::Create { .. } => {
                    return Err(DocumentError::UnknownFile(path.to_owned()));
                }
            }
        }
        let file = self
            .files
            .get(path)
            .ok_or_else(|| DocumentError::UnknownFile(path.to_owned()))?;
        op.check_len(file.text.len_utf16_cu() as u32)?;
        if let Some(at) = op
            .touched_positions()
            .into_iter()
            .find(|p| !utf16_boundary(&file.text, *p))
        {
            return Err(OtError::SplitsSurrogatePair { at }.into());
        }
        let total = self.total_len().saturating_add_signed(op.len_delta());
        if op.len_delta() > 0 && total > self.max_len {
            return Err(DocumentError::TooLarge {
                len: total,
                max: self.max_len,
            });
        }
        if op.is_noop() {
            // Nothing to apply; the client still gets a revision to move on with.
            return Ok(Applied::Duplicate(current));
        }
        self.edit_locally(author, path, &op)?;
        let version = Version {
            rev: current + 1,
            file: path.to_owned(),
            change: Change::Edit { op },
            author: Some(author),
            at: now,
            oid: oid.clone(),
        };
        if let Some(oid) = oid {
            self.oids.insert((author, oid), version.rev);
        }
        self.push(version.clone());
        Ok(Applied::New(version))
    }

    /// Creates an empty or pre-filled file.
    ///
    /// # Errors
    /// [`DocumentError::BadPath`], [`DocumentError::FileExists`], [`DocumentError::TooManyFiles`].
    pub fn create_file(
        &mut self,
        author: ParticipantId,
        path: &str,
        text: &str,
        now: Timestamp,
    ) -> Result<Version, DocumentError> {
        check_path(path)?;
        if self.files.contains_key(path) {
            return Err(DocumentError::FileExists(path.to_owned()));
        }
        if self.files.len() >= MAX_FILES {
            return Err(DocumentError::TooManyFiles);
        }
        let total = self.total_len() + utf16_len(text);
        if total > self.max_len {
            return Err(DocumentError::TooLarge {
                len: total,
                max: self.max_len,
            });
        }
        self.before_local_change(author);
        self.put_file(path, text)?;
        let version = Version {
            rev: self.rev() + 1,
            file: path.to_owned(),
            change: Change::Create {
                text: text.to_owned(),
            },
            author: Some(author),
            at: now,
            oid: None,
        };
        self.push(version.clone());
        Ok(version)
    }

    /// Removes a file.
    ///
    /// # Errors
    /// [`DocumentError::UnknownFile`].
    pub fn remove_file(
        &mut self,
        author: ParticipantId,
        path: &str,
        now: Timestamp,
    ) -> Result<Version, DocumentError> {
        self.remove_locally(author, path)?;
        let version = Version {
            rev: self.rev() + 1,
            file: path.to_owned(),
            change: Change::Remove,
            author: Some(author),
            at: now,
            oid: None,
        };
        self.push(version.clone());
        Ok(version)
    }

    /// Sets the language.
    ///
    /// # Errors
    /// Only if automerge refuses the write.
    pub fn set_language(&mut self, language: &str) -> Result<(), DocumentError> {
        self.doc.put(ROOT, "language", language).map_err(refused)?;
        self.language = language.to_owned();
        self.uncommitted += 1;
        self.must_save = true;
        Ok(())
    }

    /// Records a run's output for everyone; the oldest is dropped past [`MAX_RUNS`].
    ///
    /// # Errors
    /// [`DocumentError::RunOutputTooLarge`].
    pub fn add_run(&mut self, run: RunOutput) -> Result<(), DocumentError> {
        if run.stdout.len() > MAX_RUN_OUTPUT_BYTES || run.stderr.len() > MAX_RUN_OUTPUT_BYTES {
            return Err(DocumentError::RunOutputTooLarge);
        }
        self.before_local_change(run.by);
        self.must_save = true;
        let runs = self.runs_obj()?;
        let len = self.doc.length(&runs);
        let entry = self
            .doc
            .insert_object(&runs, len, ObjType::Map)
            .map_err(refused)?;
        self.doc
            .put(&entry, "by", i64::from(run.by.0))
            .map_err(refused)?;
        self.doc
            .put(&entry, "at", run.at.as_millis() as i64)
            .map_err(refused)?;
        self.doc
            .put(&entry, "stdout", run.stdout.as_str())
            .map_err(refused)?;
        self.doc
            .put(&entry, "stderr", run.stderr.as_str())
            .map_err(refused)?;
        if let Some(code) = run.exit_code {
            self.doc
                .put(&entry, "exit_code", i64::from(code))
                .map_err(refused)?;
        }
        if len + 1 > MAX_RUNS {
            self.doc.delete(&runs, 0).map_err(refused)?;
        }
        self.runs.push(run);
        if self.runs.len() > MAX_RUNS {
            self.runs.remove(0);
        }
        Ok(())
    }

    /// Applies a checked operation to automerge and the file's text as a
    /// local change by `author`, without recording a version (the callers
    /// record one, or replay one already recorded).
    ///
    /// # Errors
    /// [`DocumentError::UnknownFile`], or automerge refusing the splice.
    pub(super) fn edit_locally(
        &mut self,
        author: ParticipantId,
        path: &str,
        op: &TextOperation,
    ) -> Result<(), DocumentError> {
        let obj = self.file_obj(path)?;
        self.before_local_change(author);
        splice_automerge(&mut self.doc, &obj, op)?;
        if let Some(f) = self.files.get_mut(path) {
            apply_to_rope(&mut f.text, op);
        }
        Ok(())
    }

    /// Removes a file from automerge and the mirrors as a local change by
    /// `author`, without recording a version.
    ///
    /// # Errors
    /// [`DocumentError::UnknownFile`], or automerge refusing the delete.
    pub(super) fn remove_locally(
        &mut self,
        author: ParticipantId,
        path: &str,
    ) -> Result<(), DocumentError> {
        let obj = self.file_obj(path)?;
        self.before_local_change(author);
        self.doc.delete(&self.files_obj, path).map_err(refused)?;
        self.files.remove(path);
        self.by_obj.remove(&obj);
        Ok(())
    }

    /// The automerge object holding `path`'s text.
    fn file_obj(&self, path: &str) -> Result<ObjId, DocumentError> {
        self.files
            .get(path)
            .map(|f| f.obj.clone())
            .ok_or_else(|| DocumentError::UnknownFile(path.to_owned()))
    }

    // ---- replicas ------------------------------------------------------------

    /// Commits what local changes are pending, so that heads, saves and sync
    /// see them. The change's message names its authors,
    /// `participants:1,4` (the revisions say who made which edit).
    pub fn commit(&mut self) {
        if self.uncommitted == 0 {
            return;
        }
        let mut options = CommitOptions::default();
        if !self.uncommitted_authors.is_empty() {
            let names: Vec<String> = self
                .uncommitted_authors
                .iter()
                .map(ToString::to_string)
                .collect();
            options = options.with_message(format!("participants:{}", names.join(",")));
        }
        self.doc.commit_with(options);
        self.uncommitted = 0;
        self.uncommitted_authors.clear();
    }

    /// Whether local changes wait to be committed.
    pub fn has_uncommitted(&self) -> bool {
        self.uncommitted > 0
    }

    /// Counts a local change toward the next commit. Changes of several
    /// authors share a commit: an automerge change costs memory and time of
    /// its own (two typists taking turns once made a commit of every edit,
    /// 5.8 KB held per edit against 4.3 KB in commits of 16), and who made
    /// each edit is in the document's revisions.
    pub(super) fn before_local_change(&mut self, author: ParticipantId) {
        if self.uncommitted >= COMMIT_EVERY {
            self.commit();
        }
        if let Err(at) = self.uncommitted_authors.binary_search(&author) {
            self.uncommitted_authors.insert(at, author);
        }
        self.uncommitted += 1;
    }
}

/// Applies a checked operation to a rope.
pub(super) fn apply_to_rope(text: &mut Rope, op: &TextOperation) {
    use crate::ot::Component;
    let mut pos = 0usize; // UTF-16 units
    for c in op.components() {
        match c {
            Component::Retain(n) => pos += *n as usize,
            Component::Insert(s) => {
                let at = text.utf16_cu_to_char(pos.min(text.len_utf16_cu()));
                text.insert(at, s);
                pos += s.encode_utf16().count();
            }
            Component::Delete(n) => {
                let start = text.utf16_cu_to_char(pos.min(text.len_utf16_cu()));
                let end = text.utf16_cu_to_char((pos + *n as usize).min(text.len_utf16_cu()));
                text.remove(start..end);
            }
        }
    }
}

/// Applies a checked operation to an automerge text object (UTF-16 encoding).
fn splice_automerge(
    doc: &mut AutoCommit,
    obj: &ObjId,
    op: &TextOperation,
) -> Result<(), DocumentError> {
    use crate::ot::Component;
    let mut pos = 0usize;
    let mut components = op.components().iter().peekable();
    while let Some(c) = components.next() {
        match c {
            Component::Retain(n) => pos += *n as usize,
            Component::Insert(s) => {
                // An insert followed by a delete at the same place is one splice.
                let del = match components.peek() {
                    Some(Component::Delete(n)) => {
                        let n = *n as isize;
                        components.next();
                        n
                    }
                    _ => 0,
                };
                doc.splice_text(obj, pos, del, s).map_err(refused)?;
                pos += s.encode_utf16().count();
            }
            Component::Delete(n) => doc
                .splice_text(obj, pos, *n as isize, "")
                .map_err(refused)?,
        }
    }
    Ok(())
}
