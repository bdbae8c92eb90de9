import assert from "node:assert/strict";
import { isOutage } from "../../../../src/adapters/postgres/_outbox.ts";

Deno.test("isOutage() reads a server code from `code` and a socket error from `name`, never one as the other", () => {
  const refused = Object.assign(new Error("refused"), {
    name: "ConnectionRefused",
  });
  assert.equal(isOutage(refused), true);
  assert.equal(isOutage({ code: "53300", message: "too many clients" }), true);
  assert.equal(isOutage(new Error("wrapped", { cause: refused })), true);
  assert.equal(isOutage(new AggregateError([new Error("x"), refused])), true);
  // A code spelled like a socket error's name, a name like a server code.
  assert.equal(isOutage({ code: "ConnectionRefused" }), false);
  assert.equal(isOutage({ code: "BrokenPipe" }), false);
  assert.equal(isOutage({ name: "53300" }), false);
  assert.equal(isOutage({ name: "EHOSTDOWN" }), false);
  assert.equal(isOutage(new TypeError("bad input")), false);
});
