//! Operational transformation for plain text, as thin clients (browser pages
//! without WASM) speak it.
//!
//! A [`TextOperation`] walks a text from the start: it keeps ([`Component::Retain`]),
//! inserts ([`Component::Insert`]) or deletes ([`Component::Delete`]) pieces of it.
//! Whatever it does not reach is kept: an operation never needs to know how long
//! the text is, only that it is at least [`TextOperation::base_len`] long.
//!
//! All positions and lengths count **UTF-16 code units**, as JavaScript string
//! indices do. No operation may insert, or start or end a delete, between the two
//! halves of a surrogate pair ([`OtError::SplitsSurrogatePair`]).
//!
//! The same algebra is implemented for browsers in `collab-wire/js/collab-ot.mjs`;
//! both are checked against the shared vectors in
//! `collab-wire/tests/vectors/ot.json`.
//!
//! # Normal form
//!
//! The builders ([`TextOperation::retain`], [`TextOperation::insert`],
//! [`TextOperation::delete`]) keep every operation normalized, so that two
//! operations that do the same thing compare equal and serialize the same:
//!
//! - no zero-length components;
//! - adjacent components of the same kind are merged (a run longer than
//!   `u32::MAX` units, which no real text reaches, is kept as `u32::MAX`-long
//!   components followed by the remainder);
//! - no trailing retain;
//! - where an insert and a delete are adjacent, the insert comes first.
//!
//! # Wire format
//!
//! A JSON array: a positive integer retains, a string inserts, a negative integer
//! deletes. `[5, "abc", -3]` keeps 5 units, inserts `abc` and deletes 3 units.
//! `[]` is the no-op. Deserializing normalizes and rejects zero, non-integers,
//! integers beyond `u32`, empty strings and more than [`MAX_WIRE_COMPONENTS`]
//! components.
//!
//! ```
//! use collab_wire::ot::TextOperation;
//!
//! let mut op = TextOperation::new();
//! op.retain(6).delete(5).insert("there");
//! assert_eq!(op.apply("Hello world, again").unwrap(), "Hello there, again");
//! assert_eq!(serde_json::to_string(&op).unwrap(), r#"[6,"there",-5]"#);
//!
//! // Two people edit "ab" at the same time.
//! let mut a = TextOperation::new();
//! a.retain(1).insert("X");
//! let mut b = TextOperation::new();
//! b.delete(1);
//! let (a2, b2) = TextOperation::transform(&a, &b);
//! let one = b2.apply(&a.apply("ab").unwrap()).unwrap();
//! let two = a2.apply(&b.apply("ab").unwrap()).unwrap();
//! assert_eq!(one, "Xb");
//! assert_eq!(one, two);
//! ```

use std::fmt;

use serde::de::{self, SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Most components an operation may have on the wire (before merging).
pub const MAX_WIRE_COMPONENTS: usize = 10_000;

/// The longest single component, in UTF-16 units.
const MAX_UNITS: u64 = u32::MAX as u64;

/// One step of a [`TextOperation`]. Lengths count UTF-16 code units.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Component {
    /// Keep this many units of the text.
    Retain(u32),
    /// Insert this text at the current position.
    Insert(String),
    /// Delete this many units of the text.
    Delete(u32),
}

/// Why an operation cannot be applied, composed or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OtError {
    /// The operation reaches past the end of the text.
    #[error(
        "the operation needs a text of at least {needed} UTF-16 units, but the text has {len}"
    )]
    OutOfRange {
        /// How long the text must be ([`TextOperation::base_len`]).
        needed: u32,
        /// How long the text is.
        len: u32,
    },
    /// A position falls between the two halves of a UTF-16 surrogate pair.
    #[error("position {at} falls inside a UTF-16 surrogate pair")]
    SplitsSurrogatePair {
        /// The offending position, in UTF-16 units.
        at: u32,
    },
    /// Not a valid operation on the wire (zero-length component, non-integer,
    /// too many components...).
    #[error("malformed operation: {0}")]
    Malformed(String),
}

/// A text operation: retain, insert and delete components over UTF-16 positions,
/// always in normal form (see the [module documentation](self)).
///
/// Equality compares the normalized components: a retain that nothing follows
/// yet (`TextOperation::new().retain(3)`) changes nothing and so equals the no-op.
#[derive(Debug, Clone, Default)]
pub struct TextOperation {
    /// Normalized components; never ends with a retain.
    ops: Vec<Component>,
    /// Units retained by the builder and not yet followed by an insert or a
    /// delete. Not part of the operation until something follows them.
    pending_retain: u64,
}

