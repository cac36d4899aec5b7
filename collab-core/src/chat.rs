//! Chat: messages, code comments anchored at a file and line, threads,
//! @mentions, reactions, edits and soft deletes.
//!
//! Message ids are the event-log sequence number of the post, so every client
//! sees messages in the one order the server gave them.

use std::collections::{BTreeMap, BTreeSet};

use crate::ids::{ParticipantId, Seq};
use crate::time::Timestamp;

pub use collab_wire::chat::{ChatMessage, ChatPage, CodeAnchor};

/// Limits on chat input.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChatLimits {
    /// Longest message, in characters (default 4,000).
    pub max_message_chars: usize,
    /// Longest reaction, in characters (default 16: one emoji with modifiers).
    pub max_reaction_chars: usize,
    /// Most messages one history page returns (default 200).
    pub max_page: usize,
}

impl Default for ChatLimits {
    fn default() -> Self {
        Self {
            max_message_chars: 4_000,
            max_reaction_chars: 16,
            max_page: 200,
        }
    }
}

/// A chat request that cannot be carried out. All are the caller's mistake;
/// none changes anything.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChatError {
    /// The message is empty or only white space.
    #[error("message is empty")]
    Empty,
    /// The message is longer than the limit.
    #[error("message has {len} characters; the limit is {max}")]
    TooLong {
        /// Characters sent.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// No message with that id.
    #[error("no message {0}")]
    UnknownMessage(Seq),
    /// Only a message's author may edit it.
    #[error("only the author may edit a message")]
    NotAuthor,
    /// The message was deleted.
    #[error("message {0} was deleted")]
    Deleted(Seq),
    /// A reaction must be a short run of non-space characters.
    #[error("a reaction is 1 to {max} characters with no white space")]
    BadReaction {
        /// The limit.
        max: usize,
    },
    /// Code comment anchors need a file path.
    #[error("a code comment needs a file path")]
    BadAnchor,
}

/// The messages of one session, in sequence order.
#[derive(Debug, Clone, Default)]
pub(crate) struct Chat {
    messages: Vec<ChatMessage>,
    /// Messages posted or changed since [`Chat::take_changed`], to store.
    changed: BTreeSet<Seq>,
    /// Messages by their author's client id, for idempotent posting.
    by_cid: std::collections::HashMap<(ParticipantId, String), Seq>,
}

/// What [`Chat::post`] needs besides the text.
pub(crate) struct NewMessage {
    pub(crate) id: Seq,
    pub(crate) author: ParticipantId,
    pub(crate) text: String,
    pub(crate) anchor: Option<CodeAnchor>,
    pub(crate) reply_to: Option<Seq>,
    pub(crate) mentions: Vec<ParticipantId>,
    pub(crate) at: Timestamp,
    pub(crate) cid: Option<String>,
}

impl Chat {
    pub(crate) fn check_text(text: &str, limits: &ChatLimits) -> Result<(), ChatError> {
        if text.trim().is_empty() {
            return Err(ChatError::Empty);
        }
        let len = text.chars().count();
        if len > limits.max_message_chars {
            return Err(ChatError::TooLong {
                len,
                max: limits.max_message_chars,
            });
        }
        Ok(())
    }

    pub(crate) fn check_anchor(anchor: Option<&CodeAnchor>) -> Result<(), ChatError> {
        match anchor {
            Some(a) if a.file.is_empty() || a.file.len() > crate::presence::MAX_FILE_PATH_BYTES => {
                Err(ChatError::BadAnchor)
            }
            _ => Ok(()),
        }
    }

    pub(crate) fn check_reaction(emoji: &str, limits: &ChatLimits) -> Result<(), ChatError> {
        let n = emoji.chars().count();
        if n == 0 || n > limits.max_reaction_chars || emoji.chars().any(char::is_whitespace) {
            return Err(ChatError::BadReaction {
                max: limits.max_reaction_chars,
            });
        }
        Ok(())
    }

