// The CLI's table output, with an outbox admin stand-in (the repair test
// runs the CLI on a real outbox).
import assert from "node:assert/strict";
import { type CliIo, main, type OutboxAdminLike } from "../../src/cli/mod.ts";

Deno.test("CLI parked: a long multi-line error stays on its row, clipped to 80 characters", async () => {
  const lastError =
    "TypeError: template missing\n    at render (app.ts:10:5)\n" +
    "    at handler (app.ts:20:3)\n    at dispatch (outbox.ts:1:1)";
  const admin = {
    listParked: () =>
      Promise.resolve([
        { id: "e1", type: "a.b", attempts: 5, lastError, ageSeconds: 90 },
        {
          id: "e2",
          type: "a.b",
          attempts: 5,
          lastError: "A\nB",
          ageSeconds: 1,
        },
      ]),
  } as unknown as OutboxAdminLike;
  let out = "";
  const io: CliIo = {
    out: (text) => void (out += text),
    err: (text) => assert.fail(text),
    confirm: () => Promise.resolve(false),
  };
  const deps = {
    openOutbox: () =>
      Promise.resolve({ admin, close: () => Promise.resolve() }),
  };
  assert.equal(await main(["parked"], io, deps), 0);
  const lines = out.trimEnd().split("\n");
  assert.equal(lines.length, 3, out); // the header and one line per event
  const clipped = lastError.replaceAll("\n", " ").slice(0, 79);
  assert.ok(lines[1]!.startsWith("e1") && lines[1]!.endsWith(`${clipped}…`));
  assert.ok(lines[2]!.startsWith("e2") && lines[2]!.endsWith("A B"), lines[2]);
});
