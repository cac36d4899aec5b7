// Browser tests of the interview room: real pages in headless Chromium, one
// browser context per person, against the example server that
// tests/browser.rs starts. Each scenario saves a screenshot in
// target/screenshots/<prefix><scenario>.png (SCREENSHOT_PREFIX, e.g. warp-).
//
// SCENARIOS (comma-separated keys, e.g. "join_by_url,offline_merge") runs
// only those scenarios; unset, all run. tests/browser.rs runs everything
// against the axum app and against the warp app.

import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { after, before, test } from "node:test";
import {
  BASE_URL,
  caretToLineEnd,
  createSession,
  editorText,
  eventually,
  finish,
  joinByUrl,
  launch,
  lineNumber,
  newUser,
  presenceOf,
  sameText,
  screenshot,
  waitLive,
  waitSettled,
  whoAmI,
} from "./harness.mjs";

let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

const selected = (process.env.SCENARIOS || "")
  .split(",")
  .map((key) => key.trim())
  .filter(Boolean);

/** Registers a scenario under `key` unless SCENARIOS leaves it out. */
function scenario(key, title, body) {
  if (selected.length > 0 && !selected.includes(key)) return;
  test(title, { timeout: 90000 }, body);
}

/** Runs `body` with fresh users and always closes their contexts. */
async function withUsers(labels, body) {
  const users = [];
  for (const label of labels) users.push(await newUser(browser, label));
  let failure = null;
  try {
    await body(...users);
  } catch (e) {
    failure = e;
  }
  try {
    await finish(...users);
  } catch (e) {
    failure ??= e;
  }
  if (failure) throw failure;
}

/** A host who created a session and an editor who joined it by its link. */
async function hostAndGuest(host, guest, title) {
  const url = await createSession(host, { name: "Hana", title });
  await joinByUrl(guest, url, "Omar");
  await presenceOf(host.page, "Omar").waitFor();
  return url;
}

scenario("join_by_url", "1. join by URL: both see each other in the presence bar", async () => {
  await withUsers(["host", "guest"], async (host, guest) => {
    const url = await createSession(host, { name: "Hana", title: "Join by link" });
    assert.match(url, /\?session=[A-Za-z0-9_-]{22}$/, "the address bar holds the link to share");
    assert.equal(await host.page.getByTestId("share-link").inputValue(), url);

    await guest.page.goto(url);
    // Opening a shared link asks for a name before joining.
    await guest.page.getByTestId("join-screen").waitFor();
    await assert.doesNotReject(guest.page.getByTestId("join-title").filter({ hasText: "Join by link" }).waitFor());
    await guest.page.getByTestId("join-name").fill("Omar");
    await guest.page.getByTestId("join-button").click();
    await waitLive(guest.page);

    assert.equal(guest.page.url(), url, "the guest is in the same session");
    for (const page of [host.page, guest.page]) {
      await presenceOf(page, "Hana").waitFor();
      await presenceOf(page, "Omar").waitFor();
      await page.locator('[data-testid="presence-item"][data-name="Omar"][data-status="active"]').waitFor();
    }
    assert.equal(await presenceOf(guest.page, "Hana").getByTestId("role-badge").textContent(), "host");
    assert.equal(await presenceOf(host.page, "Omar").getByTestId("role-badge").textContent(), "editor");
    assert.equal(await presenceOf(host.page, "Omar").getByTestId("presence-file").textContent(), "viewing main");
    assert.equal(await guest.page.getByTestId("session-title").textContent(), "Join by link");
    await sameText(host.page, guest.page, (t) => t.includes("def solve"), "the starter code on both screens");
    await screenshot(guest.page, "join_by_url");
  });
});

scenario("same_line_typing", "2. typing into the same line at once keeps every keystroke on both screens", async () => {
  await withUsers(["host", "guest"], async (host, guest) => {
    await hostAndGuest(host, guest, "Same line");
    const before = await editorText(host.page);
    const line = before.split("\n")[0];
    // Both carets at the same place: the end of line 1.
    await caretToLineEnd(host.page, 1);
    await caretToLineEnd(guest.page, 1);
    const mine = "abcdefghijklmnop";
    const theirs = "ABCDEFGHIJKLMNOP";
    await Promise.all([host.page.keyboard.type(mine, { delay: 45 }), guest.page.keyboard.type(theirs, { delay: 45 })]);

    await waitSettled(host.page, guest.page);
    const text = await sameText(host.page, guest.page, (t) => t.length === before.length + mine.length + theirs.length);
    const merged = text.split("\n")[0];
    assert.ok(merged.startsWith(line), `line 1 still starts with the original: ${merged}`);
    const typed = merged.slice(line.length);
    // Every character of each person is there, in the order they typed it.
    assert.equal([...typed].filter((c) => /[a-z]/.test(c)).join(""), mine, `host's keystrokes in ${typed}`);
    assert.equal([...typed].filter((c) => /[A-Z]/.test(c)).join(""), theirs, `guest's keystrokes in ${typed}`);
    assert.equal(text.split("\n").slice(1).join("\n"), before.split("\n").slice(1).join("\n"), "the other lines are untouched");
    await screenshot(host.page, "same_line_typing");

    // Undo takes back the host's own keystrokes only, and redo brings them back.
    await host.page.getByTestId("editor").focus();
    for (let i = 0; i < mine.length; i++) await host.page.keyboard.press("Control+z");
    await waitSettled(host.page);
    await sameText(host.page, guest.page, (t) => t.split("\n")[0] === line + theirs, "the host's typing undone on both screens");
    // "Z": with Shift held a keyboard sends the capital (CodeMirror reads
    // Ctrl with a lower-case "z" as undo, Shift or not).
    for (let i = 0; i < mine.length; i++) await host.page.keyboard.press("Control+Shift+Z");
    await waitSettled(host.page);
    await sameText(host.page, guest.page, (t) => t === text, "the host's typing redone on both screens");
  });
});

