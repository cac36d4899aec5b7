//! Thin clients' edits: text operations rebased over what they missed and
//! applied to the ropes, then to automerge in batches; and the other local
//! changes (files, language, runs).

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
            .as_deref()
            .and_then(|o| self.oids.find(author, o, &self.history))
        {
            return Ok(Applied::Duplicate(rev));
        }
        let current = self.rev();
        if base > current {
            return Err(DocumentError::UnknownRevision { rev: base, current });
        }
        // An operation applied at or before the floor would have an id the
        // check above cannot see yet: it is rebased once the history is in.
        self.check_held(base)?;
        let mut op = op;
        for v in self.history.iter_from(base as usize) {
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
        if let Some(oid) = &oid {
            self.oids.insert(author, oid, version.rev);
        }
        self.push(&version);
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
        self.put_file(path, text);
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
        self.push(&version);
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
        self.push(&version);
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
        self.uncommitted += 1;
        self.must_save = true;
        let runs = self.runs_obj()?;
        let len = self.doc.length(&runs);
        write_run(&mut self.doc, &runs, len, &run)?;
        if len + 1 > MAX_RUNS {
            self.doc.delete(&runs, 0).map_err(refused)?;
        }
        self.runs.push(run);
        if self.runs.len() > MAX_RUNS {
            self.runs.remove(0);
        }
        Ok(())
    }

    /// Applies a checked operation to the file's text as a local change by
    /// `author`, without recording a version
    /// (the callers record one, or replay one already recorded).
    ///
    /// # Errors
    /// [`DocumentError::UnknownFile`].
    pub(super) fn edit_locally(
        &mut self,
        author: ParticipantId,
        path: &str,
        op: &TextOperation,
    ) -> Result<(), DocumentError> {
        if !self.files.contains_key(path) {
            return Err(DocumentError::UnknownFile(path.to_owned()));
        }
        self.before_local_change(author);
        if let Some(f) = self.files.get_mut(path) {
            apply_to_rope(&mut f.text, op);
        }
        Ok(())
    }

    /// Removes a file from the ropes as a local change by `author`, without
    /// recording a version.
    ///
    /// # Errors
    /// [`DocumentError::UnknownFile`].
    pub(super) fn remove_locally(
        &mut self,
        author: ParticipantId,
        path: &str,
    ) -> Result<(), DocumentError> {
        if !self.files.contains_key(path) {
            return Err(DocumentError::UnknownFile(path.to_owned()));
        }
        self.before_local_change(author);
        self.files.remove(path);
        Ok(())
    }

    // ---- replicas ------------------------------------------------------------

    /// Commits what local changes are pending, so that heads, saves and sync
    /// see them. The change's message names its authors,
    /// `participants:1,4` (the revisions say who made which edit).
    ///
    /// A private document (no replica ever shared it) whose pending edits
    /// would cost automerge more than its text does is started afresh from
    /// the texts instead (as a store compaction does): a splice costs
    /// automerge 0.12 time proportional to the document, so handing over a
    /// long run of edits costs far more than building the text once.
    pub fn commit(&mut self) {
        if !self.has_uncommitted() {
            return;
        }
        if self.private && self.restart_beats_hand_over() && self.rebuild_from_texts().is_ok() {
            self.uncommitted = 0;
            self.uncommitted_authors.clear();
            // The store must replace its document, whose history this one
            // does not continue.
            self.restarted = true;
            self.must_save = true;
            return;
        }
        self.hand_over_pending();
        self.doc
            .commit_with(commit_options(&self.uncommitted_authors));
        self.uncommitted = 0;
        self.uncommitted_authors.clear();
    }

    /// Whether local changes wait to be committed.
    pub fn has_uncommitted(&self) -> bool {
        self.uncommitted > 0 || self.handed_over < self.rev()
    }

    /// Counts a local change toward the next commit, committing first when
    /// [`COMMIT_EVERY`] changes wait. Changes of several authors share a
    /// commit: an automerge change costs memory and time of its own, and who
    /// made each edit is in the document's revisions.
    ///
    /// A private document does not hand its edits over by count: nothing
    /// reads its automerge document until a store write or a replica does,
    /// and the history holds the edits meanwhile.
    pub(super) fn before_local_change(&mut self, author: ParticipantId) {
        if !self.private
            && self.uncommitted as u64 + (self.rev() - self.handed_over) >= COMMIT_EVERY as u64
        {
            self.commit();
        }
        if let Err(at) = self.uncommitted_authors.binary_search(&author) {
            self.uncommitted_authors.insert(at, author);
        }
    }

    /// Gives automerge the versions it has not taken, in order. Edits that
    /// touch the place the previous ones changed (typing, deleting,
    /// retyping) are merged into one [`Span`] first, so a batch costs
    /// automerge about one splice per place edited, and each edit costs the
    /// merge only what its own text costs. The operations were checked
    /// against the ropes, so automerge cannot refuse them; if it does
    /// anyway, its files are set to the ropes' texts instead, which is
    /// where the versions lead.
    fn hand_over_pending(&mut self) {
        let (from, to) = (self.handed_over, self.rev());
        if from >= to {
            return;
        }
        self.handed_over = to;
        if self.apply_versions(from, to).is_err() {
            self.match_ropes();
        }
    }

    /// Whether starting a private document's automerge afresh costs less
    /// than handing over its pending edits: about one splice's worth of
    /// work for every 64 units of text.
    fn restart_beats_hand_over(&self) -> bool {
        (self.rev() - self.handed_over).saturating_mul(64) >= self.total_len()
    }

    fn apply_versions(&mut self, from: Revision, to: Revision) -> Result<(), DocumentError> {
        // The span being built, and its file.
        let mut span: Option<(String, Span)> = None;
        // Decoded a thousand at a time: a long run of pending edits is not
        // held decoded all at once.
        let mut next = from as usize;
        while next < to as usize {
            let end = (next + 1024).min(to as usize);
            let versions: Vec<Version> = self.history.range(next, end).collect();
            next = end;
            span = self.apply_batch(versions, span)?;
        }
        if let Some((file, done)) = span {
            self.splice_file(&file, &done.operation())?;
        }
        Ok(())
    }

    /// Applies decoded versions, carrying the span being built in and out.
    fn apply_batch(
        &mut self,
        versions: Vec<Version>,
        mut span: Option<(String, Span)>,
    ) -> Result<Option<(String, Span)>, DocumentError> {
        for v in versions {
            if let Change::Edit { op } = &v.change {
                // One place edited (nearly always), or the whole operation.
                let edit = single_site(op).ok_or_else(|| op.clone());
                if let (Some((file, current)), Ok(site)) = (&mut span, &edit) {
                    if *file == v.file && current.absorb(site) {
                        continue;
                    }
                }
                if let Some((file, done)) = span.take() {
                    self.splice_file(&file, &done.operation())?;
                }
                match edit {
                    Ok(site) => span = Some((v.file, Span::from(site))),
                    Err(op) => self.splice_file(&v.file, &op)?,
                }
                continue;
            }
            if let Some((file, done)) = span.take() {
                self.splice_file(&file, &done.operation())?;
            }
            match &v.change {
                Change::Create { text } => self.create_in_automerge(&v.file, text)?,
                Change::Remove => self.remove_from_automerge(&v.file)?,
                Change::Edit { .. } => {}
            }
        }
        Ok(span)
    }

    /// Splices an operation into the file at `path`.
    fn splice_file(&mut self, path: &str, op: &TextOperation) -> Result<(), DocumentError> {
        let obj = self
            .objs
            .get(path)
            .ok_or_else(|| DocumentError::UnknownFile(path.to_owned()))?;
        self.churn = self.churn.saturating_add(splice_automerge(
            &mut self.doc,
            obj,
            op,
            &self.uncommitted_authors,
        )?);
        Ok(())
    }

    pub(super) fn create_in_automerge(
        &mut self,
        path: &str,
        text: &str,
    ) -> Result<(), DocumentError> {
        let obj = self
            .doc
            .put_object(&self.files_obj, path, ObjType::Text)
            .map_err(refused)?;
        insert_in_pieces(&mut self.doc, &obj, 0, text, &self.uncommitted_authors)?;
        self.churn = self.churn.saturating_add(utf16_len(text));
        if let Some(old) = self.objs.insert(path.to_owned(), obj.clone()) {
            self.by_obj.remove(&old);
        }
        self.by_obj.insert(obj, path.to_owned());
        Ok(())
    }

    fn remove_from_automerge(&mut self, path: &str) -> Result<(), DocumentError> {
        let obj = self
            .objs
            .remove(path)
            .ok_or_else(|| DocumentError::UnknownFile(path.to_owned()))?;
        self.by_obj.remove(&obj);
        self.doc.delete(&self.files_obj, path).map_err(refused)
    }

    /// Sets automerge's files to the ropes' texts: the way out if handing
    /// over the pending changes failed half way.
    fn match_ropes(&mut self) {
        let gone: Vec<String> = self
            .objs
            .keys()
            .filter(|p| !self.files.contains_key(*p))
            .cloned()
            .collect();
        for path in gone {
            let _ = self.remove_from_automerge(&path);
        }
        let texts: Vec<(String, String)> = self
            .files
            .iter()
            .map(|(p, f)| (p.clone(), f.text.to_string()))
            .collect();
        for (path, text) in texts {
            let current = self.objs.get(&path).and_then(|o| self.doc.text(o).ok());
            if current.as_deref() == Some(text.as_str()) {
                continue;
            }
            let _ = self.create_in_automerge(&path, &text);
        }
    }
}

