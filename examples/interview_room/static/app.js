// The interview room page: create a session, join one by its link, and work
// in it. No build step: the browser loads these ES modules as they are.
//
// Who you are: the example server uses GuestAuthenticator, which issues each
// browser a signed guest token (POST /api/v1/guests). The page keeps it in
// localStorage with the chosen name, so a refresh, a closed and reopened tab
// or a restart of the server all come back as the same participant (a host
// stays a host), while another browser is someone else. Nobody can make up
// a token, or derive one from what others see. A tab can be someone else
// too ("Join as someone else in this tab"): its identity is then kept in
// sessionStorage, which belongs to that tab alone, so one person can try a
// session as two. Tabs of one browser in the same session as the same
// person find each other (BroadcastChannel) and say so.

import { byTestId, fingerprint, h } from "./dom.js";
import { LANGUAGES, RUNNABLE, languageLabel, starterCode } from "./languages.js";
import { Room, kickedKey } from "./room.js";

const IDENTITY_KEY = "interview-room.identity";
const LAST_NAME_KEY = "interview-room.last-name";
const JOIN_ERROR_KEY = "interview-room.join-error";
const TAB_IDENTITY_KEY = "interview-room.tab-identity";
const SESSION_ID = /^[A-Za-z0-9_-]{22}$/;
const TOKEN = /^[A-Za-z0-9._-]{8,256}$/;

/** A fresh identity from the server. */
async function issueIdentity() {
  const res = await fetch("/api/v1/guests", { method: "POST" });
  if (!res.ok) throw new Error(await apiError(res));
  const issued = await res.json();
  return { token: issued.token, name: "" };
}

/** This tab's own identity, if it was made someone else. */
function tabIdentity() {
  try {
    const tab = JSON.parse(sessionStorage.getItem(TAB_IDENTITY_KEY));
    if (tab && typeof tab.token === "string" && TOKEN.test(tab.token)) {
      return { token: tab.token, name: typeof tab.name === "string" ? tab.name : "", tab: true };
    }
  } catch {
    // Not one: the browser's identity then.
  }
  return null;
}

/** This tab becomes someone else: a fresh identity of its own, then the join screen. */
async function joinAsSomeoneElse() {
  const fresh = await issueIdentity();
  sessionStorage.setItem(TAB_IDENTITY_KEY, JSON.stringify(fresh));
  location.reload();
}

/** The identity this tab or browser keeps, or a fresh one the server issues. */
async function loadIdentity() {
  const tab = tabIdentity();
  if (tab) return tab;
  let identity = null;
  try {
    identity = JSON.parse(localStorage.getItem(IDENTITY_KEY));
  } catch {
    identity = null;
  }
  if (!identity || typeof identity.token !== "string" || !TOKEN.test(identity.token)) {
    identity = await issueIdentity();
  }
  if (typeof identity.name !== "string") identity.name = "";
  saveIdentity(identity);
  return identity;
}

function saveIdentity(identity) {
  if (identity.tab) {
    sessionStorage.setItem(TAB_IDENTITY_KEY, JSON.stringify({ token: identity.token, name: identity.name }));
    return;
  }
  localStorage.setItem(IDENTITY_KEY, JSON.stringify(identity));
  if (identity.name) localStorage.setItem(LAST_NAME_KEY, identity.name);
}

/** Tells the other tabs of this browser in `sessionId` as the same person, and hears them. */
function watchOtherTabs(sessionId) {
  if (typeof BroadcastChannel !== "function") return;
  const channel = new BroadcastChannel("interview-room.tabs");
  // The identity's fingerprint, not its token: a tab of its own keeps its
  // token from the others.
  const me = { session: sessionId, who: fingerprint(identity.token) };
  channel.onmessage = ({ data }) => {
    if (data?.session !== sessionId || data.who !== me.who) return;
    if (data.kind === "here") channel.postMessage({ ...me, kind: "here-too" });
    byTestId("same-person").hidden = data.kind === "gone";
  };
  channel.postMessage({ ...me, kind: "here" });
  window.addEventListener("pagehide", () => {
    channel.postMessage({ ...me, kind: "gone" });
    channel.close();
  });
}

let identity = { token: "", name: "" };

function show(screen) {
  for (const id of ["landing", "join", "room"]) document.getElementById(id).hidden = id !== screen;
  document.getElementById("top-actions").hidden = screen !== "room";
  document.getElementById("session-meta").hidden = screen !== "room";
  document.body.dataset.screen = screen;
}

function showError(testid, text) {
  const el = byTestId(testid);
  el.textContent = text;
  el.hidden = !text;
}

async function apiError(res) {
  const body = await res.json().catch(() => null);
  return body?.error?.message ?? `HTTP ${res.status}`;
}

// ---- landing: create a session ---------------------------------------------------

function showLanding() {
  show("landing");
  document.title = "Interview room";
  const select = byTestId("create-language");
  select.replaceChildren(...LANGUAGES.map(([value, label]) => h("option", { value }, label)));
  // A new session starts in a language this server runs; the others say
  // they do not, before anyone picks them.
  select.value = "javascript";
  RUNNABLE.then((runnable) => {
    if (runnable.size === 0) return;
    for (const option of select.options) {
      const label = LANGUAGES.find(([v]) => v === option.value)?.[1] ?? option.value;
      option.textContent = runnable.has(option.value) ? `${label} · runs here` : label;
    }
    if (!runnable.has(select.value)) select.value = LANGUAGES.find(([v]) => runnable.has(v))?.[0] ?? select.value;
  });
  byTestId("create-name").value = identity.name || localStorage.getItem(LAST_NAME_KEY) || "";
}