scenario("peer_cursor", "3. the peer's cursor and name are visible", async () => {
  await withUsers(["host", "guest"], async (host, guest) => {
    await hostAndGuest(host, guest, "Cursors");
    const hana = await whoAmI(host.page);
    await caretToLineEnd(host.page, 3);
    // Select a word on line 3 ("nums") so the guest sees a selection too.
    for (let i = 0; i < 4; i++) await host.page.keyboard.press("Shift+ArrowLeft");

    const cursor = guest.page.locator(`[data-testid="remote-cursor"][data-participant-id="${hana.id}"]`);
    await cursor.waitFor({ state: "visible" });
    const label = guest.page.locator(`[data-testid="remote-cursor-label"][data-participant-id="${hana.id}"]`);
    assert.equal(await label.textContent(), "Hana");
    const selection = guest.page.locator(`.rsel[data-participant-id="${hana.id}"]`);
    await eventually(async () => (await selection.allTextContents()).join(""), (t) => t === "nums", "the host's selection on the guest's screen");

    // The name covers no code: it sits after the end of the caret's line,
    // and over no line's characters.
    const overlaps = await guest.page.evaluate((id) => {
      const label = document.querySelector(`[data-testid="remote-cursor-label"][data-participant-id="${id}"]`).getBoundingClientRect();
      const view = window.interviewRoom.editor.view;
      const hits = [];
      for (let pos = 0; pos < view.state.doc.length; pos++) {
        const c = view.coordsAtPos(pos, 1);
        if (!c || view.state.doc.sliceString(pos, pos + 1) === "\n") continue;
        const right = view.coordsAtPos(pos + 1, -1)?.left ?? c.right;
        if (c.left < label.right && right > label.left && c.top < label.bottom && c.bottom > label.top) hits.push(pos);
      }
      const line = view.state.doc.line(3);
      return { hits, afterLineEnd: label.left >= view.coordsAtPos(line.to, -1).left };
    }, hana.id);
    assert.deepEqual(overlaps.hits, [], "characters under the name label");
    assert.ok(overlaps.afterLineEnd, "the label is after the end of line 3");

    // The caret is drawn on line 3: below the top of line 1 by two line heights.
    const box = await cursor.boundingBox();
    const editorBox = await guest.page.getByTestId("editor").boundingBox();
    assert.ok(box.y - editorBox.y > 40 && box.y - editorBox.y < 80, `caret at y=${box.y - editorBox.y}`);

    // Typing shows the typing indicator on the other screen.
    await host.page.keyboard.type("_list", { delay: 40 });
    await guest.page.getByTestId("typing-indicator").filter({ hasText: "Hana is typing" }).waitFor();
    await presenceOf(guest.page, "Hana").getByTestId("presence-typing").waitFor({ state: "visible" });
    // The typing replaced the selection: the guest moved Hana's caret with her
    // edits (no presence frame is sent for that), so no selection is left and
    // the caret sits after what she typed, on line 3 still.
    await eventually(() => selection.count(), (n) => n === 0, "the host's selection gone on the guest's screen");
    const typedEnd = await cursor.boundingBox();
    assert.ok(typedEnd.x > box.x, `caret moved right with the typing: ${box.x} -> ${typedEnd.x}`);
    assert.ok(Math.abs(typedEnd.y - box.y) < 5, `caret still on line 3: ${box.y} -> ${typedEnd.y}`);
    await screenshot(guest.page, "peer_cursor");
  });
});

scenario("chat_mention", "4. a chat message with an @mention arrives highlighted", async () => {
  await withUsers(["host", "guest"], async (host, guest) => {
    await hostAndGuest(host, guest, "Mentions");
    const input = guest.page.getByTestId("chat-input");
    await input.click();
    // The composer offers names after @.
    await input.pressSequentially("@Ha", { delay: 30 });
    await guest.page.getByTestId("mention-suggestion").filter({ hasText: "Hana" }).click();
    await input.pressSequentially("could you look at the loop?", { delay: 10 });
    await input.press("Enter");

    const message = host.page.getByTestId("chat-message").filter({ hasText: "could you look at the loop?" });
    await message.waitFor();
    const mention = message.getByTestId("mention");
    assert.equal(await mention.textContent(), "@Hana");
    assert.match(await mention.getAttribute("class"), /\bme\b/, "a mention of the reader stands out");
    assert.match(await message.getAttribute("class"), /mentions-me/);
    assert.equal(await message.getByTestId("message-author").textContent(), "Omar");
    // The sender sees the mention highlighted too, and the reader got a notice.
    await guest.page.getByTestId("chat-message").getByTestId("mention").filter({ hasText: "@Hana" }).waitFor();
    await host.page.getByTestId("toast").filter({ hasText: "Omar mentioned you" }).waitFor();
    await screenshot(host.page, "chat_mention");
  });
});

scenario("viewer_read_only", "5. a viewer cannot type, and the editor follows role changes live", async () => {
  await withUsers(["host", "guest"], async (host, guest) => {
    await hostAndGuest(host, guest, "Roles");
    const original = await editorText(guest.page);
    await presenceOf(host.page, "Omar").getByTestId("role-select").selectOption("viewer");

    await guest.page.getByTestId("read-only-badge").waitFor({ state: "visible" });
    await presenceOf(guest.page, "Omar").locator('[data-testid="role-badge"]', { hasText: "viewer" }).waitFor();
    assert.equal(await guest.page.getByTestId("editor").getAttribute("contenteditable"), "false");
    assert.equal(await guest.page.getByTestId("run-button").isDisabled(), true);

    await caretToLineEnd(guest.page, 1);
    await guest.page.keyboard.type("zzz", { delay: 30 });
    await guest.page.keyboard.press("Enter");
    await guest.page.keyboard.press("Backspace");
    assert.equal(await editorText(guest.page), original, "the viewer's typing changed nothing on their screen");
    // A chat message sent after the keystrokes reaches the host after anything
    // those keystrokes could have sent; then the host's text is checked.
    const input = guest.page.getByTestId("chat-input");
    await input.fill("viewer finished typing");
    await input.press("Enter");
    await host.page.getByTestId("chat-message").filter({ hasText: "viewer finished typing" }).waitFor();
    assert.equal(await editorText(host.page), original, "nothing reached the host");
    await screenshot(guest.page, "viewer_read_only");

    // Back to editor: typing works again without a reload.
    await presenceOf(host.page, "Omar").getByTestId("role-select").selectOption("editor");
    await guest.page.getByTestId("read-only-badge").waitFor({ state: "hidden" });
    await caretToLineEnd(guest.page, 1);
    await guest.page.keyboard.type(" # ok", { delay: 30 });
    await sameText(host.page, guest.page, (t) => t.split("\n")[0].endsWith(" # ok"), "the editor's edit on both screens");
  });
});