impl PartialEq for TextOperation {
    fn eq(&self, other: &Self) -> bool {
        self.ops == other.ops
    }
}

impl Eq for TextOperation {}

/// Length of a string in UTF-16 code units.
fn utf16_len(s: &str) -> u64 {
    s.chars().map(|c| c.len_utf16() as u64).sum()
}

/// Clamps a length or position to `u32`.
fn saturate(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Whether `a`'s insert comes before `b`'s when both insert at one position
/// concurrently: the lower participant id first; a change with no author (a
/// replica's, or the server's own) before any participant's; the same
/// author's (two tabs) in the order the server applied them.
pub fn inserts_first(
    a: Option<crate::ids::ParticipantId>,
    b: Option<crate::ids::ParticipantId>,
) -> bool {
    match (a, b) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(a), Some(b)) => a <= b,
    }
}

impl TextOperation {
    /// The no-op.
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps the next `n` units.
    pub fn retain(&mut self, n: u32) -> &mut Self {
        self.retain_units(u64::from(n))
    }

    /// Inserts `s` at the current position.
    pub fn insert(&mut self, s: &str) -> &mut Self {
        if s.is_empty() {
            return self;
        }
        self.flush_retain();
        // An insert goes before the deletes that end the operation.
        let first_delete = self
            .ops
            .iter()
            .rposition(|c| !matches!(c, Component::Delete(_)))
            .map_or(0, |i| i + 1);
        match first_delete.checked_sub(1).map(|i| &mut self.ops[i]) {
            Some(Component::Insert(prev)) => prev.push_str(s),
            _ => self
                .ops
                .insert(first_delete, Component::Insert(s.to_owned())),
        }
        self
    }

    /// Deletes the next `n` units.
    pub fn delete(&mut self, n: u32) -> &mut Self {
        self.delete_units(u64::from(n))
    }

    fn retain_units(&mut self, n: u64) -> &mut Self {
        self.pending_retain = self.pending_retain.saturating_add(n);
        self
    }

    fn flush_retain(&mut self) {
        while self.pending_retain > 0 {
            let n = self.pending_retain.min(MAX_UNITS);
            self.ops.push(Component::Retain(n as u32));
            self.pending_retain -= n;
        }
    }

    fn delete_units(&mut self, mut n: u64) -> &mut Self {
        if n == 0 {
            return self;
        }
        self.flush_retain();
        if let Some(Component::Delete(last)) = self.ops.last_mut() {
            let room = (MAX_UNITS - u64::from(*last)).min(n);
            *last += room as u32;
            n -= room;
        }
        while n > 0 {
            let k = n.min(MAX_UNITS);
            self.ops.push(Component::Delete(k as u32));
            n -= k;
        }
        self
    }

    /// The normalized components.
    pub fn components(&self) -> &[Component] {
        &self.ops
    }

    /// Whether the operation changes nothing.
    pub fn is_noop(&self) -> bool {
        self.ops.is_empty()
    }

    /// Retains + deletes: the text must be at least this long (saturates at
    /// `u32::MAX`).
    pub fn base_len(&self) -> u32 {
        saturate(self.base_len_units())
    }

    fn base_len_units(&self) -> u64 {
        self.ops
            .iter()
            .map(|c| match c {
                Component::Retain(n) | Component::Delete(n) => u64::from(*n),
                Component::Insert(_) => 0,
            })
            .sum()
    }

    /// How the length changes (inserted minus deleted), as i64.
    pub fn len_delta(&self) -> i64 {
        self.ops
            .iter()
            .map(|c| match c {
                Component::Retain(_) => 0,
                Component::Insert(s) => utf16_len(s) as i64,
                Component::Delete(n) => -i64::from(*n),
            })
            .sum()
    }

    /// Applies the operation to `text` (positions in UTF-16 units).
    ///
    /// # Errors
    /// [`OtError::OutOfRange`] if the text is shorter than [`Self::base_len`]
    /// (checked first), [`OtError::SplitsSurrogatePair`] if a position where the
    /// operation inserts, or starts or ends a delete, falls inside a surrogate pair.
    pub fn apply(&self, text: &str) -> Result<String, OtError> {
        let len = utf16_len(text);
        self.check_units(len)?;
        let inserted: usize = self
            .ops
            .iter()
            .map(|c| match c {
                Component::Insert(s) => s.len(),
                _ => 0,
            })
            .sum();
        let mut out = String::with_capacity(text.len() + inserted);
        let mut cursor = Utf16Cursor {
            text,
            byte: 0,
            unit: 0,
        };
        for c in &self.ops {
            match c {
                Component::Retain(n) => {
                    let start = cursor.byte;
                    cursor.advance(u64::from(*n))?;
                    out.push_str(&text[start..cursor.byte]);
                }
                // The position was checked when the cursor got there (0 is
                // always a boundary): in normal form every component boundary
                // is a position the operation touches.
                Component::Insert(s) => out.push_str(s),
                Component::Delete(n) => cursor.advance(u64::from(*n))?,
            }
        }
        out.push_str(&text[cursor.byte..]);
        Ok(out)
    }

