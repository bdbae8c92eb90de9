// The background mark-done of outbox mode: one write in flight at a time,
// the ids that arrive meanwhile go out together in the next, and flush()
// waits for all of them.
import assert from "node:assert/strict";
import { DoneMarks } from "../../../../src/adapters/postgres/_done_marks.ts";

Deno.test("DoneMarks: ids added while a write is in flight go out together in the next one; flush() waits for both", async () => {
  const writes: string[][] = [];
  const release: (() => void)[] = [];
  const marks = new DoneMarks((ids) => {
    writes.push(ids);
    return new Promise<void>((resolve) => release.push(resolve));
  });
  marks.add(["a"]);
  assert.deepEqual(writes, [["a"]], "the first write starts at once");
  marks.add(["b"]);
  marks.add([]);
  marks.add(["c", "d"]);
  assert.equal(writes.length, 1, "no second write while one is in flight");
  let flushed = false;
  const flush = marks.flush().then(() => (flushed = true));
  release.shift()!();
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.deepEqual(writes, [["a"], ["b", "c", "d"]]);
  assert.equal(flushed, false, "flush() waits for the queued ids too");
  release.shift()!();
  await flush;
  assert.equal(writes.length, 2);
  await marks.flush(); // nothing in flight: resolves at once
  marks.add(["e"]);
  assert.deepEqual(writes.at(-1), ["e"], "idle again: the next add writes");
  release.shift()!();
  await marks.flush();
});