scenario("refresh_keeps_identity", "6. a refresh keeps the session and the participant", async () => {
  await withUsers(["host", "guest"], async (host, guest) => {
    const url = await hostAndGuest(host, guest, "Refresh");
    const before = await whoAmI(guest.page);
    await guest.page.reload();
    await waitLive(guest.page);

    assert.equal(guest.page.url(), url, "still the same session");
    assert.equal(await guest.page.getByTestId("join-screen").isVisible(), false, "no name asked again");
    const afterReload = await whoAmI(guest.page);
    assert.deepEqual(afterReload, before, "same participant id, name and token");
    // The host sees one Omar, online again, and no duplicate.
    await host.page.locator('[data-testid="presence-item"][data-name="Omar"][data-status="active"]').waitFor();
    await eventually(() => host.page.getByTestId("presence-item").count(), (n) => n === 2, "two people in the host's presence bar");
    assert.equal(await presenceOf(host.page, "Omar").count(), 1);
    assert.equal(await presenceOf(guest.page, "Omar").count(), 1);
    await screenshot(guest.page, "refresh_keeps_identity");
  });
});

scenario("offline_merge", "7. edits made offline merge when the connection returns", async () => {
  await withUsers(["host", "guest"], async (host, guest) => {
    await hostAndGuest(host, guest, "Offline");
    const before = await editorText(host.page);

    await guest.context.setOffline(true);
    await guest.page.locator('[data-testid="connection-status"][data-state="offline"]').waitFor();
    // The host is not waited on to show the guest offline: with the network
    // gone, the guest's close may never reach the server, which then notices
    // only at the stale timeout (45 s; the conformance suite covers dead peers).

    // Both edit while apart: the guest on line 3, the host on line 1.
    await caretToLineEnd(guest.page, 3);
    await guest.page.keyboard.type("  # typed offline", { delay: 20 });
    await caretToLineEnd(host.page, 1);
    await host.page.keyboard.type("  # typed online", { delay: 20 });
    await waitSettled(host.page);
    assert.ok(!(await editorText(host.page)).includes("typed offline"), "nothing arrived while offline");
    assert.ok((await editorText(guest.page)).includes("typed offline"), "the guest's edit is kept locally");
    assert.ok(!(await editorText(guest.page)).includes("typed online"));
    await screenshot(guest.page, "offline_edits_pending");

    await guest.context.setOffline(false);
    await waitLive(guest.page);
    await waitSettled(host.page, guest.page);
    const text = await sameText(
      host.page,
      guest.page,
      (t) => t.includes("typed offline") && t.includes("typed online"),
      "both edits on both screens",
    );
    const lines = text.split("\n");
    const original = before.split("\n");
    assert.equal(lines[0], `${original[0]}  # typed online`);
    assert.equal(lines[2], `${original[2]}  # typed offline`);
    assert.equal(lines.length, original.length);
    await screenshot(guest.page, "offline_merge");

    // The socket closing under the page (a network failure the browser does
    // not report as offline): the page reconnects by itself, and what was
    // typed meanwhile merges too.
    await guest.page.evaluate(() => {
      window.seenStates = [];
      const status = document.querySelector('[data-testid="connection-status"]');
      new MutationObserver(() => window.seenStates.push(status.dataset.state)).observe(status, { attributes: true });
      window.interviewRoom.client.connection.ws.close();
    });
    await caretToLineEnd(guest.page, 6);
    await guest.page.keyboard.type(" # after a drop", { delay: 20 });
    await waitLive(guest.page);
    await waitSettled(host.page, guest.page);
    await sameText(host.page, guest.page, (t) => t.split("\n")[5].endsWith(" # after a drop"), "the edit made during the drop");
    assert.ok((await guest.page.evaluate(() => window.seenStates)).includes("reconnecting"), "the indicator said reconnecting");
  });
});

scenario("comments_threads_reactions", "8. code comments jump to their line; threads, reactions, edit and delete", async () => {
  await withUsers(["host", "guest"], async (host, guest) => {
    await hostAndGuest(host, guest, "Comments");
    // The host comments on line 2 by clicking its number.
    await lineNumber(host.page, 2).click();
    await host.page.getByTestId("composer-context").filter({ hasText: "Comment on main:2" }).waitFor();
    await host.page.getByTestId("chat-input").fill("Why a comment here?");
    await host.page.getByTestId("chat-input").press("Enter");

    const comment = guest.page.getByTestId("chat-message").filter({ hasText: "Why a comment here?" });
    await comment.waitFor();
    assert.equal(await comment.getByTestId("comment-anchor").textContent(), "main:2");
    await comment.getByTestId("comment-anchor").click();
    await guest.page.getByTestId("caret-position").filter({ hasText: "Ln 2, Col 1" }).waitFor();

    // The guest replies in the thread.
    await comment.hover();
    await comment.getByTestId("reply-button").click();
    await guest.page.getByTestId("chat-input").fill("It explains the task");
    await guest.page.getByTestId("chat-input").press("Enter");
    const reply = host.page.getByTestId("thread-replies").getByTestId("chat-message").filter({ hasText: "It explains the task" });
    await reply.waitFor();

    // The host reacts to the reply.
    await reply.hover();
    await reply.getByTestId("react-button").click();
    await reply.getByTestId("reaction-picker").locator('[data-emoji="👍"]').click();
    await guest.page.locator('[data-testid="reaction"][data-emoji="👍"]', { hasText: "👍 1" }).waitFor();

    // The guest edits their reply; the host deletes it.
    const guestReply = guest.page.getByTestId("chat-message").filter({ hasText: "It explains the task" });
    await guestReply.hover();
    await guestReply.getByTestId("edit-button").click();
    await guest.page.getByTestId("chat-input").fill("It explains the task, @Hana");
    await guest.page.getByTestId("chat-input").press("Enter");
    const edited = host.page.getByTestId("chat-message").filter({ hasText: "It explains the task, @Hana" });
    await edited.getByTestId("message-edited").waitFor();
    await edited.getByTestId("mention").waitFor();
    await screenshot(host.page, "comments_threads_reactions");
    await edited.hover();
    await edited.getByTestId("delete-button").click();
    await edited.getByTestId("delete-button").click(); // Confirms.
    await guest.page.getByTestId("chat-message").filter({ hasText: "This message was deleted." }).waitFor();
  });
});