    /// Checks the operation against a text of `len` units without applying it
    /// (only the length: see [`Self::touched_positions`] for surrogate pairs).
    ///
    /// # Errors
    /// [`OtError::OutOfRange`] if `len` is shorter than [`Self::base_len`].
    pub fn check_len(&self, len: u32) -> Result<(), OtError> {
        self.check_units(u64::from(len))
    }

    fn check_units(&self, len: u64) -> Result<(), OtError> {
        let needed = self.base_len_units();
        if needed > len {
            return Err(OtError::OutOfRange {
                needed: saturate(needed),
                len: saturate(len),
            });
        }
        Ok(())
    }

    /// Transforms two concurrent operations on the same text: returns `(a', b')`
    /// with `b'.apply(a.apply(s)) == a'.apply(b.apply(s))`. At a tie (both
    /// insert at the same position) `a`'s insert comes first. An operation that
    /// ends early retains the rest of the text.
    pub fn transform(a: &TextOperation, b: &TextOperation) -> (TextOperation, TextOperation) {
        let mut a2 = TextOperation::new();
        let mut b2 = TextOperation::new();
        let mut pa = Pieces::new(a);
        let mut pb = Pieces::new(b);
        loop {
            match (pa.peek(), pb.peek()) {
                (Piece::Insert(s), _) => {
                    a2.insert(s);
                    b2.retain_units(utf16_len(s));
                    pa.skip_insert(s.len());
                }
                (_, Piece::Insert(s)) => {
                    a2.retain_units(utf16_len(s));
                    b2.insert(s);
                    pb.skip_insert(s.len());
                }
                (Piece::End, Piece::End) => break,
                (x, y) => {
                    let n = x.units().min(y.units());
                    match (x, y) {
                        (Piece::Delete(_), Piece::Delete(_)) => {}
                        (Piece::Delete(_), _) => {
                            a2.delete_units(n);
                        }
                        (_, Piece::Delete(_)) => {
                            b2.delete_units(n);
                        }
                        _ => {
                            a2.retain_units(n);
                            b2.retain_units(n);
                        }
                    }
                    pa.skip_units(n);
                    pb.skip_units(n);
                }
            }
        }
        (a2.finished(), b2.finished())
    }

    /// [`TextOperation::transform`] for two concurrent edits by known authors:
    /// returns `(a', b')` as `transform` does, but at a tie the insert of the
    /// author who [goes first](inserts_first) comes first, whichever
    /// operation the server saw first. The server rebasing an incoming edit
    /// and every client transforming a remote edit over its pending ones
    /// break ties the same way, so two people typing at one spot each end
    /// with their own run of text, one run after the other, in whatever
    /// order their keystrokes arrive.
    pub fn transform_by_author(
        a: &TextOperation,
        a_author: Option<crate::ids::ParticipantId>,
        b: &TextOperation,
        b_author: Option<crate::ids::ParticipantId>,
    ) -> (TextOperation, TextOperation) {
        if inserts_first(a_author, b_author) {
            TextOperation::transform(a, b)
        } else {
            let (b2, a2) = TextOperation::transform(b, a);
            (a2, b2)
        }
    }

