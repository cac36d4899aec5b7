// Helpers for the interview room's browser tests: one headless Chromium (the
// system's, never a downloaded one), a browser context per user, and waits
// that poll for a condition instead of sleeping.

import { mkdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));

/** The running example server, e.g. http://127.0.0.1:40123 (set by tests/browser.rs). */
export const BASE_URL = process.env.INTERVIEW_ROOM_URL;
if (!BASE_URL) {
  throw new Error("INTERVIEW_ROOM_URL is not set: run these tests with `cargo test -p interview-room --test browser`");
}
const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const SCREENSHOTS = process.env.SCREENSHOT_DIR || path.resolve(here, "../../../../target/screenshots");
// Tells apart the screenshots of runs against different servers (axum-, warp-).
const SCREENSHOT_PREFIX = process.env.SCREENSHOT_PREFIX || "";

/** How long a wait may take: the machine running the tests is shared and slow. */
export const WAIT = 20000;

/** Launches Chromium with a fresh profile (playwright makes a temporary user-data dir). */
export async function launch() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-quic",
      "--no-first-run",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

/**
 * A user: a browser context of their own (so their own localStorage, hence
 * their own identity) with one page. Page errors fail the test at the end.
 */
export async function newUser(browser, label) {
  const context = await browser.newContext({ viewport: { width: 1360, height: 820 } });
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT);
  const errors = [];
  page.on("pageerror", (e) => errors.push(`${label}: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(`${label} console: ${m.text()}`);
  });
  return { label, context, page, errors };
}

/** Creates a session from the landing page and waits until it is live; returns its URL. */
export async function createSession(user, { name, title = "Coding interview", language = "python" }) {
  const { page } = user;
  await page.goto(BASE_URL);
  await page.getByTestId("create-name").fill(name);
  await page.getByTestId("create-title").fill(title);
  await page.getByTestId("create-language").selectOption(language);
  await page.getByTestId("create-session").click();
  await waitLive(page);
  return page.url();
}

/** Opens a shared link, gives a name on the join screen and waits until live. */
export async function joinByUrl(user, url, name) {
  const { page } = user;
  await page.goto(url);
  await page.getByTestId("join-name").fill(name);
  await page.getByTestId("join-button").click();
  await waitLive(page);
}

/** Waits until the connection indicator says live and the document is loaded. */
export async function waitLive(page) {
  await page.locator('[data-testid="connection-status"][data-state="live"]').waitFor();
  await page.waitForFunction(() => window.interviewRoom && window.interviewRoom.doc !== null && window.interviewRoom.me !== null);
}

/** The presence item of the participant called `name`. */
export const presenceOf = (page, name) => page.locator(`[data-testid="presence-item"][data-name="${name}"]`);

/** The text in the code editor (CodeMirror's document: all of it, not only the lines drawn). */
export const editorText = (page) => page.evaluate(() => window.interviewRoom?.editor?.text ?? "");

/** The local participant's id and name, as the page knows them. */
export const whoAmI = (page) =>
  page.evaluate(() => {
    const r = window.interviewRoom;
    return { id: r.me, name: r.participants.get(r.me)?.name, token: JSON.parse(localStorage.getItem("interview-room.identity")).token };
  });

/** Waits until every page's DocumentClient has nothing unacknowledged. */
export async function waitSettled(...pages) {
  for (const page of pages) await page.waitForFunction(() => window.interviewRoom.doc && !window.interviewRoom.doc.hasPending);
}

/**
 * Polls `probe` until `accept(value)` holds and returns the value; on
 * timeout fails with the last value seen, which says what went wrong.
 */
export async function eventually(probe, accept, what, timeout = WAIT) {
  const deadline = Date.now() + timeout;
  let value;
  for (;;) {
    value = await probe();
    if (accept(value)) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last value: ${JSON.stringify(value)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Waits until both editors show the same text that satisfies `accept`; returns it. */
export async function sameText(a, b, accept = () => true, what = "both editors to agree") {
  const [text] = await eventually(
    async () => [await editorText(a), await editorText(b)],
    ([x, y]) => x === y && accept(x),
    what,
  );
  return text;
}

/** Puts the caret at the end of a 1-based line of the editor. */
export async function caretToLineEnd(page, line) {
  await page.getByTestId("editor").focus();
  await page.evaluate((line) => {
    const view = window.interviewRoom.editor.view;
    view.dispatch({ selection: { anchor: view.state.doc.line(line).to } });
    view.focus();
  }, line);
}

/** The line number `line` in the editor's gutter (a click there starts a comment on it). */
export const lineNumber = (page, line) =>
  page.locator('[data-testid="editor-host"] .cm-lineNumbers .cm-gutterElement', { hasText: new RegExp(`^${line}$`) });

/** Saves `target/screenshots/<prefix><name>.png` (relative to the workspace root). */
export async function screenshot(page, name) {
  mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SCREENSHOTS, `${SCREENSHOT_PREFIX}${name}.png`) });
}

/** Closes the users' contexts and fails if any page reported an error. */
export async function finish(...users) {
  for (const u of users) await u.context.close().catch(() => {});
  const errors = users.flatMap((u) => u.errors).filter((e) => !/WebSocket connection to .* failed|ERR_INTERNET_DISCONNECTED|Failed to load resource/.test(e));
  if (errors.length > 0) throw new Error(`errors in the page:\n${errors.join("\n")}`);
}