// A room kept open for a planned interview says when it starts.
byTestId("create-open-for").addEventListener("change", () => {
  const scheduled = byTestId("create-open-for").value !== "";
  byTestId("create-starts-label").hidden = !scheduled;
  byTestId("create-schedule-hint").hidden = !scheduled;
});

document.getElementById("create-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const name = byTestId("create-name").value.trim();
  const title = byTestId("create-title").value.trim() || "Coding interview";
  const language = byTestId("create-language").value;
  const openFor = Number(byTestId("create-open-for").value) || null;
  const startsAt = byTestId("create-starts-at").value ? new Date(byTestId("create-starts-at").value).getTime() : null;
  if (!name) return showError("create-error", "Please enter your name.");
  const button = byTestId("create-session");
  button.disabled = true;
  showError("create-error", "");
  try {
    const res = await fetch("/api/v1/sessions", {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: `Bearer ${identity.token}` },
      body: JSON.stringify({
        title,
        language,
        code: starterCode(language),
        ...(openFor ? { open_for_secs: openFor, ...(startsAt ? { starts_at: startsAt } : {}) } : {}),
      }),
    });
    if (!res.ok) throw new Error(await apiError(res));
    const session = await res.json();
    identity.name = name;
    saveIdentity(identity);
    // The address bar now holds the link to share; a refresh stays here.
    history.pushState(null, "", `?session=${encodeURIComponent(session.id)}`);
    enterRoom(session.id);
  } catch (err) {
    showError("create-error", `Could not create the session: ${err.message}`);
  } finally {
    button.disabled = false;
  }
});

document.getElementById("open-link-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const raw = byTestId("open-link").value.trim();
  let id = raw;
  try {
    id = new URL(raw, location.href).searchParams.get("session") ?? raw;
  } catch {
    // Not a URL: maybe the bare id.
  }
  if (!SESSION_ID.test(id)) return showError("open-link-error", "That is not a session link.");
  location.search = `?session=${encodeURIComponent(id)}`;
});

// ---- joining by link ---------------------------------------------------------------

async function showJoin(sessionId, error = "") {
  show("join");
  byTestId("join-name").value = identity.name || (identity.tab ? "" : localStorage.getItem(LAST_NAME_KEY)) || "";
  byTestId("join-as-new").hidden = Boolean(identity.tab);
  showError("join-error", error);
  byTestId("join-meta").textContent = "";
  try {
    const res = await fetch(`/api/v1/sessions/${encodeURIComponent(sessionId)}`, {
      headers: { Authorization: `Bearer ${identity.token}` },
    });
    if (res.status === 404) {
      byTestId("join-title").textContent = "Session not found";
      byTestId("join-meta").textContent = "This link does not lead to a live session. It may have expired.";
      byTestId("join-form-fields").hidden = true;
      return;
    }
    if (res.status === 403) {
      byTestId("join-title").textContent = "You cannot join this session";
      byTestId("join-meta").textContent = "A host of this session removed you.";
      byTestId("join-form-fields").hidden = true;
      return;
    }
    if (!res.ok) throw new Error(await apiError(res));
    const s = await res.json();
    byTestId("join-title").textContent = `Join “${s.title || "Coding interview"}”`;
    document.title = `Join ${s.title || "interview"} · Interview room`;
    byTestId("join-meta").textContent =
      s.status === "ended"
        ? "This session has ended."
        : `${languageLabel(s.language || "plaintext")} · ${s.online} of ${s.capacity} online`;
    byTestId("join-form-fields").hidden = s.status === "ended";
  } catch (err) {
    byTestId("join-meta").textContent = `Could not read the session: ${err.message}`;
  }
  byTestId("join-name").focus();
}

for (const id of ["join-as-new", "join-as-someone-else"]) {
  byTestId(id).addEventListener("click", () =>
    joinAsSomeoneElse().catch((err) => showError("join-error", `Could not get a new identity: ${err.message}`)),
  );
}

document.getElementById("join-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const name = byTestId("join-name").value.trim();
  if (!name) return showError("join-error", "Please enter your name.");
  identity.name = name;
  saveIdentity(identity);
  enterRoom(currentSessionId());
});

// ---- the room ------------------------------------------------------------------------

let room = null;

function enterRoom(sessionId) {
  show("room");
  room = new Room({
    sessionId,
    token: identity.token,
    name: identity.name,
    onNameRefused: (message) => {
      // Start over on the join screen; a fresh page keeps the room's listeners single.
      identity.name = "";
      saveIdentity(identity);
      sessionStorage.setItem(JOIN_ERROR_KEY, `That name cannot be used: ${message}`);
      location.reload();
    },
  });
  if (localStorage.getItem(kickedKey(sessionId, identity.token))) room.stop("kicked");
  else room.connect();
  watchOtherTabs(sessionId);
  // For tests and debugging: the room's state, read-only by convention.
  window.interviewRoom = room;
}

function currentSessionId() {
  return new URLSearchParams(location.search).get("session");
}

function start() {
  const sessionId = currentSessionId();
  if (!sessionId) return showLanding();
  if (!SESSION_ID.test(sessionId)) {
    showLanding();
    return showError("create-error", "The link you opened is not a valid session link.");
  }
  if (!identity.name) {
    const error = sessionStorage.getItem(JOIN_ERROR_KEY) || "";
    sessionStorage.removeItem(JOIN_ERROR_KEY);
    return showJoin(sessionId, error);
  }
  enterRoom(sessionId);
}

window.addEventListener("popstate", () => location.reload());
loadIdentity()
  .then((loaded) => {
    identity = loaded;
    start();
  })
  .catch((err) => {
    showLanding();
    showError("create-error", `Could not get an identity from the server: ${err.message}`);
  });
