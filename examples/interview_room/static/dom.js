// Small DOM helpers. Every piece of user text goes into the page as a text
// node (never through innerHTML), so names, messages and code cannot inject
// markup.

/**
 * Creates an element. `props`: `class`, `testid` (sets data-testid),
 * `dataset`, `style` (an object of CSS properties, custom properties
 * included), `on*` listeners, DOM properties (value, disabled, ...) and
 * attributes. Children are nodes or strings (strings become text nodes).
 */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value == null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "testid") el.dataset.testid = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "style") {
      for (const [name, v] of Object.entries(value)) if (v != null) el.style.setProperty(name, v);
    } else if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key in el && typeof value !== "string") el[key] = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child == null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : String(child));
  }
}

/** Finds the element with `data-testid`, within `root`. */
export const byTestId = (id, root = document) => root.querySelector(`[data-testid="${id}"]`);

/** A participant colour from the server, used in CSS only if it is `#rrggbb`. */
export function safeColour(colour) {
  return typeof colour === "string" && /^#[0-9a-fA-F]{6}$/.test(colour) ? colour : "#8b949e";
}

/** Initials for an avatar: the first letters of the first two words. */
export function initials(name) {
  const words = String(name || "?").trim().split(/\s+/).filter(Boolean);
  const letters = words.slice(0, 2).map((w) => Array.from(w)[0].toUpperCase());
  return letters.join("") || "?";
}

/**
 * A short fingerprint of a secret (FNV-1a, hex): tells identities apart in
 * storage keys and between tabs without writing or sending the secret.
 */
export function fingerprint(text) {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash.toString(16).padStart(8, "0");
}

/** A timestamp (ms) as a local time, with the day when it is not today: 14:03, or Tue 14:03. */
export function clockDay(ms) {
  const at = new Date(ms);
  const time = at.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  return at.toDateString() === new Date().toDateString() ? time : `${at.toLocaleDateString([], { weekday: "short", day: "numeric", month: "short" })} ${time}`;
}

/** A timestamp (ms) as a short local time, 14:03. */
export function clock(ms) {
  return new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

/** A timestamp (ms) as a local time with seconds, 14:03:05. */
export function clockSeconds(ms) {
  return new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

/** Calls `fn` at most once every `ms`, always with the latest arguments, and once more at the end. */
export function throttle(fn, ms) {
  let timer = null;
  let last = 0;
  let args = null;
  const run = () => {
    timer = null;
    last = performance.now();
    const a = args;
    args = null;
    fn(...a);
  };
  const throttled = (...a) => {
    args = a;
    if (timer !== null) return;
    const wait = Math.max(0, last + ms - performance.now());
    timer = setTimeout(run, wait);
  };
  throttled.flush = () => {
    if (timer !== null) {
      clearTimeout(timer);
      run();
    }
  };
  return throttled;
}

/** Line (1-based) of a UTF-16 offset in `text`; line breaks are `\n` (what a textarea shows). */
export function lineOf(text, offset) {
  let line = 1;
  const end = Math.min(offset, text.length);
  for (let i = text.indexOf("\n"); i !== -1 && i < end; i = text.indexOf("\n", i + 1)) line++;
  return line;
}

/** Offset where the 1-based `line` starts (clamped to the text). */
export function lineStart(text, line) {
  let offset = 0;
  for (let l = 1; l < line; l++) {
    const next = text.indexOf("\n", offset);
    if (next === -1) return offset;
    offset = next + 1;
  }
  return offset;
}

/**
 * Wraps a redraw so that it never runs inside itself. Removing a focused node
 * fires `blur` synchronously, and a blur handler that redraws would then
 * replace the very children the outer redraw is replacing (the DOM throws
 * "The node to be removed is no longer a child of this node"). A call made
 * while the redraw runs is remembered and done once right after it.
 */
export function noReentry(redraw) {
  let running = false;
  let again = false;
  return function guarded(...args) {
    if (running) {
      again = true;
      return;
    }
    running = true;
    try {
      do {
        again = false;
        redraw.apply(this, args);
      } while (again);
    } finally {
      running = false;
    }
  };
}
