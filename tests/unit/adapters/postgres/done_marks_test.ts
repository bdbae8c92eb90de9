// The background mark-done of outbox mode: the ids of a short window go out
// in one write, one write is in flight at a time, the ids that arrive
// meanwhile go out together in the next, and flush() writes what waits and
// waits for all of it.
import assert from "node:assert/strict";
import { DoneMarks } from "../../../../src/adapters/postgres/_done_marks.ts";

function recorder(windowMs: number) {
  const writes: string[][] = [];
  const release: (() => void)[] = [];
  const marks = new DoneMarks((ids) => {
    writes.push(ids);
    return new Promise<void>((resolve) => release.push(resolve));
  }, windowMs);
  return { writes, release, marks };
}

const tick = () => new Promise((resolve) => setTimeout(resolve, 0));

Deno.test("DoneMarks: the ids added within the window go out in one write, when the window ends", async () => {
  const { writes, release, marks } = recorder(30);
  marks.add(["a"]);
  marks.add([]);
  marks.add(["b", "c"]);
  assert.deepEqual(writes, [], "nothing is written before the window ends");
  const ended = Date.now();
  while (writes.length === 0) await tick();
  assert.ok(Date.now() - ended >= 25, "written when the window ended");
  assert.deepEqual(writes, [["a", "b", "c"]]);
  release.shift()!();
  await marks.flush();
});

Deno.test("DoneMarks: ids added while a write is in flight go out together in the next one; flush() writes at once and waits for both", async () => {
  const { writes, release, marks } = recorder(60_000);
  marks.add(["a"]);
  let flushed = false;
  const flush = marks.flush().then(() => (flushed = true));
  assert.deepEqual(writes, [["a"]], "flush() does not wait for the window");
  marks.add(["b"]);
  marks.add(["c", "d"]);
  assert.equal(writes.length, 1, "no second write while one is in flight");
  release.shift()!();
  await tick();
  assert.deepEqual(writes, [["a"], ["b", "c", "d"]]);
  assert.equal(flushed, false, "flush() waits for the ids queued meanwhile");
  release.shift()!();
  await flush;
  assert.equal(writes.length, 2);
  await marks.flush(); // nothing waits: resolves at once, no timer left
});

Deno.test("DoneMarks: a thousand ids waiting are written without waiting for the window", async () => {
  const { writes, release, marks } = recorder(60_000);
  marks.add(Array.from({ length: 999 }, (_, i) => `id${i}`));
  assert.equal(writes.length, 0);
  marks.add(["last"]);
  assert.equal(writes.length, 1);
  assert.equal(writes[0]!.length, 1000);
  release.shift()!();
  await marks.flush();
});
