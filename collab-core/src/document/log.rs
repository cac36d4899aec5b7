//! The history kept compactly: versions encoded back to back in one buffer.
//!
//! A [`Version`] as a Rust value costs some 240 bytes on the heap for a
//! keystroke (the struct, the file's name, the operation's components, the
//! inserted text and the client's operation id, each its own allocation).
//! Encoded, a keystroke costs what it says: a byte for the file (the same as
//! the version before, nearly always), a few for the author and the time
//! since the previous version, the operation id's bytes and the operation's
//! components as varints. A 37k-edit session's history is then about a
//! megabyte instead of nine, and a store can keep the same bytes as they
//! are (see [`encode_versions`]).
//!
//! The encoding of one version, each number an unsigned LEB128 varint:
//!
//! | field | encoding |
//! |---|---|
//! | file | `0`: the previous version's file; else its length + 1, then its bytes |
//! | author | `0`: none; else the participant id + 1 |
//! | at | the milliseconds since the previous version's (since 0 when the file is named in full), zigzag-encoded |
//! | oid | `0`: none; else its length + 1, then its bytes |
//! | change | `0` edit, `1` create, `2` remove |
//! | edit | the number of components, then each: `n << 2` retain, `n << 2 \| 1` delete, `len << 2 \| 2` insert and its bytes |
//! | create | the text's length, then its bytes |
//!
//! A version that names its file in full needs nothing from the ones
//! before it. The first version of a buffer, and every [`STRIDE`]th in the
//! document's log, does, so that decoding can start there; and buffers of
//! consecutive versions can be joined by concatenation (a store appends a
//! write's versions to the last run it wrote).

use super::*;
use crate::ot::Component;

/// Every this many versions the log notes where one starts, so reading
/// version `n` decodes at most this many.
const STRIDE: usize = 64;

/// Why encoded versions cannot be read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("encoded versions are damaged at byte {at}: {what}")]
pub struct DecodeError {
    /// Where in the bytes.
    pub at: usize,
    /// What is wrong there.
    pub what: &'static str,
}

/// What decoding a version needs from the one before it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Context {
    file: String,
    at: u64,
}

/// The document's history: versions `start + 1`, `start + 2`… encoded in
/// one buffer, with the start of every [`STRIDE`]th noted. A session loaded
/// from a store holds only the versions after its stored document
/// (`start`); the earlier ones stay in the store until a read needs them.
#[derive(Debug, Default)]
pub(super) struct VersionLog {
    bytes: Vec<u8>,
    /// Where versions `start + STRIDE * i + 1` start.
    marks: Vec<usize>,
    /// The revision of the last version not held (0: all are held).
    start: usize,
    len: usize,
    /// The context after the last version.
    last: Context,
}

impl VersionLog {
    /// A log whose versions up to `start` are kept elsewhere.
    pub(super) fn starting_at(start: usize) -> Self {
        Self {
            start,
            len: start,
            ..Self::default()
        }
    }

    /// How many versions there are (the revision of the last one), held or not.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// The revision of the last version not held: 0 when all are.
    pub(super) fn start(&self) -> usize {
        self.start
    }

    /// Appends the next version; its `rev` is taken to be `len() + 1`.
    pub(super) fn push(&mut self, v: &Version) {
        if (self.len - self.start).is_multiple_of(STRIDE) {
            self.marks.push(self.bytes.len());
            self.last = Context::default();
        }
        encode(&mut self.bytes, v, &mut self.last);
        self.len += 1;
    }

    /// The same log without the versions up to `rev` (at least `start`).
    pub(super) fn without_through(&self, rev: usize) -> Self {
        let mut kept = Self::starting_at(rev);
        for v in self.iter_from(rev) {
            kept.push(&v);
        }
        kept
    }

