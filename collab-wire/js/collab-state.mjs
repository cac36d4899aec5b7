// collab-state: how a collab session's state, as a client keeps it, takes
// in what the server says. Pure: each function changes the state it is
// given and returns what happened, with no socket, timer or listener, so
// any client (CollabClient, a test, a server-side bot) can keep the same
// state from the same frames.
//
// The state is a plain object:
//   { lastSeq, participants: Map<id, ParticipantState>, session, messages: Map<id, ChatMessage> }

/** The presence of someone nobody has heard from. */
export const OFFLINE_PRESENCE = { status: "offline", cursors: [], typing: false, last_active: 0 };

/**
 * Takes a session event (PROTOCOL.md, "Events") into `state`, once: an
 * event at or before `state.lastSeq` is ignored (`null`). Otherwise
 * returns `{wasPresent}`: whether a joining participant was in already
 * (a reconnect), which a page reports differently from an arrival.
 * @param {{lastSeq: number, participants: Map<number, any>, session: any, messages: Map<number, any>}} state
 * @param {any} e
 * @returns {{wasPresent: boolean} | null}
 */
export function applyEvent(state, e) {
  if (e.seq <= state.lastSeq) return null;
  state.lastSeq = e.seq;
  const p = e.participant != null && typeof e.participant !== "object" ? state.participants.get(e.participant) : null;
  let wasPresent = false;
  switch (e.kind) {
    case "participant_joined": {
      const old = state.participants.get(e.participant.id);
      wasPresent = Boolean(old?.present);
      state.participants.set(e.participant.id, {
        presence: { ...OFFLINE_PRESENCE, cursors: [] },
        ...old,
        ...e.participant,
        present: true,
      });
      break;
    }
    case "participant_renamed":
      if (p) p.name = e.name;
      break;
    case "participant_left":
    case "participant_kicked":
      if (p) p.present = false;
      break;
    case "role_changed":
      if (p) p.role = e.role;
      break;
    case "session_updated":
      if (state.session) for (const key of ["title", "language", "status", "closes_at"]) if (e[key] !== undefined) state.session[key] = e[key];
      break;
    case "message_posted":
    case "comment_posted":
      state.messages.set(e.message.id, e.message);
      break;
    case "message_edited": {
      const m = state.messages.get(e.message);
      if (m) Object.assign(m, { text: e.text, mentions: e.mentions, edited_at: e.at });
      break;
    }
    case "message_deleted": {
      const m = state.messages.get(e.message);
      if (m) Object.assign(m, { deleted: true, text: "", mentions: [], reactions: {} });
      break;
    }
    case "reaction_toggled": {
      const m = state.messages.get(e.message);
      if (!m) break;
      const who = new Set(m.reactions?.[e.emoji] || []);
      if (e.added) who.add(e.participant);
      else who.delete(e.participant);
      m.reactions = { ...m.reactions, [e.emoji]: [...who].sort((a, b) => a - b) };
      if (who.size === 0) delete m.reactions[e.emoji];
      break;
    }
    case "session_ended":
      if (state.session) {
        state.session.status = "ended";
        state.session.end_reason = e.reason;
      }
      break;
    default:
      break;
  }
  return { wasPresent };
}

/**
 * Takes a `presence` frame into `state`; false when it names nobody the
 * state knows.
 * @param {{participants: Map<number, any>}} state
 * @param {{participant: number, presence: any}} frame
 * @returns {boolean}
 */
export function applyPresence(state, frame) {
  const p = state.participants.get(frame.participant);
  if (!p) return false;
  p.presence = frame.presence;
  return true;
}
