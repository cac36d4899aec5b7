// The top bar and the connection indicator, drawn from the room's state.

import { byTestId, clockDay, h } from "./dom.js";
import { languageLabel } from "./languages.js";

/** After this long without an acknowledgement of local edits, the indicator says so. */
const UNSAVED_AFTER_MS = 3000;

/** Draws the top bar and the controls that depend on the session and the participant's role. */
export function renderHeader(room) {
  const el = room.el;
  const s = room.session;
  const me = room.participants.get(room.me);
  const role = me?.role ?? "viewer";
  const isHost = role === "host";
  if (s) {
    el.title.textContent = s.title || "Untitled interview";
    document.title = `${s.title || "Interview"} · Interview room`;
    el.status.textContent = s.status;
    el.status.dataset.status = s.status;
    const pickStatus = isHost && s.status !== "ended";
    el.status.hidden = pickStatus;
    el.statusSelect.hidden = !pickStatus;
    if (pickStatus && document.activeElement !== el.statusSelect) el.statusSelect.value = s.status;
    // A scheduled session shows when it closes; a host can extend it.
    const closes = s.closes_at && s.status !== "ended" ? s.closes_at : null;
    el.closesAt.hidden = !closes;
    el.closesAt.textContent = closes ? `Closes ${clockDay(closes)}` : "";
    el.extend.hidden = !closes || !isHost;
    const language = s.language || "plaintext";
    if (![...el.language.options].some((o) => o.value === language)) {
      el.language.append(h("option", { value: language }, languageLabel(language)));
    }
    if (document.activeElement !== el.language) el.language.value = language;
    room.editor.setLanguage(language);
  }
  el.language.disabled = !isHost;
  el.language.title = isHost ? "Language of the session" : "Only a host can change the language";
  el.endButton.hidden = !isHost;
  // Paused: the code is read-only for everyone but hosts, as the server enforces.
  const paused = s?.status === "paused" && role !== "host";
  const canEdit = role !== "viewer" && !paused && !room.reviewing;
  el.chatInput.disabled = Boolean(room.reviewing);
  byTestId("chat-send").disabled = Boolean(room.reviewing);
  el.chatInput.placeholder = room.reviewing ? "The session has ended: the chat is read-only." : "Message… (@name to mention, Enter to send)";
  // A pause keeps the editor focused (read-only, not taken out of the page),
  // so typing goes on where it stopped once the host resumes.
  room.editor.setReadOnly(!canEdit || !room.doc, { keepFocus: paused && role !== "viewer" && !room.reviewing });
  el.readOnly.hidden = canEdit || !me;
  el.readOnly.textContent = room.reviewing ? "Ended" : paused && role !== "viewer" ? "Paused" : "View only";
  el.newFile.hidden = !canEdit;
  const language = s?.language || "plaintext";
  const runs = !room.runnable || room.runnable.size === 0 || room.runnable.has(language);
  el.run.disabled = !canEdit || room.runPanel.running || !runs;
  el.run.title = !runs
    ? `${languageLabel(language)} does not run on this server`
    : canEdit
      ? "Run the code and share the output (Ctrl+Enter)"
      : "Viewers cannot run code";
  el.runNote.hidden = runs;
  el.runNote.textContent = runs ? "" : `${languageLabel(language)} does not run here`;
  const roleText = role === "host" ? "a host" : role === "viewer" ? "a viewer" : "an editor";
  el.myRole.textContent = me ? (paused && role !== "viewer" ? `You are ${roleText} · paused: read-only` : `You are ${roleText}`) : "";
  el.myRole.dataset.role = role;
  room._renderTabs();
}

/** Draws the connection indicator: live, saving, offline, reconnecting (with a countdown), closed. */
export function renderConnection(room) {
  const c = room.el.conn;
  let state;
  let label;
  const client = room.client;
  state = client.state;
  if (state === "closed") label = "Disconnected";
  else if (state === "live" && room.doc && room.doc.unacknowledgedFor() > UNSAVED_AFTER_MS) {
    // Connected, but the server has not confirmed recent edits for a while.
    [state, label] = ["unsaved", `Saving… ${Math.floor(room.doc.unacknowledgedFor() / 1000)}s`];
  } else if (state === "live") label = "Live";
  else if (state === "offline") label = "Offline";
  else if (state === "connecting") label = "Connecting…";
  else {
    const seconds = Math.ceil((client.retryAt - Date.now()) / 1000);
    label = client.retrying && seconds > 0 ? `Reconnecting in ${seconds}s…` : "Reconnecting…";
  }
  c.dataset.state = state;
  c.querySelector(".label").textContent = label;
  const pending = room.doc && room.doc.hasPending && !room.joined;
  c.title = pending ? "Your edits are kept and will be merged when the connection returns." : "";
  c.classList.toggle("has-pending", Boolean(pending));
}
