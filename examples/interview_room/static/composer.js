// The chat composer: the message box, what the next message is (a reply, a
// comment on a line, an edit of one's own), and @mention suggestions.

import { h, safeColour } from "./dom.js";

export class Composer {
  /**
   * @param {import("./room.js").Room} room
   * @param {{chatInput: HTMLTextAreaElement, context: HTMLElement, suggestions: HTMLElement}} el
   */
  constructor(room, el) {
    this.room = room;
    this.el = el;
    this.state = { mode: null };
  }

  /** Switches the composer to `state` (`{mode: null | "reply" | "comment" | "edit", ...}`). */
  set(state) {
    this.state = state;
    this.renderContext();
    if (state.mode === null && this.el.chatInput.dataset.editing) this.el.chatInput.value = "";
    this.el.chatInput.dataset.editing = state.mode === "edit" ? "1" : "";
    if (state.mode) this.el.chatInput.focus();
  }

  /** Shows what the next message will be (a reply, a comment, an edit). */
  renderContext() {
    const c = this.state;
    const box = this.el.context;
    if (!c.mode) {
      box.hidden = true;
      return;
    }
    const m = c.message != null ? this.room.messages.get(c.message) : null;
    const author = m ? this.room.participants.get(m.author)?.name ?? "someone" : "";
    const text =
      c.mode === "comment"
        ? `Comment on ${c.anchor.file}:${c.anchor.line}`
        : c.mode === "reply"
          ? `Replying to ${author}${m && !m.deleted ? `: ${m.text.slice(0, 60)}` : ""}`
          : "Editing your message";
    box.querySelector(".ctx-text").textContent = text;
    box.dataset.mode = c.mode;
    box.hidden = false;
  }

  /** Starts a comment on `line` of the file on screen. */
  startComment(line) {
    this.set({ mode: "comment", anchor: { file: this.room.file, line } });
  }

  send() {
    const input = this.el.chatInput;
    const text = input.value.trim();
    if (!text) return;
    const c = this.state;
    input.value = "";
    this.set({ mode: null });
    this.hideSuggestions();
    const restore = () => {
      if (!input.value) input.value = text;
    };
    if (c.mode === "edit") return this.room.act(() => this.room.client.editMessage(c.message, text), null, restore);
    this.room.client
      .sendMessage(text, { replyTo: c.mode === "reply" ? c.message : undefined, anchor: c.mode === "comment" ? c.anchor : undefined })
      .then((outcome) => {
        if (outcome === "queued") this.room.toast("You are offline: the message will be sent when the connection is back.");
      })
      .catch((e) => {
        this.room.toast(e.message, "error");
        restore();
      });
  }

  key(e) {
    const list = this.el.suggestions;
    if (!list.hidden && (e.key === "Tab" || (e.key === "Enter" && !e.shiftKey))) {
      const first = list.querySelector("button");
      if (first) {
        e.preventDefault();
        first.click();
        return;
      }
    }
    if (e.key === "Escape") {
      this.hideSuggestions();
      this.set({ mode: null });
    } else if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      this.send();
    }
  }

  /** Offers participants' names while an @word is being typed. */
  suggestMentions() {
    const input = this.el.chatInput;
    const before = input.value.slice(0, input.selectionStart);
    const match = /(^|[^\p{L}\p{N}])@([\p{L}\p{N} ._-]{0,30})$/u.exec(before);
    if (!match) return this.hideSuggestions();
    const typed = match[2].toLowerCase();
    const names = [...this.room.participants.values()]
      .filter((p) => p.present && p.id !== this.room.me && p.name.toLowerCase().startsWith(typed))
      .slice(0, 6);
    // A name typed out in full needs no offer (and Enter should send).
    const complete = names.length === 1 && names[0].name.toLowerCase() === typed;
    if (names.length === 0 || complete) return this.hideSuggestions();
    const start = before.length - match[2].length;
    this.el.suggestions.replaceChildren(
      ...names.map((p) =>
        h(
          "button",
          {
            type: "button",
            class: "suggestion",
            testid: "mention-suggestion",
            onmousedown: (e) => e.preventDefault(),
            onclick: () => {
              input.value = `${input.value.slice(0, start)}${p.name} ${input.value.slice(input.selectionStart)}`;
              const at = start + p.name.length + 1;
              input.setSelectionRange(at, at);
              input.focus();
              this.hideSuggestions();
            },
          },
          h("span", { class: "dot", style: { "--c": safeColour(p.colour) } }),
          p.name,
        ),
      ),
    );
    this.el.suggestions.hidden = false;
  }

  hideSuggestions() {
    this.el.suggestions.hidden = true;
  }
}
