//! Large binary messages in parts.
//!
//! A WebSocket layer buffers a whole message before anyone sees it, so the
//! server keeps its WebSocket message limit small (a text frame's limit, twice
//! over) and a replica sends a sync message larger than a frame in **parts**:
//! binary frames that each carry a slice of the message behind a 9-byte
//! header,
//!
//! ```text
//! 0x50 'P' | total length: u32, big-endian | offset: u32, big-endian | bytes
//! ```
//!
//! in order, from offset 0 until `total` bytes have come. The first part
//! tells the receiver the message's whole size before it holds any of it, so
//! a message over the limit, or one the receiver has no room for now, is
//! refused before it is buffered. No sync message and no saved document
//! starts with `0x50`, so a binary frame is either a whole message or a part.
//!
//! [`split`] cuts a message into frames; [`Assembler`] puts one back
//! together, without IO, for whatever holds the connection.
//!
//! ```
//! use collab_wire::parts::{split, Assembled, Assembler, Part};
//!
//! let message: Vec<u8> = (0..200u8).collect();
//! let frames = split(&message, 64);
//! assert!(frames.len() > 1);
//! let mut assembler = Assembler::new();
//! let mut whole = None;
//! for frame in &frames {
//!     let part = Part::decode(frame).expect("a part").expect("well formed");
//!     if part.offset == 0 {
//!         assembler.start(part.total as usize);
//!     }
//!     if let Assembled::Whole(bytes) = assembler.push(&part).unwrap() {
//!         whole = Some(bytes);
//!     }
//! }
//! assert_eq!(whole, Some(message));
//! ```

use crate::protocol::ProtocolError;

/// The first byte of a part.
pub const PART_TAG: u8 = 0x50;

/// Bytes of a part's header: the tag, the total length and the offset.
pub const PART_HEADER_BYTES: usize = 9;

/// One part of a message, as read from a binary frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part<'a> {
    /// The whole message's length, in bytes.
    pub total: u32,
    /// Where this part's bytes go in the message.
    pub offset: u32,
    /// This part's bytes.
    pub bytes: &'a [u8],
}

impl<'a> Part<'a> {
    /// Reads a binary frame as a part: `None` when the frame is a whole
    /// message (it does not start with [`PART_TAG`]).
    ///
    /// # Errors
    /// [`ProtocolError::Malformed`] for a part whose header is cut short,
    /// whose bytes run past its total, or that carries nothing.
    pub fn decode(frame: &'a [u8]) -> Option<Result<Self, ProtocolError>> {
        if frame.first() != Some(&PART_TAG) {
            return None;
        }
        let malformed = |why: &str| Some(Err(ProtocolError::Malformed(format!("part: {why}"))));
        let Some(header) = frame.get(1..PART_HEADER_BYTES) else {
            return malformed("header cut short");
        };
        let total = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
        let offset = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
        let bytes = &frame[PART_HEADER_BYTES..];
        if bytes.is_empty() {
            return malformed("no bytes");
        }
        if u64::from(offset) + bytes.len() as u64 > u64::from(total) {
            return malformed("bytes past the total");
        }
        Some(Ok(Part {
            total,
            offset,
            bytes,
        }))
    }

    /// Whether this is the message's last part.
    pub fn is_last(&self) -> bool {
        self.offset as usize + self.bytes.len() == self.total as usize
    }
}

/// The binary frames that carry `message`, none larger than `max_frame`
/// bytes: the message itself when it fits, else parts. A `max_frame` too
/// small for a header and one byte is taken as the smallest that is not. A
/// message of 4 GiB or more, which no header can describe, is returned whole.
pub fn split(message: &[u8], max_frame: usize) -> Vec<Vec<u8>> {
    let fits = message.len() <= max_frame && message.first() != Some(&PART_TAG);
    let Ok(total) = u32::try_from(message.len()) else {
        return vec![message.to_vec()];
    };
    if fits || message.is_empty() {
        return vec![message.to_vec()];
    }
    let room = max_frame.max(PART_HEADER_BYTES + 1) - PART_HEADER_BYTES;
    message
        .chunks(room)
        .scan(0u32, |offset, bytes| {
            let mut frame = Vec::with_capacity(PART_HEADER_BYTES + bytes.len());
            frame.push(PART_TAG);
            frame.extend_from_slice(&total.to_be_bytes());
            frame.extend_from_slice(&offset.to_be_bytes());
            frame.extend_from_slice(bytes);
            // The chunks add up to `total`, which fits in a u32.
            *offset += bytes.len() as u32;
            Some(frame)
        })
        .collect()
}

/// Puts one message at a time back together from its parts.
///
/// Whoever drives it decides whether a message may start (its size against
/// a limit and whatever room is left) and calls [`Assembler::start`] on the
/// first part; parts of a message that was not started are dropped without
/// a word, since their refusal was already told.
#[derive(Debug, Default)]
pub struct Assembler {
    buf: Vec<u8>,
    total: usize,
    started: bool,
}

