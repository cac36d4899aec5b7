//! Receiving automerge sync messages from the network.
//!
//! automerge decodes a `have` Bloom filter as it finds it and divides by its
//! size when probing it, so a crafted message can crash or stall the server;
//! [`decode`] refuses those before automerge sees them. Receiving is
//! automerge's own (collab once kept its own copy of the bookkeeping, for
//! automerge 0.6, whose receive walked the whole history on every message).

use automerge::sync::{ChunkList, Message, MessageFlags, State, SyncDoc};
use automerge::{AutoCommit, AutomergeError, Patch, PatchLog};

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

/// Decodes several sync messages from one peer, in order, into one: every
/// message's changes, and the last one's heads, needs and haves (each
/// message states the sender's whole sync state, so the last one supersedes
/// the others). A reset asked for by any of them is kept. `None` for no
/// messages.
pub(crate) fn decode_all(messages: &[&[u8]]) -> Result<Option<Message>, String> {
    let mut chunks = Vec::new();
    let mut reset = false;
    let mut last = None;
    let merging = messages.len() > 1;
    for (i, bytes) in messages.iter().enumerate() {
        let message = decode(bytes)?;
        if merging {
            // automerge stops at the first change it cannot read and keeps
            // the ones before it, and a message with no heads restarts the
            // sync: merged, either would lose what later messages carry.
            // Such a burst is applied one message at a time instead.
            if i + 1 < messages.len() && message.heads.is_empty() {
                return Err("a message that restarts the sync, in a burst".into());
            }
            if let Some(bad) = message
                .changes
                .iter()
                .find_map(|c| automerge::Change::try_from(c).err())
            {
                return Err(format!("a change that cannot be read: {bad}"));
            }
        }
        chunks.extend(message.changes.iter().map(<[u8]>::to_vec));
        reset |= message
            .flags
            .is_some_and(|f| f.contains(MessageFlags::SYNC_RESET));
        last = Some(message);
    }
    let Some(mut message) = last else {
        return Ok(None);
    };
    if messages.len() > 1 {
        message.changes = ChunkList::from(chunks);
        if reset {
            message
                .flags
                .get_or_insert_with(MessageFlags::new)
                .set(MessageFlags::SYNC_RESET);
        }
    }
    Ok(Some(message))
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

/// Applies a sync message to `doc` and `state` with automerge's own
/// bookkeeping (from 0.7 on it trims the record of sent changes through the
/// change graph, not by walking the history). With `patches`, returns the
/// patches its changes made (text positions in the document's encoding).
pub(crate) fn receive(
    doc: &mut AutoCommit,
    state: &mut State,
    message: Message,
    patches: bool,
) -> Result<Vec<Patch>, AutomergeError> {
    // Pending local edits become a change of their own before remote ones land.
    doc.commit();
    if !patches {
        doc.sync().receive_sync_message(state, message)?;
        return Ok(Vec::new());
    }
    let mut log = PatchLog::active();
    // automerge 0.12 has `expect`s on what a peer's changes name (their
    // actors, sequence numbers): a crafted change must cost the sender a
    // refusal, not the session its task.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        doc.sync()
            .receive_sync_message_log_patches(state, message, &mut log)
    }))
    .map_err(|_| AutomergeError::Fail)??;
    Ok(doc.make_patches(&mut log))
}