scenario("language_and_run", "9. language changes reach everyone, and Run shares its result", async () => {
  await withUsers(["host", "guest"], async (host, guest) => {
    await hostAndGuest(host, guest, "Run");
    assert.equal(await guest.page.getByTestId("language-select").isDisabled(), true, "only a host picks the language");
    await host.page.getByTestId("language-select").selectOption("javascript");
    await eventually(() => guest.page.getByTestId("language-select").inputValue(), (v) => v === "javascript", "the guest's language");

    // A real run: the server's embedded JavaScript sandbox runs the guest's
    // code, and both screens show its output.
    const program = "function solve(nums) {\n  return [...nums].sort((a, b) => a - b);\n}\n\nconsole.log('sorted:', solve([3, 1, 2]));\n";
    // The guest replaces the code they see, as a person would: once the
    // starting code is on their screen (on a loaded machine the editor can
    // still be settling after the language switch, and a fill then types
    // into an empty selection instead of replacing).
    await sameText(host.page, guest.page, (t) => t.includes("def solve"), "the starting code on both screens");
    await guest.page.getByTestId("editor").fill(program);
    await sameText(host.page, guest.page, (t) => t === program, "the program on both screens");
    await guest.page.getByTestId("run-button").click();
    for (const page of [host.page, guest.page]) {
      await page.getByTestId("run-stdout").filter({ hasText: "sorted: [ 1, 2, 3 ]" }).waitFor();
      await page.getByTestId("run-meta").filter({ hasText: "Run by Omar" }).filter({ hasText: "exit code 0" }).waitFor();
    }
    await screenshot(host.page, "language_and_run");

    // A program that never ends is stopped by the time limit, for everyone.
    await guest.page.getByTestId("editor").fill("let n = 0;\nwhile (true) n++;\n");
    await sameText(host.page, guest.page, (t) => t.startsWith("let n = 0;"), "the endless loop on both screens");
    await guest.page.getByTestId("run-button").click();
    for (const page of [host.page, guest.page]) {
      await page.getByTestId("run-stderr").filter({ hasText: "time limit exceeded (2 s)" }).waitFor();
      await page.getByTestId("run-meta").filter({ hasText: "stopped" }).waitFor();
      await page.locator('[data-testid="run-result"].stopped').waitFor();
    }
    await screenshot(host.page, "run_time_limit");

    // The page's side of a run, with the endpoint answered in the browser:
    // what it posts, and that stderr reaches everyone through run_output /
    // run_finished.
    let posted = null;
    await guest.page.route("**/api/v1/run", async (route) => {
      posted = route.request().postDataJSON();
      await route.fulfill({ status: 200, contentType: "application/json", body: JSON.stringify({ stdout: "[1, 2, 3]\n", stderr: "warning: slow\n", exit_code: 0 }) });
    });
    await guest.page.getByTestId("run-button").click();
    for (const page of [host.page, guest.page]) {
      await page.getByTestId("run-stdout").filter({ hasText: "[1, 2, 3]" }).waitFor();
      await page.getByTestId("run-stderr").filter({ hasText: "warning: slow" }).waitFor();
      await page.getByTestId("run-meta").filter({ hasText: "Run by Omar" }).waitFor();
    }
    assert.equal(posted.language, "javascript");
    assert.equal(posted.code, await editorText(guest.page));

    await guest.page.unroute("**/api/v1/run");
    await guest.page.route("**/api/v1/run", (route) =>
      route.fulfill({ status: 500, contentType: "application/json", body: JSON.stringify({ error: { code: "internal", message: "sandbox unavailable" } }) }),
    );
    await guest.page.getByTestId("run-button").click();
    await guest.page.getByTestId("run-error").filter({ hasText: "sandbox unavailable" }).waitFor();
    await guest.page.unroute("**/api/v1/run");

    // Python would run on the server's machine, which is off by default: the
    // page says so before anyone presses Run, and Run is off.
    await host.page.getByTestId("language-select").selectOption("python");
    await eventually(() => guest.page.getByTestId("language-select").inputValue(), (v) => v === "python", "the guest's language");
    await guest.page.getByTestId("run-note").waitFor();
    assert.equal(await guest.page.getByTestId("run-note").textContent(), "Python does not run here");
    assert.equal(await guest.page.getByTestId("run-button").isDisabled(), true);
    await host.page.getByTestId("language-select").selectOption("javascript");
    await eventually(() => guest.page.getByTestId("run-button").isDisabled(), (v) => v === false, "Run back on for JavaScript");
  });
});