/// One place's edit: `deleted` units at `at` replaced by `inserted`
/// (UTF-16 positions).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Site {
    at: u32,
    deleted: u32,
    inserted: String,
}

/// The one place an operation edits, if it edits one place only (a
/// keystroke, a paste, a selection typed over).
fn single_site(op: &TextOperation) -> Option<Site> {
    use crate::ot::Component;
    let mut site: Option<Site> = None;
    let mut pos = 0u32;
    let mut ended = false;
    for c in op.components() {
        match c {
            Component::Retain(n) => {
                if site.is_some() {
                    ended = true;
                }
                pos += n;
            }
            _ if ended => return None,
            Component::Insert(text) => {
                site.get_or_insert_with(|| Site {
                    at: pos,
                    deleted: 0,
                    inserted: String::new(),
                })
                .inserted
                .push_str(text);
            }
            Component::Delete(n) => {
                site.get_or_insert_with(|| Site {
                    at: pos,
                    deleted: 0,
                    inserted: String::new(),
                })
                .deleted += n;
            }
        }
    }
    site
}

/// Consecutive edits merged into one: the text that was at `at` for
/// `deleted` units (before the span's first edit) is now `inserted`.
#[derive(Debug, Clone)]
struct Span {
    at: u32,
    deleted: u32,
    inserted: String,
    /// `inserted`'s length in UTF-16 units.
    len: u32,
}

