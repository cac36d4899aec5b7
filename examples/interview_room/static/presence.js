// The presence bar: who is here, their status, role and file, and the host's
// controls. Items are updated in place (keyed by participant) so that a host's
// open role menu survives the presence frames that keep arriving.

import { h, initials, safeColour } from "./dom.js";

const STATUS_TEXT = { active: "active", idle: "idle", away: "away", offline: "offline" };
const ORDER = { active: 0, idle: 1, away: 2, offline: 3 };

export class PresenceView {
  /**
   * @param {HTMLElement} list the <ul> of participants.
   * @param {object} actions `setRole(id, role)`, `kick(id)`.
   */
  constructor(list, actions) {
    this.list = list;
    this.actions = actions;
    this.items = new Map();
    this.confirmKick = null;
  }

  /** `state`: `participants` (id -> participant), `me`, `isHost`. */
  render(state) {
    const people = [...state.participants.values()]
      .filter((p) => p.present)
      .sort((a, b) => {
        if (a.id === state.me) return -1;
        if (b.id === state.me) return 1;
        const sa = ORDER[a.presence?.status] ?? 3;
        const sb = ORDER[b.presence?.status] ?? 3;
        return sa - sb || a.id - b.id;
      });
    const keep = new Set(people.map((p) => p.id));
    for (const [id, item] of this.items) {
      if (!keep.has(id)) {
        item.root.remove();
        this.items.delete(id);
      }
    }
    people.forEach((p, index) => {
      let item = this.items.get(p.id);
      if (!item) {
        item = this._create(p.id);
        this.items.set(p.id, item);
      }
      this._update(item, p, state);
      if (this.list.children[index] !== item.root) this.list.insertBefore(item.root, this.list.children[index] || null);
    });
  }

  _create(id) {
    const item = {};
    item.avatar = h("span", { class: "avatar" });
    item.dot = h("span", { class: "status-dot", testid: "presence-status" });
    item.name = h("span", { class: "name", testid: "presence-name" });
    item.you = h("span", { class: "you" }, "you");
    item.role = h("span", { class: "role-badge", testid: "role-badge" });
    item.status = h("span", { class: "status-text", testid: "presence-status-text" });
    item.file = h("span", { class: "file", testid: "presence-file" });
    item.typing = h("span", { class: "typing", testid: "presence-typing" }, "typing…");
    item.roleSelect = h(
      "select",
      {
        class: "role-select",
        testid: "role-select",
        "aria-label": "Role",
        onchange: () => this.actions.setRole(id, item.roleSelect.value),
      },
      h("option", { value: "host" }, "Host"),
      h("option", { value: "editor" }, "Editor"),
      h("option", { value: "viewer" }, "Viewer"),
    );
    item.kick = h("button", {
      class: "kick",
      testid: "kick-button",
      title: "Remove from the session",
      onclick: () => {
        if (this.confirmKick === id) {
          this.confirmKick = null;
          this.actions.kick(id);
        } else {
          this.confirmKick = id;
          item.kick.textContent = "Remove?";
          item.kick.classList.add("danger");
          setTimeout(() => {
            if (this.confirmKick !== id) return;
            this.confirmKick = null;
            item.kick.textContent = "Kick";
            item.kick.classList.remove("danger");
          }, 4000);
        }
      },
    }, "Kick");
    item.controls = h("div", { class: "host-controls", testid: "host-controls" }, item.roleSelect, item.kick);
    item.root = h(
      "li",
      { class: "person", testid: "presence-item" },
      h("div", { class: "avatar-wrap" }, item.avatar, item.dot),
      h(
        "div",
        { class: "who" },
        h("div", { class: "name-row" }, item.name, item.you, item.role),
        h("div", { class: "detail" }, item.status, item.file, item.typing),
      ),
      item.controls,
    );
    return item;
  }

  _update(item, p, state) {
    const presence = p.presence || { status: "offline", cursors: [], typing: false };
    const status = STATUS_TEXT[presence.status] || "offline";
    const colour = safeColour(p.colour);
    const root = item.root;
    root.dataset.participantId = String(p.id);
    root.dataset.status = status;
    root.dataset.role = p.role;
    root.dataset.name = p.name;
    root.className = `person status-${status}${p.id === state.me ? " me" : ""}`;
    item.avatar.style.setProperty("--c", colour);
    item.avatar.textContent = initials(p.name);
    item.dot.dataset.status = status;
    item.dot.title = status;
    item.name.textContent = p.name;
    item.you.hidden = p.id !== state.me;
    item.role.textContent = p.role;
    item.role.className = `role-badge role-${p.role}`;
    item.status.textContent = status;
    const file = status !== "offline" && presence.viewport ? presence.viewport.file : "";
    item.file.textContent = file ? `viewing ${file}` : "";
    item.file.hidden = !file;
    item.typing.hidden = !(presence.typing && status !== "offline");
    const showControls = state.isHost && p.id !== state.me;
    item.controls.hidden = !showControls;
    if (showControls && document.activeElement !== item.roleSelect) item.roleSelect.value = p.role;
  }
}