    /// The same versions with the ones before `start` in front of them,
    /// encoded as [`encode_versions`] writes them (buffers of consecutive
    /// versions may be joined).
    ///
    /// # Errors
    /// When they do not decode, or are not `start` versions.
    /// `each` sees every older version as it is decoded.
    pub(super) fn with_older(
        &self,
        older: &[u8],
        mut each: impl FnMut(&Version),
    ) -> Result<Self, DecodeError> {
        let mut all = Self::default();
        let n = for_each_version(older, 1, |v| {
            each(v);
            all.push(v);
        })?;
        if n != self.start {
            return Err(DecodeError {
                at: older.len(),
                what: "not the number of versions missing",
            });
        }
        for v in self.iter_from(self.start) {
            all.push(&v);
        }
        Ok(all)
    }

    /// The versions after revision `from` (the `from`th and on), oldest
    /// first; those not held are left out, so `from` should be at least
    /// [`VersionLog::start`].
    pub(super) fn iter_from(&self, from: usize) -> Versions<'_> {
        let from = from.clamp(self.start, self.len);
        if from == self.len {
            // Nothing after: the common case of an edit typed at the
            // current revision, which must not pay for reaching the end.
            return Versions {
                bytes: &self.bytes,
                pos: self.bytes.len(),
                start: self.start as Revision,
                next_rev: self.len as Revision + 1,
                end_rev: self.len as Revision,
                ctx: Context::default(),
            };
        }
        let mark = (from - self.start) / STRIDE;
        let first = self.start + mark * STRIDE;
        let mut it = Versions {
            bytes: &self.bytes,
            pos: self.marks.get(mark).copied().unwrap_or(self.bytes.len()),
            start: self.start as Revision,
            next_rev: first as Revision + 1,
            end_rev: self.len as Revision,
            ctx: Context::default(),
        };
        for _ in first..from {
            it.skip_one();
        }
        it
    }

    /// Versions `from + 1 ..= to`.
    pub(super) fn range(&self, from: usize, to: usize) -> impl Iterator<Item = Version> + '_ {
        debug_assert!(
            from >= self.start,
            "versions before {} are not held",
            self.start
        );
        self.iter_from(from).take(to.saturating_sub(from))
    }

    /// The version of revision `rev` (1-based), if held.
    pub(super) fn get(&self, rev: Revision) -> Option<Version> {
        let i = usize::try_from(rev).ok()?.checked_sub(1)?;
        if i < self.start {
            return None;
        }
        self.iter_from(i).next()
    }

    /// Bytes the versions take encoded, with the marks.
    #[cfg(test)]
    fn encoded_len(&self) -> usize {
        self.bytes.len() + self.marks.len() * std::mem::size_of::<usize>()
    }
}

/// Thin-client operation ids already applied, for telling a resent
/// operation from a new one. Kept as a hash of author and id to the
/// revision that applied it (16 bytes an edit instead of the id's own
/// allocation), and checked against that version when found. An id whose
/// hash another id took first is kept whole.
#[derive(Debug, Default, Clone)]
pub(super) struct AppliedOids {
    hasher: std::collections::hash_map::RandomState,
    by_hash: HashMap<u64, Revision>,
    whole: HashMap<(ParticipantId, String), Revision>,
}

impl AppliedOids {
    fn key(&self, author: ParticipantId, oid: &str) -> u64 {
        use std::hash::BuildHasher as _;
        self.hasher.hash_one((author.0, oid))
    }

    /// Notes that `author`'s operation `oid` was applied as `rev`.
    pub(super) fn insert(&mut self, author: ParticipantId, oid: &str, rev: Revision) {
        use std::collections::hash_map::Entry;
        match self.by_hash.entry(self.key(author, oid)) {
            Entry::Vacant(e) => {
                e.insert(rev);
            }
            Entry::Occupied(_) => {
                self.whole.insert((author, oid.to_owned()), rev);
            }
        }
    }

    /// Forgets the operations applied at or before `rev`.
    pub(super) fn forget_through(&mut self, rev: Revision) {
        self.by_hash.retain(|_, r| *r > rev);
        self.whole.retain(|_, r| *r > rev);
        self.by_hash.shrink_to_fit();
    }