scenario("history_replay", "10. the history replays the code revision by revision", async () => {
  await withUsers(["host", "guest"], async (host, guest) => {
    await hostAndGuest(host, guest, "History");
    const start = await editorText(host.page);
    await caretToLineEnd(guest.page, 1);
    await guest.page.keyboard.type(" # v1", { delay: 30 });
    await waitSettled(guest.page);
    await guest.page.getByTestId("chat-input").fill("v1 is in");
    await guest.page.getByTestId("chat-input").press("Enter");
    await host.page.getByText("v1 is in").waitFor();
    await caretToLineEnd(host.page, 3);
    await host.page.keyboard.type(" # v2", { delay: 30 });
    await waitSettled(host.page);
    const now = await editorText(host.page);

    await host.page.getByTestId("history-button").click();
    const slider = host.page.getByTestId("history-slider");
    await eventually(() => slider.getAttribute("max"), (m) => Number(m) >= 2, "history steps");
    const code = host.page.getByTestId("history-code");
    const shown = async () => (await code.textContent()).replace(/ $/, "");
    assert.equal(await shown(), now, "the last step is the current code");
    await slider.fill("0");
    assert.equal(await shown(), start, "step 0 is the code the session started with");
    await host.page.getByTestId("history-play").click();
    await eventually(shown, (t) => t === now, "the replay to reach the current code");
    await host.page.getByTestId("history-rev").filter({ hasText: "by Hana" }).waitFor();
    // Each change in its author's colour; the chat beside it, as of then.
    const colours = await host.page.evaluate(() =>
      Object.fromEntries([...window.interviewRoom.participants.values()].map((p) => [p.name, p.colour])),
    );
    const mark = host.page.locator(".hist-change");
    assert.equal(
      await mark.evaluate((m) => getComputedStyle(m).getPropertyValue("--author").trim()),
      colours.Hana,
      "the last change is Hana's, in her colour",
    );
    await host.page.getByTestId("history-moment").filter({ hasText: "v1 is in" }).waitFor();
    await slider.fill("0");
    await host.page.getByTestId("history-timeline").filter({ hasText: "Nothing said or run yet." }).waitFor();
    await slider.fill(await slider.getAttribute("max"));
    await screenshot(host.page, "history_replay");
    await host.page.getByTestId("history-close").click();

    // The story goes on after the last edit: a paste, a pause and a resume,
    // a message; the timeline ends with them, and the paste is marked.
    const paste = Array.from({ length: 12 }, (_, i) => `# pasted line ${i} of the helper`).join("\n");
    await caretToLineEnd(guest.page, 1);
    await guest.page.keyboard.insertText("\n" + paste);
    await waitSettled(guest.page);
    await host.page.getByTestId("session-status-select").selectOption("paused");
    await guest.page.getByTestId("read-only-badge").filter({ hasText: "Paused" }).waitFor();
    await host.page.getByTestId("session-status-select").selectOption("active");
    await guest.page.getByTestId("chat-input").fill("after the last edit");
    await guest.page.getByTestId("chat-input").press("Enter");
    await host.page.getByText("after the last edit").waitFor();
    const final = await editorText(host.page);
    await host.page.getByTestId("history-button").click();
    await host.page.getByTestId("history-moment").filter({ hasText: "after the last edit" }).waitFor();
    await host.page.getByTestId("history-moment").filter({ hasText: "paused the session" }).waitFor();
    await host.page.getByTestId("history-moment").filter({ hasText: "resumed the session" }).waitFor();
    assert.equal(await shown(), final, "the last step shows the code as it ended");
    assert.match(await host.page.getByTestId("history-rev").textContent(), /Omar chat/, "the last step is the message");
    const marks = host.page.getByTestId("history-paste-mark");
    assert.equal(await marks.count(), 1, "one paste marked");
    await marks.first().click();
    assert.match(await host.page.getByTestId("history-rev").textContent(), /paste of \d+ characters by Omar/);
    // Played at 32× from the start, it reaches the end, messages and all.
    await host.page.getByTestId("history-speed").selectOption("32");
    await slider.fill("0");
    await host.page.getByTestId("history-play").click();
    await eventually(async () => [await slider.inputValue(), await slider.getAttribute("max")], ([v, m]) => v === m, "the replay to reach the end");
    assert.equal(await shown(), final);
    await screenshot(host.page, "history_timeline");

    // A host exports it all; the export's end is the code as it ended.
    const [download] = await Promise.all([host.page.waitForEvent("download"), host.page.getByTestId("history-export").click()]);
    const exported = JSON.parse(await readFile(await download.path(), "utf8"));
    assert.equal(exported.format, "collab-export/1");
    assert.equal(exported.end.files.main, final);
    assert.ok(exported.events.some((e) => e.kind === "message_posted" && e.message.text === "after the last edit"));
    // A guest has no export button: the server would refuse them.
    await guest.page.getByTestId("history-button").click();
    await guest.page.getByTestId("history-slider").waitFor();
    assert.equal(await guest.page.getByTestId("history-export").isVisible(), false);
  });
});

scenario("pause_is_announced", "10b. a pause is announced, and typing goes on after it without a click", async () => {
  await withUsers(["host", "guest"], async (host, guest) => {
    await hostAndGuest(host, guest, "Pause");
    await caretToLineEnd(guest.page, 1);
    await guest.page.keyboard.type(" # before", { delay: 20 });
    await waitSettled(guest.page);
    const before = await editorText(guest.page);
    await host.page.getByTestId("session-status-select").selectOption("paused");
    for (const page of [host.page, guest.page]) {
      await page.getByTestId("toast").filter({ hasText: "paused the session" }).waitFor();
    }
    await guest.page.getByTestId("my-role").filter({ hasText: "paused: read-only" }).waitFor();
    await guest.page.getByTestId("read-only-badge").filter({ hasText: "Paused" }).waitFor();
    // Typing while paused changes nothing, and the editor keeps the focus.
    await guest.page.keyboard.type("zz", { delay: 20 });
    assert.equal(await editorText(guest.page), before, "nothing typed while paused");
    assert.ok(await guest.page.evaluate(() => document.activeElement?.closest(".cm-editor") != null), "the editor keeps the focus");
    await host.page.getByTestId("session-status-select").selectOption("active");
    for (const page of [host.page, guest.page]) {
      await page.getByTestId("toast").filter({ hasText: "resumed the session" }).waitFor();
    }
    // The first keystrokes after the resume land, with no click first.
    await eventually(() => guest.page.getByTestId("read-only-badge").isVisible(), (v) => v === false, "the badge to go");
    await guest.page.keyboard.type(" # after", { delay: 20 });
    await waitSettled(guest.page);
    await sameText(host.page, guest.page, (t) => t.includes("# before # after"), "the typing after the resume to reach the host");
    await screenshot(guest.page, "pause_is_announced");
  });
});