    /// `a` then `b` as one operation: `compose(a, b)?.apply(s) == b.apply(a.apply(s)?)`.
    /// Where `b` reaches past what `a` spells out, `a` retains the rest.
    ///
    /// # Errors
    /// [`OtError::SplitsSurrogatePair`] if `b` inserts, or starts or ends a
    /// delete, inside a surrogate pair that `a` inserts (`at` counts in the text
    /// `a` produces).
    pub fn compose(a: &TextOperation, b: &TextOperation) -> Result<TextOperation, OtError> {
        let mut out = TextOperation::new();
        let mut pa = Pieces::new(a);
        let mut pb = Pieces::new(b);
        let mut pos: u64 = 0; // In the text `a` produces (`b`'s base).
        loop {
            match (pa.peek(), pb.peek()) {
                (Piece::Delete(n), _) => {
                    out.delete_units(n);
                    pa.skip_units(n);
                }
                (_, Piece::Insert(s)) => {
                    out.insert(s);
                    pb.skip_insert(s.len());
                }
                (Piece::End, Piece::End) => break,
                (Piece::Insert(s), Piece::End) => {
                    out.insert(s);
                    pos += utf16_len(s);
                    pa.skip_insert(s.len());
                }
                (Piece::Insert(s), y) => {
                    let (bytes, units) =
                        split_utf16(s, y.units()).map_err(|at| OtError::SplitsSurrogatePair {
                            at: saturate(pos + at),
                        })?;
                    if let Piece::Retain(_) = y {
                        out.insert(&s[..bytes]);
                    }
                    pos += units;
                    pa.skip_insert(bytes);
                    pb.skip_units(units);
                }
                (x, y) => {
                    let n = x.units().min(y.units());
                    if let Piece::Delete(_) = y {
                        out.delete_units(n);
                    } else {
                        out.retain_units(n);
                    }
                    pos += n;
                    pa.skip_units(n);
                    pb.skip_units(n);
                }
            }
        }
        Ok(out.finished())
    }

    /// Where a position moves when this operation is applied. `stick_after`: at
    /// a tie with an insert at exactly `index`, move after the inserted text
    /// (`true`) or stay before it (`false`). A position inside a deleted range
    /// moves to the start of the deletion.
    pub fn transform_index(&self, index: u32, stick_after: bool) -> u32 {
        let index = u64::from(index);
        let mut pos: u64 = 0; // In the base text.
        let mut moved = index as i64;
        for c in &self.ops {
            if pos > index {
                break;
            }
            match c {
                Component::Retain(n) => pos += u64::from(*n),
                Component::Insert(s) => {
                    if pos < index || stick_after {
                        moved += utf16_len(s) as i64;
                    }
                }
                Component::Delete(n) => {
                    let n = u64::from(*n);
                    moved -= (index - pos).min(n) as i64;
                    pos += n;
                }
            }
        }
        saturate(moved.max(0) as u64)
    }

    /// The UTF-16 positions this operation touches in the base text, for checks
    /// against surrogate pairs: every position where it inserts, and the start
    /// and end of every delete. Ascending, without duplicates.
    pub fn touched_positions(&self) -> Vec<u32> {
        let mut out: Vec<u32> = Vec::new();
        let mut push = |p: u64| {
            let p = saturate(p);
            if out.last() != Some(&p) {
                out.push(p);
            }
        };
        let mut pos: u64 = 0;
        for c in &self.ops {
            match c {
                Component::Retain(n) => pos += u64::from(*n),
                Component::Insert(_) => push(pos),
                Component::Delete(n) => {
                    push(pos);
                    pos += u64::from(*n);
                    push(pos);
                }
            }
        }
        out
    }

    /// Drops a pending trailing retain (normal form).
    fn finished(mut self) -> Self {
        self.pending_retain = 0;
        self
    }
}

/// Walks a `&str` in UTF-16 units.
struct Utf16Cursor<'a> {
    text: &'a str,
    byte: usize,
    unit: u64,
}

impl Utf16Cursor<'_> {
    /// Moves forward `n` units. The caller checked the length.
    fn advance(&mut self, n: u64) -> Result<(), OtError> {
        let target = self.unit + n;
        let mut chars = self.text[self.byte..].chars();
        while self.unit < target {
            let Some(c) = chars.next() else {
                return Err(OtError::OutOfRange {
                    needed: saturate(target),
                    len: saturate(self.unit),
                });
            };
            let units = c.len_utf16() as u64;
            if self.unit + units > target {
                return Err(OtError::SplitsSurrogatePair {
                    at: saturate(target),
                });
            }
            self.unit += units;
            self.byte += c.len_utf8();
        }
        Ok(())
    }
}

/// The first `units` UTF-16 units of `s` (all of it if shorter), as
/// `(bytes, units)`, or `Err(units)` if that splits a surrogate pair.
fn split_utf16(s: &str, units: u64) -> Result<(usize, u64), u64> {
    let mut taken_units = 0u64;
    for (i, c) in s.char_indices() {
        if taken_units == units {
            return Ok((i, taken_units));
        }
        taken_units += c.len_utf16() as u64;
        if taken_units > units {
            return Err(units);
        }
    }
    Ok((s.len(), taken_units))
}