    /// The revision that applied `author`'s operation `oid`, if one did.
    pub(super) fn find(
        &self,
        author: ParticipantId,
        oid: &str,
        log: &VersionLog,
    ) -> Option<Revision> {
        let by_hash = self.by_hash.get(&self.key(author, oid)).copied();
        by_hash
            .filter(|rev| {
                log.get(*rev)
                    .is_some_and(|v| v.author == Some(author) && v.oid.as_deref() == Some(oid))
            })
            .or_else(|| {
                if self.whole.is_empty() {
                    return None;
                }
                self.whole.get(&(author, oid.to_owned())).copied()
            })
    }
}

/// Decodes a log's versions in order.
pub(super) struct Versions<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// The log's start: strides are counted from it.
    start: Revision,
    next_rev: Revision,
    end_rev: Revision,
    ctx: Context,
}

impl Versions<'_> {
    /// Steps over the next version without building it: what reaching a
    /// revision inside a stride costs, per version, a few varint reads.
    fn skip_one(&mut self) {
        if self.next_rev > self.end_rev {
            return;
        }
        if (self.next_rev - 1 - self.start).is_multiple_of(STRIDE as u64) {
            self.ctx = Context::default();
        }
        skip(self.bytes, &mut self.pos, &mut self.ctx).expect("the log decodes what it encoded");
        self.next_rev += 1;
    }
}

impl Iterator for Versions<'_> {
    type Item = Version;

    fn next(&mut self) -> Option<Version> {
        if self.next_rev > self.end_rev {
            return None;
        }
        if (self.next_rev - 1 - self.start).is_multiple_of(STRIDE as u64) {
            self.ctx = Context::default();
        }
        let v = decode(self.bytes, &mut self.pos, self.next_rev, &mut self.ctx)
            .expect("the log decodes what it encoded");
        self.next_rev += 1;
        Some(v)
    }
}

/// Versions in the encoding the document keeps them in, standalone: what a
/// store may keep instead of one row per version. Decode with
/// [`decode_versions`].
///
/// ```
/// use collab_core::document::{decode_versions, encode_versions, Change, Version};
/// use collab_core::{ParticipantId, TextOperation, Timestamp};
/// let mut op = TextOperation::new();
/// op.retain(3).insert("x");
/// let v = Version {
///     rev: 7,
///     file: "main".into(),
///     change: Change::Edit { op },
///     author: Some(ParticipantId(1)),
///     at: Timestamp::from_millis(1_700_000_000_000),
///     oid: Some("c1".into()),
/// };
/// let bytes = encode_versions(std::slice::from_ref(&v));
/// assert!(bytes.len() < 24);
/// assert_eq!(decode_versions(&bytes, 7).unwrap(), vec![v]);
/// ```
pub fn encode_versions(versions: &[Version]) -> Vec<u8> {
    let mut out = Vec::with_capacity(versions.len() * 16);
    let mut ctx = Context::default();
    for v in versions {
        encode(&mut out, v, &mut ctx);
    }
    out
}

/// Reads back what [`encode_versions`] wrote, numbering the versions from
/// `first_rev`.
///
/// # Errors
/// [`DecodeError`] for bytes that are not such versions.
pub fn decode_versions(bytes: &[u8], first_rev: Revision) -> Result<Vec<Version>, DecodeError> {
    let mut out = Vec::new();
    let mut pos = 0;
    let mut ctx = Context::default();
    while pos < bytes.len() {
        let rev = first_rev + out.len() as Revision;
        out.push(decode(bytes, &mut pos, rev, &mut ctx)?);
    }
    Ok(out)
}