    /// The thread a reply to `parent` belongs to.
    pub(crate) fn thread_of(&self, parent: Seq) -> Result<Seq, ChatError> {
        Ok(self
            .get(parent)
            .ok_or(ChatError::UnknownMessage(parent))?
            .thread)
    }

    pub(crate) fn get(&self, id: Seq) -> Option<&ChatMessage> {
        self.index(id).map(|i| &self.messages[i])
    }

    fn index(&self, id: Seq) -> Option<usize> {
        self.messages.binary_search_by_key(&id, |m| m.id).ok()
    }

    /// A message to change; it counts as changed (to store) from here.
    fn get_mut(&mut self, id: Seq) -> Result<&mut ChatMessage, ChatError> {
        let i = self.index(id).ok_or(ChatError::UnknownMessage(id))?;
        self.changed.insert(id);
        Ok(&mut self.messages[i])
    }

    /// Calls `f` on the anchor in `file` of each message of `ids`, to move
    /// them with edits. Looks each one up, so it costs the anchored messages,
    /// not the whole chat.
    pub(crate) fn for_each_anchor_in(
        &mut self,
        ids: &[Seq],
        file: &str,
        mut f: impl FnMut(&mut CodeAnchor),
    ) {
        for id in ids {
            if let Some(i) = self.index(*id) {
                if let Some(anchor) = self.messages[i].anchor.as_mut().filter(|a| a.file == file) {
                    let before = anchor.clone();
                    f(anchor);
                    if *anchor != before {
                        self.changed.insert(*id);
                    }
                }
            }
        }
    }

    /// Adds a message checked by the caller. Ids must increase.
    pub(crate) fn post(&mut self, new: NewMessage) -> ChatMessage {
        debug_assert!(self.messages.last().is_none_or(|m| m.id < new.id));
        let thread = match new.reply_to {
            Some(parent) => self.get(parent).map_or(new.id, |p| p.thread),
            None => new.id,
        };
        let message = ChatMessage {
            id: new.id,
            author: new.author,
            text: new.text,
            anchor: new.anchor,
            reply_to: new.reply_to,
            thread,
            mentions: new.mentions,
            reactions: BTreeMap::new(),
            posted_at: new.at,
            edited_at: None,
            deleted: false,
            cid: new.cid,
        };
        if let Some(cid) = &message.cid {
            self.by_cid
                .insert((message.author, cid.clone()), message.id);
        }
        self.messages.push(message.clone());
        self.changed.insert(message.id);
        message
    }

    /// A chat holding stored messages (any order).
    pub(crate) fn restore(mut messages: Vec<ChatMessage>) -> Self {
        messages.sort_by_key(|m| m.id);
        messages.dedup_by_key(|m| m.id);
        let by_cid = messages
            .iter()
            .filter_map(|m| Some(((m.author, m.cid.clone()?), m.id)))
            .collect();
        Self {
            messages,
            changed: BTreeSet::new(),
            by_cid,
        }
    }

    /// The message `author` posted with client id `cid`, if any.
    pub(crate) fn posted_as(&self, author: ParticipantId, cid: &str) -> Option<Seq> {
        self.by_cid.get(&(author, cid.to_owned())).copied()
    }

    /// The messages posted or changed since the last call, to store.
    pub(crate) fn take_changed(&mut self) -> Vec<ChatMessage> {
        std::mem::take(&mut self.changed)
            .into_iter()
            .filter_map(|id| self.get(id).cloned())
            .collect()
    }

    /// Every message, oldest first.
    pub(crate) fn all(&self) -> &[ChatMessage] {
        &self.messages
    }

    /// Checks that `by` may edit message `id`.
    pub(crate) fn check_edit(&self, id: Seq, by: ParticipantId) -> Result<(), ChatError> {
        let m = self.get(id).ok_or(ChatError::UnknownMessage(id))?;
        if m.deleted {
            return Err(ChatError::Deleted(id));
        }
        if m.author != by {
            return Err(ChatError::NotAuthor);
        }
        Ok(())
    }

