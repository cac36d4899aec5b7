// The chat list: messages and code comments in threads, with mentions,
// reactions and the actions a participant may take on each message.

import { clock, h, initials, safeColour } from "./dom.js";

/** The reactions offered in the picker. */
export const REACTIONS = ["👍", "👎", "❤️", "😄", "🎉", "🤔", "👀", "🚀"];

const letterOrDigit = /[\p{L}\p{N}]/u;

/**
 * Splits `text` into plain strings and mention spans for the participants the
 * server found mentioned, with the server's rule: `@name`, case-insensitive,
 * not preceded or followed by a letter or digit, the longest name winning.
 */
export function mentionNodes(text, mentioned, me) {
  const names = mentioned
    .filter((p) => p && p.name)
    .map((p) => ({ id: p.id, lower: p.name.toLowerCase(), length: p.name.length }))
    .sort((a, b) => b.length - a.length);
  if (names.length === 0) return [text];
  const lower = text.toLowerCase();
  const out = [];
  let plainFrom = 0;
  for (let i = lower.indexOf("@"); i !== -1; i = lower.indexOf("@", i + 1)) {
    if (i > 0 && letterOrDigit.test(text[i - 1])) continue;
    const hit = names.find(
      (n) => lower.startsWith(n.lower, i + 1) && !letterOrDigit.test(text[i + 1 + n.length] || ""),
    );
    if (!hit) continue;
    if (i > plainFrom) out.push(text.slice(plainFrom, i));
    const end = i + 1 + hit.length;
    out.push(
      h(
        "span",
        { class: hit.id === me ? "mention me" : "mention", testid: "mention", dataset: { participantId: String(hit.id) } },
        text.slice(i, end),
      ),
    );
    plainFrom = end;
    i = end - 1;
  }
  if (plainFrom < text.length) out.push(text.slice(plainFrom));
  return out;
}

export class ChatView {
  /**
   * @param {HTMLElement} list the scrolling message list.
   * @param {object} actions `reply(m)`, `edit(m)`, `remove(m)`, `react(m, emoji)`, `jump(anchor)`, `loadOlder()`.
   */
  constructor(list, actions) {
    this.list = list;
    this.actions = actions;
    this.pickerFor = null;
    this.confirmDelete = null;
    this.state = null;
  }

  /**
   * Draws every message. `state`: `messages` (id -> message), `participants`
   * (id -> participant), `me`, `isHost`, `hasOlder`.
   */
  render(state) {
    this.state = state;
    const list = this.list;
    const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
    const messages = [...state.messages.values()].sort((a, b) => a.id - b.id);
    const replies = new Map();
    const roots = [];
    for (const m of messages) {
      if (m.thread !== m.id && state.messages.has(m.thread)) {
        if (!replies.has(m.thread)) replies.set(m.thread, []);
        replies.get(m.thread).push(m);
      } else roots.push(m);
    }
    const nodes = [];
    if (state.hasOlder) {
      nodes.push(h("button", { class: "link older", testid: "chat-load-older", onclick: () => this.actions.loadOlder() }, "Load earlier messages"));
    }
    if (roots.length === 0) {
      nodes.push(h("p", { class: "empty", testid: "chat-empty" }, "No messages yet. Say hello, or comment on a line of code."));
    }
    for (const root of roots) {
      const thread = replies.get(root.id) || [];
      nodes.push(
        h(
          "div",
          { class: "thread", testid: "chat-thread", dataset: { thread: String(root.id) } },
          this._message(root, false),
          thread.length > 0 && h("div", { class: "replies", testid: "thread-replies" }, thread.map((m) => this._message(m, true))),
        ),
      );
    }
    list.replaceChildren(...nodes);
    if (atBottom) list.scrollTop = list.scrollHeight;
  }

  /** Scrolls to a message and flashes it. */
  reveal(id) {
    const el = this.list.querySelector(`[data-message-id="${Number(id)}"]`);
    if (!el) return;
    el.scrollIntoView({ block: "center", behavior: "smooth" });
    el.classList.remove("flash");
    void el.offsetWidth;
    el.classList.add("flash");
  }