scenario("scheduled_room", "10c. a room kept open for the interview: its time shows, a host extends it, everyone is warned and told why it ended", async () => {
  await withUsers(["host", "guest"], async (host, guest) => {
    await host.page.goto(BASE_URL);
    await host.page.getByTestId("create-name").fill("Hana");
    await host.page.getByTestId("create-title").fill("Scheduled");
    await host.page.getByTestId("create-open-for").selectOption("3600");
    await host.page.getByTestId("create-schedule-hint").waitFor();
    await host.page.getByTestId("create-session").click();
    await waitLive(host.page);
    const url = host.page.url();
    const closesAt = () => host.page.evaluate(() => window.interviewRoom.session.closes_at);
    const first = await closesAt();
    assert.ok(first > Date.now() + 55 * 60 * 1000, "open for an hour from now");
    await host.page.getByTestId("closes-at").filter({ hasText: "Closes" }).waitFor();
    await host.page.getByTestId("extend-session").click();
    await eventually(closesAt, (t) => t === first + 30 * 60 * 1000, "the session to be extended");
    await host.page.getByTestId("toast").filter({ hasText: "Extended by 30 minutes" }).waitFor();
    await joinByUrl(guest, url, "Omar");
    await guest.page.getByTestId("closes-at").filter({ hasText: "Closes" }).waitFor();
    assert.equal(await guest.page.getByTestId("extend-session").isVisible(), false, "only hosts extend");
    await screenshot(host.page, "scheduled_room");
    // Moved to close in three seconds: everyone is warned at once, then
    // told why it ended.
    await host.page.evaluate(() => window.interviewRoom.client.updateSession({ closes_at: Date.now() + 3000 }));
    for (const page of [host.page, guest.page]) {
      await page.getByTestId("toast").filter({ hasText: "The session closes at" }).waitFor();
    }
    for (const page of [host.page, guest.page]) {
      await page.getByTestId("closed-text").filter({ hasText: "scheduled time ran out" }).waitFor({ timeout: 15_000 });
      assert.equal(await page.getByTestId("closed-title").textContent(), "This interview has ended");
    }
    await screenshot(guest.page, "scheduled_room_closed");
  });
});

scenario("second_tab", "10d. a second tab of one browser says it is the same person, and can join as someone else", async () => {
  await withUsers(["host"], async (host) => {
    const url = await createSession(host, { name: "Hana", title: "Alone" });
    const second = await host.context.newPage();
    second.on("pageerror", (e) => host.errors.push(`second tab: ${e.message}`));
    await second.goto(url);
    await waitLive(second);
    for (const page of [host.page, second]) await page.getByTestId("same-person").waitFor();
    assert.equal(await second.evaluate(() => window.interviewRoom.participants.size), 1, "one person so far");
    await second.getByTestId("join-as-someone-else").click();
    await second.getByTestId("join-name").waitFor();
    assert.equal(await second.getByTestId("join-name").inputValue(), "", "not Hana's name");
    await second.getByTestId("join-name").fill("Sam");
    await second.getByTestId("join-button").click();
    await waitLive(second);
    await presenceOf(host.page, "Sam").waitFor();
    assert.equal(await second.getByTestId("same-person").isVisible(), false, "someone else now");
    assert.match(await second.getByTestId("my-role").textContent(), /an editor/);
    // A reload keeps this tab as Sam; the first tab is still Hana.
    await second.reload();
    await waitLive(second);
    assert.equal(await second.evaluate(() => window.interviewRoom.participants.get(window.interviewRoom.me).name), "Sam");
    assert.equal(await host.page.evaluate(() => window.interviewRoom.participants.get(window.interviewRoom.me).name), "Hana");
    await screenshot(second, "second_tab");
    await second.close();
  });
});

scenario("files", "11. a new file reaches everyone, with who is viewing it", async () => {
  await withUsers(["host", "guest"], async (host, guest) => {
    await hostAndGuest(host, guest, "Files");
    await guest.page.getByTestId("new-file").click();
    await guest.page.getByTestId("new-file-name").fill("test_solve.py");
    await guest.page.getByTestId("new-file-name").press("Enter");
    await guest.page.locator('[data-testid="file-tab"][data-file="test_solve.py"][aria-selected="true"]').waitFor();
    await guest.page.getByTestId("editor").focus();
    await guest.page.keyboard.type("from main import solve", { delay: 20 });

    await host.page.locator('[data-testid="file-tab"][data-file="test_solve.py"]').click();
    await eventually(() => editorText(host.page), (t) => t === "from main import solve", "the new file's text on the host's screen");
    await presenceOf(host.page, "Omar").getByTestId("presence-file").filter({ hasText: "viewing test_solve.py" }).waitFor();
    // Back on main, both still agree there.
    await host.page.locator('[data-testid="file-tab"][data-file="main"]').click();
    await guest.page.locator('[data-testid="file-tab"][data-file="main"]').click();
    await sameText(host.page, guest.page, (t) => t.startsWith("def solve"), "main on both screens");
    await screenshot(host.page, "files");
  });
});

scenario("editor", "17. the editor: every offered language highlighted, indentation by language, search", async () => {
  await withUsers(["host", "guest"], async (host, guest) => {
    await createSession(host, { name: "Hana", title: "Editor", language: "javascript" });
    await joinByUrl(guest, host.page.url(), "Omar");
    // Indentation follows the language (two spaces in JavaScript), and a
    // closing brace goes back out.
    await caretToLineEnd(guest.page, 1);
    await guest.page.keyboard.press("Enter");
    await guest.page.keyboard.type("if (nums) {", { delay: 20 });
    await guest.page.keyboard.press("Enter");
    await guest.page.keyboard.type("x;", { delay: 20 });
    await guest.page.keyboard.press("Enter");
    await guest.page.keyboard.type("}", { delay: 20 });
    const lines = (await sameText(host.page, guest.page, (t) => t.includes("x;"), "the typed block")).split("\n");
    const at = lines.findIndex((l) => l.trim() === "if (nums) {");
    // "{" brought its "}", which Enter put on a line of its own; the "}"
    // typed on the indented line after "x;" went back out to the block's
    // indentation.
    assert.deepEqual(lines.slice(at, at + 4), ["  if (nums) {", "    x;", "  }", "  }"], lines.join("\n"));

    // Every language the room offers is highlighted by its grammar.
    const offered = await host.page.getByTestId("language-select").locator("option").evaluateAll((os) => os.map((o) => o.value));
    assert.ok(offered.length >= 15, `${offered.length} languages`);
    for (const language of offered.filter((l) => l !== "plaintext")) {
      await host.page.getByTestId("language-select").selectOption(language);
      const name = await eventually(
        () => guest.page.evaluate(() => window.interviewRoom.editor.languageName()),
        (n) => n !== null && n !== "",
        `a grammar for ${language}`,
      );
      assert.ok(name, language);
      const styled = await eventually(
        () => guest.page.locator(".cm-line span[class]").count(),
        (n) => n > 0,
        `highlighted code in ${language}`,
      );
      assert.ok(styled > 0);
      if (language === "python") await screenshot(guest.page, "editor_python");
    }

    // Search: Ctrl+F opens CodeMirror's search panel.
    await guest.page.getByTestId("editor").focus();
    await guest.page.keyboard.press("Control+f");
    await guest.page.locator(".cm-search input[name=search]").waitFor();
    await screenshot(guest.page, "editor_search");
  });
});