/// What a part came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Assembled {
    /// More parts are to come.
    Pending,
    /// The part belonged to no message being put together (its first part
    /// was refused): dropped.
    Dropped,
    /// The message is whole.
    Whole(Vec<u8>),
}

impl Assembler {
    /// Nothing being put together.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts a message of `total` bytes, dropping any unfinished one. The
    /// buffer is taken at its full size at once: grown as parts came, its
    /// last move would hold the message one and a half times over.
    pub fn start(&mut self, total: usize) {
        self.buf = Vec::with_capacity(total);
        self.total = total;
        self.started = true;
    }

    /// Forgets the message being put together, if any.
    pub fn abandon(&mut self) {
        *self = Self::default();
    }

    /// Whether a message is being put together.
    pub fn is_started(&self) -> bool {
        self.started
    }

    /// Takes the next part.
    ///
    /// # Errors
    /// [`ProtocolError::Malformed`] for a part out of order or of another
    /// total than its message's first; the message is abandoned.
    pub fn push(&mut self, part: &Part<'_>) -> Result<Assembled, ProtocolError> {
        if !self.started {
            return Ok(Assembled::Dropped);
        }
        if part.total as usize != self.total || part.offset as usize != self.buf.len() {
            self.abandon();
            return Err(ProtocolError::Malformed("part: out of order".into()));
        }
        self.buf.extend_from_slice(part.bytes);
        if self.buf.len() < self.total {
            return Ok(Assembled::Pending);
        }
        let whole = std::mem::take(&mut self.buf);
        self.abandon();
        Ok(Assembled::Whole(whole))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assemble(frames: &[Vec<u8>]) -> Result<Vec<Vec<u8>>, ProtocolError> {
        let mut a = Assembler::new();
        let mut out = Vec::new();
        for frame in frames {
            match Part::decode(frame) {
                None => out.push(frame.clone()),
                Some(part) => {
                    let part = part?;
                    if part.offset == 0 {
                        a.start(part.total as usize);
                    }
                    if let Assembled::Whole(m) = a.push(&part)? {
                        out.push(m);
                    }
                }
            }
        }
        Ok(out)
    }

    #[test]
    fn small_messages_go_whole_and_large_ones_in_parts() {
        let small = vec![0x42, 1, 2, 3];
        assert_eq!(split(&small, 64), vec![small.clone()]);
        let large: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
        let frames = split(&large, 100);
        assert_eq!(frames.len(), 1000usize.div_ceil(91));
        assert!(frames.iter().all(|f| f.len() <= 100 && f[0] == PART_TAG));
        assert_eq!(assemble(&frames).unwrap(), vec![large]);
    }

    /// The vector `js/test/parts.test.mjs` checks `syncFrames` against.
    #[test]
    fn the_header_is_tag_total_and_offset_big_endian() {
        let message: Vec<u8> = (0..25).collect();
        let frames = split(&message, 19);
        assert_eq!(
            frames,
            [
                vec![PART_TAG, 0, 0, 0, 25, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
                vec![PART_TAG, 0, 0, 0, 25, 0, 0, 0, 10, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19],
                vec![PART_TAG, 0, 0, 0, 25, 0, 0, 0, 20, 20, 21, 22, 23, 24],
            ]
        );
    }

    #[test]
    fn a_message_that_starts_like_a_part_always_goes_in_parts() {
        let tricky = vec![PART_TAG, 0, 0, 0, 1];
        let frames = split(&tricky, 64);
        assert_eq!(frames.len(), 1);
        assert_ne!(frames[0], tricky);
        assert_eq!(assemble(&frames).unwrap(), vec![tricky]);
    }

    #[test]
    fn bad_parts_are_refused() {
        assert!(Part::decode(&[0x42]).is_none());
        assert!(matches!(
            Part::decode(&[PART_TAG, 0, 0]),
            Some(Err(ProtocolError::Malformed(_)))
        ));
        // No bytes.
        assert!(Part::decode(&[PART_TAG, 0, 0, 0, 4, 0, 0, 0, 0])
            .unwrap()
            .is_err());
        // Past the total.
        assert!(Part::decode(&[PART_TAG, 0, 0, 0, 1, 0, 0, 0, 0, 7, 7])
            .unwrap()
            .is_err());
        // Out of order: the second part again.
        let frames = split(&[9u8; 300], 100);
        let shuffled = [frames[0].clone(), frames[2].clone()];
        assert!(assemble(&shuffled).is_err());
        // A total that changes.
        let other = split(&[9u8; 400], 100);
        assert!(assemble(&[frames[0].clone(), other[1].clone()]).is_err());
    }

    #[test]
    fn parts_of_a_refused_message_are_dropped() {
        let frames = split(&[1u8; 300], 100);
        let mut a = Assembler::new();
        for frame in &frames[1..] {
            let part = Part::decode(frame).unwrap().unwrap();
            assert_eq!(a.push(&part).unwrap(), Assembled::Dropped);
        }
    }
}