/// Hands `f` each version of `bytes` in turn (what [`encode_versions`]
/// wrote, or several such buffers of consecutive versions joined),
/// numbered from `first_rev`, without holding them all decoded; returns
/// how many there were.
pub(super) fn for_each_version(
    bytes: &[u8],
    first_rev: Revision,
    mut f: impl FnMut(&Version),
) -> Result<usize, DecodeError> {
    let mut pos = 0;
    let mut ctx = Context::default();
    let mut n = 0;
    while pos < bytes.len() {
        f(&decode(
            bytes,
            &mut pos,
            first_rev + n as Revision,
            &mut ctx,
        )?);
        n += 1;
    }
    Ok(n)
}

fn encode(out: &mut Vec<u8>, v: &Version, ctx: &mut Context) {
    if v.file == ctx.file && !ctx.file.is_empty() {
        put(out, 0);
    } else {
        put_bytes(out, v.file.as_bytes(), 1);
        ctx.file.clone_from(&v.file);
        ctx.at = 0;
    }
    put(out, v.author.map_or(0, |a| u64::from(a.0) + 1));
    let at = v.at.as_millis();
    put(out, zigzag(at.wrapping_sub(ctx.at) as i64));
    ctx.at = at;
    match &v.oid {
        None => put(out, 0),
        Some(oid) => put_bytes(out, oid.as_bytes(), 1),
    }
    match &v.change {
        Change::Edit { op } => {
            put(out, 0);
            put(out, op.components().len() as u64);
            for c in op.components() {
                match c {
                    Component::Retain(n) => put(out, u64::from(*n) << 2),
                    Component::Delete(n) => put(out, (u64::from(*n) << 2) | 1),
                    Component::Insert(s) => {
                        put(out, ((s.len() as u64) << 2) | 2);
                        out.extend_from_slice(s.as_bytes());
                    }
                }
            }
        }
        Change::Create { text } => {
            put(out, 1);
            put_bytes(out, text.as_bytes(), 0);
        }
        Change::Remove => put(out, 2),
    }
}

fn decode(
    bytes: &[u8],
    pos: &mut usize,
    rev: Revision,
    ctx: &mut Context,
) -> Result<Version, DecodeError> {
    let file = match get(bytes, pos)? {
        0 if ctx.file.is_empty() => return Err(damaged(*pos, "no file named yet")),
        0 => ctx.file.clone(),
        n => {
            let file = get_str(bytes, pos, n - 1)?;
            ctx.file.clone_from(&file);
            ctx.at = 0;
            file
        }
    };
    let author = match get(bytes, pos)? {
        0 => None,
        n => Some(ParticipantId(
            u32::try_from(n - 1).map_err(|_| damaged(*pos, "author out of range"))?,
        )),
    };
    let at = ctx.at.wrapping_add(unzigzag(get(bytes, pos)?) as u64);
    ctx.at = at;
    let oid = match get(bytes, pos)? {
        0 => None,
        n => Some(get_str(bytes, pos, n - 1)?),
    };
    let change = match get(bytes, pos)? {
        0 => {
            let count = get(bytes, pos)?;
            let mut op = TextOperation::new();
            for _ in 0..count {
                let c = get(bytes, pos)?;
                let n = c >> 2;
                match c & 3 {
                    2 => {
                        let s = get_str(bytes, pos, n)?;
                        op.insert(&s);
                    }
                    kind => {
                        let n =
                            u32::try_from(n).map_err(|_| damaged(*pos, "length out of range"))?;
                        if kind == 0 {
                            op.retain(n);
                        } else if kind == 1 {
                            op.delete(n);
                        } else {
                            return Err(damaged(*pos, "unknown component"));
                        }
                    }
                }
            }
            Change::Edit { op }
        }
        1 => {
            let n = get(bytes, pos)?;
            Change::Create {
                text: get_str(bytes, pos, n)?,
            }
        }
        2 => Change::Remove,
        _ => return Err(damaged(*pos, "unknown change")),
    };
    Ok(Version {
        rev,
        file,
        change,
        author,
        at: Timestamp::from_millis(at),
        oid,
    })
}