scenario("binding", "18. an app's own CodeMirror bound with collab(): edits both ways, cursors, undo", async () => {
  await withUsers(["host", "guest"], async (host, guest) => {
    await createSession(host, { name: "Hana", title: "Binding", language: "javascript" });
    // The guest's page is used as a blank app: its own client (a fresh
    // guest token) and an editor with nothing but the binding.
    const url = host.page.url();
    await guest.page.goto(url);
    await guest.page.evaluate(async () => {
      const { EditorView } = await import("@codemirror/view");
      const { history, historyKeymap } = await import("@codemirror/commands");
      const { keymap } = await import("@codemirror/view");
      const { CollabClient } = await import("/collab-client.mjs");
      const { collab } = await import("/collab-codemirror.mjs");
      const id = new URL(location.href).searchParams.get("session");
      const { token } = await (await fetch("/api/v1/guests", { method: "POST" })).json();
      const client = new CollabClient({ url: `ws://${location.host}/ws/session/${id}`, token, name: "App", sessionUrl: `/api/v1/sessions/${id}` });
      client.connect();
      await client.ready();
      document.body.replaceChildren();
      const parent = document.createElement("div");
      parent.id = "app-editor";
      document.body.append(parent);
      window.app = {
        client,
        view: new EditorView({
          doc: client.doc.text("main"),
          extensions: [history(), keymap.of(historyKeymap), collab(client, { file: "main" })],
          parent,
        }),
      };
    });
    const appText = () => guest.page.evaluate(() => window.app.view.state.doc.toString());
    await presenceOf(host.page, "App").waitFor();

    // The host types: the app's editor shows it.
    await caretToLineEnd(host.page, 1);
    await host.page.keyboard.type(" /* host */", { delay: 20 });
    await eventually(appText, (t) => t.split("\n")[0].endsWith(" /* host */"), "the host's typing in the app's editor");
    // The host's caret is drawn in the app's editor, with the name.
    await guest.page.locator('#app-editor [data-testid="remote-cursor-label"]', { hasText: "Hana" }).waitFor();

    // The app types at the start: the host sees it, and the app's caret.
    await guest.page.evaluate(() => {
      const view = window.app.view;
      view.focus();
      view.dispatch({ selection: { anchor: 0 } });
    });
    await guest.page.keyboard.type("// app\n", { delay: 20 });
    await eventually(() => editorText(host.page), (t) => t.startsWith("// app\n"), "the app's typing on the host's screen");
    await host.page.locator('[data-testid="remote-cursor-label"]', { hasText: "App" }).waitFor();

    // Undo in the app takes back its own typing only.
    await guest.page.keyboard.press("Control+z");
    const text = await eventually(() => editorText(host.page), (t) => !t.startsWith("// app"), "the app's undo on the host's screen");
    assert.ok(text.split("\n")[0].endsWith(" /* host */"), text);
    assert.equal(await appText(), text);
    await screenshot(guest.page, "binding");
  });
});

scenario("session_ended", "12. a host removes a participant and ends the session", async () => {
  await withUsers(["host", "guest", "third", "fourth"], async (host, guest, third, fourth) => {
    const url = await hostAndGuest(host, guest, "Kick and end");
    await joinByUrl(third, url, "Lena");
    await presenceOf(host.page, "Lena").waitFor();
    const kick = presenceOf(host.page, "Lena").getByTestId("kick-button");
    await kick.click();
    await kick.click(); // Confirms.
    await third.page.locator('[data-testid="closed-screen"][data-reason="kicked"]').waitFor();
    await presenceOf(guest.page, "Lena").waitFor({ state: "detached" });
    // The kicked screen offers no way back, and a reload stays out.
    assert.equal(await third.page.getByTestId("closed-rejoin").isVisible(), false);
    await third.page.reload();
    await third.page.locator('[data-testid="closed-screen"][data-reason="kicked"]').waitFor();
    assert.equal(await third.page.getByTestId("closed-rejoin").isVisible(), false);
    // A fresh guest identity from the same address is kept out too: the
    // join screen says so instead of offering to join.
    await fourth.page.goto(url);
    await fourth.page.getByTestId("join-title").filter({ hasText: "You cannot join this session" }).waitFor();
    assert.equal(await fourth.page.getByTestId("join-form-fields").isVisible(), false);

    await host.page.getByTestId("end-session").click();
    await host.page.getByTestId("end-session").click(); // Confirms.
    await guest.page.locator('[data-testid="closed-screen"][data-reason="session_ended"]').waitFor();
    await guest.page.locator('[data-testid="connection-status"][data-state="closed"]').waitFor();
    await screenshot(guest.page, "session_ended");

    // The guest reviews it: the final code, read-only, the chat, no sending.
    const finalText = await editorText(host.page);
    await guest.page.getByTestId("closed-rejoin").filter({ hasText: "Review the session" }).click();
    await guest.page.getByTestId("review-banner").waitFor();
    await eventually(() => editorText(guest.page), (t) => t === finalText, "the final code");
    assert.equal(await guest.page.getByTestId("editor").isEditable(), false, "read-only");
    assert.equal(await guest.page.getByTestId("chat-input").isDisabled(), true);
    assert.equal(await guest.page.getByTestId("run-button").isDisabled(), true);
    // A reload comes back to the review, not to an empty room.
    await guest.page.reload();
    await guest.page.getByTestId("review-banner").waitFor();
    await eventually(() => editorText(guest.page), (t) => t === finalText, "the final code after a reload");
    await screenshot(guest.page, "session_review");
  });
});

