//! Receiving automerge sync messages in time proportional to what they carry.
//!
//! automerge 0.6's own `receive_sync_message` trims the sync state's record of
//! sent changes by walking every ancestor of the peer's heads: the whole
//! history, on every message, even when nothing was sent (measured: ~0.4 ms a
//! message at 10k changes, growing with history). A server that receives one
//! message per keystroke cannot afford that. The sync state and the message are
//! plain data in automerge's API, so this module does the same bookkeeping
//! with lookups that cost what the message carries: the changes it brings, and
//! only when something was sent, the changes the peer still lacks.

use std::collections::HashSet;

use automerge::sync::{Message, State};
use automerge::{AutoCommit, AutomergeError, ChangeHash, Patch};

/// Decodes a sync message from a peer, refusing what automerge would decode
/// but then panic or stall on: a `have` Bloom filter with entries but no bits
/// per entry divides by zero when it is probed (a remote crash, found by the
/// `document_sync` fuzz target), and one with a huge probe count makes every
/// probe allocate and loop that many times. automerge itself writes 10 bits
/// per entry and 7 probes; anything within a generous margin is accepted.
pub(crate) fn decode(bytes: &[u8]) -> Result<Message, String> {
    let message = Message::decode(bytes).map_err(|e| e.to_string())?;
    for have in &message.have {
        let filter = have.bloom.to_bytes();
        let mut header = filter.as_slice();
        let mut field = || leb128_u64(&mut header);
        // An empty filter (no entries) is never probed.
        let Some(entries) = field() else { continue };
        let (bits_per_entry, probes) = (field().unwrap_or(0), field().unwrap_or(0));
        if entries > 0 && !(1..=64).contains(&bits_per_entry) {
            return Err(format!(
                "a Bloom filter with {bits_per_entry} bits per entry"
            ));
        }
        if entries > 0 && !(1..=64).contains(&probes) {
            return Err(format!("a Bloom filter with {probes} probes"));
        }
    }
    Ok(message)
}

/// Reads one unsigned LEB128 number from the front of `input`.
fn leb128_u64(input: &mut &[u8]) -> Option<u64> {
    let mut value: u64 = 0;
    for (i, byte) in input.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            *input = &input[i + 1..];
            return Some(value);
        }
    }
    None
}

/// Applies a sync message to `doc` and `state`, as automerge's
/// `receive_sync_message` does. With `patches`, returns the patches its
/// changes made (text positions in the document's encoding).
pub(crate) fn receive(
    doc: &mut AutoCommit,
    state: &mut State,
    message: Message,
    patches: bool,
) -> Result<Vec<Patch>, AutomergeError> {
    let Message {
        heads,
        need,
        have,
        changes,
        supported_capabilities,
        ..
    } = message;
    state.in_flight = false;
    let before = doc.get_heads();
    if let Some(caps) = supported_capabilities {
        state.their_capabilities = Some(caps);
    }
    let mut made = Vec::new();
    if !changes.is_empty() {
        if patches {
            doc.update_diff_cursor();
        }
        for chunk in changes.iter() {
            doc.load_incremental(chunk)?;
        }
        if patches {
            made = doc.diff_incremental();
            doc.reset_diff_cursor();
        }
        let after = doc.get_heads();
        state.shared_heads = advance_heads(&before, &after, &state.shared_heads);
    }
    let known: Vec<ChangeHash> = heads
        .iter()
        .filter(|h| doc.get_change_by_hash(h).is_some())
        .copied()
        .collect();
    if !state.sent_hashes.is_empty() {
        // Keep only what the peer has not acknowledged by its heads: the
        // changes after its (known) heads.
        let unseen: HashSet<ChangeHash> =
            doc.get_changes(&known).iter().map(|c| c.hash()).collect();
        state.sent_hashes.retain(|h| unseen.contains(h));
    }
    if changes.is_empty() && heads == before {
        state.last_sent_heads.clone_from(&heads);
    }
    if known.len() == heads.len() {
        state.shared_heads.clone_from(&heads);
        if heads.is_empty() {
            // The peer lost everything: start a full sync again.
            state.last_sent_heads = Vec::new();
            state.sent_hashes = Default::default();
        }
    } else {
        let mut shared: Vec<ChangeHash> =
            state.shared_heads.iter().chain(&known).copied().collect();
        shared.sort();
        shared.dedup();
        state.shared_heads = shared;
    }
    state.their_have = Some(have);
    state.their_heads = Some(heads);
    state.their_need = Some(need);
    Ok(made)
}

/// The heads both sides share after we applied changes: our new heads, and
/// the old shared heads that are still heads.
fn advance_heads(
    before: &[ChangeHash],
    after: &[ChangeHash],
    shared: &[ChangeHash],
) -> Vec<ChangeHash> {
    let before: HashSet<&ChangeHash> = before.iter().collect();
    let after_set: HashSet<&ChangeHash> = after.iter().collect();
    let mut heads: Vec<ChangeHash> = after
        .iter()
        .filter(|h| !before.contains(h))
        .chain(shared.iter().filter(|h| after_set.contains(h)))
        .copied()
        .collect();
    heads.sort();
    heads.dedup();
    heads
}
