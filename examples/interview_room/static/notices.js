// Notices: short messages at the corner of the screen, and joins gathered
// into one notice.

import { byTestId, h } from "./dom.js";

export class Notices {
  constructor() {
    this.joinedBurst = [];
    this.joinedBurstStart = null;
    this.joinedBurstTimer = null;
  }

  /**
   * Says who joined, gathering a burst of joins (a class arriving at once)
   * into one notice instead of a pile of them over the editor.
   */
  joined(name) {
    this.joinedBurst.push(name);
    // Said once the joins pause for 600 ms, or 2 s after the first at most.
    this.joinedBurstStart ??= Date.now();
    clearTimeout(this.joinedBurstTimer);
    const wait = Math.max(0, Math.min(600, this.joinedBurstStart + 2000 - Date.now()));
    this.joinedBurstTimer = setTimeout(() => {
      this.joinedBurstStart = null;
      const names = this.joinedBurst;
      this.joinedBurst = [];
      this.joinedBurstTimer = null;
      const text =
        names.length === 1
          ? `${names[0]} joined`
          : names.length <= 3
            ? `${names.slice(0, -1).join(", ")} and ${names.at(-1)} joined`
            : `${names.slice(0, 2).join(", ")} and ${names.length - 2} others joined`;
      this.show(text);
    }, wait);
  }

  /** A short message at the corner of the screen. */
  show(text, kind = "info") {
    const host = byTestId("toasts");
    const t = h("div", { class: `toast ${kind}`, testid: "toast", role: "status" }, text);
    host.append(t);
    setTimeout(() => t.classList.add("gone"), 4500);
    setTimeout(() => t.remove(), 5000);
  }
}
