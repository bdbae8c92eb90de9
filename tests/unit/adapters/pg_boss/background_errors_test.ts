// pg-boss's background errors during an outage: the same error repeated
// several times a second is logged once per window, with the count.
import assert from "node:assert/strict";
import { onceEvery } from "../../../../src/adapters/pg-boss/options.ts";

Deno.test("onceEvery: a repeat of the last logged error within the window is counted, not logged; another error, or the same after the window, is logged with the count", async () => {
  const logged: [string, number][] = [];
  const log = onceEvery(50, (error, repeats) => {
    logged.push([error.message, repeats]);
  });
  const refused = () => new Error("connect ECONNREFUSED 127.0.0.1:5433");
  for (let i = 0; i < 5; i++) log(refused());
  assert.deepEqual(logged, [["connect ECONNREFUSED 127.0.0.1:5433", 0]]);
  log(new Error("terminating connection due to administrator command"));
  assert.deepEqual(logged.at(-1), [
    "terminating connection due to administrator command",
    4,
  ]);
  log(refused());
  assert.equal(logged.length, 3, "a different error than the last is logged");
  await new Promise((resolve) => setTimeout(resolve, 60));
  log(refused());
  assert.deepEqual(logged.at(-1), ["connect ECONNREFUSED 127.0.0.1:5433", 0]);
  assert.equal(logged.length, 4, "the same error after the window is logged");
});

Deno.test("onceEvery: pg-boss's worker errors, plain objects with the error's message and stack, are logged as errors with that message and code, not as a non-Error", () => {
  const logged: Error[] = [];
  const log = onceEvery(1000, (error) => void logged.push(error));
  const cause = new Error("connection refused");
  log({
    ...{ code: "ECONNREFUSED", detail: "Key (email)=(ada@example.org)" },
    message: cause.message,
    stack: cause.stack,
    queue: "send-welcome-email",
  });
  log("a string");
  assert.equal(logged[0]!.message, "connection refused");
  assert.equal(logged[0]!.name, "Error ECONNREFUSED");
  assert.equal(logged[0]!.stack, cause.stack);
  // The driver's other fields (a row's values in `detail`) are not copied.
  assert.equal((logged[0] as { detail?: unknown }).detail, undefined);
  assert.ok(!Deno.inspect(logged[0]).includes("ada@"));
  assert.equal(
    logged[1]!.name,
    "NonError",
    "other non-Errors: their type only",
  );
});