  _message(m, isReply) {
    const { participants, me, isHost } = this.state;
    const author = participants.get(m.author);
    const name = author ? author.name : `Participant ${m.author}`;
    const colour = safeColour(author && author.colour);
    const mine = m.author === me;
    const mentionsMe = !m.deleted && (m.mentions || []).includes(me) && !mine;
    const classes = ["msg"];
    if (mine) classes.push("mine");
    if (mentionsMe) classes.push("mentions-me");
    if (m.anchor) classes.push("comment");
    if (m.deleted) classes.push("deleted");
    if (isReply) classes.push("reply");

    const text = m.deleted
      ? h("div", { class: "text", testid: "message-text" }, "This message was deleted.")
      : h(
          "div",
          { class: "text", testid: "message-text" },
          mentionNodes(m.text, (m.mentions || []).map((id) => participants.get(id)).filter(Boolean), me),
        );

    const reactions = Object.entries(m.reactions || {}).filter(([, who]) => who.length > 0);
    const actions = [];
    if (!m.deleted) {
      actions.push(h("button", { class: "act", testid: "reply-button", title: "Reply in thread", onclick: () => this.actions.reply(m) }, "Reply"));
      actions.push(
        h("button", {
          class: "act",
          testid: "react-button",
          title: "Add a reaction",
          onclick: () => {
            this.pickerFor = this.pickerFor === m.id ? null : m.id;
            this.render(this.state);
          },
        }, "React"),
      );
      if (mine) actions.push(h("button", { class: "act", testid: "edit-button", onclick: () => this.actions.edit(m) }, "Edit"));
      if (mine || isHost) {
        const confirming = this.confirmDelete === m.id;
        actions.push(
          h("button", {
            class: confirming ? "act danger" : "act",
            testid: "delete-button",
            onclick: () => {
              if (confirming) {
                this.confirmDelete = null;
                this.actions.remove(m);
              } else {
                this.confirmDelete = m.id;
                this.render(this.state);
                setTimeout(() => {
                  if (this.confirmDelete === m.id) {
                    this.confirmDelete = null;
                    this.render(this.state);
                  }
                }, 4000);
              }
            },
          }, confirming ? "Delete?" : "Delete"),
        );
      }
    }

    return h(
      "article",
      {
        class: classes.join(" "),
        testid: "chat-message",
        dataset: { messageId: String(m.id), authorId: String(m.author) },
      },
      h("span", { class: "avatar small", style: { "--c": colour }, "aria-hidden": "true" }, initials(name)),
      h(
        "div",
        { class: "body" },
        h(
          "header",
          null,
          h("span", { class: "author", testid: "message-author", style: { color: colour } }, name),
          h("time", { datetime: new Date(m.posted_at).toISOString(), title: new Date(m.posted_at).toLocaleString() }, clock(m.posted_at)),
          m.edited_at && !m.deleted && h("span", { class: "edited", testid: "message-edited" }, "(edited)"),
        ),
        m.anchor &&
          h(
            "button",
            {
              class: "anchor-chip",
              testid: "comment-anchor",
              dataset: { file: m.anchor.file, line: String(m.anchor.line) },
              title: "Show this line in the editor",
              onclick: () => this.actions.jump(m.anchor),
            },
            `${m.anchor.file}:${m.anchor.line}`,
          ),
        text,
        reactions.length > 0 &&
          h(
            "div",
            { class: "reactions" },
            reactions.map(([emoji, who]) =>
              h(
                "button",
                {
                  class: who.includes(me) ? "reaction mine" : "reaction",
                  testid: "reaction",
                  dataset: { emoji },
                  title: who.map((id) => participants.get(id)?.name ?? `#${id}`).join(", "),
                  onclick: () => this.actions.react(m, emoji),
                },
                `${emoji} ${who.length}`,
              ),
            ),
          ),
        h("div", { class: "actions" }, actions),
        this.pickerFor === m.id &&
          h(
            "div",
            { class: "picker", testid: "reaction-picker" },
            REACTIONS.map((emoji) =>
              h("button", {
                class: "pick",
                dataset: { emoji },
                onclick: () => {
                  this.pickerFor = null;
                  this.actions.react(m, emoji);
                },
              }, emoji),
            ),
          ),
      ),
    );
  }
}
