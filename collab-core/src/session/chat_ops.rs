//! Chat requests: posting, editing, deleting and reacting, with mentions.

use super::*;

impl Session {
    /// Up to `limit` chat messages before `before`, oldest first.
    pub fn chat_page(&self, before: Option<Seq>, limit: usize) -> ChatPage {
        self.chat.page(before, limit.min(self.config.chat.max_page))
    }

    /// One chat message.
    pub fn message(&self, id: Seq) -> Option<&ChatMessage> {
        self.chat.get(id)
    }

    pub(super) fn post(
        &mut self,
        me: ParticipantId,
        text: String,
        anchor: Option<CodeAnchor>,
        reply_to: Option<Seq>,
        cid: Option<String>,
        now: Timestamp,
    ) -> Result<Seq, SessionError> {
        Chat::check_text(&text, &self.config.chat)?;
        Chat::check_anchor(anchor.as_ref())?;
        let mut anchor = anchor;
        if let Some(a) = anchor.as_mut() {
            let start = self.document.line_start(&a.file, a.line).ok_or_else(|| {
                SessionError::InvalidInput(format!(
                    "{}:{} is not a line of the document",
                    a.file, a.line
                ))
            })?;
            a.offset = Some(start);
        }
        if let Some(parent) = reply_to {
            self.chat.thread_of(parent)?;
        }
        let mentions = self.mentions_in(&text);
        let is_comment = anchor.is_some();
        if is_comment {
            self.anchored.push(self.log.next_seq());
        }
        let message = self.chat.post(NewMessage {
            id: self.log.next_seq(),
            author: me,
            text,
            anchor,
            reply_to,
            mentions,
            at: now,
            cid,
        });
        self.touch_member(me, now);
        let kind = if is_comment {
            EventKind::CommentPosted { message }
        } else {
            EventKind::MessagePosted { message }
        };
        Ok(self.record(now, kind))
    }

    pub(super) fn edit_message(
        &mut self,
        me: ParticipantId,
        message: Seq,
        text: String,
        now: Timestamp,
    ) -> Result<Seq, SessionError> {
        self.chat.check_edit(message, me)?;
        Chat::check_text(&text, &self.config.chat)?;
        let mentions = self.mentions_in(&text);
        self.chat
            .edit(message, text.clone(), mentions.clone(), now)?;
        self.touch_member(me, now);
        Ok(self.record(
            now,
            EventKind::MessageEdited {
                message,
                text,
                mentions,
            },
        ))
    }

    pub(super) fn delete_message(
        &mut self,
        me: ParticipantId,
        message: Seq,
        now: Timestamp,
    ) -> Result<Seq, SessionError> {
        let author = self.chat.check_live(message)?;
        if author != me {
            self.authorize(Actor::Member(me), Action::DeleteAnyMessage)?;
        }
        self.chat.delete(message)?;
        self.touch_member(me, now);
        Ok(self.record(now, EventKind::MessageDeleted { message, by: me }))
    }

    pub(super) fn react(
        &mut self,
        me: ParticipantId,
        message: Seq,
        emoji: String,
        now: Timestamp,
    ) -> Result<Seq, SessionError> {
        Chat::check_reaction(&emoji, &self.config.chat)?;
        let added = self.chat.toggle_reaction(message, &emoji, me)?;
        self.touch_member(me, now);
        Ok(self.record(
            now,
            EventKind::ReactionToggled {
                message,
                emoji,
                participant: me,
                added,
            },
        ))
    }

    pub(super) fn mentions_in(&self, text: &str) -> Vec<ParticipantId> {
        find_mentions(
            text,
            self.current_members()
                .map(|m| (m.participant().id, m.participant().name.as_str())),
        )
    }
}