/// Longest inserted text a span grows to, in UTF-16 units: merging costs
/// what the span holds, so it stays small.
const MAX_SPAN: u32 = 4_096;

impl Span {
    /// Folds the next edit into the span if it touches it (starts or ends
    /// inside it or at its edges); `false` leaves the span as it was.
    fn absorb(&mut self, edit: &Site) -> bool {
        let (start, end) = (self.at, self.at + self.len);
        let (p, q) = (edit.at, edit.at + edit.deleted);
        if p > end || q < start || self.len > MAX_SPAN {
            return false;
        }
        // What the edit deletes outside the span was original text.
        let before = start.saturating_sub(p);
        let after = q.saturating_sub(end);
        let (from, to) = (p.max(start) - start, q.min(end).max(start) - start);
        // ASCII (most code): UTF-16 offsets are byte offsets, no scan.
        let ascii = self.len as usize == self.inserted.len();
        let (from_byte, to_byte) = if ascii {
            (from as usize, to as usize)
        } else {
            (
                utf16_to_byte(&self.inserted, from),
                utf16_to_byte(&self.inserted, to),
            )
        };
        // In place: typing at the span's end moves nothing.
        self.inserted
            .replace_range(from_byte..to_byte, &edit.inserted);
        self.len = self.len - (to - from) + utf16_len(&edit.inserted) as u32;
        self.deleted += before + after;
        self.at = start.min(p);
        true
    }