scenario("big_paste", "13. a 200 KB paste reaches everyone, and so does what is typed after it", async () => {
  await withUsers(["host", "guest"], async (host, guest) => {
    await hostAndGuest(host, guest, "Big paste");
    // About 200 KB of code-like lines (four frames' worth), with an emoji
    // and quotes now and then. (A megabyte is tested with the document
    // client in the conformance suite.)
    const line = (i) => `    result_${i} = compute("row ${i}", value * ${i})  # 😀 "quoted"\n`;
    let paste = "";
    for (let i = 0; paste.length < 200_000; i++) paste += line(i);
    await caretToLineEnd(host.page, 1);
    await host.page.keyboard.insertText("\n" + paste);
    await host.page.keyboard.insertText("# typed after the paste");
    const text = await sameText(
      host.page,
      guest.page,
      (t) => t.includes(paste) && t.includes("# typed after the paste"),
      "the paste and the typing after it on both screens",
    );
    assert.ok(text.length > 200_000, `${text.length} characters`);
    // Nothing waits for an acknowledgement any more.
    await host.page.locator('[data-testid="connection-status"][data-state="live"]').waitFor();
    assert.equal(await host.page.evaluate(() => window.interviewRoom.doc.hasPending), false);
    await screenshot(guest.page, "big_paste");
  });
});

scenario("unsaved_edits", "14. edits the server has not confirmed for a few seconds are shown as such", async () => {
  await withUsers(["host", "guest"], async (host, guest) => {
    // Hold the host's edits on their way to the server, as a stalled
    // network would, and let everything else through.
    let holding = false;
    const held = [];
    let toServer = null;
    await host.page.routeWebSocket(/\/ws\/session\//, (ws) => {
      const server = ws.connectToServer();
      toServer = server;
      ws.onMessage((m) => {
        if (holding && typeof m === "string" && m.includes('"type":"text_op"')) held.push(m);
        else server.send(m);
      });
      server.onMessage((m) => ws.send(m));
    });
    await hostAndGuest(host, guest, "Unsaved");
    await caretToLineEnd(host.page, 1);
    holding = true;
    await host.page.keyboard.type("# held");
    const status = host.page.locator('[data-testid="connection-status"]');
    await host.page.locator('[data-testid="connection-status"][data-state="unsaved"]').waitFor({ timeout: 10000 });
    assert.match(await status.textContent(), /Saving/);
    await screenshot(host.page, "unsaved_edits");
    holding = false;
    for (const m of held.splice(0)) toServer.send(m);
    await host.page.locator('[data-testid="connection-status"][data-state="live"]').waitFor({ timeout: 10000 });
    await sameText(host.page, guest.page, (t) => t.includes("# held"), "the held edit arrives");
  });
});

scenario("screens", "15. the room works on a phone (390 px), a tablet (800 px) and a laptop (1280 px)", async () => {
  await withUsers(["host", "guest"], async (host, guest) => {
    await host.page.setViewportSize({ width: 1280, height: 800 });
    await hostAndGuest(host, guest, "Screens");
    await screenshot(host.page, "room_1280");
    for (const [width, height] of [
      [390, 844],
      [800, 1000],
    ]) {
      await guest.page.setViewportSize({ width, height });
      // Every action of the top bar is on screen, none wider than the page.
      for (const id of ["copy-link", "history-button", "leave-session", "connection-status", "session-title"]) {
        const box = await guest.page.getByTestId(id).boundingBox();
        assert.ok(box, `${id} is shown at ${width} px`);
        assert.ok(box.x >= 0 && box.x + box.width <= width + 0.5, `${id} fits in ${width} px: ${JSON.stringify(box)}`);
      }
      const scrollWidth = await guest.page.evaluate(() => document.documentElement.scrollWidth);
      assert.ok(scrollWidth <= width, `nothing scrolls sideways at ${width} px (${scrollWidth})`);
      // The editor keeps room to work in.
      const editor = await guest.page.locator("#editor-host").boundingBox();
      assert.ok(editor.height >= 300, `the editor is ${editor.height} px tall at ${width} px`);
      await screenshot(guest.page, `room_${width}`);
    }
    // The chat is still reachable on the phone: below the editor.
    await guest.page.setViewportSize({ width: 390, height: 844 });
    await guest.page.getByTestId("chat-input").scrollIntoViewIfNeeded();
    await guest.page.getByTestId("chat-input").fill("from a phone");
    await guest.page.getByTestId("chat-input").press("Enter");
    await host.page.getByText("from a phone").waitFor();
  });
});

scenario("join_storm", "16. a burst of people joining is one notice, not a pile over the editor", async () => {
  await withUsers(["host"], async (host) => {
    const url = await createSession(host, { name: "Hana", title: "Class" });
    const id = new URL(url).searchParams.get("session");
    // Five people join over REST at once, as a class arriving would.
    const names = ["Ana", "Ben", "Cai", "Dov", "Eli"];
    const guests = [];
    for (const _ of names) guests.push(await (await fetch(`${BASE_URL}/api/v1/guests`, { method: "POST" })).json());
    await Promise.all(
      names.map(async (name, i) => {
        const guest = guests[i];
        const res = await fetch(`${BASE_URL}/api/v1/sessions/${id}/users`, {
          method: "POST",
          headers: { Authorization: `Bearer ${guest.token}`, "Content-Type": "application/json" },
          body: JSON.stringify({ name }),
        });
        assert.equal(res.status, 201);
      }),
    );
    const notice = host.page.getByTestId("toast").filter({ hasText: "joined" });
    await notice.first().waitFor();
    await new Promise((r) => setTimeout(r, 1500));
    const texts = await notice.allTextContents();
    assert.equal(texts.length, 1, `one notice: ${JSON.stringify(texts)}`);
    assert.match(texts[0], /and 3 others joined$/);
  });
});
