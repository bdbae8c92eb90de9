// The repair selection rule shared by OutboxAdmin and the dead letters:
// exactly one of ids, the `by` key or all, each checked, and every message
// says what was wrong and what to pass instead.
import assert from "node:assert/strict";
import { selection } from "../../../src/internal/rules.ts";

const USAGE = 'pass { ids: [...] }, { queue: "q" } or { all: true }';
const pick = (value: unknown) =>
  selection(
    value,
    "retry dead letters",
    "queue",
    (q) => {
      if (typeof q !== "string") throw new TypeError("queue must be a string");
      return q;
    },
    { max: 3, noun: "job ids" },
    USAGE,
  );

Deno.test("selection: one of ids, the by key or all comes back checked", () => {
  assert.deepEqual(pick({ ids: ["a", "b"] }), { ids: ["a", "b"] });
  assert.deepEqual(pick({ queue: "q", ids: undefined }), { by: "q" });
  assert.deepEqual(pick({ all: true }), { all: true });
});

Deno.test("selection: a bad selection is a TypeError naming the rule and the fix", () => {
  const refused = (value: unknown, message: string) =>
    assert.throws(() => pick(value), { name: "TypeError", message });
  refused(
    null,
    `Cannot retry dead letters: expected a selection, received null; ${USAGE}`,
  );
  refused(
    {},
    `Cannot retry dead letters: the selection must have exactly one of ids, queue or all, received none; ${USAGE}`,
  );
  refused(
    { ids: ["a"], all: true },
    `Cannot retry dead letters: the selection must have exactly one of ids, queue or all, received ids, all; ${USAGE}`,
  );
  refused(
    { type: "x" },
    `Cannot retry dead letters: the selection must have exactly one of ids, queue or all, received type; ${USAGE}`,
  );
  refused(
    { all: 1 },
    `Cannot retry dead letters: selection.all must be true, received a number; ${USAGE}`,
  );
  refused(
    { all: false },
    `Cannot retry dead letters: selection.all must be true, received false; ${USAGE}`,
  );
  const rule =
    "Cannot retry dead letters: selection.ids must be an array of 1 to 3 job ids (non-empty strings)";
  for (
    const [ids, problem] of [
      [[], "received an array of 0"],
      [["a", "b", "c", "d"], "received an array of 4"],
      ["a", "received a string"],
      [["a", ""], "but selection.ids[1] is an empty string"],
      [[1], "but selection.ids[0] is a number"],
      [[null], "but selection.ids[0] is null"],
      // every() would skip the hole.
      [[, "p1"], "but selection.ids[0] is undefined"],
    ]
  ) {
    refused({ ids }, `${rule}, ${problem}; ${USAGE}`);
  }
  assert.throws(() => pick({ queue: 5 }), /queue must be a string/);
});