    /// The span as an operation on the text before its first edit (what
    /// follows it is left out: splicing does not need it).
    fn operation(&self) -> TextOperation {
        let mut op = TextOperation::new();
        op.retain(self.at)
            .delete(self.deleted)
            .insert(&self.inserted);
        op
    }
}

impl From<Site> for Span {
    fn from(site: Site) -> Self {
        let len = utf16_len(&site.inserted) as u32;
        Span {
            at: site.at,
            deleted: site.deleted,
            inserted: site.inserted,
            len,
        }
    }
}

/// The byte offset of UTF-16 offset `units` in `s` (checked edits never
/// split a surrogate pair).
fn utf16_to_byte(s: &str, units: u32) -> usize {
    let mut seen = 0u32;
    for (i, c) in s.char_indices() {
        if seen >= units {
            return i;
        }
        seen += c.len_utf16() as u32;
    }
    s.len()
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

/// What a change handed over for `authors` says of itself: their ids,
/// `participants:1,4` (the revisions say who made which edit).
fn commit_options(authors: &[ParticipantId]) -> CommitOptions {
    if authors.is_empty() {
        return CommitOptions::default();
    }
    let names: Vec<String> = authors.iter().map(ToString::to_string).collect();
    CommitOptions::default().with_message(format!("participants:{}", names.join(",")))
}

/// Commits automerge's open change once it holds [`MAX_TRANSACTION_OPS`]
/// operations, so that a long hand-over is several changes of bounded
/// size rather than one whose pending operations take hundreds of MB.
pub(super) fn bound_transaction(doc: &mut AutoCommit, authors: &[ParticipantId]) {
    if doc.pending_ops() >= MAX_TRANSACTION_OPS {
        doc.commit_with(commit_options(authors));
    }
}

/// Splices `text` into `obj` at `pos`, at most [`INSERT_PIECE`] characters
/// a splice, cut between characters and within changes of bounded size.
/// Returns the units inserted.
fn insert_in_pieces(
    doc: &mut AutoCommit,
    obj: &ObjId,
    mut pos: usize,
    text: &str,
    authors: &[ParticipantId],
) -> Result<usize, DocumentError> {
    if text.len() <= INSERT_PIECE {
        // One piece (no more characters than bytes): the text as it is.
        bound_transaction(doc, authors);
        doc.splice_text(obj, pos, 0, text).map_err(refused)?;
        return Ok(text.encode_utf16().count());
    }
    let mut rest = text;
    let mut inserted = 0;
    while !rest.is_empty() {
        bound_transaction(doc, authors);
        let cut = rest
            .char_indices()
            .nth(INSERT_PIECE)
            .map_or(rest.len(), |(i, _)| i);
        let (piece, tail) = rest.split_at(cut);
        doc.splice_text(obj, pos, 0, piece).map_err(refused)?;
        let len = piece.encode_utf16().count();
        pos += len;
        inserted += len;
        rest = tail;
    }
    Ok(inserted)
}

/// Deletes `units` UTF-16 units of `obj` at `pos`, at most [`INSERT_PIECE`]
/// a splice, within changes of bounded size (one splice deleting 600k
/// characters peaked at 300 MB and took 2.8 s). The cuts are not known to
/// fall between characters: where one falls inside a surrogate pair,
/// automerge deletes the whole character, so what is left is counted from
/// the text's length, not from the pieces asked for. The range itself
/// starts and ends between characters (the operation was checked against
/// the rope), so the pieces delete exactly it.
fn delete_in_pieces(
    doc: &mut AutoCommit,
    obj: &ObjId,
    pos: usize,
    units: usize,
    authors: &[ParticipantId],
) -> Result<(), DocumentError> {
    if units <= INSERT_PIECE {
        // One piece: the range as it is, with no length to count.
        bound_transaction(doc, authors);
        doc.splice_text(obj, pos, units as isize, "")
            .map_err(refused)?;
        return Ok(());
    }
    let mut left = units;
    while left > 0 {
        bound_transaction(doc, authors);
        let before = doc.length(obj);
        let piece = left.min(INSERT_PIECE);
        doc.splice_text(obj, pos, piece as isize, "")
            .map_err(refused)?;
        let gone = before.saturating_sub(doc.length(obj));
        if gone == 0 {
            return Err(DocumentError::Structure(format!(
                "automerge deleted nothing of {left} units at {pos}"
            )));
        }
        left = left.saturating_sub(gone);
    }
    Ok(())
}

/// Applies a checked operation to an automerge text object (UTF-16 encoding).
/// Returns the units inserted and deleted.
fn splice_automerge(
    doc: &mut AutoCommit,
    obj: &ObjId,
    op: &TextOperation,
    authors: &[ParticipantId],
) -> Result<u64, DocumentError> {
    use crate::ot::Component;
    let mut pos = 0usize;
    let mut churn = 0u64;
    let mut components = op.components().iter().peekable();
    while let Some(c) = components.next() {
        match c {
            Component::Retain(n) => pos += *n as usize,
            Component::Insert(s) => {
                // An insert followed by a delete at the same place: the
                // text after the insert is deleted first, then the insert
                // goes where it was.
                if let Some(Component::Delete(n)) = components.peek() {
                    delete_in_pieces(doc, obj, pos, *n as usize, authors)?;
                    churn += u64::from(*n);
                    components.next();
                }
                let len = insert_in_pieces(doc, obj, pos, s, authors)?;
                pos += len;
                churn += len as u64;
            }
            Component::Delete(n) => {
                delete_in_pieces(doc, obj, pos, *n as usize, authors)?;
                churn += u64::from(*n);
            }
        }
    }
    Ok(churn)
}

/// Writes a run's output into automerge's list of runs at `index`.
pub(super) fn write_run(
    doc: &mut AutoCommit,
    runs: &ObjId,
    index: usize,
    run: &RunOutput,
) -> Result<(), DocumentError> {
    let entry = doc
        .insert_object(runs, index, ObjType::Map)
        .map_err(refused)?;
    doc.put(&entry, "by", i64::from(run.by.0))
        .map_err(refused)?;
    doc.put(&entry, "at", run.at.as_millis() as i64)
        .map_err(refused)?;
    doc.put(&entry, "stdout", run.stdout.as_str())
        .map_err(refused)?;
    doc.put(&entry, "stderr", run.stderr.as_str())
        .map_err(refused)?;
    if let Some(code) = run.exit_code {
        doc.put(&entry, "exit_code", i64::from(code))
            .map_err(refused)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator, so a failure replays.
    struct Lcg(u64);
    impl Lcg {
        fn below(&mut self, n: u64) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (self.0 >> 33) % n.max(1)
        }
    }

    fn automerge_files(doc: &mut Document) -> BTreeMap<String, String> {
        Document::load(&doc.save()).unwrap().files()
    }

    /// A shared document with `main` holding `text`: loaded from bytes, as
    /// a replica may hold them too.
    fn shared(text: &str) -> Document {
        let doc = Document::load(&Document::new("rust", [("main", text)]).unwrap().save()).unwrap();
        assert!(!doc.is_private());
        doc
    }

    /// `op` on `main` by participant 1, at the current revision.
    fn edit(doc: &mut Document, op: TextOperation) {
        let now = Timestamp::from_millis(0);
        doc.apply_operation(ParticipantId(1), doc.rev(), "main", op, None, now)
            .unwrap();
    }

    /// Edits, creations and removals (of files created in the same batch
    /// too) reach automerge in batches and leave it with the ropes' texts.
    #[test]
    fn batches_leave_automerge_with_the_ropes_texts() {
        let mut rng = Lcg(7);
        let mut doc = Document::new("rust", [("main", "fn main() {}\n")]).unwrap();
        let now = Timestamp::from_millis(0);
        let names = ["main", "a", "b", "é/ü"];
        let mut last_at = 0u32;
        for step in 0..6_000u32 {
            let author = ParticipantId(1 + rng.below(3) as u32);
            let path = names[rng.below(names.len() as u64) as usize];
            match rng.below(20) {
                0 => {
                    let _ = doc.create_file(author, path, "x\u{1F600}y", now);
                }
                1 if path != "main" => {
                    let _ = doc.remove_file(author, path, now);
                }
                2 => doc.commit(),
                _ => {
                    let Some(len) = doc.len_utf16(path) else {
                        continue;
                    };
                    // Mostly near the last edit, as typing is, so edits
                    // merge into spans; sometimes anywhere.
                    let near = last_at
                        .saturating_add(rng.below(7) as u32)
                        .saturating_sub(3);
                    let mut at = if rng.below(4) == 0 {
                        rng.below(u64::from(len) + 1) as u32
                    } else {
                        near.min(len)
                    };
                    while !doc.is_boundary(path, at) {
                        at -= 1;
                    }
                    let mut op = TextOperation::new();
                    op.retain(at);
                    if rng.below(3) == 0 && at < len {
                        let mut end = (at + 1 + rng.below(3) as u32).min(len);
                        while !doc.is_boundary(path, end) {
                            end += 1;
                        }
                        op.delete(end - at);
                    } else {
                        op.insert(if step % 7 == 0 { "\u{1F600}" } else { "ab\n" });
                    }
                    op.retain(len - op.base_len());
                    doc.apply_operation(author, doc.rev(), path, op, None, now)
                        .unwrap();
                    last_at = at;
                }
            }
            if step % 300 == 299 {
                assert_eq!(automerge_files(&mut doc), doc.files(), "at step {step}");
            }
        }
        assert_eq!(automerge_files(&mut doc), doc.files());
        assert!(!doc.has_uncommitted());
    }

    /// A run of keystrokes into a shared document (here one loaded from
    /// bytes, as a replica may hold them too) becomes one automerge change
    /// per batch, not one per keystroke.
    #[test]
    fn keystrokes_reach_automerge_as_one_change_per_batch() {
        let mut doc = shared("");
        let before = doc.change_hashes().len();
        for i in 0..(2 * COMMIT_EVERY as u32) {
            let mut op = TextOperation::new();
            op.retain(i).insert("k");
            edit(&mut doc, op);
        }
        doc.commit();
        assert_eq!(doc.change_hashes().len() - before, 2);
        assert_eq!(automerge_files(&mut doc)["main"].len(), 2 * COMMIT_EVERY);
    }

    /// A long insert reaches automerge in changes of bounded size, cut
    /// between characters (an emoji is two UTF-16 units), and automerge's
    /// text ends equal to the rope's.
    #[test]
    fn a_long_insert_reaches_automerge_in_bounded_changes() {
        let mut doc = shared("ab");
        let before = doc.change_hashes().len();
        // Emoji fall on both sides of every piece's cut.
        let text: String = (0..3 * INSERT_PIECE + 7)
            .map(|i| if i % 1_000 < 3 { '\u{1F600}' } else { 'x' })
            .collect();
        let mut op = TextOperation::new();
        op.retain(1).insert(&text).retain(1);
        edit(&mut doc, op);
        doc.commit();
        let expected = format!("a{text}b");
        assert_eq!(doc.text("main").as_deref(), Some(expected.as_str()));
        assert_eq!(automerge_files(&mut doc)["main"], expected);
        // 12,295 characters: more than one change's worth, fewer than one
        // change per piece would make.
        let changes = doc.change_hashes().len() - before;
        assert!((2..=4).contains(&changes), "{changes} changes");
    }

    /// A long delete, and a long replace, reach automerge in changes of
    /// bounded size, even where a piece's cut falls inside an emoji.
    #[test]
    fn a_long_delete_reaches_automerge_in_bounded_changes() {
        // The first piece's cut falls inside the first emoji (its two
        // UTF-16 units are 4,095 and 4,096); later cuts fall in a run of
        // emoji.
        let text = format!(
            "{}\u{1F600}{}{}",
            "x".repeat(INSERT_PIECE - 1),
            "x".repeat(INSERT_PIECE),
            "\u{1F600}".repeat(2_500)
        );
        let mut doc = shared(&format!("<{text}>"));
        let units = utf16_len(&text) as u32;
        let before = doc.change_hashes().len();
        let mut op = TextOperation::new();
        op.retain(1).delete(units).retain(1);
        edit(&mut doc, op);
        doc.commit();
        assert_eq!(automerge_files(&mut doc)["main"], "<>");
        let changes = doc.change_hashes().len() - before;
        assert!((2..=4).contains(&changes), "{changes} changes");

        // Back, and replaced: delete and insert at one place.
        let mut op = TextOperation::new();
        op.retain(1).insert(&text).retain(1);
        edit(&mut doc, op);
        let mut op = TextOperation::new();
        op.retain(1).insert("new").delete(units).retain(1);
        edit(&mut doc, op);
        doc.commit();
        assert_eq!(doc.text("main").as_deref(), Some("<new>"));
        assert_eq!(automerge_files(&mut doc)["main"], "<new>");
    }

    /// A private document started afresh from a long text builds it in
    /// changes of bounded size too.
    #[test]
    fn a_private_document_is_rebuilt_in_bounded_changes() {
        let long = "y".repeat(3 * MAX_TRANSACTION_OPS);
        let mut doc = Document::new("rust", [("main", long.as_str())]).unwrap();
        assert!(doc.is_private());
        assert!(doc.change_hashes().len() >= 3);
        assert_eq!(automerge_files(&mut doc)["main"], long);
    }

    /// Bytes saved with the public `save` may reach anyone: from then on
    /// the document is shared, and its automerge history is kept.
    #[test]
    fn a_public_save_ends_a_documents_privacy() {
        let mut doc = Document::new("rust", [("main", "")]).unwrap();
        assert!(doc.is_private());
        doc.save();
        assert!(!doc.is_private());
        doc.save_for_store();
        assert!(!doc.is_private());
    }

    /// A private document takes no edits by count, and when something
    /// reads automerge after a long run of them, it is started afresh from
    /// the texts: one change holding the text, and the store told to
    /// replace its document. A short run on a long text is handed over.
    #[test]
    fn a_private_document_starts_automerge_afresh_after_a_long_run_of_edits() {
        let mut doc = Document::new("rust", [("main", "")]).unwrap();
        assert!(doc.is_private());
        let now = Timestamp::from_millis(0);
        let n = 2 * COMMIT_EVERY as u32;
        for i in 0..n {
            let mut op = TextOperation::new();
            op.retain(i).insert("k");
            doc.apply_operation(ParticipantId(1), doc.rev(), "main", op, None, now)
                .unwrap();
        }
        assert_eq!(automerge_files(&mut doc)["main"].len(), n as usize);
        assert!(doc.take_restarted());
        assert_eq!(doc.change_hashes().len(), 1);
        assert!(!doc.has_uncommitted());

        // Two keystrokes on 8 Ki units: handed over, not restarted.
        for i in 0..2 {
            let mut op = TextOperation::new();
            op.retain(i).insert("x").retain(n + i);
            doc.apply_operation(ParticipantId(1), doc.rev(), "main", op, None, now)
                .unwrap();
        }
        doc.commit();
        assert!(!doc.take_restarted());
        assert_eq!(doc.change_hashes().len(), 2);
        assert_eq!(
            automerge_files(&mut doc)["main"],
            format!("xx{}", "k".repeat(n as usize))
        );
    }
}