    pub(crate) fn edit(
        &mut self,
        id: Seq,
        text: String,
        mentions: Vec<ParticipantId>,
        at: Timestamp,
    ) -> Result<(), ChatError> {
        let m = self.get_mut(id)?;
        m.text = text;
        m.mentions = mentions;
        m.edited_at = Some(at);
        Ok(())
    }

    /// Checks that message `id` exists and is not deleted yet; returns its author.
    pub(crate) fn check_live(&self, id: Seq) -> Result<ParticipantId, ChatError> {
        let m = self.get(id).ok_or(ChatError::UnknownMessage(id))?;
        if m.deleted {
            return Err(ChatError::Deleted(id));
        }
        Ok(m.author)
    }

    pub(crate) fn delete(&mut self, id: Seq) -> Result<(), ChatError> {
        let m = self.get_mut(id)?;
        m.deleted = true;
        m.text.clear();
        m.mentions.clear();
        m.reactions.clear();
        Ok(())
    }

    /// Adds or removes `who`'s `emoji` on message `id`; returns whether it is now there.
    pub(crate) fn toggle_reaction(
        &mut self,
        id: Seq,
        emoji: &str,
        who: ParticipantId,
    ) -> Result<bool, ChatError> {
        let m = self.get_mut(id)?;
        if m.deleted {
            return Err(ChatError::Deleted(id));
        }
        let set = m.reactions.entry(emoji.to_owned()).or_default();
        let added = set.insert(who);
        if !added {
            set.remove(&who);
            if set.is_empty() {
                m.reactions.remove(emoji);
            }
        }
        Ok(added)
    }

