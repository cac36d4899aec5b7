// Running code: the Run button's request to the server's runner, sharing
// the output with everyone, and the output panel.

import { clock, h } from "./dom.js";

// Run output is shared in one text frame of at most 64 KiB.
const MAX_OUTPUT_BYTES = 24000;

function truncateUtf8(text, maxBytes) {
  const bytes = new TextEncoder().encode(text);
  if (bytes.length <= maxBytes) return text;
  return new TextDecoder().decode(bytes.slice(0, maxBytes)).replace(/\uFFFD$/, "") + "\n… (output truncated)";
}

export class RunPanel {
  /**
   * @param {import("./room.js").Room} room
   * @param {{runMeta: HTMLElement, runOutput: HTMLElement}} el
   */
  constructor(room, el) {
    this.room = room;
    this.el = el;
    this.running = false;
    this.lastRun = null;
  }

  /** Runs the current file on the server and shares the output with everyone. */
  async run() {
    const room = this.room;
    const role = room.participants.get(room.me)?.role;
    if (this.running || !room.doc || role === "viewer") return;
    this.running = true;
    room._render();
    this.el.runMeta.textContent = "Running…";
    const language = room.session?.language || "plaintext";
    try {
      let res;
      try {
        res = await fetch("/api/v1/run", {
          method: "POST",
          headers: { "Content-Type": "application/json", Authorization: `Bearer ${room.token}` },
          body: JSON.stringify({ session: room.sessionId, language, code: room.doc.text(room.file) }),
        });
      } catch {
        return this.problem("Could not reach the server to run the code.");
      }
      if (res.status === 404 || res.status === 501) {
        this.el.runOutput.replaceChildren(
          h("p", { class: "run-disabled", testid: "run-disabled" }, "running code is turned off on this server"),
        );
        this.el.runMeta.textContent = "";
        return;
      }
      const body = await res.json().catch(() => null);
      if (!res.ok || !body || typeof body !== "object" || body.error) {
        const message = body?.error?.message ?? (typeof body?.error === "string" ? body.error : `HTTP ${res.status}`);
        return this.problem(`The run failed: ${message}`);
      }
      const frame = {
        stdout: truncateUtf8(String(body.stdout ?? ""), MAX_OUTPUT_BYTES),
        stderr: truncateUtf8(String(body.stderr ?? ""), MAX_OUTPUT_BYTES),
      };
      if (Number.isInteger(body.exit_code)) frame.exit_code = body.exit_code;
      try {
        // Everyone, this page included, shows it from the run_finished event.
        await room.client.shareRun(frame);
      } catch (e) {
        this.show({ ...frame, by: room.me, at: Date.now() });
        room.toast(`The output could not be shared: ${e.message}`, "error");
      }
    } finally {
      this.running = false;
      if (this.el.runMeta.textContent === "Running…") this.el.runMeta.textContent = "";
      room._render();
    }
  }

  problem(text) {
    this.el.runOutput.replaceChildren(h("p", { class: "run-error", testid: "run-error" }, text));
    this.el.runMeta.textContent = "";
  }

  /** Shows a run's output (from the `run_finished` event everyone gets). */
  show(run) {
    this.lastRun = run;
    const who = this.room.participants.get(run.by)?.name ?? "someone";
    const exit = run.exit_code === undefined ? "stopped" : `exit code ${run.exit_code}`;
    this.el.runMeta.textContent = `Run by ${who} at ${clock(run.at)} · ${exit}`;
    // A run without an exit code was stopped (a time or memory limit).
    const outcome = run.exit_code === 0 ? "ok" : run.exit_code == null ? "stopped" : "failed";
    this.el.runOutput.replaceChildren(
      h(
        "div",
        { class: `run-result ${outcome}`, testid: "run-result", dataset: { exitCode: String(run.exit_code ?? "") } },
        run.stdout && h("pre", { class: "stdout", testid: "run-stdout" }, run.stdout),
        run.stderr && h("pre", { class: "stderr", testid: "run-stderr" }, run.stderr),
        !run.stdout && !run.stderr && h("p", { class: "muted" }, "(no output)"),
      ),
    );
  }

  /** Shows the session's last run, if one is among the latest events. */
  async loadLast(lastSeq) {
    try {
      const page = await this.room.client.eventsSince(Math.max(0, lastSeq - 500));
      const run = page.events.filter((e) => e.kind === "run_finished").at(-1);
      if (run && !this.lastRun) this.show(run.run);
    } catch {
      // Not important enough to retry.
    }
  }
}
