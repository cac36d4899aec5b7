// syncFrames against the part format of PROTOCOL.md ("Frames") and the
// vector collab_wire::parts checks on the Rust side.
import { test } from "node:test";
import assert from "node:assert/strict";
import { PART_TAG, syncFrames } from "../collab-client.mjs";

test("a message that fits goes whole", () => {
  const message = Uint8Array.from([0x42, 1, 2, 3]);
  assert.deepEqual(syncFrames(message, 64), [message]);
});

test("a larger message goes in parts with the 9-byte header", () => {
  const message = Uint8Array.from({ length: 25 }, (_, i) => i);
  const frames = syncFrames(message, 19);
  assert.deepEqual(
    frames.map((f) => Array.from(f)),
    [
      [PART_TAG, 0, 0, 0, 25, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
      [PART_TAG, 0, 0, 0, 25, 0, 0, 0, 10, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19],
      [PART_TAG, 0, 0, 0, 25, 0, 0, 0, 20, 20, 21, 22, 23, 24],
    ],
  );
  const whole = frames.flatMap((f) => Array.from(f.subarray(9)));
  assert.deepEqual(whole, Array.from(message));
});

test("a message that starts like a part goes in parts", () => {
  const message = Uint8Array.from([PART_TAG, 7]);
  const frames = syncFrames(message, 64);
  assert.deepEqual(Array.from(frames[0]), [PART_TAG, 0, 0, 0, 2, 0, 0, 0, 0, PART_TAG, 7]);
});