/// [`decode`] without building the version: the context still follows.
fn skip(bytes: &[u8], pos: &mut usize, ctx: &mut Context) -> Result<(), DecodeError> {
    let step = |pos: &mut usize, len: u64| {
        let end = usize::try_from(len)
            .ok()
            .and_then(|l| pos.checked_add(l))
            .filter(|end| *end <= bytes.len())
            .ok_or(damaged(*pos, "cut short"))?;
        *pos = end;
        Ok(())
    };
    match get(bytes, pos)? {
        0 if ctx.file.is_empty() => return Err(damaged(*pos, "no file named yet")),
        0 => {}
        n => {
            ctx.file = get_str(bytes, pos, n - 1)?;
            ctx.at = 0;
        }
    }
    get(bytes, pos)?;
    ctx.at = ctx.at.wrapping_add(unzigzag(get(bytes, pos)?) as u64);
    match get(bytes, pos)? {
        0 => {}
        n => step(pos, n - 1)?,
    }
    match get(bytes, pos)? {
        0 => {
            for _ in 0..get(bytes, pos)? {
                let c = get(bytes, pos)?;
                if c & 3 == 2 {
                    step(pos, c >> 2)?;
                }
            }
        }
        1 => {
            let n = get(bytes, pos)?;
            step(pos, n)?;
        }
        2 => {}
        _ => return Err(damaged(*pos, "unknown change")),
    }
    Ok(())
}

fn damaged(at: usize, what: &'static str) -> DecodeError {
    DecodeError { at, what }
}

fn zigzag(n: i64) -> u64 {
    ((n << 1) ^ (n >> 63)) as u64
}

fn unzigzag(n: u64) -> i64 {
    ((n >> 1) as i64) ^ -((n & 1) as i64)
}

fn put(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// A length (plus `bias`) and the bytes.
fn put_bytes(out: &mut Vec<u8>, bytes: &[u8], bias: u64) {
    put(out, bytes.len() as u64 + bias);
    out.extend_from_slice(bytes);
}

fn get(bytes: &[u8], pos: &mut usize) -> Result<u64, DecodeError> {
    let mut n = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *bytes.get(*pos).ok_or(damaged(*pos, "cut short"))?;
        *pos += 1;
        n |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(n);
        }
    }
    Err(damaged(*pos, "varint too long"))
}