/// What is left of the current component of an operation.
#[derive(Clone, Copy)]
enum Piece<'a> {
    Retain(u64),
    Delete(u64),
    Insert(&'a str),
    /// The operation has ended: it retains the rest.
    End,
}

impl Piece<'_> {
    /// Length of a retain or delete; an ended operation retains forever.
    fn units(&self) -> u64 {
        match self {
            Piece::Retain(n) | Piece::Delete(n) => *n,
            Piece::Insert(s) => utf16_len(s),
            Piece::End => u64::MAX,
        }
    }
}

/// Consumes an operation piece by piece.
struct Pieces<'a> {
    ops: &'a [Component],
    index: usize,
    /// Units of the current retain or delete, or bytes of the current insert,
    /// already consumed.
    offset: u64,
}

impl<'a> Pieces<'a> {
    fn new(op: &'a TextOperation) -> Self {
        Self {
            ops: &op.ops,
            index: 0,
            offset: 0,
        }
    }

    fn peek(&self) -> Piece<'a> {
        match self.ops.get(self.index) {
            None => Piece::End,
            Some(Component::Retain(n)) => Piece::Retain(u64::from(*n) - self.offset),
            Some(Component::Delete(n)) => Piece::Delete(u64::from(*n) - self.offset),
            Some(Component::Insert(s)) => Piece::Insert(&s[self.offset as usize..]),
        }
    }

    /// Consumes `n` units of the current retain or delete (nothing once ended).
    fn skip_units(&mut self, n: u64) {
        if let Some(Component::Retain(len) | Component::Delete(len)) = self.ops.get(self.index) {
            self.offset += n;
            if self.offset >= u64::from(*len) {
                self.index += 1;
                self.offset = 0;
            }
        }
    }

    /// Consumes `bytes` bytes of the current insert.
    fn skip_insert(&mut self, bytes: usize) {
        if let Some(Component::Insert(s)) = self.ops.get(self.index) {
            self.offset += bytes as u64;
            if self.offset >= s.len() as u64 {
                self.index += 1;
                self.offset = 0;
            }
        }
    }
}

impl Serialize for TextOperation {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.ops.len()))?;
        for c in &self.ops {
            match c {
                Component::Retain(n) => seq.serialize_element(n)?,
                Component::Insert(s) => seq.serialize_element(s)?,
                Component::Delete(n) => seq.serialize_element(&-i64::from(*n))?,
            }
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for TextOperation {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_seq(OperationVisitor)
    }
}

fn malformed<E: de::Error>(why: impl Into<String>) -> E {
    E::custom(OtError::Malformed(why.into()))
}

struct OperationVisitor;

impl<'de> Visitor<'de> for OperationVisitor {
    type Value = TextOperation;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a text operation: an array of positive integers (retain), strings (insert) and negative integers (delete)")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<TextOperation, A::Error> {
        let mut op = TextOperation::new();
        let mut count = 0usize;
        while let Some(WireComponent(c)) = seq.next_element()? {
            count += 1;
            if count > MAX_WIRE_COMPONENTS {
                return Err(malformed(format!(
                    "more than {MAX_WIRE_COMPONENTS} components"
                )));
            }
            match c {
                Component::Retain(n) => op.retain(n),
                Component::Insert(s) => op.insert(&s),
                Component::Delete(n) => op.delete(n),
            };
        }
        Ok(op.finished())
    }
}

/// One element of the wire array.
struct WireComponent(Component);

impl<'de> Deserialize<'de> for WireComponent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(ComponentVisitor)
            .map(WireComponent)
    }
}

struct ComponentVisitor;

impl Visitor<'_> for ComponentVisitor {
    type Value = Component;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a non-zero integer or a non-empty string")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Component, E> {
        match u32::try_from(v) {
            Ok(0) => Err(malformed("zero-length component")),
            Ok(n) => Ok(Component::Retain(n)),
            Err(_) => Err(malformed(format!("retain {v} is longer than {}", u32::MAX))),
        }
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Component, E> {
        if v >= 0 {
            return self.visit_u64(v as u64);
        }
        match u32::try_from(v.unsigned_abs()) {
            Ok(n) => Ok(Component::Delete(n)),
            Err(_) => Err(malformed(format!(
                "delete {} is longer than {}",
                v.unsigned_abs(),
                u32::MAX
            ))),
        }
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Component, E> {
        Err(malformed(format!("{v} is not an integer")))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Component, E> {
        self.visit_string(v.to_owned())
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Component, E> {
        if v.is_empty() {
            return Err(malformed("empty insert"));
        }
        Ok(Component::Insert(v))
    }
}

#[cfg(test)]
mod tests;