    /// Up to `limit` messages before `before` (or the newest), oldest first.
    pub(crate) fn page(&self, before: Option<Seq>, limit: usize) -> ChatPage {
        let end = match before {
            Some(b) => self.messages.partition_point(|m| m.id < b),
            None => self.messages.len(),
        };
        let start = end.saturating_sub(limit);
        ChatPage {
            messages: self.messages[start..end].to_vec(),
            has_more: start > 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.messages.len()
    }
}

/// Finds `@name` mentions in `text`.
///
/// A mention is `@` at the start or after a character that is not a letter or
/// digit, followed by a participant's display name (case-insensitive, names may
/// contain spaces), followed by the end or a character that is not a letter or
/// digit. The longest name wins, so `@Ann Lee` mentions "Ann Lee", not "Ann".
pub(crate) fn find_mentions<'a>(
    text: &str,
    people: impl Iterator<Item = (ParticipantId, &'a str)>,
) -> Vec<ParticipantId> {
    let mut people: Vec<(ParticipantId, String)> = people
        .filter(|(_, name)| !name.is_empty())
        .map(|(id, name)| (id, name.to_lowercase()))
        .collect();
    people.sort_by_key(|(_, name)| std::cmp::Reverse(name.len()));
    let lower = text.to_lowercase();
    let mut found = BTreeSet::new();
    let mut prev: Option<char> = None;
    for (i, c) in lower.char_indices() {
        if c == '@' && !prev.is_some_and(char::is_alphanumeric) {
            let rest = &lower[i + 1..];
            let mut best: Option<usize> = None;
            for (id, name) in &people {
                if best.is_some_and(|len| name.len() < len) {
                    break;
                }
                let ends_cleanly = rest
                    .strip_prefix(name.as_str())
                    .is_some_and(|after| !after.chars().next().is_some_and(char::is_alphanumeric));
                if ends_cleanly {
                    best = Some(name.len());
                    found.insert(*id);
                }
            }
        }
        prev = Some(c);
    }
    found.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn people() -> Vec<(ParticipantId, &'static str)> {
        vec![
            (ParticipantId(1), "Ann"),
            (ParticipantId(2), "Ann Lee"),
            (ParticipantId(3), "bob"),
            (ParticipantId(4), "Zoë"),
        ]
    }

    #[test]
    fn mentions_resolve_to_participants() {
        let m = |t: &str| find_mentions(t, people().into_iter());
        assert_eq!(m("hi @Bob, look"), vec![ParticipantId(3)]);
        assert_eq!(m("@ann lee please"), vec![ParticipantId(2)]);
        assert_eq!(m("@Ann please"), vec![ParticipantId(1)]);
        assert_eq!(m("mail ann@bob.com"), vec![]);
        assert_eq!(m("@bobby"), vec![]);
        assert_eq!(m("@zoë and @BOB"), vec![ParticipantId(3), ParticipantId(4)]);
        assert_eq!(m("@nobody @"), vec![]);
    }

    fn post(chat: &mut Chat, id: u64, reply_to: Option<u64>) -> ChatMessage {
        chat.post(NewMessage {
            id: Seq(id),
            author: ParticipantId(1),
            text: format!("m{id}"),
            anchor: None,
            reply_to: reply_to.map(Seq),
            mentions: vec![],
            at: Timestamp(id),
            cid: None,
        })
    }

    #[test]
    fn replies_join_the_root_thread() {
        let mut chat = Chat::default();
        post(&mut chat, 1, None);
        assert_eq!(post(&mut chat, 2, Some(1)).thread, Seq(1));
        assert_eq!(
            post(&mut chat, 3, Some(2)).thread,
            Seq(1),
            "reply to a reply"
        );
        assert_eq!(post(&mut chat, 4, None).thread, Seq(4));
    }

    #[test]
    fn pages_walk_back_through_history() {
        let mut chat = Chat::default();
        for id in 1..=10 {
            post(&mut chat, id * 2, None);
        }
        let last = chat.page(None, 3);
        assert_eq!(
            last.messages.iter().map(|m| m.id.0).collect::<Vec<_>>(),
            vec![16, 18, 20]
        );
        assert!(last.has_more);
        let before = chat.page(Some(Seq(16)), 3);
        assert_eq!(
            before.messages.iter().map(|m| m.id.0).collect::<Vec<_>>(),
            vec![10, 12, 14]
        );
        let first = chat.page(Some(Seq(5)), 3);
        assert_eq!(
            first.messages.iter().map(|m| m.id.0).collect::<Vec<_>>(),
            vec![2, 4]
        );
        assert!(!first.has_more);
    }

    #[test]
    fn reactions_toggle() {
        let mut chat = Chat::default();
        post(&mut chat, 1, None);
        assert!(chat
            .toggle_reaction(Seq(1), "👍", ParticipantId(2))
            .unwrap());
        assert!(chat
            .toggle_reaction(Seq(1), "👍", ParticipantId(3))
            .unwrap());
        assert!(!chat
            .toggle_reaction(Seq(1), "👍", ParticipantId(2))
            .unwrap());
        assert_eq!(chat.get(Seq(1)).unwrap().reactions["👍"].len(), 1);
        assert!(!chat
            .toggle_reaction(Seq(1), "👍", ParticipantId(3))
            .unwrap());
        assert!(chat.get(Seq(1)).unwrap().reactions.is_empty());
        assert_eq!(
            chat.toggle_reaction(Seq(9), "👍", ParticipantId(3)),
            Err(ChatError::UnknownMessage(Seq(9)))
        );
    }

    #[test]
    fn text_limits() {
        let limits = ChatLimits {
            max_message_chars: 5,
            ..Default::default()
        };
        assert_eq!(Chat::check_text("   ", &limits), Err(ChatError::Empty));
        assert_eq!(
            Chat::check_text("ééééé", &limits),
            Ok(()),
            "counts characters, not bytes"
        );
        assert_eq!(
            Chat::check_text("123456", &limits),
            Err(ChatError::TooLong { len: 6, max: 5 })
        );
        assert!(Chat::check_reaction("👍🏽", &limits).is_ok());
        assert!(Chat::check_reaction("a b", &limits).is_err());
        assert!(Chat::check_reaction("", &limits).is_err());
    }
}