fn get_str(bytes: &[u8], pos: &mut usize, len: u64) -> Result<String, DecodeError> {
    let end = usize::try_from(len)
        .ok()
        .and_then(|l| pos.checked_add(l))
        .filter(|end| *end <= bytes.len())
        .ok_or(damaged(*pos, "cut short"))?;
    let s = std::str::from_utf8(&bytes[*pos..end]).map_err(|_| damaged(*pos, "not UTF-8"))?;
    *pos = end;
    Ok(s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(rev: Revision, file: &str, change: Change, oid: Option<&str>) -> Version {
        Version {
            rev,
            file: file.into(),
            change,
            author: (!rev.is_multiple_of(3)).then_some(ParticipantId(rev as u32 % 5)),
            at: Timestamp::from_millis(1_000_000 + rev * 37 - (rev % 4) * 50),
            oid: oid.map(str::to_owned),
        }
    }

    fn sample(n: u64) -> Vec<Version> {
        (1..=n)
            .map(|rev| {
                let file = if rev % 50 < 40 { "main" } else { "ü/é.rs" };
                let change = match rev % 17 {
                    0 => Change::Create {
                        text: "x".repeat(rev as usize % 7),
                    },
                    16 => Change::Remove,
                    k => {
                        let mut op = TextOperation::new();
                        op.retain(rev as u32 * 1000)
                            .insert(&"é😀".repeat(k as usize))
                            .retain(3)
                            .delete(u32::MAX - k as u32);
                        Change::Edit { op }
                    }
                };
                let oid = rev.is_multiple_of(2).then(|| format!("o{rev}"));
                version(rev, file, change, oid.as_deref())
            })
            .collect()
    }

    #[test]
    fn a_log_gives_back_what_was_pushed_from_any_revision() {
        let versions = sample(300);
        let mut log = VersionLog::default();
        for v in &versions {
            log.push(v);
        }
        assert_eq!(log.len(), 300);
        for from in [0, 1, 63, 64, 65, 128, 200, 299, 300] {
            let got: Vec<_> = log.iter_from(from).collect();
            assert_eq!(got, versions[from..], "from {from}");
        }
        assert_eq!(log.range(10, 20).collect::<Vec<_>>(), versions[10..20]);
        assert_eq!(log.get(129), Some(versions[128].clone()));
        assert_eq!(log.get(0), None);
        assert_eq!(log.get(301), None);
    }

    #[test]
    fn a_log_may_start_after_the_first_versions_and_take_them_later() {
        let versions = sample(300);
        for start in [1, 63, 64, 100] {
            let mut log = VersionLog::starting_at(start);
            for v in &versions[start..] {
                log.push(v);
            }
            assert_eq!((log.len(), log.start()), (300, start));
            for from in [start, start + 1, start + 63, start + 64, 200, 299, 300] {
                let got: Vec<_> = log.iter_from(from).collect();
                assert_eq!(got, versions[from..], "start {start}, from {from}");
            }
            // What is not held is not made up.
            assert_eq!(log.get(start as Revision), None);
            assert_eq!(
                log.get(start as Revision + 1),
                Some(versions[start].clone())
            );
            assert_eq!(log.iter_from(0).next(), Some(versions[start].clone()));

            assert!(log
                .with_older(&encode_versions(&versions[1..start]), |_| {})
                .is_err());
            let whole = log
                .with_older(&encode_versions(&versions[..start]), |_| {})
                .unwrap();
            assert_eq!((whole.len(), whole.start()), (300, 0));
            assert_eq!(whole.iter_from(0).collect::<Vec<_>>(), versions);
            assert_eq!(whole.get(1), Some(versions[0].clone()));
            let later = whole.without_through(250);
            assert_eq!((later.len(), later.start()), (300, 250));
            assert_eq!(later.iter_from(250).collect::<Vec<_>>(), versions[250..]);
        }
    }

    #[test]
    fn standalone_bytes_round_trip_and_damage_is_an_error() {
        let versions = sample(100);
        let bytes = encode_versions(&versions);
        assert_eq!(decode_versions(&bytes, 1).unwrap(), versions);
        for cut in [1, bytes.len() / 2, bytes.len() - 1] {
            assert!(decode_versions(&bytes[..cut], 1).is_err(), "cut at {cut}");
        }
        assert!(decode_versions(&[0], 1).is_err());
        assert!(decode_versions(&[0xff; 11], 1).is_err());
        assert!(decode_versions(&[3, 0xff, 0xfe, 0, 0, 0, 2], 1).is_err());
    }

    #[test]
    fn encoded_runs_join_by_concatenation() {
        let versions = sample(100);
        let mut joined = encode_versions(&versions[..37]);
        joined.extend(encode_versions(&versions[37..38]));
        joined.extend(encode_versions(&versions[38..]));
        assert_eq!(decode_versions(&joined, 1).unwrap(), versions);
    }

    #[test]
    fn a_keystroke_costs_bytes_not_hundreds() {
        let mut log = VersionLog::default();
        for rev in 1..=10_000u64 {
            let mut op = TextOperation::new();
            op.retain(rev as u32).insert("a");
            log.push(&Version {
                rev,
                file: "main".into(),
                change: Change::Edit { op },
                author: Some(ParticipantId(1)),
                at: Timestamp::from_millis(1_700_000_000_000 + rev * 90),
                oid: Some(format!("c7-{rev}")),
            });
        }
        // 18 bytes, 8 of them the operation id.
        assert!(log.encoded_len() < 10_000 * 20, "{}", log.encoded_len());
    }
}
